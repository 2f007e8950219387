"""``hygie demo``: the whole territory seeded once, with logins and the services' data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hygie.cli import DEMO_SEEDERS, main
from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.store.schema import resource


def _counts(url: str) -> dict[str, int]:
    settings = load_settings()
    assert settings.database_url == url
    platform = open_platform(settings)
    try:
        with platform.engine.connect() as conn:
            rows = conn.execute(
                select(resource.c.res_type, func.count()).group_by(resource.c.res_type)
            ).all()
    finally:
        platform.close()
    return {t: n for t, n in rows}


def test_demo_seeds_the_territory_once(database_url: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYGIE_DATABASE_URL", database_url)
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--patients", "30", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "Hygie is ready at http://127.0.0.1:8000/" in first.output
    for username in ("admin", "urgentiste", "infirmiere", "radiologue"):
        assert f"  {username} " in first.output
    for what, _target in DEMO_SEEDERS:
        assert f"{what}: " in first.output
    counts = _counts(database_url)
    assert counts["Patient"] == 30
    assert counts["Organization"] >= 3
    assert counts["PractitionerRole"] >= 100
    assert counts["Observation"] > 30 and counts["Encounter"] >= 30
    assert counts["Schedule"] > 0
    slots = re.search(r"appointments: (\d+) agendas, (\d+) new slots", first.output)
    assert slots and int(slots[1]) > 0 and int(slots[2]) > 0, first.output
    sites = re.search(r"test sites: (\d+) test sites listed", first.output)
    assert sites and int(sites[1]) > 20, first.output
    assert ("imaging: 2 chest CT studies archived (192 slices), 2 quantified, on the "
            "worklist of radiologue") in first.output
    # the mobility page has a published week, lockdown included
    assert "mobility: 7 daily releases from " in first.output, first.output
    releases = tmp_path / "var" / "mobility" / "releases"
    assert len(list(releases.glob("date=*/presence.parquet"))) == 7

    again = runner.invoke(main, ["demo", "--patients", "30", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert "already in the store; nothing written" in again.output
    assert "mobility: 7 daily releases already published" in again.output
    assert f"test sites: {sites[1]} test sites already listed" in again.output
    assert "imaging: 2 studies already archived" in again.output
    assert _counts(database_url) == counts
