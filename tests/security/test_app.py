"""The platform app: security routes mounted, every other path behind the middleware."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.security.tokens import issue_service_token
from hygie.store.migrations import upgrade

BASE = "http://testserver"


@pytest.fixture
def platform_app(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'h.db'}",
                             var_dir=tmp_path / "var", base_url=BASE)
    platform = open_platform(settings)
    upgrade(platform.engine)
    with TestClient(create_app(platform=platform), base_url=BASE,
                    follow_redirects=False) as client:
        yield client, issue_service_token(platform, subject="test", scope="system/Patient.rs")
    platform.close()


def test_the_platform_is_closed_without_a_token(platform_app: tuple[TestClient, str]) -> None:
    http, token = platform_app
    assert http.get("/fhir/Patient").status_code == 401
    assert http.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}
                    ).status_code == 200
    assert http.get("/fhir/metadata").status_code == 200
    assert http.get("/.well-known/jwks.json").status_code == 200
    assert http.get("/fhir/.well-known/smart-configuration").json()["token_endpoint"] == (
        BASE + "/oauth/token")
    assert http.get("/login").status_code == 200
    home = http.get("/", headers={"Accept": "text/html"})
    assert home.status_code == 303 and home.headers["location"] == "/login?next=%2F"


def test_missing_scope_is_a_403_outcome(platform_app: tuple[TestClient, str]) -> None:
    http, token = platform_app
    response = http.post("/fhir/Patient", json={"resourceType": "Patient"},
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/fhir+json"})
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_client_credentials_end_to_end_on_the_migrated_schema(
        platform_app: tuple[TestClient, str]) -> None:
    from hygie.security.clients import create_client

    http, _ = platform_app
    new = create_client(http.app.state.platform.engine, "Passerelle", "system/Patient.rs")
    response = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": new.client.client_id,
        "client_secret": new.secret})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert http.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}
                    ).status_code == 200
