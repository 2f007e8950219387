"""Batch and transaction Bundles: atomicity, urn:uuid rewriting, conditional references."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.testclient import TestClient

from hygie.platform import Platform
from hygie.store.interactions import FhirRequest, StoreContext, handle


def entry(
    resource: dict[str, Any],
    method: str = "POST",
    url: str | None = None,
    full_url: str | None = None,
    **request: str,
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "resource": resource,
        "request": {"method": method, "url": url or resource["resourceType"], **request},
    }
    if full_url:
        e["fullUrl"] = full_url
    return e


PATIENT_URN = "urn:uuid:9a7f1c2e-0b6d-4d8e-9a51-1f0c1a2b3c4d"


def observation(subject: str, value: float = 37.2) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "subject": {"reference": subject},
        "valueQuantity": {
            "value": value,
            "unit": "Cel",
            "system": "http://unitsofmeasure.org",
            "code": "Cel",
        },
    }


def test_transaction_rewrites_urn_uuid_references(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(observation(PATIENT_URN)),
            entry(
                {"resourceType": "Patient", "name": [{"family": "Durand"}]}, full_url=PATIENT_URN
            ),
        ],
    }
    resp = client.post("/fhir", json=bundle)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    obs_location = out["entry"][0]["response"]["location"]
    patient_location = out["entry"][1]["response"]["location"]
    obs = client.get(f"/fhir/{obs_location.split('/_history')[0]}").json()
    assert obs["subject"]["reference"] == "/".join(patient_location.split("/")[:2])


def test_transaction_is_atomic(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient", "name": [{"family": "Atomic"}]}),
            entry({"resourceType": "Patient", "gender": "not-a-gender"}),
        ],
    }
    resp = client.post("/fhir", json=bundle)
    assert resp.status_code == 422
    issue = resp.json()["issue"][0]
    assert "Bundle.entry[1]" in issue["diagnostics"]
    found = client.get("/fhir/Patient?family=Atomic").json()
    assert found.get("total", 0) == 0 and not found.get("entry")


def test_transaction_conditional_create_and_reference(client: TestClient) -> None:
    ident = {"system": "urn:test:ins", "value": "123"}
    first = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(
                {"resourceType": "Patient", "identifier": [ident]},
                full_url=PATIENT_URN,
                ifNoneExist="identifier=urn:test:ins|123",
            ),
            entry(observation(PATIENT_URN)),
        ],
    }
    out1 = client.post("/fhir", json=first).json()
    second = client.post("/fhir", json=first).json()
    assert out1["entry"][0]["response"]["status"] == "201 Created"
    assert second["entry"][0]["response"]["status"] == "200 OK"
    pid = out1["entry"][0]["response"]["location"].split("/")[1]
    assert second["entry"][0]["response"]["location"].split("/")[1] == pid
    by_ref = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(observation("Patient?identifier=urn:test:ins|123", 38.1)),
        ],
    }
    out3 = client.post("/fhir", json=by_ref).json()
    obs_id = out3["entry"][0]["response"]["location"].split("/")[1]
    obs = client.get(f"/fhir/Observation/{obs_id}").json()
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    none = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(observation("Patient?identifier=urn:test:ins|nobody")),
        ],
    }
    assert client.post("/fhir", json=none).status_code == 422


def test_transaction_runs_in_spec_order(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": "Patient/p1"}},
            entry({"resourceType": "Patient", "id": "p1", "gender": "male"}, "PUT", "Patient/p1"),
            {"request": {"method": "DELETE", "url": "Patient/p2"}},
        ],
    }
    out = client.post("/fhir", json=bundle).json()
    # GET runs last, so it sees the PUT
    assert out["entry"][0]["resource"]["gender"] == "male"
    assert out["entry"][2]["response"]["status"] == "204 No Content"


def test_batch_reports_each_entry(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            entry({"resourceType": "Patient", "name": [{"family": "Batch"}]}),
            entry({"resourceType": "Patient", "gender": "invalid"}),
            {"request": {"method": "GET", "url": "Patient/unknown"}},
        ],
    }
    out = client.post("/fhir", json=bundle).json()
    assert out["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses[0] == "201 Created"
    assert statuses[1].startswith("422")
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert statuses[2].startswith("404")


def test_bundle_errors(client: TestClient) -> None:
    assert client.post("/fhir", json={"resourceType": "Patient"}).status_code == 400
    assert (
        client.post("/fhir", json={"resourceType": "Bundle", "type": "collection"}).status_code
        == 400
    )
    no_request = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient"}}],
    }
    resp = client.post("/fhir", json=no_request)
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["expression"] == ["Bundle.entry[0].request"]


def test_prepared_creates_roll_back_with_a_later_failure(client: TestClient) -> None:
    """Creates validated before the write transaction still commit only with the rest."""
    client.put("/fhir/Patient/kept", json={"resourceType": "Patient", "id": "kept"})
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient", "name": [{"family": "Prepared"}]},
                  full_url=PATIENT_URN),
            entry(observation(PATIENT_URN)),
            entry({"resourceType": "Patient", "id": "kept", "gender": "male"},
                  method="PUT", url="Patient/kept", ifMatch='W/"7"'),
        ],
    }
    resp = client.post("/fhir", json=bundle)
    assert resp.status_code in (409, 412)
    assert "Bundle.entry[2]" in resp.json()["issue"][0]["diagnostics"]
    found = client.get("/fhir/Patient?family=Prepared").json()
    assert found.get("total", 0) == 0 and not found.get("entry")
    assert client.get("/fhir/Patient/kept").json()["meta"]["versionId"] == "1"


def _transaction_records(platform: Platform) -> list[Any]:
    from hygie.security.installation import security_of

    return [r for r in security_of(platform).audit_chain.records() if r.action == "transaction"]


def test_transaction_audit_record_commits_with_it(
    client: TestClient, platform: Platform
) -> None:
    """The Bundle's record is in the trail once, when the answer comes: no flush needed."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient", "name": [{"family": "Audited"}]},
                  full_url=PATIENT_URN),
            entry(observation(PATIENT_URN)),
        ],
    }
    resp = client.post("/fhir", json=bundle)
    assert resp.status_code == 200, resp.text
    locations = [e["response"]["location"].split("/_history")[0] for e in resp.json()["entry"]]
    records = _transaction_records(platform)
    assert len(records) == 1
    record = records[0]
    assert (record.verb, record.outcome) == ("E", "0")
    assert record.entity.split() == locations
    assert record.patient == locations[0].removeprefix("Patient/")


def test_failed_transaction_records_only_its_failure(
    client: TestClient, platform: Platform
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry({"resourceType": "Patient", "name": [{"family": "Refused"}]}),
            entry({"resourceType": "Patient", "id": "never", "gender": "male"},
                  method="PUT", url="Patient/never", ifMatch='W/"3"'),
        ],
    }
    resp = client.post("/fhir", json=bundle)
    assert resp.status_code in (409, 412)
    from hygie.security.installation import security_of

    assert security_of(platform).audit_writer.flush()
    records = _transaction_records(platform)
    assert [(r.verb, r.outcome) for r in records] == [("E", "4")]
    assert "Bundle.entry[1]" in records[0].detail


def test_concurrent_transactions_each_commit_whole(store: StoreContext) -> None:
    """Threads writing Bundles at once (a server's request threads): every Bundle is
    written whole, with its references rewritten to its own patient."""
    import threading

    def bundle(n: int) -> bytes:
        urn = f"urn:uuid:00000000-0000-4000-8000-{n:012d}"
        return orjson.dumps({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                entry({"resourceType": "Patient", "name": [{"family": f"Thread{n}"}]},
                      full_url=urn),
                *(entry(observation(urn, 36.0 + i / 10)) for i in range(5)),
            ],
        })

    failures: list[BaseException] = []

    def post(first: int) -> None:
        try:
            for n in range(first, first + 3):
                resp = handle(FhirRequest("POST", (), body=bundle(n)), store)
                assert resp.status == 200
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=post, args=(first,)) for first in (0, 10, 20, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    repo = store.repository
    for n in (0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32):
        patients = repo.search("Patient", [("family:exact", f"Thread{n}")]).matches
        assert len(patients) == 1
        observations = repo.search(
            "Observation", [("subject", f"Patient/{patients[0].res_id}")]
        ).matches
        assert len(observations) == 5
