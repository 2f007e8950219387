"""The pages in a real headless Chromium against a real uvicorn server: an exercise
launched from the page after typing its word, then the live board following answers
pushed over server-sent events within a second, marked as an exercise throughout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.mobilization.conftest import (
    ICU_NURSE,
    Rig,
    build_rig,
    make_platform,
    save_plan,
    staff_csv,
)
from tests.mobilization.test_api import build_app, token

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path: Path, smsc: Any) -> Iterator[tuple[str, Rig]]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    platform = make_platform(
        f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var", f"http://127.0.0.1:{port}"
    )
    rig = build_rig(platform, smsc)
    rig.service.import_csv(staff_csv([(i, ICU_NURSE, "icu") for i in range(1, 6)]))
    save_plan(rig.service, quota=2)
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(platform), host="127.0.0.1", port=port, log_level="error", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", rig
    server.should_exit = True
    thread.join(timeout=10)
    platform.close()


def test_launch_from_the_page_and_watch_the_board(live: tuple[str, Rig]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, rig = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_context(
            extra_http_headers={"Authorization": f"Bearer {token(rig.platform)}"}
        ).new_page()
        page.goto(f"{url}/mobilization/")
        expect(page.locator("#plan option")).to_have_count(1)
        page.click("#launch-button")
        expect(page.locator("#confirm-word")).to_have_text("EXERCICE")
        page.fill("#confirm-input", "ALERTE")  # the wrong word: refused, nothing sent
        page.click("#confirm-ok")
        expect(page.locator("#error")).to_contain_text("EXERCICE")
        assert rig.service.campaigns() == []
        page.click("#launch-button")
        page.fill("#confirm-input", "exercice")
        page.click("#confirm-ok")
        page.wait_for_url("**/mobilization/campaigns/*")
        expect(page.locator("#banner")).to_have_text("EXERCICE – ceci n'est pas une alerte réelle")
        assert page.title().startswith("[EXERCICE]")
        first = page.locator("#requests tbody tr").first
        expect(first.locator("td").nth(3)).to_have_text("0")  # confirmed
        expect(first.locator("td").nth(5)).to_have_text("2")  # pending

        rig.drain(until=lambda: len(rig.texts()) == 2)
        rig.answer(1, "oui 25")
        rig.dispatcher.drain(
            until=lambda: (
                rig.service.board(rig.service.campaigns()[0].id)["totals"]["confirmed"] == 1
            )
        )
        answered = time.monotonic()
        expect(first.locator("td").nth(3)).to_have_text("1", timeout=5000)
        assert time.monotonic() - answered < 1.5  # pushed, not reloaded
        expect(page.locator("#arrivals tbody tr")).to_have_count(1)
        expect(page.locator("#arrivals tbody tr td").nth(1)).to_have_text("Test Agent1")
        expect(page.locator("#timeline .dot")).to_have_count(1)
        expect(page.locator("#feed")).to_contain_text("réponse – Test Agent1 (oui, 25 min)")

        page.once("dialog", lambda d: d.accept())
        page.click("#close-button")
        expect(page.locator("#subtitle")).to_contain_text("campagne clôturée", timeout=5000)
        browser.close()
