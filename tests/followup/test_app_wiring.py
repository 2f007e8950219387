"""The platform's app serves the follow-up pages behind sign-in, installs the shipped
protocol, registers the answer handler and runs the worker with the server."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from hygie.app import create_app
from tests.followup.conftest import make_platform


def test_followup_in_the_platform(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var")
    try:
        with TestClient(create_app(platform=platform), base_url="http://testserver") as client:
            page = client.get("/followup/", headers={"Accept": "text/html"}, follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"].startswith("/login")
            assert client.get("/followup/api/alerts").status_code == 401
            service = platform.parts["followup"]
            assert service._thread is not None and service._thread.is_alive()
            assert [p.id for p in service.protocols()] == ["covid19"]
            assert "followup:" in platform.parts["channels"].router.prefixes
            assert service.run_once()["dispatched"] == 0
            stored = service.repository.read("Questionnaire", "covid19").resource
            assert stored["url"].endswith("/Questionnaire/covid19")
        assert service._thread is None
    finally:
        platform.close()
