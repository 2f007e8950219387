"""The worklist and the viewer in a real headless Chromium: two readers annotate the same
study remotely, each with their own annotations and reading status."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

import hygie.web
from hygie.imaging.phantom import Phantom, phantom_series
from hygie.imaging.readings import Readings
from hygie.imaging.service import ImagingService
from hygie.platform import Platform
from tests.imaging.conftest import imaging_app, make_service, part10, token

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def served(sqlite_platform: Platform, phantom: Phantom) -> Iterator[tuple[str, ImagingService]]:
    svc = make_service(sqlite_platform, stable_s=0.0)
    svc.archive.enqueue = svc.jobs.enqueue
    svc.archive.store([part10(ds) for ds in phantom_series(phantom)])
    assert svc.jobs.run_due() == 1  # the automatic quantification, shown in the viewer
    app = imaging_app(sqlite_platform)
    static = Path(hygie.web.__file__).parent / "static"
    app.router.routes.insert(0, Mount("/static", StaticFiles(directory=static)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", svc
    server.should_exit = True
    thread.join(timeout=10)


def _drag(page: object, selector: str, points: list[tuple[float, float]]) -> None:
    """Press, move through ``points`` (fractions of the element's box), release."""
    box = page.locator(selector).bounding_box()  # type: ignore[attr-defined]
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]


@pytest.mark.browser
@pytest.mark.slow
def test_two_readers_annotate_the_same_study(served: tuple[str, ImagingService],
                                             sqlite_platform: Platform) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    url, svc = served
    readings = Readings(svc.archive.engine, svc.archive)
    study = svc.archive.study_row
    with svc.archive.engine.connect() as conn:
        from sqlalchemy import select

        from hygie.imaging import tables

        study_uid, series_uid = conn.execute(
            select(tables.series.c.study_uid, tables.series.c.series_uid)
            .where(tables.series.c.modality == "CT")).one()
    assert study(study_uid).patient_id == "PHANTOM-0001"
    readings.assign(study_uid, "lecteur-a", "admin")
    shots = os.environ.get("HYGIE_SCREENSHOT_DIR")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        # The administrator assigns the study to a second reader from the worklist.
        admin = browser.new_context(extra_http_headers={
            "Authorization": f"Bearer {token(sqlite_platform, 'system/*.cruds imaging:admin')}"})
        page = admin.new_page()
        page.goto(url + "/imaging/worklist")
        page.wait_for_selector("#worklist tr[data-study]")
        assert "lecteur-a : à lire" in page.inner_text("#worklist .readers")
        page.fill("#worklist form.assign input", "lecteur-b")
        page.click("#worklist form.assign button")
        page.wait_for_function("(document.querySelector('#worklist .readers') || "
                               "{textContent: ''}).textContent.includes('lecteur-b : à lire')")
        admin.close()
        # Reader A: worklist, then the viewer, then every tool.
        a = browser.new_context(viewport={"width": 1500, "height": 1000}, extra_http_headers={
            "Authorization": f"Bearer {token(sqlite_platform, 'system/*.cruds', 'lecteur-a')}"})
        page = a.new_page()
        page.goto(url + "/imaging/")
        assert page.url.endswith("/imaging/worklist")
        page.wait_for_selector("#worklist tr[data-study]")
        assert "lecteur-a : à lire" in page.inner_text("#worklist")
        assert "lecteur-b" not in page.inner_text("#worklist")  # not an administrator
        page.click("#worklist a.open")
        page.wait_for_selector("#viewer[data-ready=true]")
        assert "Fantome Thorax" in page.inner_text("#status")
        page.wait_for_selector("#quantification table")
        assert "Score total" in page.inner_text("#quantification")
        page.check("#show-auto")
        page.wait_for_selector("#viewer[data-auto-lesion-voxels]")
        assert int(page.get_attribute("#viewer", "data-auto-lesion-voxels") or 0) > 1000
        assert page.get_attribute("#viewer", "data-window") == "-600,1500"
        page.click("button.preset:has-text('Médiastin')")
        assert page.get_attribute("#viewer", "data-window") == "40,400"
        page.click("button.preset:has-text('Poumon')")
        # Scroll the axial view, zoom and pan it.
        before = page.inner_text("#view-axial + figcaption .pos")
        page.locator("#view-axial").hover()
        page.mouse.wheel(0, 300)
        assert page.inner_text("#view-axial + figcaption .pos") != before
        page.click("button.tool[data-tool=zoom]")
        _drag(page, "#view-axial", [(0.5, 0.6), (0.5, 0.4)])
        page.click("button.tool[data-tool=pan]")
        _drag(page, "#view-axial", [(0.5, 0.5), (0.55, 0.5)])
        # Distance measure on the coronal view.
        page.click("button.tool[data-tool=measure]")
        _drag(page, "#view-coronal", [(0.3, 0.5), (0.7, 0.5)])
        assert "mm" in page.inner_text("#measure-result")
        # written the French way: "Distance : 123,4 mm"
        number = page.inner_text("#measure-result").split(":")[1].removesuffix("mm")
        distance = float(number.replace("\u202f", "").replace(",", ".").strip())
        assert distance > 20
        # Ground glass with the brush, consolidation with a polygon, an eraser stroke.
        page.click("button.tool[data-tool=brush]")
        _drag(page, "#view-axial", [(0.3, 0.45), (0.35, 0.5), (0.4, 0.55)])
        page.select_option("#label", "2")
        page.click("button.tool[data-tool=polygon]")
        box = page.locator("#view-sagittal").bounding_box()
        assert box is not None
        for fx, fy in ((0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)):
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.mouse.dblclick(box["x"] + 0.4 * box["width"], box["y"] + 0.6 * box["height"])
        assert "Polygone rempli" in page.inner_text("#status")
        page.click("button.tool[data-tool=eraser]")
        _drag(page, "#view-axial", [(0.4, 0.55), (0.41, 0.56)])
        page.click("#save")
        page.wait_for_selector("#viewer[data-saved]")
        seg_a = page.get_attribute("#viewer", "data-saved")
        assert page.input_value("#reading-status") == "in-progress"
        page.select_option("#reading-status", "done")
        page.wait_for_function("document.getElementById('status').textContent.includes('Statut')")
        if shots:
            page.screenshot(path=os.path.join(shots, "imaging-viewer.png"), full_page=True)

        # Reader B sees none of A's work and annotates with the threshold brush.
        b = browser.new_context(viewport={"width": 1500, "height": 1000}, extra_http_headers={
            "Authorization": f"Bearer {token(sqlite_platform, 'system/*.cruds', 'lecteur-b')}"})
        page_b = b.new_page()
        page_b.goto(f"{url}/imaging/viewer/{study_uid}")
        page_b.wait_for_selector("#viewer[data-ready=true]")
        assert page_b.input_value("#reading-status") == "assigned"
        page_b.click("button.tool[data-tool=threshold]")
        page_b.select_option("#label", "3")
        page_b.locator("#brush-size").fill("20")
        # From the chest wall into the lung: only the soft tissue is in "other"'s range.
        _drag(page_b, "#view-axial", [(0.06, 0.5), (0.3, 0.5)])
        page_b.click("#save")
        page_b.wait_for_selector("#viewer[data-saved]")
        seg_b = page_b.get_attribute("#viewer", "data-saved")
        browser.close()

    assert seg_a and seg_b and seg_a != seg_b
    labels_a = np.frombuffer(readings.load_annotation(series_uid, "lecteur-a"), np.uint8)
    labels_b = np.frombuffer(readings.load_annotation(series_uid, "lecteur-b"), np.uint8)
    assert set(np.unique(labels_a)) == {0, 1, 2}
    assert set(np.unique(labels_b)) == {0, 3}
    assert not np.array_equal(labels_a, labels_b)
    # The threshold brush painted only voxels in the range of its label, [-750, +100].
    hu = svc_volume_hu(svc, series_uid)
    painted = hu.ravel()[labels_b == 3]
    assert painted.size > 100 and painted.min() >= -750 and painted.max() <= 100
    status = {r["reader"]: r["status"] for r in readings.worklist(None)[0].readings}
    assert status == {"lecteur-a": "done", "lecteur-b": "in-progress"}


def svc_volume_hu(svc: ImagingService, series_uid: str) -> np.ndarray:
    from hygie.imaging.lung_report import load_volume

    return load_volume(svc.archive, series_uid)[0].hu
