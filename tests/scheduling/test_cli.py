"""``hygie scheduling``: the demo calendar from the territory's doctors, jobs, caps."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hygie.cli import main
from hygie.scheduling.demo import agendas_from_roles
from hygie.store.synthetic import generate_territory
from tests.scheduling.conftest import make_platform


def test_demo_agendas_come_from_the_doctors() -> None:
    roles = [r for r in generate_territory(2020) if r["resourceType"] == "PractitionerRole"]
    agendas = agendas_from_roles(roles)
    assert 20 <= len(agendas) <= 60
    services = {a.service_code for a, _days, _anaesthesia in agendas}
    assert {"cardiologie", "anesthesie", "pneumologie"} <= services
    assert "urgences" not in services
    assert all(a.actor_ref.startswith("PractitionerRole/role-") for a, _d, _x in agendas)


def test_cli_seeds_generates_caps_and_runs_jobs(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'hygie.db'}"
    platform = make_platform(url, tmp_path / "var")
    repo = platform.parts["store"].repository
    for role in generate_territory(2020):
        if role["resourceType"] == "PractitionerRole":
            repo.update("PractitionerRole", role["id"], role)
    platform.close()
    monkeypatch.setenv("HYGIE_DATABASE_URL", url)
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    seeded = runner.invoke(main, ["scheduling", "seed-demo", "--days", "7"])
    assert seeded.exit_code == 0, seeded.output
    agendas, slots = [int(w) for w in seeded.output.split() if w.isdigit()][:2]
    assert agendas >= 20 and slots > 100
    again = runner.invoke(main, ["scheduling", "generate", "--days", "7"])
    assert again.exit_code == 0 and again.output.strip() == "0 new slots"
    capped = runner.invoke(main, ["scheduling", "cap", "ch-jeanne-sorel", "4"])
    assert capped.exit_code == 0 and "at most 4 arrivals in any 15 minutes" in capped.output
    bad = runner.invoke(main, ["scheduling", "cap", "ch-jeanne-sorel", "0"])
    assert bad.exit_code != 0
    ran = runner.invoke(main, ["scheduling", "run-jobs"])
    assert ran.exit_code == 0 and "projected=0" in ran.output
