"""The second factor and an app's consent in a real headless Chromium, on the full app."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from hygie.app import create_app
from hygie.platform import Platform
from hygie.security.clients import create_client
from hygie.security.users import create_user
from tests.security.conftest import LiveServer, free_port
from tests.security.territory import make_platform, seed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "correct horse battery staple"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is absent (install it with: make browser)"),
]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[LiveServer, Platform, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var", base_url=url,
                             totp_for_staff=True)
    app = create_app(platform=platform)
    seed(platform)
    create_user(platform.engine, "petit", PASSWORD, display="Infirmier Petit",
                kind="practitioner", roles=["nurse"], scopes="user/*.rs",
                fhir_user="Practitioner/petit", hospital="chu")
    client = create_client(platform.engine, "Appli de suivi", "launch/patient patient/*.rs",
                           redirect_uris=[url + "/static/hygie.css"], public=True)
    with LiveServer(app, port) as live:
        yield live, platform, client.client.client_id
    platform.close()


def test_totp_enrolment_then_an_app_launch(site: tuple[LiveServer, Platform, str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    server, _platform, client_id = site
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                         ).rstrip(b"=").decode()
    authorize = server.url + "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id,
        "redirect_uri": server.url + "/static/hygie.css", "scope": "launch/patient patient/*.rs",
        "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256"})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="fr-FR")
            page.goto(authorize)  # no session yet: sign in first, then come back
            assert "/login?next=" in page.url
            page.get_by_label("Identifiant").fill("petit")
            page.get_by_label("Mot de passe").fill(PASSWORD)
            page.get_by_role("button", name="Se connecter").click()
            expect(page.get_by_role("heading", name="Activer la double authentification")
                   ).to_be_visible()
            expect(page.locator("figure.qr svg")).to_be_visible()
            key = page.locator("#totp-secret").inner_text()
            page.get_by_label("Code à six chiffres").fill(pyotp.TOTP(key).now())
            page.get_by_role("button", name="Valider").click()
            expect(page.get_by_role("heading", name="Autoriser « Appli de suivi »")
                   ).to_be_visible()
            headers = page.evaluate("() => fetch(location.href).then(r => "
                                    "r.headers.get('content-security-policy'))")
            assert "frame-ancestors 'none'" in headers
            page.get_by_label("Identifiant du patient à ouvrir").fill("chloe")
            page.get_by_role("button", name="Autoriser").click()
            page.wait_for_url(server.url + "/static/hygie.css?**")
            query = parse_qs(urlsplit(page.url).query)
            assert query["state"] == ["st-1"] and query["code"][0]
            # the app exchanges the code, as a browser app would, with fetch
            body: Any = page.evaluate(
                """([code, verifier, client, uri]) => fetch('/oauth/token', {method: 'POST',
                    headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                    body: new URLSearchParams({grant_type: 'authorization_code', code,
                        code_verifier: verifier, client_id: client, redirect_uri: uri})
                   }).then(r => r.json())""",
                [query["code"][0], verifier, client_id, server.url + "/static/hygie.css"])
            assert body["patient"] == "chloe" and body["token_type"] == "Bearer"
            status = page.evaluate(
                "token => fetch('/fhir/Condition/cond-chloe', {headers: {Authorization: "
                "'Bearer ' + token}}).then(r => r.status)", body["access_token"])
            assert status == 200
        finally:
            browser.close()
