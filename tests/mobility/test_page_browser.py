"""The mobility page in a real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.mobility.test_api import make_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (install it with: make browser)"),
]


@pytest.fixture
def base_url(tmp_path: Path, published: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(tmp_path, published)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    app.state.platform.close()


def test_page_shows_exodus_map_flows_and_series(base_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="fr-FR")
            page.goto(base_url + "/mobility/")
            expect(page).to_have_title("Mobilité · Hygie")
            # Default: last day (under lockdown) against the first (ordinary) day.
            expect(page.locator("#day-select")).to_have_value("2020-03-12")
            paris = page.locator("#dep-75")
            expect(paris).to_be_visible()
            assert paris.get_attribute("data-change").startswith("-")  # Paris emptied
            assert page.locator(".mobility-map path").count() == 96
            expect(page.locator("#trips-series .series-line")).to_be_visible()
            expect(page.locator("#release-facts")).to_contain_text("20 appareils")
            page.screenshot(path=str(tmp_path / "mobility.png"), full_page=True)

            page.locator("#day-select").select_option("2020-03-09")
            page.wait_for_url("**date=2020-03-09**")
            assert page.locator("#dep-75").get_attribute("data-change") == "+0,0\u202f%"
            # 20,000 devices: only the largest flows between départements pass 20 devices.
            assert page.locator("#top-flows .flow-bar").count() == 2
            page.locator("#zone-select").select_option("69")
            page.wait_for_url("**zone=69**")
            expect(page.get_by_role("img", name="Présence : Rhône, par demi-heure")).to_be_visible()
        finally:
            browser.close()
