"""The ``hygie`` command as an operator meets it: errors as one line that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hygie.cli import main


@pytest.mark.parametrize("command", [["channels", "status"], ["followup", "status"],
                                     ["mobilization", "plans"], ["audit", "verify"]])
def test_a_database_not_migrated_is_named_with_the_fix(tmp_path: Path, command: list[str]) -> None:
    env = {"HYGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
           "HYGIE_VAR_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(main, command, env=env)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: the database sqlite:///")
    assert "run `hygie migrate` first" in result.output
    assert "Traceback" not in result.output and "[SQL:" not in result.output


def test_a_database_out_of_reach_is_named_without_its_password(tmp_path: Path) -> None:
    env = {"HYGIE_DATABASE_URL": "postgresql+psycopg://hygie:s3cret@127.0.0.1:9/hygie",
           "HYGIE_VAR_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(main, ["channels", "status"], env=env)
    assert result.exit_code == 1, result.output
    assert "cannot reach the database postgresql+psycopg://hygie:***@127.0.0.1:9/hygie" in (
        result.output)
    assert "s3cret" not in result.output


@pytest.mark.parametrize(("command", "why"), [
    (["tracing", "nearest", "--", "999", "2.35"], "'LAT': 999.0 is not in the range -90<=x<=90"),
    (["tracing", "nearest", "48.85", "2.35", "--limit", "0"], "'--limit': 0 is not in the range"),
    (["devices", "simulate", "--monitors", "0"], "'--monitors': 0 is not in the range x>=1"),
    (["devices", "simulate", "--interval", "0"], "'--interval': 0.0 is not in the range x>0"),
    (["devices", "simulate", "--port", "70000"], "'--port': 70000 is not in the range"),
])
def test_bad_options_are_refused_before_anything_runs(
    tmp_path: Path, command: list[str], why: str
) -> None:
    result = CliRunner().invoke(main, command, env={"HYGIE_VAR_DIR": str(tmp_path / "var")})
    assert result.exit_code == 2 and why in result.output, result.output


def test_a_refusal_of_a_service_is_its_message(tmp_path: Path) -> None:
    env = {"HYGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}",
           "HYGIE_VAR_DIR": str(tmp_path / "var")}
    assert CliRunner().invoke(main, ["migrate"], env=env).exit_code == 0
    result = CliRunner().invoke(main, ["scheduling", "cap", "site-1", "0"], env=env)
    assert result.exit_code == 1, result.output
    assert result.output == (
        "Error: the cap needs max_arrivals >= 1 and a window of 1 to 240 minutes\n")
