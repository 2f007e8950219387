"""The clinician pages in a real headless Chromium against a real uvicorn server: alerts
by severity, the timeline with its chart, acknowledge, note a call, resolve with a
comment, end the follow-up, and enroll a patient from the form."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hygie.channels import Answer, Channel
from hygie.followup.engine import FollowupService, Options
from hygie.followup.model import AlertStatus, EnrollmentRequest, EnrollmentStatus
from hygie.platform import Platform
from tests.followup.conftest import TEAM, add_patient, add_team, make_platform, paris_ms
from tests.followup.test_api import build_app, token

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
def live(tmp_path: Path) -> Iterator[tuple[str, Platform, FollowupService]]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    platform = make_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var")
    add_team(platform)
    service = FollowupService(platform, Options(worker=False, default_team=TEAM))
    now = [paris_ms("2026-03-02 07:30")]
    service.clock = lambda: now[0]
    platform.parts["followup"] = service
    service.install_protocols()
    add_patient(platform, "hugo", "Hugo", "Lemaire", "+33612000041")
    e = service.enroll(
        EnrollmentRequest("hugo", "covid19", "+33612000041", "2026-03-02", consent=True, team=TEAM)
    )
    # Two sessions answered (the SMS path is tested elsewhere: here the answers are
    # handed to the service as the channels dispatcher would).
    for at, texts in (
        ("2026-03-02 08:00", ["37,4", "non", "96", "80", "non"]),
        ("2026-03-02 15:00", ["39,8", "oui", "91", "non", "oui"]),
    ):
        now[0] = paris_ms(at)
        service.dispatch_due()
        for n, text in enumerate(texts):
            service.on_answers(
                [
                    Answer(
                        f"{at}-{n}",
                        f"followup:{e.id}",
                        Channel.SMS,
                        "+33612000041",
                        text,
                        None,
                        now[0],
                    )
                ]
            )
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(platform), host="127.0.0.1", port=port, log_level="error", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", platform, service
    server.should_exit = True
    thread.join(timeout=10)
    platform.close()


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("HYGIE_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=os.path.join(folder, name), full_page=True)


def test_a_clinician_works_through_the_alerts(live: tuple[str, Platform, FollowupService]) -> None:
    from playwright.sync_api import sync_playwright

    url, platform, service = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(
            extra_http_headers={"Authorization": f"Bearer {token(platform)}"}
        )
        page = context.new_page()
        page.goto(url + "/followup/")
        sections = page.locator("section h2").all_inner_texts()
        # The afternoon's answers raised one alert, higher with each answer.
        assert [s.split(" (")[0] for s in sections[:3]] == ["Urgence", "Avis médical", "Vigilance"]
        assert sections[0].endswith("(1)") and sections[1].endswith("(0)")
        urgent = page.locator("section").first.locator("article")
        for reason in ("Fièvre élevée", "Essoufflement", "Saturation ≤ 92 %"):
            assert reason in urgent.inner_text()
        _shot(page, "followup-dashboard.png")
        urgent.locator("a").first.click()
        page.wait_for_url("**/followup/enrollments/**")
        assert page.locator("article.focus").count() == 1
        chart = page.locator("figure.fu-chart").first
        assert "Température" in chart.inner_text()
        assert chart.locator("circle").count() == 2
        assert chart.locator("line").count() == 3  # 38, 39.5 and 35.5 °C thresholds
        assert page.locator("a[href='tel:+33612000041']").count() >= 1
        _shot(page, "followup-timeline.png")
        focus = page.locator("article.focus")
        focus.locator("form[data-action=call] button").click()
        page.wait_for_load_state("load")
        page.wait_for_selector("article.focus[data-status=acknowledged]")
        focus = page.locator("article.focus")
        focus.locator("input[name=comment]").fill("Appelé, SAMU envoyé")
        focus.locator("form[data-action=resolve] button").click()
        page.wait_for_selector("article.focus[data-status=resolved]")
        page.locator("input[name=reason]").fill("hospitalisé")
        page.locator("form[data-action=end] button").click()
        page.wait_for_selector("text=terminé")
        # Enrolling from the form, with an error first.
        add_patient(platform, "ines", "Inès", "Roux", "+33612000042")
        page.goto(url + "/followup/enroll?patient=ines")
        page.fill("input[name=phone]", "01 45 67 89 10")
        page.fill("input[name=start]", "2026-03-02")
        page.check("input[name=consent]")
        page.click("#enroll button[type=submit]")
        page.wait_for_selector("#error:has-text('mobile')")
        page.fill("input[name=phone]", "06 12 00 00 42")
        page.click("#enroll button[type=submit]")
        page.wait_for_url("**/followup/enrollments/**")
        assert "Inès Roux" in page.inner_text("h1")
        # Editing a protocol: a bad definition is refused with the field named.
        page.goto(url + "/followup/protocols")
        assert "version 1" in page.inner_text("section h2")
        page.click("summary")
        text = page.input_value("textarea")
        page.fill("textarea", text.replace('"15:00"', '"25:00"'))
        page.click("form[data-save] button")
        page.wait_for_selector("#error:has-text('schedule.times[1]')")
        page.fill("textarea", text.replace('"15:00"', '"16:00"'))
        page.click("form[data-save] button")
        page.wait_for_selector("section h2:has-text('version 2')")
        assert "08:00, 16:00" in page.inner_text("section h2")
        browser.close()
    alerts = service.alerts(None)
    urgent_alert = next(a for a in alerts if a.level == 3)
    assert service.alert(urgent_alert.id).status is AlertStatus.RESOLVED
    assert [e.status for e in service.enrollments(patient_id="hugo")] == [EnrollmentStatus.ENDED]
    assert service.enrollments(patient_id="ines")[0].phone == "+33612000042"
