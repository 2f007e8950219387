"""``hygie imaging``: a phantom written, imported, quantified; the app mounts the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from hygie.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HYGIE_DATABASE_URL", f"sqlite:///{tmp_path / 'h.db'}")
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("HYGIE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_phantom_import_quantify(env: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    out = runner.invoke(main, ["imaging", "phantom", str(env / "ct"), "--shape", "48x96x96",
                               "--slice-mm", "6", "--seed", "3"])
    assert out.exit_code == 0, out.output
    assert "48 slices written" in out.output and "percentage of opacity" in out.output
    assert len(list((env / "ct").glob("*.dcm"))) == 48
    (env / "ct" / "notes.txt").write_text("not DICOM")
    out = runner.invoke(main, ["imaging", "import", str(env / "ct"), "--quantify"])
    assert out.exit_code == 0, out.output
    assert "stored: 48  refused: 1" in out.output and "series quantified: 1" in out.output
    out = runner.invoke(main, ["imaging", "flush"])
    assert out.exit_code == 0 and "studies written: 0" in out.output
    out = runner.invoke(main, ["imaging", "quantify", "1.2.3"])
    assert out.exit_code != 0 and "no stored series" in out.output
    bad = runner.invoke(main, ["imaging", "phantom", str(env / "x"), "--shape", "3x3"])
    assert bad.exit_code != 0


def test_app_mounts_imaging(env: Path) -> None:
    from hygie.app import create_app
    from hygie.config import load_settings
    from hygie.platform import open_platform
    from hygie.security.tokens import issue_service_token
    from hygie.store.migrations import upgrade

    platform = open_platform(load_settings())
    upgrade(platform.engine)
    app = create_app(platform=platform)
    assert any(e.path == "/imaging" and e.built for e in app.state.nav)
    with TestClient(app) as client:
        client.headers["Authorization"] = "Bearer " + issue_service_token(
            platform, subject="t", scope="system/*.cruds")
        assert client.get("/imaging/dicomweb/studies").status_code == 204
        assert client.get("/imaging/worklist").status_code == 200
    platform.close()
