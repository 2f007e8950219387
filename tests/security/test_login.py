"""The sign-in form: CSRF token, session cookie, redirect safety, logout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hygie.platform import Platform
from hygie.security import users
from hygie.security.api import safe_next
from tests.security.conftest import BASE, PASSWORD, make_app, make_platform


@pytest.fixture
def nurse(sqlite_platform: Platform) -> users.User:
    return users.create_user(sqlite_platform.engine, "amartin", PASSWORD,
                             display="Alice Martin", kind="practitioner", roles=["nurse"],
                             scopes="user/Patient.rs", hospital="chu-nord")


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field in the form"
    return match.group(1)


def sign_in(http: TestClient, username: str = "amartin", password: str = PASSWORD,
            next_url: str = "/record"):  # type: ignore[no-untyped-def]
    form = http.get("/login", params={"next": next_url})
    return http.post("/login", data={"username": username, "password": password,
                                     "next": next_url, "csrf_token": csrf_from(form.text)})


def set_cookie_header(response, name: str) -> str:  # type: ignore[no-untyped-def]
    for value in response.headers.get_list("set-cookie"):
        if value.startswith(name + "="):
            return value  # type: ignore[no-any-return]
    raise AssertionError(f"no Set-Cookie for {name}")


def test_login_page_is_french_and_accessible(http: TestClient) -> None:
    page = http.get("/login")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<html lang="fr">' in html and "<title>Connexion · Hygie</title>" in html
    assert '<label for="username">Identifiant</label>' in html
    assert '<label for="password">Mot de passe</label>' in html
    assert 'autocomplete="current-password"' in html and "Se connecter" in html
    csrf = set_cookie_header(page, "hygie_csrf")
    assert "HttpOnly" in csrf and "SameSite=strict" in csrf and "Path=/login" in csrf
    assert csrf_from(html) in csrf


def test_sign_in_sets_the_session_and_opens_pages(http: TestClient, nurse: users.User) -> None:
    response = sign_in(http, next_url="/record?tab=2")
    assert response.status_code == 303
    assert response.headers["location"] == "/record?tab=2"
    cookie = set_cookie_header(response, "hygie_session")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # base_url is http here
    assert "Max-Age=28800" in cookie

    page = http.get("/record", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Alice Martin" in page.text and 'href="/logout"' in page.text
    me = http.get("/api/whoami").json()
    assert me["subject"] == "amartin" and me["kind"] == "practitioner"
    assert me["roles"] == ["nurse"] and me["hospital"] == "chu-nord"
    # signed in already: the form sends the browser straight on
    again = http.get("/login", params={"next": "/record"})
    assert again.status_code == 303 and again.headers["location"] == "/record"


def test_wrong_password_and_unknown_user_look_the_same(http: TestClient,
                                                       nurse: users.User) -> None:
    wrong = sign_in(http, password="not the password")
    unknown = sign_in(http, username="nobody")
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert "Identifiant ou mot de passe incorrect." in response.text
        assert 'role="alert"' in response.text
        assert "hygie_session" not in response.headers.get("set-cookie", "")
    assert 'value="amartin"' in wrong.text  # the username is kept, never the password
    assert "not the password" not in wrong.text
    assert http.get("/api/whoami").status_code == 401


def test_disabled_user_cannot_sign_in(http: TestClient, sqlite_platform: Platform,
                                      nurse: users.User) -> None:
    users.disable_user(sqlite_platform.engine, "amartin")
    assert sign_in(http).status_code == 200
    assert http.get("/api/whoami").status_code == 401


def test_post_without_the_csrf_token_is_refused(http: TestClient, nurse: users.User) -> None:
    data = {"username": "amartin", "password": PASSWORD, "next": "/record"}
    # no cookie, no field
    response = http.post("/login", data=data)
    assert response.status_code == 403 and "a expiré" in response.text
    # a cookie, but a field that does not match it (a forged form)
    http.get("/login")
    response = http.post("/login", data={**data, "csrf_token": "forged"})
    assert response.status_code == 403
    assert "hygie_session" not in response.headers.get("set-cookie", "")
    # a matching pair posted from another origin
    form = http.get("/login")
    response = http.post("/login", data={**data, "csrf_token": csrf_from(form.text)},
                         headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    # the refusal page carries a fresh token, which works
    response = http.post("/login", data={**data, "csrf_token": csrf_from(response.text)})
    assert response.status_code == 303


def test_bad_form_bodies_are_400(http: TestClient) -> None:
    http.get("/login")
    assert http.post("/login", json={"username": "x"}).status_code == 400
    assert http.post("/login", content=b"a=" + b"x" * 20_000, headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 400


@pytest.mark.parametrize(("target", "expected"), [
    ("/record", "/record"),
    ("/record?tab=2#top", "/record?tab=2#top"),
    ("/fhir/Patient?name=dupont", "/fhir/Patient?name=dupont"),
    (None, "/"),
    ("", "/"),
    ("https://evil.example/", "/"),
    ("//evil.example/path", "/"),
    ("/\\evil.example", "/"),
    ("\\\\evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("/record\r\nSet-Cookie: x=1", "/"),
    ("/login", "/"),
    ("/logout", "/"),
    ("record", "/"),
    ("/" + "a" * 3000, "/"),
])
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_open_redirect_is_refused_end_to_end(http: TestClient, nurse: users.User) -> None:
    response = sign_in(http, next_url="//evil.example/phish")
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_logout_forgets_the_session(http: TestClient, nurse: users.User) -> None:
    sign_in(http)
    assert http.get("/api/whoami").status_code == 200
    response = http.get("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    cleared = set_cookie_header(response, "hygie_session")
    assert 'hygie_session=""' in cleared and "Max-Age=0" in cleared
    assert http.get("/api/whoami").status_code == 401


def test_session_cookie_and_cross_origin_writes(http: TestClient, nurse: users.User) -> None:
    sign_in(http)
    assert http.post("/api/echo").json() == {"posted_by": "amartin"}
    assert http.post("/api/echo", headers={"Origin": BASE}).status_code == 200
    refused = http.post("/api/echo", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"


def test_session_cookie_is_not_a_bearer_token(http: TestClient, nurse: users.User) -> None:
    response = sign_in(http)
    session = re.search(r"hygie_session=([^;]+)", set_cookie_header(response,
                                                                     "hygie_session")).group(1)
    http.cookies.clear()
    refused = http.get("/api/whoami", headers={"Authorization": f"Bearer {session}"})
    assert refused.status_code == 401


def test_https_base_url_makes_cookies_secure(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                             base_url="https://hygie.example")
    users.create_user(platform.engine, "amartin", PASSWORD, display="Alice Martin",
                      kind="practitioner")
    with TestClient(make_app(platform), base_url="https://hygie.example",
                    follow_redirects=False) as http:
        form = http.get("/login")
        assert "Secure" in set_cookie_header(form, "hygie_csrf")
        response = http.post("/login", data={"username": "amartin", "password": PASSWORD,
                                             "csrf_token": csrf_from(form.text)})
        assert response.status_code == 303
        assert "Secure" in set_cookie_header(response, "hygie_session")
    platform.close()
