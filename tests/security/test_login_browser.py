"""Sign-in in a real headless Chromium against a real uvicorn server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygie.security import users
from tests.security.conftest import PASSWORD, LiveServer, free_port, make_app, make_platform

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (install it with: make browser)"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    port = free_port()
    platform = make_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var",
                             base_url=f"http://127.0.0.1:{port}")
    users.create_user(platform.engine, "amartin", PASSWORD, display="Alice Martin",
                      kind="practitioner", scopes="user/Patient.rs")
    with LiveServer(make_app(platform), port) as live:
        yield live
    platform.close()


def test_sign_in_and_out_in_chromium(server: LiveServer) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="fr-FR")
            # a protected page sends the browser to the sign-in form, keeping the target
            page.goto(server.url + "/record?tab=2")
            assert page.url == server.url + "/login?next=%2Frecord%3Ftab%3D2"
            expect(page).to_have_title("Connexion · Hygie")
            expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
            expect(page.get_by_label("Identifiant")).to_be_focused()
            button = page.get_by_role("button", name="Se connecter")
            assert button.evaluate("e => getComputedStyle(e).backgroundColor") == (
                "rgb(11, 110, 153)")  # the layout's stylesheet and the page's own style apply

            # fields are reached by their labels (accessible names)
            page.get_by_label("Identifiant").fill("amartin")
            page.get_by_label("Mot de passe").fill("not the password")
            page.get_by_role("button", name="Se connecter").click()
            expect(page.get_by_role("alert")).to_have_text("Identifiant ou mot de passe incorrect.")
            expect(page.get_by_label("Identifiant")).to_have_value("amartin")
            expect(page.get_by_label("Mot de passe")).to_have_value("")
            expect(page.get_by_label("Mot de passe")).to_be_focused()  # straight to the retry

            page.get_by_label("Mot de passe").fill(PASSWORD)
            page.get_by_label("Mot de passe").press("Enter")
            page.wait_for_url(server.url + "/record?tab=2")
            expect(page.locator(".topbar .user")).to_contain_text("Alice Martin")

            cookie = next(c for c in page.context.cookies() if c["name"] == "hygie_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            # the cookie is invisible to scripts
            assert "hygie_session" not in page.evaluate("document.cookie")

            page.get_by_role("link", name="Déconnexion").click()
            page.wait_for_url(server.url + "/login")
            page.goto(server.url + "/record")
            assert page.url.startswith(server.url + "/login?next=")
        finally:
            browser.close()
