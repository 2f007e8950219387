"""Where a signed-in person lands: the home page lists the services; nobody starts on a
page their account does not open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hygie.app import NAV, create_app
from hygie.platform import Platform
from hygie.security.users import create_user
from tests.security.territory import BASE, make_platform

PASSWORD = "a long demo passphrase"
HTML = {"Accept": "text/html"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, Platform]]:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")
    create_user(platform.engine, "boss", PASSWORD, display="Admin Boss", kind="admin",
                roles=["admin"], scopes="")
    create_user(platform.engine, "petit", PASSWORD, display="Infirmier Petit",
                kind="practitioner", roles=["nurse"], scopes="user/*.rs", hospital="chu")
    create_user(platform.engine, "anne", PASSWORD, display="Anne L.", kind="patient",
                scopes="patient/*.rs", fhir_user="Patient/anne")
    with TestClient(create_app(platform=platform), base_url=BASE,
                    follow_redirects=False) as http:
        yield http, platform
    platform.close()


def _sign_in(http: TestClient, username: str) -> None:
    form = http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:300]
    answer = http.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": token.group(1), "next": "/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_an_administrator_lands_on_the_services_not_on_a_refusal(
        site: tuple[TestClient, Platform]) -> None:
    http, _platform = site
    _sign_in(http, "boss")
    home = http.get("/", headers=HTML)
    assert home.status_code == 200
    assert "Bonjour Admin Boss" in home.text
    for entry in NAV:
        assert f'href="{entry.path}"' in home.text and entry.label in home.text
        assert entry.summary and entry.summary in home.text
    assert 'href="/security/relecture"' in home.text
    # the record search is refused to an administrator, and its page leads home
    refused = http.get("/record", headers=HTML)
    assert refused.status_code == 403
    assert 'href="/">Retour à l\'accueil' in refused.text


@pytest.mark.parametrize("username", ["petit", "anne"])
def test_practitioners_and_patients_start_at_the_record(
        site: tuple[TestClient, Platform], username: str) -> None:
    http, _platform = site
    _sign_in(http, username)
    landing = http.get("/", headers=HTML)
    assert landing.status_code == 303 and landing.headers["location"] == "/record"


def test_the_icon_is_served_to_anyone(site: tuple[TestClient, Platform]) -> None:
    http, _platform = site
    icon = http.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")
