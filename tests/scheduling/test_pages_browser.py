"""The pages in a real headless Chromium against a real uvicorn server: a patient books,
moves and cancels; staff book, move and cancel; a patient fills in a pre-admission
that staff validate."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hygie.platform import Platform
from hygie.scheduling.engine import SchedulingService
from hygie.scheduling.model import Patient
from tests.scheduling.conftest import (
    NOW,
    build_app,
    last_sms,
    make_platform,
    publish_calendar,
    staff_token,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

pytestmark = pytest.mark.browser


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Platform, SchedulingService]]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    platform = make_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var",
                             f"http://127.0.0.1:{port}")
    from hygie.scheduling.engine import Options

    service = SchedulingService(platform, Options(worker=False))
    service.clock = lambda: NOW
    platform.parts["scheduling"] = service
    publish_calendar(service)
    server = uvicorn.Server(uvicorn.Config(build_app(platform), host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
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


def _browser(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def test_a_patient_books_moves_and_cancels(live: tuple[str, Platform, SchedulingService]) -> None:
    from playwright.sync_api import sync_playwright

    url, platform, service = live
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page()
        page.goto(url + "/scheduling/rdv")
        page.wait_for_selector("#type option", state="attached")
        page.select_option("#type", "consultation")
        page.fill("#from", "2021-03-02")
        page.click("#search button[type=submit]")
        page.wait_for_selector(".slot")
        assert "mardi 2 mars" in page.inner_text("#results")
        first = page.locator(".slot").first
        assert first.inner_text().startswith("09:00")
        first.click()
        page.fill("#family", "Durand")
        page.fill("#given", "Alice")
        page.fill("#birth", "1980-02-03")
        page.fill("#phone", "06 12 34 56 78")
        page.click("#send-code")
        page.wait_for_selector("#code-form:not([hidden])")
        assert page.input_value("#phone") == "+33612345678"
        code = re.search(r"\b(\d{6})\b", last_sms(platform, "+33612345678")).group(1)  # type: ignore[union-attr]
        page.fill("#code", code)
        page.click("#confirm")
        page.wait_for_selector("#done:not([hidden])")
        assert "mardi 2 mars à 09:00" in page.inner_text("#done-text")
        _shot(page, "scheduling-booked.png")
        manage = page.get_attribute("#manage-link", "href")
        assert manage and "/scheduling/manage/" in manage
        page.goto(manage)
        page.wait_for_selector("#details:has-text('confirmé')")
        page.click("#move")
        page.wait_for_selector("#slots .slot")
        target = page.locator("#slots .slot").nth(2)
        when = target.inner_text()
        target.click()
        page.wait_for_selector("#message:has-text('déplacé')")
        assert when in page.inner_text("#details") and "mardi 2 mars" not in when
        page.on("dialog", lambda d: d.accept())
        page.click("#cancel")
        page.wait_for_selector("#message:has-text('annulé')")
        assert "annulé" in page.inner_text("#details")
        browser.close()
    assert service.bookings(["ag-cardio-1"], NOW, NOW + 40 * 86400)[0].status == "cancelled"


def test_two_patients_on_one_slot_the_second_is_told(
        live: tuple[str, Platform, SchedulingService]) -> None:
    from playwright.sync_api import sync_playwright

    url, platform, service = live
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page()
        page.goto(url + "/scheduling/rdv")
        page.wait_for_selector("#type option", state="attached")
        page.select_option("#type", "consultation")
        page.fill("#from", "2021-03-03")
        page.click("#search button[type=submit]")
        page.wait_for_selector(".slot")
        slot_id = int(page.locator(".slot").first.get_attribute("data-slot") or 0)
        page.locator(".slot").first.click()
        # Meanwhile, the same slot is booked at the front desk.
        service.book(slot_id, Patient("Leroy", "Bob", "1975-05-06"))
        page.fill("#family", "Durand")
        page.fill("#given", "Alice")
        page.fill("#birth", "1980-02-03")
        page.fill("#phone", "0612345678")
        page.click("#send-code")
        page.wait_for_selector("#code-form:not([hidden])")
        code = re.search(r"\b(\d{6})\b", last_sms(platform, "+33612345678")).group(1)  # type: ignore[union-attr]
        page.fill("#code", code)
        page.click("#confirm")
        page.wait_for_selector("#error:has-text('vient d')")
        page.wait_for_function(
            f"!document.querySelector('.slot[data-slot=\"{slot_id}\"]')")
        browser.close()


def test_staff_book_move_and_cancel(live: tuple[str, Platform, SchedulingService]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, platform, _service = live
    with sync_playwright() as pw:
        browser = _browser(pw)
        context = browser.new_context(extra_http_headers={
            "Authorization": f"Bearer {staff_token(platform)}"})
        page = context.new_page()
        page.goto(url + "/scheduling/?site=ch-jeanne-sorel&date=2021-03-02")
        page.wait_for_selector("section.agenda[data-agenda=ag-cardio-1] tbody tr")
        cardio = page.locator("section.agenda[data-agenda=ag-cardio-1]")
        assert cardio.locator("tbody tr").count() == 9
        assert page.locator("section.agenda[data-agenda=ag-anesth-1] tbody tr").count() == 6
        cardio.locator("tbody tr").nth(1).get_by_role("button", name="Réserver").click()
        page.fill("#family", "Martin")
        page.fill("#given", "Paul")
        page.fill("#birth", "1950-06-07")
        page.click("#book button[type=submit]")
        page.wait_for_selector("#message:has-text('réservé')")
        # the message comes first, then the agenda is drawn again: wait for both
        row = cardio.locator("tbody tr").nth(1)
        expect(row).to_contain_text("MARTIN Paul")
        expect(row).to_contain_text("réservé")
        _shot(page, "scheduling-staff.png")
        row.get_by_role("button", name="Déplacer").click()
        page.wait_for_selector("#move-slots .slot")
        page.locator("#move-slots .slot").first.click()
        page.wait_for_selector("#message:has-text('déplacé')")
        first = cardio.locator("tbody tr").first
        expect(first).to_contain_text("MARTIN Paul")
        page.on("dialog", lambda d: d.accept())
        first.get_by_role("button", name="Annuler").click()
        page.wait_for_selector("#message:has-text('annulé')")
        expect(cardio.locator("tbody tr").first).to_contain_text("libre")
        browser.close()


def test_preadmission_filled_in_then_validated(
        live: tuple[str, Platform, SchedulingService]) -> None:
    from playwright.sync_api import sync_playwright

    url, platform, service = live
    slot = service.search(type_code="anesthesie")[0].id
    service.book(slot, Patient("Durand", "Alice", "1980-05-03", "+33612345678"))
    with service.engine.connect() as conn:
        from sqlalchemy import select

        from hygie.scheduling import tables as t

        sms = conn.execute(select(t.message.c.body).where(
            t.message.c.purpose == "preadmission")).scalar_one()
    link = re.search(r"(/scheduling/preadmission/\S+)", sms).group(1)  # type: ignore[union-attr]
    nir = "2800537261123"
    nir += f"{97 - int(nir) % 97:02d}"
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page()
        page.goto(url + link)
        page.wait_for_selector("#form:not([hidden])")
        assert page.input_value("[name='identity.family']") == "Durand"
        page.select_option("[name='identity.gender']", "female")
        page.fill("[name='identity.ins']", "123")
        page.click("#save")
        page.wait_for_selector("#error:has-text('15 characters')")
        page.fill("[name='identity.ins']", nir)
        page.fill("[name='identity.city']", "Tours")
        page.fill("[name='insurance.amo_nir']", nir)
        page.fill("[name='contact.family']", "Durand")
        page.fill("[name='contact.phone']", "0698765432")
        page.check("[name='consents.care']")
        page.select_option("#doc-kind", "identity")
        page.set_input_files("#doc-file", files=[{"name": "cni.png", "mimeType": "image/png",
                                                  "buffer": PNG}])
        page.click("#upload")
        page.wait_for_selector("#documents li")
        _shot(page, "scheduling-preadmission.png")
        page.click("#submit")
        page.wait_for_selector("#message:has-text('envoyé')")
        assert page.is_hidden("#form")
        staff = browser.new_context(extra_http_headers={
            "Authorization": f"Bearer {staff_token(platform)}"}).new_page()
        staff.goto(url + "/scheduling/staff/preadmissions")
        staff.wait_for_selector("#files tbody tr")
        staff.get_by_role("button", name="Ouvrir").first.click()
        staff.wait_for_selector("#detail:not([hidden])")
        assert f"INS : {nir}" in staff.inner_text("#answers")
        assert "Pièce d'identité" in staff.inner_text("#docs")
        staff.click("#validate")
        staff.wait_for_selector("#message:has-text('Dossier validé')")
        browser.close()
    files = service.preadmission.listing("validated")
    assert files and files[0]["encounter"].startswith("Encounter/")


def test_a_waiting_list_offer_is_claimed(live: tuple[str, Platform, SchedulingService]) -> None:
    from playwright.sync_api import sync_playwright

    url, platform, service = live
    slot = service.search(type_code="consultation")[3]
    held = service.book(slot.id, Patient("Durand", "Alice", "1980-02-03"))
    service.request_code("+33698765432")
    code = re.search(r"\b(\d{6})\b", last_sms(platform, "+33698765432")).group(1)  # type: ignore[union-attr]
    token = service.confirm_code("+33698765432", code)
    service.join_waitlist(Patient("Leroy", "Bob", "1975-05-06"), token, "consultation",
                          slot.start_utc - 3600, slot.start_utc + 3600)
    service.cancel(held.id)
    offer = re.search(r"(/scheduling/offer/\S+)", last_sms(platform, "+33698765432"))
    assert offer
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page()
        page.goto(url + offer.group(1))
        page.wait_for_selector("#claim:not([hidden])")
        assert "lundi 1 mars" in page.inner_text("#details")
        page.click("#claim")
        page.wait_for_selector("#manage-link")
        assert "/scheduling/manage/" in (page.get_attribute("#manage-link", "href") or "")
        page.goto(url + offer.group(1))
        page.wait_for_selector("#error:has-text('expired or was already used')")
        browser.close()
