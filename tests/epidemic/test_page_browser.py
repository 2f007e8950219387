"""The epidemic pages in a real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.epidemic.test_api import make_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (install it with: make browser)"),
]


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(tmp_path)
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


def test_scenario_page_draws_icu_demand_against_capacity(base_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="fr-FR")
            page.goto(base_url + "/epidemic/?runs=20")
            expect(page).to_have_title("Épidémie · Hygie")
            page.get_by_label("Scénario").select_option("idf_exit_without_measures")
            page.get_by_label("Simulations").fill("30")
            page.get_by_role("button", name="Simuler").click()
            page.wait_for_url("**scenario=idf_exit_without_measures**")
            expect(page.locator("#capacity")).to_have_text("3\u202f000 lits")  # French digits
            expect(page.locator("#exceed")).to_have_text("100 %")
            chart = page.get_by_role(
                "img", name="Besoin en réanimation : Île-de-France : sortie sans mesures")
            expect(chart).to_be_visible()
            assert chart.locator("polygon.band").count() == 1
            assert chart.locator("line.capacity").count() == 1
            box = chart.bounding_box()
            assert box is not None and box["width"] > 300
            page.screenshot(path=str(tmp_path / "epidemic.png"), full_page=True)

            page.get_by_role("link", name="Calibration sur les admissions en réanimation").click()
            page.wait_for_url("**/epidemic/calibration")
            expect(page.get_by_role(
                "img", name="Calibration : admissions en réanimation, Île-de-France")
            ).to_be_visible()
            assert page.locator("#fit circle.obs").count() == 59
            expect(page.locator("#posterior")).to_contain_text("lockdown_scale")
        finally:
            browser.close()
