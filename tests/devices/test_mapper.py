"""The journal and the mapper on each engine: FHIR resources, patients, devices, board."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hygie.devices.fhir import DEVICES_CODES, observation_id
from hygie.devices.ingest import Mapper
from hygie.devices.journal import Incoming, open_journal
from hygie.devices.model import DevicesSettings
from hygie.devices.receipt import read_header
from hygie.devices.tables import bed, bed_value
from hygie.devices.tables import message as journal_rows
from hygie.platform import Platform
from hygie.security.encryption import MAGIC
from hygie.store.interactions import StoreContext
from hygie.store.outcomes import FhirError
from tests.devices.corpus import monitor, obx, pump, replace_segment, ventilator, waveform


def journal(platform: Platform, *messages: str, encoding: str = "utf-8") -> list[int]:
    items = []
    for message in messages:
        raw = message.encode(encoding)
        header, _ = read_header(raw)
        items.append(Incoming("hl7", header.sender, header.control_id, header.codec, raw))
    return [a.journal_id for a in open_journal(platform).append(items)]


def mapper(platform: Platform, store: StoreContext) -> Mapper:
    return Mapper(
        platform.engine,
        store.repository,
        DevicesSettings(),  # type: ignore[arg-type]
        open_journal(platform),
    )


def search(store: StoreContext, res_type: str, *query: tuple[str, str]) -> list[dict]:
    page = store.repository.search(res_type, [*query, ("_count", "200")])
    return [m.resource for m in page.matches]


def test_monitor_message_becomes_devices_observations_and_provisional_patient(
    platform: Platform, store: StoreContext
) -> None:
    journal(platform, monitor("M1"))
    outcomes = mapper(platform, store).run_once()
    assert [(o.status, o.observations) for o in outcomes] == [("stored", 8)]
    [patient] = search(store, "Patient")
    assert patient["identifier"] == [
        {"system": "https://hygie.example/fhir/sid/ipp", "value": "0000000007"}
    ]
    assert patient["meta"]["tag"][0]["code"] == "provisional"
    assert patient["name"] == [{"use": "temp", "family": "MARTIN", "given": ["Claire"]}]
    [flag] = search(store, "Flag", ("subject", f"Patient/{patient['id']}"))
    assert flag["code"]["coding"][0] == {
        "system": DEVICES_CODES,
        "code": "provisional-identity",
        "display": "Provisional identity",
    }
    devices = {d["id"]: d for d in search(store, "Device")}
    mds = devices["eui64-0012a1fffe000a01"]
    assert mds["identifier"][0]["value"] == "0012A1FFFE000A01"
    assert mds["type"]["coding"][0]["code"] == "69965"
    assert mds["patient"]["reference"] == f"Patient/{patient['id']}"
    assert (
        devices["eui64-0012a1fffe000a01-1"]["parent"]["reference"]
        == "Device/eui64-0012a1fffe000a01"
    )
    assert (
        devices["eui64-0012a1fffe000a01-1-1"]["parent"]["reference"]
        == "Device/eui64-0012a1fffe000a01-1"
    )
    hr = search(store, "Observation", ("code", "http://loinc.org|8867-4"))
    assert len(hr) == 1
    assert hr[0]["valueQuantity"] == {
        "value": 88,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert hr[0]["device"]["reference"] == "Device/eui64-0012a1fffe000a01-1-1"
    assert hr[0]["category"][0]["coding"][0]["code"] == "vital-signs"
    assert hr[0]["referenceRange"][0]["high"]["value"] == 120
    assert hr[0]["effectiveDateTime"] == "2026-03-21T07:15:00Z"
    by_mdc = search(store, "Observation", ("code", "urn:iso:std:iso:11073:10101|150035"))
    assert by_mdc[0]["interpretation"][0]["coding"][0]["code"] == "L"
    assert len(search(store, "Observation", ("subject", f"Patient/{patient['id']}"))) == 8


def test_known_patient_is_found_by_ipp_and_bed_location_linked(
    platform: Platform, store: StoreContext
) -> None:
    repo = store.repository
    known = repo.create(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "https://hygie.example/fhir/sid/ipp", "value": "0000000042"}],
            "name": [{"family": "DURAND", "given": ["Paul"]}],
        }
    ).stored.res_id
    repo.update(
        "Location",
        "ch-jeanne-sorel-icu-101-a",
        {"resourceType": "Location", "id": "ch-jeanne-sorel-icu-101-a", "name": "Lit 101-A"},
    )
    journal(platform, monitor("K1", ipp="0000000042"), ventilator("K2", ipp="0000000042"))
    assert [o.status for o in mapper(platform, store).run_once()] == ["stored", "stored"]
    assert [p["id"] for p in search(store, "Patient")] == [known]
    assert search(store, "Flag") == []
    assert len(search(store, "Observation", ("subject", f"Patient/{known}"))) == 8 + 7
    mds = repo.read("Device", "eui64-0012a1fffe000a01").resource
    assert mds["location"] == {"reference": "Location/ch-jeanne-sorel-icu-101-a"}
    peep = search(store, "Observation", ("code", "http://loinc.org|76248-4"))
    assert peep[0]["valueQuantity"]["code"] == "cm[H2O]"
    setting = search(store, "Observation", ("code", "urn:iso:std:iso:11073:10101|16929196"))
    assert setting[0]["code"]["coding"][1]["code"] == "20112-9"
    with platform.engine.connect() as conn:
        row = conn.execute(select(bed)).one()
        values = {v.metric: v for v in conn.execute(select(bed_value))}
    assert (row.label, row.patient_id, row.provisional) == ("icu 101 a", known, False)
    assert row.location_id == "ch-jeanne-sorel-icu-101-a"
    assert values["hr"].value == 88 and not values["hr"].abnormal
    assert values["temp"].abnormal and values["art_mean"].abnormal  # 38.9 °C; flagged L
    assert values["peep"].value == 8


def test_pump_and_waveform(platform: Platform, store: StoreContext) -> None:
    journal(platform, pump(), waveform())
    assert [o.status for o in mapper(platform, store).run_once()] == ["stored", "stored"]
    [strip] = search(store, "Observation", ("code", "urn:iso:std:iso:11073:10101|131330"))
    sampled = strip["valueSampledData"]
    assert sampled["period"] == 4 and sampled["dimensions"] == 1
    assert sampled["data"] == "0.12 0.15 0.9 1.4 0.3 -0.2 0.05 0.1"
    assert strip["component"][0]["valueQuantity"]["value"] == 250
    [drug] = search(store, "Observation", ("code", "urn:iso:std:iso:11073:10101|184330"))
    assert drug["valueString"] == "Noradrénaline"
    [status] = search(store, "Observation", ("code", "urn:iso:std:iso:11073:10101|184508"))
    assert status["valueCodeableConcept"] == {"text": "pump-status-infusing"}
    [rate] = search(store, "Observation", ("code", "urn:iso:std:iso:11073:10101|157784"))
    assert rate["valueQuantity"]["code"] == "mL/h"
    assert rate["device"]["reference"] == "Device/eui64-0012a3fffe000c03-1-1"


def test_bad_message_is_rejected_alone_with_its_location(
    platform: Platform, store: StoreContext
) -> None:
    bad = replace_segment(
        monitor("B1"),
        "OBX|5|",
        obx(5, "NM", "150456^MDC_PULS_OXIM_SAT_O2^MDC", "1.2.1.1", "9x7", "%"),
    )
    ids = journal(platform, monitor("G1"), bad, monitor("G2", hr="91"))
    outcomes = mapper(platform, store).run_once()
    assert [o.status for o in outcomes] == ["stored", "rejected", "stored"]
    error = outcomes[1].error
    assert error is not None
    assert (error["segment"], error["sequence"], error["field"], error["code"]) == (
        "OBX",
        5,
        5,
        102,
    )
    assert open_journal(platform).outcome(ids[1]).status == "rejected"
    assert len(search(store, "Observation")) == 16


def test_duplicates_are_stored_once_and_remapping_writes_nothing(
    platform: Platform, store: StoreContext
) -> None:
    first = journal(platform, monitor("D1"), monitor("D1"))
    assert first[0] == first[1]
    m = mapper(platform, store)
    m.run_once()
    again = open_journal(platform).append(
        [
            Incoming(
                "hl7",
                *(lambda h: (h.sender, h.control_id, h.codec))(
                    read_header(monitor("D1").encode())[0]
                ),
                monitor("D1").encode(),
            )
        ]
    )
    assert again[0].duplicate and again[0].status == "stored"
    # the store committed but the journal did not (a crash between the two)
    from hygie.devices.tables import message

    with open_journal(platform).engine.begin() as conn:
        conn.execute(message.update().values(status="pending"))
    assert [o.status for o in m.run_once()] == ["stored"]
    observations = search(store, "Observation")
    assert len(observations) == 8
    assert {o["meta"]["versionId"] for o in observations} == {"1"}
    sender = read_header(monitor("D1").encode())[0].sender
    assert store.repository.read("Observation", observation_id(sender, "D1", 4)).version == 1


def test_devices_are_written_again_only_when_they_change(
    platform: Platform, store: StoreContext
) -> None:
    journal(platform, monitor("V1"), monitor("V2"))
    m = mapper(platform, store)
    m.run_once()
    assert store.repository.read("Device", "eui64-0012a1fffe000a01").version == 1
    journal(platform, monitor("V3", ipp="0000000099"))  # the monitor moved to another patient
    mapper(platform, store).run_once()
    moved = store.repository.read("Device", "eui64-0012a1fffe000a01")
    assert moved.version == 2
    assert moved.resource["patient"]["reference"].startswith("Patient/prov-")
    with pytest.raises(FhirError):
        store.repository.read("Device", "eui64-ffffffffffffffff")


def test_latin1_message_names(platform: Platform, store: StoreContext) -> None:
    journal(
        platform,
        monitor("L1", charset="8859/1", family="LEFÈVRE", given="Hélène"),
        encoding="latin-1",
    )
    assert mapper(platform, store).run_once()[0].status == "stored"
    [patient] = search(store, "Patient")
    assert patient["name"][0] == {"use": "temp", "family": "LEFÈVRE", "given": ["Hélène"]}


def test_a_message_that_breaks_the_mapper_is_rejected_alone(
    platform: Platform, store: StoreContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hygie.devices.ingest as ingest

    ids = journal(platform, monitor("P1"), monitor("P2", ipp="0000000666"), monitor("P3"))
    original = ingest.Mapper._plan

    def faulty(self: Mapper, row):  # type: ignore[no-untyped-def]
        if row.control_id == "P2":
            raise KeyError("a fault of the gateway")
        return original(self, row)

    monkeypatch.setattr(ingest.Mapper, "_plan", faulty)
    outcomes = mapper(platform, store).run_once()
    assert [o.status for o in outcomes] == ["stored", "rejected", "stored"]
    assert outcomes[1].error is not None and outcomes[1].error["code"] == 207
    assert open_journal(platform).outcome(ids[1]).status == "rejected"
    assert len(search(store, "Observation")) == 16


def test_purge_keeps_pending_and_recent_messages(platform: Platform, store: StoreContext) -> None:
    from hygie.devices.tables import message
    from hygie.store.model import now_us

    journal(platform, monitor("OLD-1"), monitor("OLD-2"))
    mapper(platform, store).run_once()
    journal(platform, monitor("OLD-3"))  # still pending
    with open_journal(platform).engine.begin() as conn:
        conn.execute(message.update().values(received_at=now_us() - 10 * 86400 * 10**6))
    journal(platform, monitor("NEW-1"))
    j = open_journal(platform)
    assert j.purge(now_us() - 7 * 86400 * 10**6, chunk=1) == 2
    assert j.counts() == {"pending": 2}


def test_assigning_authority_picks_the_identifier_system(
    platform: Platform, store: StoreContext
) -> None:
    nir = "urn:oid:1.2.250.1.213.1.4.8"
    known = store.repository.create(
        {"resourceType": "Patient", "identifier": [{"system": nir, "value": "0000000042"}]}
    ).stored.res_id
    settings = DevicesSettings(authority_systems={"INS": nir})
    message = replace_segment(monitor("AS-1"), "PID", "PID|||0000000042^^^INS^NI||DURAND^Paul")
    other = replace_segment(monitor("AS-2"), "PID", "PID|||0000000042^^^CHJS^PI||DURAND^Paul")
    journal(platform, message, other)
    m = Mapper(
        platform.engine,
        store.repository,
        settings,  # type: ignore[arg-type]
        open_journal(platform),
    )
    assert [o.status for o in m.run_once()] == ["stored", "stored"]
    # INS maps to its system: the known patient; CHJS is not listed: the IPP system,
    # where nobody has that number, so a provisional patient
    assert len(search(store, "Observation", ("subject", f"Patient/{known}"))) == 8
    [provisional] = [p for p in search(store, "Patient") if p["id"] != known]
    assert provisional["identifier"] == [
        {"system": "https://hygie.example/fhir/sid/ipp", "value": "0000000042"}
    ]


def test_provisional_patient_is_created_once_across_mapper_restarts(
    platform: Platform, store: StoreContext
) -> None:
    journal(platform, monitor("PR-1", ipp="0000000777"))
    mapper(platform, store).run_once()
    journal(platform, monitor("PR-2", ipp="0000000777"), ventilator("PR-3", ipp="0000000777"))
    assert [o.status for o in mapper(platform, store).run_once()] == ["stored", "stored"]
    [patient] = search(store, "Patient")
    assert len(search(store, "Flag")) == 1
    assert len(search(store, "Observation", ("subject", f"Patient/{patient['id']}"))) == 8 + 8 + 7
    with platform.engine.connect() as conn:
        row = conn.execute(select(bed)).one()
    assert (row.patient_id, row.provisional) == (patient["id"], True)


def test_simulated_monitor_maps_every_metric(platform: Platform, store: StoreContext) -> None:
    from hygie.devices.simulator import make_devices, monitor_message

    [device] = make_devices(1, 0)
    raw = monitor_message(device, "SIM-1", "20260321081500+0100").decode()
    journal(platform, raw)
    assert [(o.status, o.observations) for o in mapper(platform, store).run_once()] == [
        ("stored", 10)
    ]
    loinc = {
        c["code"]
        for o in search(store, "Observation")
        for c in o["code"]["coding"]
        if c["system"] == "http://loinc.org"
    }
    assert loinc == {
        "8867-4",
        "2708-6",
        "59408-5",
        "8889-8",
        "9279-1",
        "8480-6",
        "8462-4",
        "76215-3",
        "76213-8",
        "76214-6",
        "8310-5",
    }
    vitals = search(store, "Observation", ("category", "vital-signs"))
    assert len(vitals) == 10


def test_outcomes_left_to_the_gateway_are_not_mapped_twice(
    platform: Platform, store: StoreContext
) -> None:
    j = open_journal(platform)
    ids = journal(platform, monitor("GW-1"), monitor("GW-2"))
    m = Mapper(
        platform.engine,
        store.repository,
        DevicesSettings(),
        j,  # type: ignore[arg-type]
        record=False,
    )
    outcomes = m.run_once()
    assert [o.status for o in outcomes] == ["stored", "stored"]
    # not recorded yet: still pending in the journal, but the mapper does not take them again
    assert j.counts() == {"pending": 2}
    assert m.run_once() == []
    more = journal(platform, monitor("GW-3"))
    assert [o.journal_id for o in m.run_once()] == more
    # the gateway records the first two with its next commit
    j.append((), finished=outcomes)
    assert j.counts() == {"pending": 1, "stored": 2}
    assert m.run_once() == []
    # an outcome the gateway never recorded is taken again after a while, writing nothing
    m._reported = {more[0]: m._reported[more[0]] - 31}
    again = m.run_once()
    assert [(o.journal_id, o.status) for o in again] == [(more[0], "stored")]
    assert len(search(store, "Observation")) == 24
    assert {o["meta"]["versionId"] for o in search(store, "Observation")} == {"1"}
    assert j.outcome(ids[1]).observations == 8


def test_a_message_that_does_not_open_is_rejected_not_retried(
    platform: Platform, store: StoreContext
) -> None:
    [bad, _] = journal(platform, monitor("U1"), monitor("U2"))
    book = open_journal(platform)
    with book._writing() as conn:
        conn.execute(journal_rows.update().where(journal_rows.c.id == bad)
                     .values(raw=MAGIC + bytes(40)))
    outcomes = mapper(platform, store).run_once()
    assert [o.status for o in outcomes] == ["rejected", "stored"]
    assert "does not open" in str(outcomes[0].error["text"])
    assert mapper(platform, store).run_once() == []
