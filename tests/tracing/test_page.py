"""The test-centre finder page in a real headless Chromium."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

import hygie.web
from hygie.platform import Platform
from hygie.tracing import api
from hygie.tracing.engine import TracingService
from tests.tracing.sites import sites_csv

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def live_url(sqlite_service: TracingService, sqlite_platform: Platform) -> Iterator[str]:
    sqlite_service.import_sites(sites_csv(400, seed=2))
    static = Path(hygie.web.__file__).parent / "static"
    app = Starlette(routes=[Mount("/static", StaticFiles(directory=static)),
                            Mount("/tracing", routes=api.routes())])
    app.state.platform = sqlite_platform
    app.state.nav = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.browser
def test_finder_page_lists_and_maps_nearest_sites(live_url: str,
                                                  sqlite_service: TracingService) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    import os

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        page.goto(live_url + "/tracing/")
        assert page.url.endswith("/tracing/centres")
        assert "400 sites" in page.inner_text("main")
        # the search starts where the listed sites are
        sites = sqlite_service.site_index().sites
        assert float(page.input_value("#lat")) == round(
            float(np.median([x.latitude for x in sites])), 4)
        assert float(page.input_value("#lon")) == round(
            float(np.median([x.longitude for x in sites])), 4)
        page.fill("#lat", "45.76")
        page.fill("#lon", "4.84")
        page.fill("#limit", "5")
        page.check("#f-antigenic")
        page.click("button[type=submit]")
        page.wait_for_selector("#results li strong")
        items = page.locator("#results li")
        assert items.count() == 5
        distances = [float(t.split()[0]) for t in page.locator(".dist").all_inner_texts()]
        assert distances == sorted(distances)
        assert "antigénique" in items.first.inner_text()
        assert page.locator("#map .site-dot").count() == 5
        assert page.locator("#map #me").count() == 1
        if os.environ.get("HYGIE_SCREENSHOT_DIR"):
            page.screenshot(path=os.path.join(os.environ["HYGIE_SCREENSHOT_DIR"], "finder.png"),
                            full_page=True)
        page.fill("#f-public", "personne")  # no site serves this public
        page.click("button[type=submit]")
        page.wait_for_selector("#results li.empty")
        browser.close()
