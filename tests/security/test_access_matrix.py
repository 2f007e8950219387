"""Roles x resource types x compartments x hospitals: every access and every denial.

Each caller of the territory (``territory.py``) reads, searches and updates each
resource of each patient through the FHIR API. The expected answer comes from a table
written here by hand (who reaches which patient, which role may do what), not from the
code under test; every denial is checked to be a 403 ``forbidden`` OperationOutcome, or,
for a search, the absence of the resource from the results.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hygie.platform import Platform
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeSet
from tests.security.territory import (
    PATIENTS,
    app_and_platform,
    client_for,
    clinical,
    patient_principal,
    seeded,
    staff,
)

ALL = set(PATIENTS)
TYPES = ("Patient", "Observation", "Condition", "Encounter")
#: caller -> (principal, patients in reach, interactions allowed per type)
CRUS_ALL = {t: "cruds" for t in TYPES}
CALLERS: dict[str, tuple[Principal, set[str], dict[str, str]]] = {
    "dr-durand (chu, physician, cares for bruno)": (
        staff("durand", {"physician"}, "chu", "Practitioner/durand"),
        {"anne", "chloe", "bruno"}, CRUS_ALL),
    "nurse-petit (chu)": (
        staff("petit", {"nurse"}, "chu", "Practitioner/petit"),
        {"anne", "chloe"}, {t: "crus" for t in TYPES}),
    "secretary-roux (chu)": (
        staff("roux", {"secretary"}, "chu", "Practitioner/roux"),
        {"anne", "chloe"}, {"Patient": "crus", "Encounter": "crus", "Observation": "",
                            "Condition": ""}),
    "dr-sud (ch-sud, physician)": (
        staff("sud", {"physician"}, "ch-sud"), {"bruno", "chloe"}, CRUS_ALL),
    "dr-territory (no hospital)": (
        staff("dim", {"physician"}, None), ALL, CRUS_ALL),
    "read-only physician (chu, user/*.rs)": (
        staff("lecteur", {"physician"}, "chu", scope="user/*.rs"),
        {"anne", "chloe"}, {t: "rs" for t in TYPES}),
    "admin": (
        staff("admin", {"admin"}, None, kind=Kind.ADMIN), set(), {t: "" for t in TYPES}),
    "patient anne": (patient_principal("anne"), {"anne"}, CRUS_ALL),
    "service": (Principal("batch", Kind.SERVICE, ScopeSet.parse("system/*.cruds"),
                          client_id="batch"), ALL, CRUS_ALL),
}


def resource_id(res_type: str, pid: str) -> str:
    return pid if res_type == "Patient" else \
        {"Observation": "obs", "Condition": "cond", "Encounter": "enc"}[res_type] + f"-{pid}"


def expected(caller: str, res_type: str, pid: str, letter: str) -> bool:
    _principal, reach, perms = CALLERS[caller]
    return letter in perms[res_type] and pid in reach


@pytest.fixture(scope="module")
def territory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Platform]]:
    yield from app_and_platform(f"sqlite:///{tmp_path_factory.mktemp('m') / 'h.db'}",
                                tmp_path_factory.mktemp("var"))


def _assert_forbidden(response: Any, what: str) -> None:
    assert response.status_code == 403, f"{what}: {response.status_code} {response.text[:300]}"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", what
    assert body["issue"][0]["code"] == "forbidden", what


@pytest.mark.parametrize("caller", list(CALLERS))
def test_read_search_update_matrix(territory: tuple[Any, Platform], caller: str) -> None:
    app, platform = territory
    principal = CALLERS[caller][0]
    http: TestClient = client_for(app, platform, principal)
    checked = denied = 0
    for pid in PATIENTS:
        for res_type in TYPES:
            rid = resource_id(res_type, pid)
            what = f"{caller}: {res_type}/{rid}"
            read = http.get(f"/fhir/{res_type}/{rid}")
            if expected(caller, res_type, pid, "r"):
                assert read.status_code == 200, f"read {what}: {read.text[:300]}"
                assert read.json()["id"] == rid
            else:
                _assert_forbidden(read, f"read {what}")
                denied += 1
            found = http.get(f"/fhir/{res_type}", params={"_id": rid})
            if "s" not in CALLERS[caller][2][res_type]:
                _assert_forbidden(found, f"search {what}")
                denied += 1
            else:
                assert found.status_code == 200, f"search {what}: {found.text[:300]}"
                ids = [e["resource"]["id"] for e in found.json().get("entry", [])]
                if expected(caller, res_type, pid, "s"):
                    assert ids == [rid], f"search {what}"
                else:
                    assert ids == [] and found.json()["total"] == 0, f"search {what} leaked"
                    denied += 1
            body = seeded(pid, res_type)
            updated = http.put(f"/fhir/{res_type}/{rid}", json=body)
            if expected(caller, res_type, pid, "u"):
                assert updated.status_code == 200, f"update {what}: {updated.text[:300]}"
            else:
                _assert_forbidden(updated, f"update {what}")
                denied += 1
            checked += 3
    assert checked == 3 * len(PATIENTS) * len(TYPES)
    assert denied == sum(not expected(caller, t, p, letter) for p in PATIENTS for t in TYPES
                         for letter in "rsu")


@pytest.mark.parametrize("caller", list(CALLERS))
def test_search_across_a_type_returns_only_what_is_in_reach(
        territory: tuple[Any, Platform], caller: str) -> None:
    app, platform = territory
    http = client_for(app, platform, CALLERS[caller][0])
    for res_type in TYPES:
        response = http.get(f"/fhir/{res_type}", params={"_count": "100"})
        if "s" not in CALLERS[caller][2][res_type]:
            _assert_forbidden(response, f"{caller} search {res_type}")
            continue
        assert response.status_code == 200, response.text[:300]
        bundle = response.json()
        got = {e["resource"]["id"] for e in bundle.get("entry", [])}
        want = {resource_id(res_type, p) for p in PATIENTS
                if expected(caller, res_type, p, "s")}
        assert got == want, f"{caller} {res_type}"
        assert bundle["total"] == len(want)
    # _include cannot pull in what is out of reach
    response = http.get("/fhir/Observation", params={"_include": "Observation:subject"})
    if response.status_code == 200:
        got = {e["resource"]["id"] for e in response.json().get("entry", [])
               if e["resource"]["resourceType"] == "Patient"}
        assert got <= CALLERS[caller][1]


@pytest.mark.parametrize("caller", list(CALLERS))
def test_create_and_delete(territory: tuple[Any, Platform], caller: str) -> None:
    app, platform = territory
    http = client_for(app, platform, CALLERS[caller][0])
    for pid in PATIENTS:
        body = clinical(pid, "Condition")
        body.pop("id")
        created = http.post("/fhir/Condition", json=body)
        if expected(caller, "Condition", pid, "c"):
            assert created.status_code == 201, f"{caller} create for {pid}: {created.text[:300]}"
            new_id = created.json()["id"]
            gone = http.delete(f"/fhir/Condition/{new_id}")
            if expected(caller, "Condition", pid, "d"):
                assert gone.status_code == 204
            else:
                _assert_forbidden(gone, f"{caller} delete for {pid}")
        else:
            _assert_forbidden(created, f"{caller} create for {pid}")


def test_wide_interactions_need_an_unbounded_caller(territory: tuple[Any, Platform]) -> None:
    app, platform = territory
    bounded = client_for(app, platform, CALLERS["dr-durand (chu, physician, cares for bruno)"][0])
    _assert_forbidden(bounded.get("/fhir/Observation/_history"), "type history")
    _assert_forbidden(bounded.get("/fhir/$export", headers={"Prefer": "respond-async"}),
                      "bulk export")
    _assert_forbidden(client_for(app, platform, patient_principal("bruno")).get(
        "/fhir/Patient/anne/$everything"), "everything of another patient")
    everything = client_for(app, platform, patient_principal("anne")).get(
        "/fhir/Patient/anne/$everything")
    assert everything.status_code == 200
    kinds = {e["resource"]["resourceType"] for e in everything.json()["entry"]}
    assert {"Patient", "Observation", "Condition", "Encounter"} <= kinds


def test_a_patient_cannot_write_about_someone_else(territory: tuple[Any, Platform]) -> None:
    app, platform = territory
    anne = client_for(app, platform, patient_principal("anne"))
    body = clinical("bruno", "Observation")
    body.pop("id")
    _assert_forbidden(anne.post("/fhir/Observation", json=body), "anne writes about bruno")
    # moving her own observation onto bruno by a patch is refused and rolled back
    patch = anne.patch("/fhir/Observation/obs-anne",
                       json=[{"op": "replace", "path": "/subject/reference",
                              "value": "Patient/bruno"}],
                       headers={"Content-Type": "application/json-patch+json"})
    _assert_forbidden(patch, "anne moves her observation onto bruno")
    assert anne.get("/fhir/Observation/obs-anne").json()["subject"]["reference"] == \
        "Patient/anne"


def test_denials_are_in_the_audit_trail(territory: tuple[Any, Platform]) -> None:
    from hygie.security.tables import audit_log

    app, platform = territory
    bruno = client_for(app, platform, patient_principal("bruno"))
    _assert_forbidden(bruno.get("/fhir/Condition/cond-anne"), "bruno reads anne")
    platform.parts["security"].audit_writer.close()  # flush
    events = platform.parts["security"].audit_chain.events(audit_log.c.agent == "user-bruno")
    refused = [e for e in events if e["outcome"] == "4"
               and any(x.get("what", {}).get("reference") == "Condition/cond-anne"
                       for x in e.get("entity", []))]
    assert refused and "403" in refused[0]["outcomeDesc"]


def test_reach_is_the_same_on_each_engine(database_url: str, tmp_path: Path) -> None:
    """The rules are SQL conditions: PostgreSQL must read them as SQLite does."""
    for app, platform in app_and_platform(database_url, tmp_path):
        for caller in ("nurse-petit (chu)", "dr-sud (ch-sud, physician)", "patient anne",
                       "dr-durand (chu, physician, cares for bruno)"):
            http = client_for(app, platform, CALLERS[caller][0])
            for res_type in TYPES:
                bundle = http.get(f"/fhir/{res_type}").json()
                got = {e["resource"]["id"] for e in bundle.get("entry", [])}
                assert got == {resource_id(res_type, p) for p in PATIENTS
                               if expected(caller, res_type, p, "s")}, (caller, res_type)
                for pid in PATIENTS:
                    status = http.get(f"/fhir/{res_type}/{resource_id(res_type, pid)}"
                                      ).status_code
                    assert status == (200 if expected(caller, res_type, pid, "r") else 403)


def test_the_patients_of_a_resource_are_found_by_its_pk_in_a_store_never_analysed(
        sqlite_platform: Platform) -> None:
    """Without statistics, SQLite was free to take the index on (type, parameter) and walk
    every subject reference of the type for each check of a practitioner's read."""
    from sqlalchemy.dialects import sqlite

    from hygie.security.access import _patients_query

    query = _patients_query("Observation").params(id="obs-1")
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite_platform.engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    assert any("idx_reference USING INDEX ix_idx_reference_res_pk" in step for step in plan), plan
