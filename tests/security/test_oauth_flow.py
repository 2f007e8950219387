"""Authorization code with PKCE, SMART standalone launch, refresh rotation, revocation, OIDC."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from starlette.testclient import TestClient

from hygie.platform import Platform
from hygie.security.clients import ClientError, create_client
from hygie.security.tokens import tokens_for
from hygie.security.users import create_user
from tests.security.territory import BASE, app_and_platform

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Any, Platform, str]]:
    for app, platform in app_and_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path):
        create_user(platform.engine, "anne", PASSWORD, display="Anne L.", kind="patient",
                    scopes="patient/*.rs", fhir_user="Patient/anne")
        create_user(platform.engine, "petit", PASSWORD, display="Infirmier Petit",
                    kind="practitioner", roles=["nurse"], scopes="user/*.rs",
                    fhir_user="Practitioner/petit", hospital="chu")
        app_client = create_client(platform.engine, "Appli patient",
                                   "openid fhirUser profile launch/patient offline_access "
                                   "patient/*.rs user/*.rs", redirect_uris=[REDIRECT],
                                   public=True)
        yield app, platform, app_client.client.client_id


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                         ).rstrip(b"=").decode()
    return verifier, challenge


def _sign_in(http: TestClient, username: str) -> None:
    page = http.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    done = http.post("/login", data={"username": username, "password": PASSWORD,
                                     "csrf_token": csrf.group(1), "next": "/"})
    assert done.status_code == 303, done.text


def _authorize(http: TestClient, client_id: str, challenge: str, scope: str,
               patient: str | None = None, state: str = "xyz") -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
              "scope": scope, "state": state, "code_challenge": challenge,
              "code_challenge_method": "S256", "aud": BASE + "/fhir", "nonce": "n-0S6"}
    page = http.get("/oauth/authorize", params=params)
    assert page.status_code == 200, page.text
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    form["decision"] = "approve"
    if patient is not None:
        form["patient"] = patient
    answer = http.post("/oauth/authorize", data=form)
    assert answer.status_code == 303, answer.text
    target = urlsplit(answer.headers["location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    assert query["state"] == [state]
    return query["code"][0]


def test_patient_standalone_launch(world: tuple[Any, Platform, str]) -> None:
    app, platform, client_id = world
    with TestClient(app, base_url=BASE, follow_redirects=False) as browser:
        start = browser.get("/oauth/authorize", params={"client_id": client_id})
        assert start.status_code == 400  # no redirect_uri: shown, never redirected
        _sign_in(browser, "anne")
        verifier, challenge = _pkce()
        code = _authorize(browser, client_id, challenge,
                          "openid fhirUser launch/patient offline_access patient/*.rs")
    with TestClient(app, base_url=BASE) as backend:
        token = backend.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": client_id, "code_verifier": verifier})
        assert token.status_code == 200, token.text
        body = token.json()
        assert body["patient"] == "anne" and body["token_type"] == "Bearer"
        assert "patient/*.rs" in body["scope"].split() and body["refresh_token"]
        claims = jwt.decode(body["id_token"], tokens_for(platform).keys.public_key(
            jwt.get_unverified_header(body["id_token"])["kid"]), algorithms=["ES256"],
            audience=client_id)
        assert claims["sub"] == "anne" and claims["fhirUser"] == "Patient/anne"
        assert claims["nonce"] == "n-0S6"
        # the code is single use
        again = backend.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": client_id, "code_verifier": verifier})
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        api = {"Authorization": f"Bearer {body['access_token']}"}
        assert backend.get("/fhir/Observation/obs-anne", headers=api).status_code == 200
        assert backend.get("/fhir/Observation/obs-bruno", headers=api).status_code == 403
        assert backend.get("/oauth/userinfo", headers=api).json()["fhirUser"] == "Patient/anne"
        # refresh rotation, and reuse of a spent refresh token ends the family
        first = body["refresh_token"]
        fresh = backend.post("/oauth/token", data={"grant_type": "refresh_token",
                                                   "refresh_token": first,
                                                   "client_id": client_id})
        assert fresh.status_code == 200, fresh.text
        second = fresh.json()["refresh_token"]
        assert second != first and fresh.json()["patient"] == "anne"
        replay = backend.post("/oauth/token", data={"grant_type": "refresh_token",
                                                    "refresh_token": first,
                                                    "client_id": client_id})
        assert replay.json()["error"] == "invalid_grant"
        dead = backend.post("/oauth/token", data={"grant_type": "refresh_token",
                                                  "refresh_token": second,
                                                  "client_id": client_id})
        assert dead.status_code == 400, "the whole family is revoked"
        # revoking the access token makes it useless at once
        assert backend.post("/oauth/revoke", data={"token": body["access_token"],
                                                   "client_id": client_id}).status_code == 200
        refused = backend.get("/fhir/Observation/obs-anne", headers=api)
        assert refused.status_code == 401 and "revoked" in refused.text


def test_pkce_and_redirect_are_enforced(world: tuple[Any, Platform, str]) -> None:
    app, _platform, client_id = world
    with TestClient(app, base_url=BASE, follow_redirects=False) as browser:
        _sign_in(browser, "anne")
        base = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                "scope": "patient/*.rs", "state": "s"}
        no_pkce = browser.get("/oauth/authorize", params=base)
        assert no_pkce.status_code == 303
        assert "error=invalid_request" in no_pkce.headers["location"]
        plain = browser.get("/oauth/authorize", params={
            **base, "code_challenge": "a" * 43, "code_challenge_method": "plain"})
        assert "error=invalid_request" in plain.headers["location"]
        evil = browser.get("/oauth/authorize", params={
            **base, "redirect_uri": "https://evil.example/cb", "code_challenge": "a" * 43,
            "code_challenge_method": "S256"})
        assert evil.status_code == 400 and "evil" not in evil.headers.get("location", "")
        _verifier, challenge = _pkce()
        code = _authorize(browser, client_id, challenge, "patient/*.rs")
    with TestClient(app, base_url=BASE) as backend:
        wrong = backend.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": client_id, "code_verifier": _pkce()[0]})
        assert wrong.json()["error"] == "invalid_grant"
        assert "code_verifier" in wrong.json()["error_description"]


def test_practitioner_picks_a_patient_in_reach(world: tuple[Any, Platform, str]) -> None:
    app, _platform, client_id = world
    with TestClient(app, base_url=BASE, follow_redirects=False) as browser:
        _sign_in(browser, "petit")
        verifier, challenge = _pkce()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                  "scope": "launch/patient patient/*.rs", "state": "s",
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        page = browser.get("/oauth/authorize", params=params)
        assert 'name="patient"' in page.text
        form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                               page.text))
        out_of_reach = browser.post("/oauth/authorize",
                                    data={**form, "decision": "approve", "patient": "bruno"})
        assert out_of_reach.status_code == 400
        assert "périmètre" in out_of_reach.text
        code = _authorize(browser, client_id, challenge, "launch/patient patient/*.rs",
                          patient="chloe")
    with TestClient(app, base_url=BASE) as backend:
        body = backend.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": client_id, "code_verifier": verifier}).json()
        assert body["patient"] == "chloe"
        api = {"Authorization": f"Bearer {body['access_token']}"}
        # the app sees Chloé's record only, although the nurse reaches Anne too
        assert backend.get("/fhir/Condition/cond-chloe", headers=api).status_code == 200
        assert backend.get("/fhir/Condition/cond-anne", headers=api).status_code == 403


def test_refusal_and_scopes_beyond_the_user(world: tuple[Any, Platform, str]) -> None:
    app, _platform, client_id = world
    with TestClient(app, base_url=BASE, follow_redirects=False) as browser:
        _sign_in(browser, "petit")
        _verifier, challenge = _pkce()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                  "scope": "user/*.rs offline_access", "state": "s",
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        page = browser.get("/oauth/authorize", params=params)
        form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                               page.text))
        denied = browser.post("/oauth/authorize", data={**form, "decision": "deny"})
        assert "error=access_denied" in denied.headers["location"]
        forged = browser.post("/oauth/authorize", data={**form, "decision": "approve",
                                                        "csrf_token": "forged"})
        assert forged.status_code == 403


def test_public_clients_need_redirects_and_no_system_scopes(
        world: tuple[Any, Platform, str]) -> None:
    _app, platform, _client_id = world
    with pytest.raises(ClientError, match="redirect URI"):
        create_client(platform.engine, "x", "patient/*.rs", public=True)
    with pytest.raises(ClientError, match="system/"):
        create_client(platform.engine, "x", "system/*.rs", redirect_uris=[REDIRECT],
                      public=True)
    with pytest.raises(ClientError, match="loopback only"):
        create_client(platform.engine, "x", "patient/*.rs",
                      redirect_uris=["http://app.example/cb"])
