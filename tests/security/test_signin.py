"""Sign-in: lockout per username (known or not), the TOTP second factor, sign-in audit."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyotp
import pytest
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.platform import Platform
from hygie.security.tables import audit_log
from hygie.security.users import create_user
from tests.security.territory import BASE, make_platform

PASSWORD = "correct horse battery staple"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, Platform]]:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                             lockout_threshold=3, lockout_s=60)
    create_user(platform.engine, "petit", PASSWORD, display="Infirmier Petit",
                kind="practitioner", roles=["nurse"], scopes="user/*.rs", hospital="chu")
    create_user(platform.engine, "anne", PASSWORD, display="Anne L.", kind="patient",
                scopes="patient/*.rs", fhir_user="Patient/anne")
    with TestClient(create_app(platform=platform), base_url=BASE,
                    follow_redirects=False) as http:
        yield http, platform
    platform.close()


def _csrf(page: Any) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def _login(http: TestClient, username: str, password: str) -> Any:
    return http.post("/login", data={"username": username, "password": password,
                                     "csrf_token": _csrf(http.get("/login")), "next": "/record"})


def _login_events(platform: Platform) -> list[dict[str, Any]]:
    platform.parts["security"].audit_writer.close()
    return platform.parts["security"].audit_chain.events(
        audit_log.c.action.in_(["login", "logout"]))


def test_lockout_after_repeated_failures_known_or_not(site: tuple[TestClient, Platform]
                                                      ) -> None:
    http, platform = site
    for username in ("petit", "nobody-here"):
        for _ in range(2):
            page = _login(http, username, "wrong password!")
            assert page.status_code == 200 and "incorrect" in page.text
        locked = _login(http, username, "wrong password!")
        assert locked.status_code == 429 and "Trop de tentatives" in locked.text
        assert 55 <= int(locked.headers["retry-after"]) <= 60
    # locked: even the right password is refused until the lock ends
    assert _login(http, "petit", PASSWORD).status_code == 429
    events = _login_events(platform)
    failures = [e for e in events if e["outcome"] == "4"]
    assert len(failures) == 7
    assert "locked for 60 s" in failures[2]["outcomeDesc"]
    assert failures[0]["agent"][0]["who"]["identifier"]["value"] == "petit"
    for event in events:  # the password never reaches the trail
        assert PASSWORD not in orjson.dumps(event).decode()
        assert "wrong password!" not in orjson.dumps(event).decode()


def test_success_clears_the_count_and_is_recorded(site: tuple[TestClient, Platform]) -> None:
    http, platform = site
    _login(http, "anne", "wrong password!")
    _login(http, "anne", "wrong password!")
    done = _login(http, "anne", PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/record"
    http.cookies.clear()
    for _ in range(2):
        _login(http, "anne", "wrong password!")
    assert _login(http, "anne", PASSWORD).status_code == 303  # the count had restarted
    assert http.get("/logout").status_code == 303
    kinds = [(e["subtype"][0]["code"], e["outcome"]) for e in _login_events(platform)]
    assert kinds[-2:] == [("110122", "0"), ("110123", "0")]


def test_totp_enrolment_then_second_factor(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                             totp_for_staff=True)
    create_user(platform.engine, "petit", PASSWORD, display="Infirmier Petit",
                kind="practitioner", roles=["nurse"], scopes="user/*.rs", hospital="chu")
    try:
        with TestClient(create_app(platform=platform), base_url=BASE,
                        follow_redirects=False) as http:
            first = _login(http, "petit", PASSWORD)
            assert first.status_code == 303 and first.headers["location"].startswith(
                "/login/totp")
            assert "hygie_session" not in first.cookies  # no session before the code
            enrol = http.get(first.headers["location"])
            assert "Activer la double authentification" in enrol.text and "<svg" in enrol.text
            secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol.text)
            assert secret
            totp = pyotp.TOTP(secret.group(1))
            wrong = http.post("/login/totp", data={"code": "000000" if totp.now() != "000000"
                                                   else "111111", "csrf_token": _csrf(enrol),
                                                   "next": "/record"})
            assert wrong.status_code == 400 and "incorrect" in wrong.text
            ok = http.post("/login/totp", data={"code": totp.now(), "csrf_token": _csrf(wrong),
                                                "next": "/record"})
            assert ok.status_code == 303 and ok.headers["location"] == "/record"
            assert http.get("/fhir/Patient").status_code == 200
            http.get("/logout")
            http.cookies.clear()
            # next time: the code, no enrolment; the code just used is refused (replay)
            again = _login(http, "petit", PASSWORD)
            page = http.get(again.headers["location"])
            assert "Saisissez le code" in page.text and "<svg" not in page.text
            replay = http.post("/login/totp", data={"code": totp.now(),
                                                    "csrf_token": _csrf(page), "next": "/"})
            assert replay.status_code == 400
            code = totp.at(time.time() + 30)  # the next step is accepted (clock drift)
            later = http.post("/login/totp", data={"code": code, "csrf_token": _csrf(replay),
                                                   "next": "/"})
            assert later.status_code == 303
    finally:
        platform.close()


def test_totp_page_needs_the_password_first(site: tuple[TestClient, Platform]) -> None:
    http, _ = site
    assert http.get("/login/totp").headers["location"].startswith("/login")
    http.cookies.set("hygie_mfa", "not-a-token", path="/login")
    forged = http.post("/login/totp", data={"code": "123456"})
    assert forged.status_code == 303 and forged.headers["location"].startswith("/login")


def test_sign_in_attempts_per_address_are_limited(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                             login_rate_per_minute=4)
    try:
        with TestClient(create_app(platform=platform), base_url=BASE,
                        follow_redirects=False) as http:
            statuses = [_login(http, f"user{n}", "whatever-password").status_code
                        for n in range(6)]
            assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
    finally:
        platform.close()
