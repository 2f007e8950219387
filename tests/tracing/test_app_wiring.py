"""The tracing routes inside the whole platform app: public paths and protected ones."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.config import load_settings
from hygie.store.schema import metadata


def test_app_routes_are_public_or_protected_as_declared(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                             var_dir=tmp_path / "var")
    app = create_app(settings)
    metadata.create_all(app.state.platform.engine)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        cfg = client.get("/tracing/api/config")
        assert cfg.status_code == 200 and cfg.json()["serverPublicKey"]
        r = client.post("/tracing/api/captcha", json={"type": "image"})
        assert r.status_code == 201
        assert client.get(f"/tracing/api/captcha/{r.json()['id']}/image").status_code == 200
        assert client.get("/tracing/api/test-sites?lat=48.8&lon=2.3").json() == {"sites": []}
        assert client.get("/tracing/centres").status_code == 200
        for path in ("/tracing/api/staff/codes", "/tracing/api/staff/process"):
            assert client.post(path).status_code == 401
        assert client.get("/tracing/api/staff/stats").status_code == 401
