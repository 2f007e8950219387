"""Client credentials over HTTP, through the authentication middleware (RFC 6749 §4.4)."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hygie.platform import Platform
from hygie.security import clients
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeSet
from hygie.security.tokens import tokens_for

SCOPES = "system/Patient.rs system/Observation.cruds"


@pytest.fixture
def registered(sqlite_platform: Platform) -> clients.NewClient:
    return clients.create_client(sqlite_platform.engine, "Passerelle labo", SCOPES)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_oauth_error(response, status: int, error: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error and body["error_description"]
    return body  # type: ignore[no-any-return]


def test_basic_auth_gets_a_token_that_opens_the_api(http: TestClient,
                                                    registered: clients.NewClient) -> None:
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers=basic(registered.client.client_id, registered.secret))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == SCOPES  # no scope asked: the client's registered scopes

    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    me = http.get("/api/whoami", headers=bearer).json()
    assert me["subject"] == registered.client.client_id == me["client_id"]
    assert me["kind"] == "service" and me["display"] == "Passerelle labo"
    assert http.get("/fhir/Patient", headers=bearer).status_code == 200


def test_form_credentials_and_a_narrower_scope(http: TestClient,
                                               registered: clients.NewClient) -> None:
    response = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "scope": "system/Observation.rs",
        "client_id": registered.client.client_id, "client_secret": registered.secret})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert response.json()["scope"] == "system/Observation.rs"
    # the narrower token cannot search patients: 403 naming the scope (RFC 6750 §3.1)
    denied = http.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/fhir+json")
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert 'scope="system/Patient.s"' in denied.headers["www-authenticate"]
    (issue,) = denied.json()["issue"]
    assert issue["code"] == "forbidden" and "system/Patient.s" in issue["diagnostics"]


def test_service_scope_refusal_is_problem_json(http: TestClient,
                                               registered: clients.NewClient) -> None:
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers=basic(registered.client.client_id, registered.secret))
    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
    denied = http.post("/api/admin", headers=bearer)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert "security:admin" in denied.json()["detail"]


@pytest.mark.parametrize(("secret_suffix", "client_id"), [("x", None), ("", "c_nobody")])
def test_bad_client_credentials_are_invalid_client(http: TestClient,
                                                   registered: clients.NewClient,
                                                   secret_suffix: str,
                                                   client_id: str | None) -> None:
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers=basic(client_id or registered.client.client_id,
                                       registered.secret + secret_suffix))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


def test_disabled_client_gets_no_token(http: TestClient, sqlite_platform: Platform,
                                       registered: clients.NewClient) -> None:
    clients.disable_client(sqlite_platform.engine, registered.client.client_id)
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers=basic(registered.client.client_id, registered.secret))
    assert_oauth_error(response, 401, "invalid_client")


def test_no_client_authentication(http: TestClient) -> None:
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert_oauth_error(response, 401, "invalid_client")
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(("scope", "words"), [
    ("system/Patient.cruds", "not allowed for this client: system/Patient.cruds"),
    ("user/Patient.rs", "not allowed for this client: user/Patient.rs"),
    ("system/Patient.rs system/Encounter.r", "system/Encounter.r"),
    ("system/Patient.sr", "in the order c r u d s"),
    ("patient/Alien.rs", "not a FHIR R4 resource type"),
])
def test_invalid_scope(http: TestClient, registered: clients.NewClient, scope: str,
                       words: str) -> None:
    response = http.post("/oauth/token", data={"grant_type": "client_credentials",
                                               "scope": scope},
                         headers=basic(registered.client.client_id, registered.secret))
    body = assert_oauth_error(response, 400, "invalid_scope")
    assert words in body["error_description"]


@pytest.mark.parametrize(("data", "error"), [
    ({}, "invalid_request"),
    ({"grant_type": "password", "username": "u", "password": "p"}, "unsupported_grant_type"),
    ({"grant_type": "authorization_code", "code": "x"}, "invalid_grant"),
    ({"grant_type": "refresh_token", "refresh_token": "x"}, "invalid_grant"),
    ({"grant_type": "urn:ietf:params:oauth:grant-type:device_code"}, "unsupported_grant_type"),
])
def test_grant_errors(http: TestClient, registered: clients.NewClient,
                      data: dict[str, str], error: str) -> None:
    response = http.post("/oauth/token", data=data,
                         headers=basic(registered.client.client_id, registered.secret))
    assert_oauth_error(response, 400, error)


def test_request_errors(http: TestClient, registered: clients.NewClient) -> None:
    cid, secret = registered.client.client_id, registered.secret
    # two authentication methods at once
    response = http.post("/oauth/token", headers=basic(cid, secret), data={
        "grant_type": "client_credentials", "client_id": cid, "client_secret": secret})
    assert_oauth_error(response, 400, "invalid_request")
    # JSON instead of a form
    response = http.post("/oauth/token", json={"grant_type": "client_credentials"},
                         headers=basic(cid, secret))
    assert_oauth_error(response, 400, "invalid_request")
    # a repeated parameter (RFC 6749 §3.2)
    response = http.post(
        "/oauth/token", content=b"grant_type=client_credentials&scope=a&scope=b",
        headers={**basic(cid, secret), "Content-Type": "application/x-www-form-urlencoded"})
    assert "more than once" in assert_oauth_error(response, 400, "invalid_request")[
        "error_description"]
    # an oversized body
    response = http.post(
        "/oauth/token", content=b"grant_type=client_credentials&x=" + b"a" * 100_000,
        headers={**basic(cid, secret), "Content-Type": "application/x-www-form-urlencoded"})
    assert_oauth_error(response, 400, "invalid_request")
    # undecodable Basic credentials and bytes that are not UTF-8
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": "Basic %%%"})
    assert_oauth_error(response, 400, "invalid_request")
    response = http.post(
        "/oauth/token", content=b"grant_type=\xff\xfe",
        headers={**basic(cid, secret), "Content-Type": "application/x-www-form-urlencoded"})
    assert_oauth_error(response, 400, "invalid_request")
    # only POST
    assert http.get("/oauth/token").status_code == 405


# --- the middleware -------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(http: TestClient) -> None:
    response = http.get("/api/whoami")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="hygie"'
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401

    fhir = http.get("/fhir/Patient", headers={"Accept": "application/fhir+json"})
    assert fhir.status_code == 401
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    assert fhir.json()["resourceType"] == "OperationOutcome"
    assert fhir.json()["issue"][0]["code"] == "login"


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer ", "Basic dXNlcjpwYXNz",
                                    "Bearer a.b.c"])
def test_bad_credentials_are_401(http: TestClient, header: str) -> None:
    response = http.get("/api/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="hygie"')


def test_invalid_token_says_why(http: TestClient, sqlite_platform: Platform) -> None:
    tokens = tokens_for(sqlite_platform)
    session = tokens.issue_session(Principal("amartin", Kind.PRACTITIONER,
                                             ScopeSet.parse("user/*.rs"))).token
    response = http.get("/fhir/Patient", headers={"Authorization": f"Bearer {session}"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and "at+jwt" in challenge


def test_browser_is_sent_to_the_login_page(http: TestClient) -> None:
    response = http.get("/record?tab=2", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Frecord%3Ftab%3D2"
    # not for FHIR, not for writes, not when a token was presented
    assert http.get("/fhir/Patient", headers={"Accept": "text/html"}).status_code == 401
    assert http.post("/api/echo", headers={"Accept": "text/html"}).status_code == 401
    assert http.get("/record", headers={"Accept": "text/html",
                                        "Authorization": "Bearer x"}).status_code == 401


def test_public_paths(http: TestClient, sqlite_platform: Platform) -> None:
    metadata = http.get("/fhir/metadata")
    assert metadata.status_code == 200 and metadata.json()["caller"] is None
    # a valid token on a public path is still seen
    token = tokens_for(sqlite_platform).issue(
        Principal("svc", Kind.SERVICE, ScopeSet.parse("system/*.rs"))).token
    seen = http.get("/fhir/metadata", headers={"Authorization": f"Bearer {token}"})
    assert seen.json()["caller"] == "svc"
    # an invalid one on a public path is ignored, not refused
    assert http.get("/fhir/metadata", headers={"Authorization": "Bearer junk"}).status_code == 200
    # prefixes match whole path segments only
    assert http.get("/fhir/metadataX").status_code == 401
    assert http.get("/login-admin").status_code == 401
    assert http.get("/open/anything").status_code == 404  # public (declared), no such route


def test_jwks_and_smart_configuration(http: TestClient) -> None:
    jwks = http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    (key,) = jwks.json()["keys"]
    assert key["alg"] == "ES256" and "d" not in key
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        config = http.get(path).json()
        assert config["token_endpoint"] == "http://testserver/oauth/token"
        assert config["jwks_uri"] == "http://testserver/.well-known/jwks.json"
        assert set(config["grant_types_supported"]) == {
            "client_credentials", "authorization_code", "refresh_token"}
        assert {"permission-v2", "launch-standalone", "client-public",
                "sso-openid-connect"} <= set(config["capabilities"])
        assert config["code_challenge_methods_supported"] == ["S256"]  # never "plain"
        assert config["authorization_endpoint"] == "http://testserver/oauth/authorize"
        # nothing announced that does not exist
        assert "launch-ehr" not in config["capabilities"]


def test_websockets_are_authenticated_too(http: TestClient, sqlite_platform: Platform) -> None:
    with pytest.raises(WebSocketDisconnect) as info, http.websocket_connect("/ws/whoami"):
        pass
    assert info.value.code == 1008
    token = tokens_for(sqlite_platform).issue(
        Principal("monitor", Kind.SERVICE, ScopeSet.parse("system/Observation.rs"))).token
    with http.websocket_connect("/ws/whoami",
                                headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json() == {"subject": "monitor"}
