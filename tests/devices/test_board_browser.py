"""The ICU board in a real headless Chromium against a real uvicorn server: it shows the
beds, highlights out-of-range values and updates by itself."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from hygie.devices.simulator import hl7_now
from hygie.platform import Platform
from hygie.store.interactions import StoreContext
from tests.devices.corpus import monitor
from tests.devices.test_api import make_app, map_messages

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (install it with: make browser)"
    ),
]


@pytest.fixture
def base_url(platform: Platform, store: StoreContext) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(make_app(platform), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_board_updates_by_itself(
    base_url: str, platform: Platform, store: StoreContext, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    def now_monitor(control: str, hr: str) -> str:
        return monitor(control, hr=hr).replace("20260321081500+0100", hl7_now())

    map_messages(platform, store, now_monitor("B1", "88"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="fr-FR")
            page.goto(base_url + "/devices/")
            expect(page).to_have_title("Réanimation : tableau des lits · Hygie")
            row = page.locator("tr[data-bed]")
            expect(row).to_have_count(1)
            expect(row.first.locator("td").first).to_have_text("icu 101 a")
            hr = row.first.locator('td[data-key="hr"]')
            expect(hr).to_have_text("88")
            expect(hr).not_to_have_class("abnormal")
            expect(row.first.locator('td[data-key="temp"]')).to_have_class("abnormal")
            expect(row.first).to_contain_text("identité provisoire")
            # a new message arrives while the page is open: no reload needed
            map_messages(platform, store, now_monitor("B2", "142"))
            expect(hr).to_have_text("142", timeout=10_000)
            expect(hr).to_have_class("abnormal")
            page.screenshot(path=str(tmp_path / "board.png"), full_page=True)
        finally:
            browser.close()
