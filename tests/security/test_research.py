"""Pseudonymised research export: keyed pseudonyms, no direct identifier, shifted dates,
and a k-anonymity report that tells the truth about what was kept."""

from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hygie.security.research import Pseudonymiser, export, k_anonymise
from hygie.store.server import open_store
from hygie.store.synthetic import generate_patient_resources, generate_territory
from tests.security.territory import make_platform

KEY = b"project-covid-2020-secret-key"


@cache
def _territory() -> list[dict[str, Any]]:
    return generate_territory(seed=7)


def _population(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    patients, others = [], []
    for resource in generate_patient_resources(n, territory=_territory(), seed=7):
        (patients if resource["resourceType"] == "Patient" else others).append(resource)
    return patients, others


def _read(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.stem: [orjson.loads(line) for line in p.read_bytes().splitlines()]
            for p in folder.glob("*.ndjson")}


def test_identifiers_removed_pseudonyms_keyed_dates_shifted(tmp_path: Path) -> None:
    patients, others = _population(40)
    result = export(patients, iter(others), tmp_path / "a", KEY, min_k=1)
    out = _read(tmp_path / "a")
    text = b"".join(p.read_bytes() for p in (tmp_path / "a").glob("*.ndjson"))
    for patient in patients:
        assert patient["id"].encode() not in text
        for name in patient.get("name", []):
            assert name["family"].encode() not in text
        for ident in patient.get("identifier", []):
            assert str(ident["value"]).encode() not in text
        for telecom in patient.get("telecom", []):
            assert str(telecom["value"]).encode() not in text
    exported = {p["id"]: p for p in out["Patient"]}
    assert len(exported) == 40 == result.report.exported_patients
    assert all(set(p) <= {"resourceType", "id", "gender", "birthDate", "address",
                          "deceasedBoolean", "deceasedDateTime", "active", "maritalStatus",
                          "multipleBirthBoolean", "extension"} for p in out["Patient"])
    # the same key gives the same pseudonyms; another key, unrelated ones
    again = export(patients, iter(others), tmp_path / "b", KEY, min_k=1)
    assert _read(tmp_path / "b")["Patient"] == out["Patient"]
    export(patients, iter(others), tmp_path / "c", b"another-project-key-0000", min_k=1)
    assert not {p["id"] for p in _read(tmp_path / "c")["Patient"]} & set(exported)
    assert again.files == result.files
    # references follow the pseudonyms
    for kind, resources in out.items():
        for resource in resources:
            subject = (resource.get("subject") or resource.get("patient") or {}).get("reference")
            if kind != "Patient" and subject:
                assert subject.split("/")[1] in exported


def test_dates_move_by_one_shift_per_patient(tmp_path: Path) -> None:
    pseudo = Pseudonymiser(KEY, max_shift_days=30)
    shifts = {pseudo.shift_days(f"p{n}") for n in range(500)}
    assert 0 not in shifts and min(shifts) >= -30 and max(shifts) <= 30 and len(shifts) > 40
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1950-06-15"}
    first = {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"},
             "period": {"start": "2020-03-01T10:00:00+01:00", "end": "2020-03-11"}}
    a = pseudo.transform(first, "p1")
    start, end = a["period"]["start"], a["period"]["end"]
    assert start.endswith("T10:00:00+01:00")
    days = (date.fromisoformat(end) - date.fromisoformat(start[:10])).days
    assert days == 10  # intervals are kept exactly
    assert start[:10] != "2020-03-01"
    assert (date.fromisoformat(start[:10]) - date(2020, 3, 1)).days == pseudo.shift_days("p1")
    assert pseudo.transform(patient, "p1")["birthDate"] != "1950-06-15"


def test_k_anonymity_generalises_then_suppresses() -> None:
    keys = {f"p{n}": ("female" if n % 2 else "male", str(1950 + n % 7), "59")
            for n in range(60)}
    keys["rare"] = ("other", "1901", "2A")
    kept, report = k_anonymise(keys, 5)
    assert report.k >= 5 and report.patients == 61
    assert "rare" not in kept and report.suppressed_patients == 1
    assert report.generalisation == ["birth year in 5-year bands"]
    assert report.patients_in_groups_under_5 == 0
    plain, report1 = k_anonymise(keys, 1)
    assert report1.generalisation == [] and report1.k == 1 and "rare" in plain


def test_research_export_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hygie.cli import main

    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")
    repo = open_store(platform).repository
    patients, others = _population(30)
    for resource in [*patients, *others]:
        repo.put_many([repo.prepare(resource)])
    platform.close()
    (tmp_path / "project.key").write_bytes(KEY)
    monkeypatch.setenv("HYGIE_DATABASE_URL", f"sqlite:///{tmp_path / 'h.db'}")
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(main, ["research", "export", str(tmp_path / "out"),
                                       "--project-key-file", str(tmp_path / "project.key"),
                                       "--min-k", "3"])
    assert result.exit_code == 0, result.output
    assert "k = " in result.output and "quasi-identifiers kept: sex, birth year" in result.output
    report = orjson.loads((tmp_path / "out" / "k-anonymity.json").read_bytes())
    assert report["k"] >= 3 or report["exported_patients"] == 0
    assert (tmp_path / "out" / "Patient.ndjson").exists()
