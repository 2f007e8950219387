"""Operator pages and the public answer page in a real headless Chromium."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from hygie.channels import Channel, OutboundMessage, Receipt, Status, api, channels_for
from hygie.channels.model import PartOutcome
from hygie.platform import Platform
from tests.channels.conftest import open_test_platform

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (install it with: make browser)"),
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Platform]]:
    platform = open_test_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    platform.settings = platform.settings.replace(base_url=f"http://127.0.0.1:{port}")
    app = Starlette(routes=[Mount("/channels", routes=api.routes())])
    app.state.platform = platform
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", platform
    server.should_exit = True
    thread.join(timeout=10)
    platform.close()


def test_outbox_timeline_and_answer_page(served: tuple[str, Platform], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, platform = served
    ch = channels_for(platform)
    sms = ch.enqueue(OutboundMessage("s1", "followup:12", Channel.SMS, "+33612345678",
                                     "Comment vous sentez-vous aujourd'hui ?",
                                     expected_answers=["BIEN", "MAL"]))
    mail = ch.enqueue(OutboundMessage("e1", "mobilization:pb", Channel.EMAIL,
                                      "infirmier@chu-exemple.fr", "Pouvez-vous venir ?",
                                      subject="Plan blanc",
                                      expected_answers=["Je viens", "Je ne peux pas"]))
    for env in ch.outbox.claim(Channel.SMS, "w", 5):
        ch.outbox.record([(env, Receipt(Status.SUBMITTED,
                                        parts=(PartOutcome(1, "accepted", "z"),)))])
    [env] = ch.outbox.claim(Channel.EMAIL, "w", 5)
    ch.outbox.record([(env, Receipt(Status.SUBMITTED))])
    ch.inbox.receive_sms([("+33612345678", "bien")])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="fr-FR")
            page.goto(base + "/channels/")
            expect(page).to_have_title("Messagerie · Hygie")
            expect(page.locator("#outbox tbody tr")).to_have_count(2)
            page.get_by_label("État").select_option("answered")
            page.get_by_role("button", name="Filtrer").click()
            page.wait_for_url("**status=answered**")
            expect(page.locator("#outbox tbody tr")).to_have_count(1)
            page.get_by_role("link", name="Comment vous sentez-vous").click()
            page.wait_for_url(f"**/channels/messages/{sms.id}")
            expect(page.locator("#timeline li")).to_have_count(3)
            expect(page.locator("#timeline li").nth(2)).to_contain_text("répondu")
            expect(page.locator("#answer")).to_have_text("BIEN")
            page.get_by_role("link", name="Messages reçus").click()
            expect(page.locator("#inbox")).to_contain_text("bien")
            page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)

            page.goto(ch.answer_url(mail.id))
            expect(page.get_by_role("heading", name="Votre réponse")).to_be_visible()
            page.get_by_role("button", name="Je viens").click()
            expect(page.get_by_role("status")).to_contain_text("Je viens")
            page.goto(base + "/channels/simulator")
            expect(page.locator("#simulator-banner")).to_contain_text("Simulateur")
        finally:
            browser.close()
    assert ch.get(mail.id).status is Status.ANSWERED and ch.get(mail.id).answer == "Je viens"
