"""``hygie token create``, ``hygie client ...`` and ``hygie user ...``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hygie.cli import main
from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.security import clients, users
from hygie.security.tokens import tokens_for
from hygie.store.schema import metadata
from tests.security.conftest import PASSWORD


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    values = {"HYGIE_DATABASE_URL": database_url, "HYGIE_VAR_DIR": str(tmp_path / "var"),
              "HYGIE_BASE_URL": "https://hygie.example"}
    platform = open_platform(load_settings(database_url=database_url, var_dir=tmp_path / "var"))
    metadata.create_all(platform.engine)
    platform.close()
    return values


def run(env: dict[str, str], *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)


def test_token_create_prints_a_verifiable_token(tmp_path: Path) -> None:
    env = {"HYGIE_VAR_DIR": str(tmp_path / "var"), "HYGIE_BASE_URL": "https://hygie.example",
           "HYGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}"}
    result = run(env, "token", "create", "--scope", "system/Patient.rs system/Observation.read",
                 "--scope", "tracing:admin", "--subject", "import-batch", "--lifetime", "120",
                 "--client-id", "ops", "--role", "ops")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    settings = load_settings(var_dir=tmp_path / "var", base_url="https://hygie.example",
                             database_url=f"sqlite:///{tmp_path / 'h.db'}")
    platform = open_platform(settings)
    principal = tokens_for(platform).verify(token)
    assert principal.subject == "import-batch" and principal.client_id == "ops"
    assert str(principal.scopes) == "system/Patient.rs system/Observation.rs tracing:admin"
    claims = tokens_for(platform).decode(token)
    assert claims["exp"] - claims["iat"] == 120 and claims["roles"] == ["ops"]
    platform.close()


def test_token_create_refuses_a_bad_scope(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["token", "create", "--scope", "system/Patient.sr",
                                       "--subject", "x"],
                                env={"HYGIE_VAR_DIR": str(tmp_path / "var")})
    assert result.exit_code == 2
    assert "in the order c r u d s" in result.output


def test_client_create_list_disable(env: dict[str, str], database_url: str,
                                    tmp_path: Path) -> None:
    result = run(env, "client", "create", "Passerelle SI-DEP", "--scope", "system/Observation.c")
    assert result.exit_code == 0, result.output
    client_id = re.search(r"client_id: (\S+)", result.output).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret: (\S+)", result.output).group(1)  # type: ignore[union-attr]
    platform = open_platform(load_settings(database_url=database_url,
                                           var_dir=tmp_path / "var"))
    assert clients.authenticate_client(platform.engine, client_id, secret) is not None

    listed = run(env, "client", "list").output
    assert client_id in listed and "Passerelle SI-DEP" in listed and "active" in listed
    assert secret not in listed
    assert run(env, "client", "disable", client_id).exit_code == 0
    assert "disabled" in run(env, "client", "list").output
    assert clients.authenticate_client(platform.engine, client_id, secret) is None
    missing = run(env, "client", "disable", "c_nope")
    assert missing.exit_code == 1 and "no client" in missing.output
    platform.close()


def test_user_create_with_prompt_list_disable(env: dict[str, str], database_url: str,
                                              tmp_path: Path) -> None:
    result = run(env, "user", "create", "BLefevre", "--display", "Bruno Lefèvre",
                 "--kind", "practitioner", "--role", "doctor", "--role", "icu",
                 "--scope", "user/Patient.rs user/Observation.cruds",
                 "--fhir-user", "Practitioner/pr-7", "--hospital", "chu-nord",
                 stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    platform = open_platform(load_settings(database_url=database_url,
                                           var_dir=tmp_path / "var"))
    user = users.authenticate_user(platform.engine, "blefevre", PASSWORD)
    assert user is not None and user.roles == {"doctor", "icu"}
    assert user.fhir_user == "Practitioner/pr-7" and user.hospital == "chu-nord"

    listed = run(env, "user", "list").output
    assert "blefevre\tBruno Lefèvre\tpractitioner\tdoctor icu\tactive" in listed
    assert run(env, "user", "disable", "blefevre").exit_code == 0
    assert users.authenticate_user(platform.engine, "blefevre", PASSWORD) is None
    platform.close()


def test_user_create_errors_are_clean(env: dict[str, str]) -> None:
    short = run(env, "user", "create", "x", "--display", "X", "--kind", "admin",
                "--password", "short")
    assert short.exit_code == 1 and "password is 12" in short.output
    scope = run(env, "user", "create", "x", "--display", "X", "--kind", "admin",
                "--password", PASSWORD, "--scope", "system/*.rs")
    assert scope.exit_code == 1 and "for services" in scope.output
    assert run(env, "user", "create", "x", "--display", "X", "--kind", "admin",
               "--password", PASSWORD).exit_code == 0
    taken = run(env, "user", "create", "X", "--display", "X", "--kind", "admin",
                "--password", PASSWORD)
    assert taken.exit_code == 1 and "already taken" in taken.output


def test_commands_need_the_tables(tmp_path: Path) -> None:
    env = {"HYGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
           "HYGIE_VAR_DIR": str(tmp_path / "var")}
    result = run(env, "client", "list")
    assert result.exit_code == 1 and "hygie migrate" in result.output


def test_migrate_then_create_a_client(tmp_path: Path) -> None:
    env = {"HYGIE_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
           "HYGIE_VAR_DIR": str(tmp_path / "var")}
    assert run(env, "migrate").exit_code == 0
    result = run(env, "client", "create", "Passerelle", "--scope", "system/Patient.rs")
    assert result.exit_code == 0 and "client_secret: " in result.output
