"""``hygie epidemic`` sub-commands, through the real ``hygie`` group."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hygie.cli import main
from hygie.epidemic.scenarios import builtin_studies
from tests.conftest import shared_data


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HYGIE_SHARED_DATA": str(shared_data()), "HYGIE_VAR_DIR": str(tmp_path)}


def test_run_writes_csv_and_charts(tmp_path: Path, env: dict[str, str]) -> None:
    scenario = builtin_studies()["idf_schools_progressive"]
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["epidemic", "run", str(scenario), "--runs", "20",
                                  "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert "ICU capacity: 3,000 beds" in r.output and "R0: 3.28" in r.output
    lines = (out / "icu_demand.csv").read_text().splitlines()
    assert lines[0].startswith("date,icu_beds_p2_5") and len(lines) == 1 + 203
    assert (out / "icu_demand.svg").read_text().startswith("<svg")


def test_bad_scenario_file_is_a_clean_error(tmp_path: Path, env: dict[str, str]) -> None:
    p = tmp_path / "s.toml"
    p.write_text('start = 2020-01-01\ndays = 5\n[[phase]]\nstart = 2020-01-02\n')
    r = CliRunner().invoke(main, ["epidemic", "run", str(p)], env=env)
    assert r.exit_code == 1 and "phase[0].matrix: required" in r.output


def test_r0_and_fit(tmp_path: Path, env: dict[str, str]) -> None:
    r = CliRunner().invoke(main, ["epidemic", "r0"], env=env)
    assert r.exit_code == 0 and "R0: 3.279" in r.output
    assert "R lockdown (scale 1): 0.691" in r.output
    r = CliRunner().invoke(main, ["epidemic", "fit", "--steps", "150", "--walkers", "16",
                                  "--out", str(tmp_path)], env=env)
    assert r.exit_code == 0, r.output
    assert "r_lockdown:" in r.output and (tmp_path / "fit.svg").exists()
