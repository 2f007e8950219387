"""``hygie followup``: protocols, enrollment, status, alerts, one worker pass, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hygie.cli import main
from hygie.store.synthetic import generate_territory
from tests.followup.conftest import add_patient, make_platform


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'hygie.db'}"
    platform = make_platform(url, tmp_path / "var")
    add_patient(platform, "pat-cli", "Rose", "Blanc", "+33612000051")
    repo = platform.parts["store"].repository
    for resource in generate_territory(2020):
        if resource["resourceType"] == "PractitionerRole":
            repo.update("PractitionerRole", resource["id"], resource)
    for n in range(3):
        add_patient(platform, f"demo-{n}", "Demo", f"Patient{n}", f"+3361200006{n}")
    add_patient(platform, "demo-landline", "Demo", "Fixe", "+33145678910")
    platform.close()
    monkeypatch.setenv("HYGIE_DATABASE_URL", url)
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    listed = runner.invoke(main, ["followup", "protocol"])
    assert listed.exit_code == 0 and listed.output.startswith("covid19\tv1\t")
    shown = runner.invoke(main, ["followup", "protocol", "covid19"])
    definition = json.loads(shown.output)
    definition["schedule"]["times"] = ["09:00"]
    edited = tmp_path / "covid19.json"
    edited.write_text(json.dumps(definition))
    saved = runner.invoke(main, ["followup", "protocol", "--save", str(edited)])
    assert saved.exit_code == 0 and "version 2 saved" in saved.output
    definition["rules"][0]["item"] = "nothing"
    edited.write_text(json.dumps(definition))
    refused = runner.invoke(main, ["followup", "protocol", "--save", str(edited)])
    assert refused.exit_code != 0 and "rules[0].item" in refused.output
    no_consent = runner.invoke(
        main, ["followup", "enroll", "pat-cli", "--phone", "0612000051", "--start", "2026-03-02"]
    )
    assert no_consent.exit_code != 0 and "consent" in no_consent.output
    enrolled = runner.invoke(
        main,
        [
            "followup",
            "enroll",
            "pat-cli",
            "--phone",
            "0612000051",
            "--start",
            "2099-03-02",
            "--consent",
        ],
    )
    assert enrolled.exit_code == 0 and "Rose Blanc followed from 2099-03-02" in enrolled.output
    status = runner.invoke(main, ["followup", "status"])
    assert "active follow-ups: 1" in status.output
    once = runner.invoke(main, ["followup", "worker", "--once"])
    assert once.exit_code == 0 and "dispatched=0" in once.output
    demo = runner.invoke(main, ["followup", "seed-demo"])
    assert demo.exit_code == 0, demo.output
    assert demo.output.startswith("3 patient(s) enrolled") and "(1 already)" in demo.output
    again = runner.invoke(main, ["followup", "seed-demo"])
    assert again.exit_code == 0 and again.output.startswith("0 patient(s) enrolled")
    assert runner.invoke(main, ["followup", "alerts"]).exit_code == 0
