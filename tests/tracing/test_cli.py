"""``hygie tracing`` sub-commands on a settings-selected database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hygie.tracing.cli import group
from tests.tracing.sites import sites_csv


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HYGIE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_sites_codes_and_processing(env: Path) -> None:
    runner = CliRunner()
    csv_path = env / "sites.csv"
    csv_path.write_text(sites_csv(50))
    r = runner.invoke(group, ["import-sites", str(csv_path)])
    assert r.exit_code == 0, r.output
    assert "imported: 50" in r.output
    r = runner.invoke(group, ["nearest", "48.85", "2.35", "--limit", "3"])
    assert r.exit_code == 0 and r.output.count(" km ") == 3
    r = runner.invoke(group, ["issue-code", "--kind", "long"])
    assert r.exit_code == 0 and len(r.output.strip()) == 36
    r = runner.invoke(group, ["process"])
    assert r.exit_code == 0 and "contacts: 0" in r.output
    r = runner.invoke(group, ["stats"])
    assert "pending_codes: 1" in r.output and "test_sites: 50" in r.output
    r = runner.invoke(group, ["keys", "--forget-old"])
    assert r.exit_code == 0 and "destroyed: 0" in r.output


def test_simulate_prints_precision_and_recall(env: Path) -> None:
    r = CliRunner().invoke(group, ["simulate", "--phones", "12", "--days", "3",
                                   "--positives", "0.2"])
    assert r.exit_code == 0, r.output
    assert "precision:" in r.output and "recall:" in r.output
