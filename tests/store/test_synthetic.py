"""Synthetic territory and patients: determinism, sizes, references, R4 validity, shapes."""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from hygie.store.synthetic import (
    FINESS_SYSTEM,
    INS_SYSTEM,
    RPPS_SYSTEM,
    TerritoryIndex,
    generate_patient_bundles,
    generate_patient_resources,
    generate_territory,
    territory_transaction,
    write_ndjson,
)
from hygie.store.synthetic.identifiers import is_luhn_valid, luhn_key, nir_key
from hygie.store.validation import validate_resource

Json = dict[str, Any]

START, END = date(2020, 1, 1), date(2022, 12, 31)
VITALSIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
#: LOINC code of each R4 vital-sign profile -> (UCUM code, plausible low, high).
VITAL_UNITS = {
    "8867-4": ("/min", 30, 230),
    "2708-6": ("%", 60, 100),
    "9279-1": ("/min", 5, 70),
    "8310-5": ("Cel", 34, 42.5),
    "29463-7": ("kg", 2, 250),
}
MOBILE = re.compile(r"\+33[67][0-9]{8}")


@cache
def territory() -> tuple[Json, ...]:
    return tuple(generate_territory(seed=7))


@cache
def bundles() -> tuple[Json, ...]:
    return tuple(generate_patient_bundles(400, territory=territory(), seed=7))


def resources_of(bundle: Json) -> list[Json]:
    return [e["resource"] for e in bundle["entry"]]


def all_references(node: Any) -> Iterator[str]:
    """Every Reference.reference string in a resource, at any depth."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from all_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_references(value)


def territory_keys() -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in territory()}


# -- determinism ----------------------------------------------------------------------


def test_territory_is_deterministic() -> None:
    assert generate_territory(seed=7) == list(territory())
    other = generate_territory(seed=8)
    assert other != list(territory())
    # The layout is fixed; identities, statuses and shared posts change with the seed.
    def layout(resources: list[Json] | tuple[Json, ...]) -> list[str]:
        return [r["id"] for r in resources if r["resourceType"] != "PractitionerRole"]
    assert layout(other) == layout(territory())


def test_patients_are_deterministic() -> None:
    again = list(generate_patient_bundles(40, territory=territory(), seed=7))
    assert again == list(bundles()[:40])
    other = list(generate_patient_bundles(40, territory=territory(), seed=8))
    assert other != again


def test_patient_identity_does_not_depend_on_batch() -> None:
    """Patient i is the same person whatever the range it is generated in."""
    chunk = list(generate_patient_bundles(5, territory=territory(), seed=7, first=10))
    assert [resources_of(b)[0] for b in chunk] == [resources_of(b)[0] for b in bundles()[10:15]]


def test_plain_resources_mirror_the_bundles() -> None:
    plain = list(generate_patient_resources(20, territory=territory(), seed=7))
    from_bundles = [e for b in bundles()[:20] for e in b["entry"]]
    assert len(plain) == len(from_bundles)
    for resource, entry in zip(plain, from_bundles, strict=True):
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        assert resource["resourceType"] == entry["resource"]["resourceType"]


# -- sizes ----------------------------------------------------------------------------


def test_territory_sizes_and_hierarchy() -> None:
    by_type = defaultdict(list)
    for r in territory():
        by_type[r["resourceType"]].append(r)
    ght = [o for o in by_type["Organization"] if "partOf" not in o]
    hospitals = [o for o in by_type["Organization"] if "partOf" in o]
    assert len(ght) == 1 and len(hospitals) == 3
    assert all(h["partOf"]["reference"] == f"Organization/{ght[0]['id']}" for h in hospitals)
    assert all(h["identifier"][0]["system"] == FINESS_SYSTEM for h in hospitals)
    assert 140 <= len(by_type["Practitioner"]) <= 160
    kinds = Counter(loc["physicalType"]["coding"][0]["code"] for loc in by_type["Location"])
    assert kinds["si"] == 3 and kinds["bu"] >= 3 and kinds["wa"] >= 15
    assert kinds["ro"] > 100 and kinds["bd"] > 200
    locations = {loc["id"]: loc for loc in by_type["Location"]}
    for loc in by_type["Location"]:
        code = loc["physicalType"]["coding"][0]
        assert code["system"] == "http://terminology.hl7.org/CodeSystem/location-physical-type"
        parent = loc.get("partOf", {}).get("reference", "Location/").split("/")[1]
        expected_parent = {"si": None, "bu": "si", "wa": "bu", "ro": "wa", "bd": "ro"}
        if expected_parent[code["code"]] is None:
            assert not parent
        else:
            assert locations[parent]["physicalType"]["coding"][0]["code"] == \
                expected_parent[code["code"]]
        if code["code"] == "bd":
            status = loc["operationalStatus"]
            assert status["system"] == "http://terminology.hl7.org/CodeSystem/v2-0116"
            assert status["code"] in {"O", "U", "H", "C", "I", "K"}


def test_practitioners_and_roles() -> None:
    practitioners = [r for r in territory() if r["resourceType"] == "Practitioner"]
    roles = [r for r in territory() if r["resourceType"] == "PractitionerRole"]
    with_role = {r["practitioner"]["reference"] for r in roles}
    assert with_role == {f"Practitioner/{p['id']}" for p in practitioners}
    rpps = [p["identifier"][0]["value"] for p in practitioners]
    assert len(set(rpps)) == len(rpps)
    for p in practitioners:
        assert p["identifier"][0]["system"] == RPPS_SYSTEM
        assert len(p["identifier"][0]["value"]) == 11 and is_luhn_valid(p["identifier"][0]["value"])
        mobile = next(t["value"] for t in p["telecom"] if t.get("use") == "mobile")
        assert MOBILE.fullmatch(mobile)
        email = next(t["value"] for t in p["telecom"] if t["system"] == "email")
        assert email.endswith(".example") and email.isascii()
        assert p["qualification"]
    snomed = Counter(c["code"] for r in roles for cc in r["code"] for c in cc["coding"]
                     if c["system"] == "http://snomed.info/sct")
    # ICU nurse, anaesthetist, emergency physician, nurse, nursing assistant,
    # pulmonologist, radiologist.
    for code in ("224547003", "88189002", "309294001", "224535009", "224576000", "41672002",
                 "66862007"):
        assert snomed[code] > 0, code
    for role in roles:
        assert role["organization"]["reference"].startswith("Organization/")
        assert role["location"] and role["telecom"] and role["availableTime"]


def test_patient_bundle_sizes_and_shape() -> None:
    sizes = [len(b["entry"]) for b in bundles()]
    assert 35 <= sum(sizes) / len(sizes) <= 75
    types = Counter(r["resourceType"] for b in bundles() for r in resources_of(b))
    for rtype in ("Patient", "Encounter", "Condition", "Observation", "DocumentReference",
                  "AllergyIntolerance", "MedicationRequest"):
        assert types[rtype] > 0, rtype
    for bundle in bundles():
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        kinds = Counter(r["resourceType"] for r in resources_of(bundle))
        assert kinds["Patient"] == 1 and 1 <= kinds["Encounter"] <= 6
        for entry in bundle["entry"]:
            assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", entry["fullUrl"])
            assert entry["request"] == {"method": "POST",
                                        "url": entry["resource"]["resourceType"]}
            assert "id" not in entry["resource"]


def test_density_scales_vital_signs() -> None:
    def vitals(density: float) -> int:
        return sum(1 for r in generate_patient_resources(
            60, territory=territory(), seed=3, density=density)
            if r["resourceType"] == "Observation" and "meta" in r)
    assert vitals(2.0) > 1.6 * vitals(1.0)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="after start"):
        next(generate_patient_bundles(1, territory=territory(), start=END, end=START))
    with pytest.raises(ValueError, match="density"):
        next(generate_patient_bundles(1, territory=territory(), density=0))
    with pytest.raises(ValueError, match="no hospital unit"):
        TerritoryIndex([r for r in territory() if r["resourceType"] != "Location"])


# -- references -----------------------------------------------------------------------


def test_every_reference_resolves_in_bundle_or_territory() -> None:
    known = territory_keys()
    for r in territory():
        for ref in all_references(r):
            assert ref in known, (r["id"], ref)
    for bundle in bundles():
        urns = {e["fullUrl"] for e in bundle["entry"]}
        for resource in resources_of(bundle):
            for ref in all_references(resource):
                assert ref in urns or ref in known, ref
        patient = bundle["entry"][0]["fullUrl"]
        for resource in resources_of(bundle)[1:]:
            assert patient in set(all_references(resource))


def test_plain_references_resolve() -> None:
    plain = list(generate_patient_resources(30, territory=territory(), seed=5))
    known = territory_keys() | {f"{r['resourceType']}/{r['id']}" for r in plain}
    assert len(known) == len(territory()) + len(plain)
    for resource in plain:
        for ref in all_references(resource):
            assert ref in known, ref


def test_a_bed_holds_one_patient_at_a_time() -> None:
    stays: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for bundle in bundles():
        for r in resources_of(bundle):
            if r["resourceType"] != "Encounter":
                continue
            for loc in r["location"]:
                if loc["physicalType"]["coding"][0]["code"] == "bd":
                    stays[loc["location"]["reference"]].append(
                        (loc["period"]["start"], loc["period"].get("end", "9999")))
    assert stays
    for periods in stays.values():
        periods.sort()
        for (_, end), (start, _) in pairwise(periods):
            assert end <= start


# -- validity -------------------------------------------------------------------------


def test_every_generated_type_is_valid_r4() -> None:
    """The whole territory and every resource of 60 patients pass the R4 validator."""
    resources = [*territory(), *generate_patient_resources(60, territory=territory(), seed=11)]
    types = Counter(r["resourceType"] for r in resources)
    assert len(types) == 11, types  # 4 territory types and 7 patient types
    for resource in resources:
        issues = validate_resource(resource)
        assert not issues, (resource["resourceType"], [(i.severity, i.expression, i.diagnostics)
                                                       for i in issues])
    for bundle in (*bundles()[:5], territory_transaction(territory())):
        issues = validate_resource(bundle)
        assert not issues, [(i.severity, i.expression, i.diagnostics) for i in issues]


def test_vital_signs_follow_the_r4_profile() -> None:
    seen: Counter[str] = Counter()
    for bundle in bundles()[:150]:
        for obs in resources_of(bundle):
            if obs["resourceType"] != "Observation" or "meta" not in obs:
                continue
            assert VITALSIGNS in obs["meta"]["profile"]
            assert obs["status"] == "final"
            assert {"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs", "display": "Vital Signs"} in obs["category"][0]["coding"]
            assert obs["subject"]["reference"] == bundle["entry"][0]["fullUrl"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", obs["effectiveDateTime"])
            loinc = {c["code"] for c in obs["code"]["coding"] if c["system"] == "http://loinc.org"}
            if "85354-9" in loinc:
                assert "valueQuantity" not in obs
                parts = {c["code"]["coding"][0]["code"]: c["valueQuantity"]
                         for c in obs["component"]}
                assert set(parts) == {"8480-6", "8462-4"}
                assert all(q["code"] == "mm[Hg]" and q["system"] == "http://unitsofmeasure.org"
                           for q in parts.values())
                assert 40 <= parts["8462-4"]["value"] + 10 <= parts["8480-6"]["value"] <= 260
                seen["85354-9"] += 1
                continue
            if "2708-6" in loinc:
                assert "59408-5" in loinc
            (code,) = loinc & set(VITAL_UNITS)
            unit, low, high = VITAL_UNITS[code]
            quantity = obs["valueQuantity"]
            assert quantity["system"] == "http://unitsofmeasure.org" and quantity["code"] == unit
            assert low <= quantity["value"] <= high, (code, quantity)
            seen[code] += 1
    assert set(seen) == {*VITAL_UNITS, "85354-9"}
    assert all(count > 50 for count in seen.values()), seen


def _vitals_by_encounter(bundle: Json) -> dict[str, list[Json]]:
    found: dict[str, list[Json]] = defaultdict(list)
    for r in resources_of(bundle):
        if r["resourceType"] == "Observation" and "meta" in r:
            found[r["encounter"]["reference"]].append(r)
    return found


def test_intensive_care_series_are_dense_and_recover() -> None:
    recoveries = []
    rounds_per_day = []
    for bundle in generate_patient_bundles(800, territory=territory(), seed=21):
        vitals = _vitals_by_encounter(bundle)
        for entry in bundle["entry"]:
            enc = entry["resource"]
            if enc["resourceType"] != "Encounter" or len(enc["type"]) < 2:
                continue
            icu = next(loc for loc in enc["location"] if "Réanimation" in
                       loc["location"].get("display", ""))
            start = datetime.fromisoformat(icu["period"]["start"])
            end = datetime.fromisoformat(icu["period"].get("end", "2022-12-31T23:59:59Z"))
            days = (end - start).total_seconds() / 86400
            heart = sorted((o["effectiveDateTime"], o["valueQuantity"]["value"])
                           for o in vitals[entry["fullUrl"]]
                           if o["code"]["coding"][0]["code"] == "8867-4"
                           and icu["period"]["start"] <= o["effectiveDateTime"] <=
                           icu["period"].get("end", "9999"))
            if days >= 2:
                rounds_per_day.append(len(heart) / days)
            spo2 = [o["valueQuantity"]["value"] for o in sorted(
                vitals[entry["fullUrl"]], key=lambda o: o["effectiveDateTime"])
                if o["code"]["coding"][0]["code"] == "2708-6"]
            disposition = enc.get("hospitalization", {}).get("dischargeDisposition")
            if disposition and disposition["coding"][0]["code"] == "home" and len(spo2) > 6:
                recoveries.append(sum(spo2[-3:]) / 3 - min(spo2))
    assert len(rounds_per_day) >= 10
    assert 2.5 <= sorted(rounds_per_day)[len(rounds_per_day) // 2] <= 4.5
    assert recoveries and sum(recoveries) / len(recoveries) > 2.0


def test_dates_stay_in_the_period_and_open_stays_are_in_progress() -> None:
    statuses: Counter[str] = Counter()
    for bundle in bundles():
        for r in resources_of(bundle):
            if r["resourceType"] != "Encounter":
                continue
            statuses[r["status"]] += 1
            assert "2020-01-01" <= r["period"]["start"] <= "2022-12-31T23:59:59Z"
            if r["status"] == "in-progress":
                assert "end" not in r["period"]
            else:
                assert r["status"] == "finished" and r["period"]["start"] < r["period"]["end"]
    assert statuses["finished"] > 300


def test_identities_and_documents() -> None:
    ins = []
    for bundle in bundles():
        patient = resources_of(bundle)[0]
        number = next(i["value"] for i in patient["identifier"] if i["system"] == INS_SYSTEM)
        assert len(number) == 15 and nir_key(number[:13]) == number[13:]
        assert number[0] == ("2" if patient["gender"] == "female" else "1")
        assert number[1:3] == patient["birthDate"][2:4]
        ins.append(number)
        assert MOBILE.fullmatch(patient["telecom"][0]["value"])
        assert patient["address"][0]["country"] == "FR"
        for doc in resources_of(bundle):
            if doc["resourceType"] != "DocumentReference":
                continue
            attachment = doc["content"][0]["attachment"]
            data = base64.b64decode(attachment["data"])
            assert attachment["size"] == len(data)
            assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
            assert data.decode("utf-8").startswith("COMPTE RENDU D'HOSPITALISATION")
    assert len(set(ins)) == len(ins)


def test_check_keys() -> None:
    assert luhn_key("7992739871") == "3"  # the textbook Luhn example
    assert is_luhn_valid("79927398713") and not is_luhn_valid("79927398710")
    assert nir_key("1850578006084") == "91"  # 97 - 1850578006084 mod 97


# -- NDJSON and the store -------------------------------------------------------------


def test_write_ndjson_groups_by_type(tmp_path: Path) -> None:
    plain = list(generate_patient_resources(15, territory=territory(), seed=2))
    counts = write_ndjson([*territory(), *plain], tmp_path / "out")
    expected = Counter(r["resourceType"] for r in [*territory(), *plain])
    assert counts == dict(expected)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{t}.ndjson" for t in expected)
    lines = (tmp_path / "out" / "Observation.ndjson").read_bytes().splitlines()
    assert len(lines) == expected["Observation"]
    assert [orjson.loads(line) for line in lines] == [
        r for r in plain if r["resourceType"] == "Observation"]
    with pytest.raises(ValueError, match="resourceType"):
        write_ndjson([{"id": "x"}], tmp_path / "bad")


@pytest.mark.slow
def test_store_accepts_territory_and_patients(client: TestClient, tmp_path: Path) -> None:
    resp = client.post("/fhir", json=territory_transaction(territory()))
    assert resp.status_code == 200, resp.text[:2000]
    assert all(e["response"]["status"].startswith("201") for e in resp.json()["entry"])
    again = client.post("/fhir", json=territory_transaction(territory()[:60]))  # updates
    assert again.status_code == 200, again.text[:2000]
    assert all(e["response"]["status"].startswith("200") for e in again.json()["entry"])
    for bundle in bundles()[:3]:
        resp = client.post("/fhir", json=bundle)
        assert resp.status_code == 200, resp.text[:2000]
        assert all(e["response"]["status"].startswith("201") for e in resp.json()["entry"])
    plain = list(generate_patient_resources(2, territory=territory(), seed=99))
    write_ndjson(plain, tmp_path)
    body = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("*.ndjson")))
    resp = client.post("/fhir/$import", content=body,
                       headers={"Content-Type": "application/fhir+ndjson"})
    assert resp.status_code == 200, resp.text[:2000]
    patient = plain[0]
    found = client.get(f"/fhir/Encounter?subject=Patient/{patient['id']}").json()
    assert found["total"] == sum(1 for r in plain if r["resourceType"] == "Encounter"
                                 and r["subject"]["reference"] == f"Patient/{patient['id']}")
    icu = client.get("/fhir/Location/ch-jeanne-sorel-icu").json()
    assert icu["physicalType"]["coding"][0]["code"] == "wa"
