"""The platform's app serves the scheduling pages: public ones without an account,
staff ones behind sign-in, and the worker runs with the server."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from hygie.app import create_app
from tests.scheduling.conftest import make_platform


def test_public_and_staff_pages_in_the_platform(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var")
    try:
        with TestClient(create_app(platform=platform), base_url="http://testserver") as client:
            page = client.get("/scheduling/rdv")
            assert page.status_code == 200 and "Prendre rendez-vous" in page.text
            assert client.get("/scheduling/public/api/options").json()["types"] == []
            staff = client.get("/scheduling/", headers={"Accept": "text/html"},
                               follow_redirects=False)
            assert staff.status_code == 303 and staff.headers["location"].startswith("/login")
            api = client.get("/scheduling/api/day")
            assert api.status_code == 401
            service = platform.parts["scheduling"]
            assert service._thread is not None and service._thread.is_alive()
        assert service._thread is None
    finally:
        platform.close()
