"""The audit trail: AuditEvents for every access, and tamper detection on the chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, update

from hygie.platform import Platform
from hygie.security.audit import AuditChain, AuditRecord, AuditWriter, build_event, verify
from hygie.security.installation import install
from hygie.security.tables import audit_log
from hygie.store.validation import validate_resource
from tests.security.territory import app_and_platform, client_for, patient_principal, staff


def _records(n: int) -> list[AuditRecord]:
    return [AuditRecord(build_event(type_code=("urn:x", "t", "test"), subtype=None, action="R",
                                    outcome="0", description=f"event {i}", principal=None),
                        frozenset({f"p{i % 3}"}), "read", "0", f"user{i}")
            for i in range(n)]


@pytest.fixture
def chain(database_url: str, tmp_path: Path) -> Iterator[AuditChain]:
    from tests.security.territory import make_platform

    platform = make_platform(database_url, tmp_path / "var")
    chain = install(platform).audit_chain
    chain.append(_records(10))
    yield chain
    platform.close()


def test_an_intact_chain_verifies(chain: AuditChain) -> None:
    report = verify(chain)
    assert report.ok and report.checked == 10
    assert [r.seq for r in chain.records()] == list(range(1, 11))
    assert {e["id"] for e in chain.for_patient("p1")} == {"2", "5", "8"}


def test_an_altered_record_is_named(chain: AuditChain) -> None:
    with chain.engine.begin() as conn:
        event = conn.execute(select(audit_log.c.event).where(audit_log.c.seq == 4)).scalar_one()
        changed = bytes(event).replace(b"event 3", b"event X")
        conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(event=changed))
    assert verify(chain).problems == ["record 4 was altered: its content does not match its hash"]


def test_a_removed_record_is_named(chain: AuditChain) -> None:
    with chain.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq.in_([6, 7])))
    problems = verify(chain).problems
    assert problems == ["records 6 to 7 removed (the chain jumps to record 8)"]


def test_reordered_records_are_named(chain: AuditChain) -> None:
    with chain.engine.begin() as conn:  # swap the places of records 3 and 5
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(seq=-3))
        conn.execute(update(audit_log).where(audit_log.c.seq == 5).values(seq=3))
        conn.execute(update(audit_log).where(audit_log.c.seq == -3).values(seq=5))
    problems = verify(chain).problems
    assert "record 3 was written as record 5: the records were reordered" in problems
    assert "record 5 was written as record 3: the records were reordered" in problems


def test_a_rewritten_chain_needs_the_key(chain: AuditChain) -> None:
    """Someone who recomputes every hash after a change, without the key, is caught."""
    import hashlib

    rows = list(chain.records())
    prev = "0" * 64
    with chain.engine.begin() as conn:
        for row in rows:
            event = bytes(row.event).replace(b"user", b"someone")
            head = f"{prev}|{row.seq}|{row.recorded}|{row.action}|{row.outcome}|{row.agent}|"
            digest = hashlib.sha256(head.encode() + event).hexdigest()
            conn.execute(update(audit_log).where(audit_log.c.seq == row.seq)
                         .values(event=event, prev_hash=prev, hash=digest))
            prev = digest
    problems = verify(chain).problems
    assert [p.split(":")[0] for p in problems[:10]] == [f"record {n} was altered"
                                                        for n in range(1, 11)]
    assert problems[10].startswith("record 10 differs from the one written")


def test_cutting_the_end_is_seen(chain: AuditChain) -> None:
    with chain.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq >= 9))
    assert verify(chain).problems == [
        "records 9 to 10 removed from the end of the trail (the last record written was 10)"]


def test_the_writer_appends_from_many_threads(chain: AuditChain) -> None:
    from concurrent.futures import ThreadPoolExecutor

    writer = AuditWriter(chain)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda r: writer.submit(r, wait=r.agent.endswith("0")), _records(200)))
    writer.close()
    report = verify(chain)
    assert report.ok and report.checked == 210


@pytest.fixture
def territory(tmp_path: Path) -> Iterator[tuple[Any, Platform]]:
    yield from app_and_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path)


def _events(platform: Platform) -> list[dict[str, Any]]:
    platform.parts["security"].audit_writer.close()  # flush what is queued
    return install(platform).audit_chain.events()


def test_every_interaction_is_an_audit_event(territory: tuple[Any, Platform]) -> None:
    app, platform = territory
    nurse = client_for(app, platform, staff("petit", {"nurse"}, "chu", "Practitioner/petit"))
    assert nurse.get("/fhir/Observation/obs-anne").status_code == 200
    assert nurse.get("/fhir/Observation", params={"subject": "Patient/anne"}).status_code == 200
    assert nurse.put("/fhir/Patient/anne", json=nurse.get("/fhir/Patient/anne").json()
                     ).status_code == 200
    assert nurse.get("/fhir/Observation/obs-bruno").status_code == 403
    assert nurse.delete("/fhir/Observation/obs-anne").status_code == 403
    events = _events(platform)
    # a write's record commits with the write, before the reads queued just before it:
    # the chain is in commit order, ``recorded`` in request order
    mine = sorted((e for e in events if e["agent"][0].get("altId") == "petit"),
                  key=lambda e: e["recorded"])
    assert verify(install(platform).audit_chain).ok
    summary = [(e["subtype"][0]["code"], e["action"], e["outcome"]) for e in mine]
    assert summary == [("read", "R", "0"), ("search-type", "R", "0"), ("read", "R", "0"),
                       ("update", "U", "0"), ("read", "R", "4"), ("delete", "D", "4")]
    for event in mine:
        assert validate_resource(event, expected_type="AuditEvent") == [], event
        assert event["agent"][0]["who"]["reference"] == "Practitioner/petit"
        assert event["agent"][0]["network"]["address"] == "testclient"
    search = next(e for e in mine if e["subtype"][0]["code"] == "search-type")
    assert any("query" in e for e in search["entity"])
    assert {"what": {"reference": "Observation/obs-anne"}} .items() <= search["entity"][-1].items()


def test_who_looked_at_my_record(territory: tuple[Any, Platform]) -> None:
    app, platform = territory
    nurse = client_for(app, platform, staff("petit", {"nurse"}, "chu", "Practitioner/petit"))
    nurse.get("/fhir/Condition/cond-anne")
    anne = client_for(app, platform, patient_principal("anne"))
    anne.headers["Accept"] = "text/html"
    _events(platform)
    page = anne.get("/security/acces/anne")
    assert page.status_code == 200
    assert "Practitioner/petit" in page.text and "consultation" in page.text
    assert anne.get("/security/acces/bruno").status_code == 403
    bruno_doc = client_for(app, platform, staff("sud", {"physician"}, "ch-sud"))
    assert bruno_doc.get("/security/acces/anne").status_code == 403  # out of reach
    assert bruno_doc.get("/security/acces/bruno").status_code == 200


def test_audit_verify_command(territory: tuple[Any, Platform],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hygie.cli import main

    app, platform = territory
    anne = client_for(app, platform, patient_principal("anne"))
    anne.get("/fhir/Patient/anne")
    anne.get("/fhir/Condition/cond-anne")
    _events(platform)
    settings = platform.settings
    monkeypatch.setenv("HYGIE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HYGIE_VAR_DIR", str(settings.var_dir))
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "audit trail intact" in result.output
    with platform.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 1).values(action="tampered"))
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(
            event=b'{"resourceType":"AuditEvent"}'))
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 1
    assert "FAIL record 1 was altered" in result.output
    assert "FAIL record 2 was altered" in result.output


def _facts(patients: frozenset[str], entity: str) -> tuple[Any, ...]:
    """An interaction's facts as the request would queue them (see ``audit.Facts``)."""
    from hygie.security.audit import agent_facts, interaction_facts

    def finish(_facts: tuple[Any, ...]) -> tuple[tuple[Any, ...], frozenset[str]]:
        return interaction_facts(1_700_000_000_123_456, "read", "R", "0",
                                 agent_facts(staff("petit", {"nurse"}, "chu",
                                                   "Practitioner/petit")),
                                 "10.0.0.7", [entity], None, patients, None, False)

    return (finish,)


def test_an_interaction_is_kept_as_facts_and_rebuilt(chain: AuditChain) -> None:
    chain.append([_facts(frozenset({"anne"}), "Observation/obs-anne"),
                  _facts(frozenset({"anne", "bruno"}), "Group/g1")])
    with chain.engine.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.seq > 10)
                            .order_by(audit_log.c.seq)).all()
    assert [(r.event, r.patient) for r in rows] == [(None, "anne"), (None, None)]
    single = chain.events(audit_log.c.seq == 11)[0]
    assert validate_resource(single, expected_type="AuditEvent") == [], single
    assert single["id"] == "11" and single["recorded"] == "2023-11-14T22:13:20.123Z"
    assert single["subtype"][0]["code"] == "read" and single["action"] == "R"
    assert single["agent"][0]["who"]["reference"] == "Practitioner/petit"
    assert single["agent"][0]["role"] == [{"text": "nurse"}]
    assert single["agent"][0]["network"]["address"] == "10.0.0.7"
    assert single["entity"][0]["what"] == {"reference": "Observation/obs-anne"}
    assert chain.events(audit_log.c.seq == 11) == [single]  # the same every time
    # one patient: the row's column; several: audit_patient; before: JSON records
    assert [e["id"] for e in chain.for_patient("anne")] == ["12", "11"]
    assert [e["id"] for e in chain.for_patient("bruno")] == ["12"]
    assert [e["id"] for e in chain.for_patient("p1")] == ["8", "5", "2"]
    assert [e["id"] for e in chain.for_patient("anne", before=12)] == ["11"]
    assert verify(chain).ok


@pytest.mark.parametrize("column, value", [("patient", "bruno"), ("who", "Practitioner/x"),
                                           ("entity", "Observation/other"),
                                           ("recorded", 1_600_000_000_000_000),
                                           ("purpose", "BTG"), ("address", None)])
def test_an_altered_fact_is_named(chain: AuditChain, column: str, value: Any) -> None:
    chain.append([_facts(frozenset({"anne"}), "Observation/obs-anne")])
    with chain.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 11).values({column: value}))
    assert verify(chain).problems == ["record 11 was altered: its content does not match "
                                      "its hash"]
