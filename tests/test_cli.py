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
