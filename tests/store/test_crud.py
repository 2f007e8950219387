"""create, read, vread, update (If-Match, update-as-create), patch, delete over HTTP."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

FHIR = "application/fhir+json"


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "active": True,
        "name": [{"family": "Martin", "given": ["Léa"]}],
        "gender": "female",
        "birthDate": "1984-03-12",
        **extra,
    }


def create(client: TestClient, resource: dict[str, Any], **headers: str) -> Any:
    return client.post(
        f"/fhir/{resource['resourceType']}",
        json=resource,
        headers={"Content-Type": FHIR, **headers},
    )


def test_create_then_read_returns_the_stored_version(client: TestClient) -> None:
    resp = create(client, patient())
    assert resp.status_code == 201
    body = resp.json()
    pid = body["id"]
    assert body["meta"]["versionId"] == "1"
    assert resp.headers["ETag"] == 'W/"1"'
    assert resp.headers["Location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert resp.headers["content-type"].startswith(FHIR)
    read = client.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["ETag"] == 'W/"1"'
    assert read.headers["Last-Modified"] == body["meta"]["lastUpdated"]


def test_create_ignores_a_client_id(client: TestClient) -> None:
    resp = create(client, patient(id="chosen"))
    assert resp.status_code == 201
    assert resp.json()["id"] != "chosen"


def test_prefer_return_minimal_and_outcome(client: TestClient) -> None:
    minimal = create(client, patient(), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b""
    assert "Location" in minimal.headers
    outcome = create(client, patient(), Prefer="return=OperationOutcome")
    assert outcome.json()["resourceType"] == "OperationOutcome"


def test_update_versions_and_if_match(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    changed = patient(id=pid, gender="other")
    resp = client.put(f"/fhir/Patient/{pid}", json=changed, headers={"If-Match": 'W/"1"'})
    assert resp.status_code == 200
    assert resp.json()["meta"]["versionId"] == "2"
    stale = client.put(f"/fhir/Patient/{pid}", json=changed, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 409
    assert stale.json()["resourceType"] == "OperationOutcome"
    v1 = client.get(f"/fhir/Patient/{pid}/_history/1").json()
    assert v1["gender"] == "female"
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "other"


def test_update_creates_with_a_client_assigned_id(client: TestClient) -> None:
    resp = client.put("/fhir/Patient/pat-42", json=patient(id="pat-42"))
    assert resp.status_code == 201
    assert resp.json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/pat-42").status_code == 200


def test_update_refuses_id_mismatch_and_missing_id(client: TestClient) -> None:
    mismatch = client.put("/fhir/Patient/a", json=patient(id="b"))
    assert mismatch.status_code == 400
    assert mismatch.json()["issue"][0]["expression"] == ["Patient.id"]
    missing = client.put("/fhir/Patient/a", json=patient())
    assert missing.status_code == 400


def test_delete_keeps_history_and_answers_gone(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204  # idempotent
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/_history/2").status_code == 410
    history = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    # a deleted resource can be brought back by an update
    back = client.put(f"/fhir/Patient/{pid}", json=patient(id=pid))
    assert back.status_code == 201
    assert back.json()["meta"]["versionId"] == "3"


def test_read_unknown_is_404_with_outcome(client: TestClient) -> None:
    resp = client.get("/fhir/Patient/does-not-exist")
    assert resp.status_code == 404
    assert resp.json()["issue"][0]["code"] == "not-found"
    assert client.get("/fhir/Patient/x/_history/9").status_code == 404


def test_conditional_read_if_none_match(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    resp = client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"1"'})
    assert resp.status_code == 304


def test_json_patch(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    ops = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/name/0/given/-", "value": "Marie"},
    ]
    resp = client.patch(
        f"/fhir/Patient/{pid}",
        content=__import__("json").dumps(ops),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["gender"] == "male"
    assert body["name"][0]["given"] == ["Léa", "Marie"]
    assert body["meta"]["versionId"] == "2"
    history = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert history["entry"][0]["request"]["method"] == "PATCH"


def test_json_patch_errors(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    headers = {"Content-Type": "application/json-patch+json"}
    bad_path = client.patch(
        f"/fhir/Patient/{pid}", content='[{"op": "remove", "path": "/nothing"}]', headers=headers
    )
    assert bad_path.status_code == 422
    invalid_result = client.patch(
        f"/fhir/Patient/{pid}",
        content='[{"op": "replace", "path": "/gender", "value": "x"}]',
        headers=headers,
    )
    assert invalid_result.status_code == 422
    assert client.get(f"/fhir/Patient/{pid}").json()["gender"] == "female"
    not_array = client.patch(f"/fhir/Patient/{pid}", content='{"op": "x"}', headers=headers)
    assert not_array.status_code == 400
    change_id = client.patch(
        f"/fhir/Patient/{pid}",
        content='[{"op": "replace", "path": "/id", "value": "other"}]',
        headers=headers,
    )
    assert change_id.status_code == 422


def test_conditional_create(client: TestClient) -> None:
    ident = {"identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "2840312345678"}]}
    first = create(
        client,
        patient(**ident),
        **{"If-None-Exist": "identifier=urn:oid:1.2.250.1.213.1.4.8|2840312345678"},
    )
    assert first.status_code == 201
    again = create(
        client,
        patient(**ident),
        **{"If-None-Exist": "identifier=urn:oid:1.2.250.1.213.1.4.8|2840312345678"},
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    create(client, patient(**ident))
    both = create(
        client,
        patient(**ident),
        **{"If-None-Exist": "identifier=urn:oid:1.2.250.1.213.1.4.8|2840312345678"},
    )
    assert both.status_code == 412


def test_conditional_update_and_delete(client: TestClient) -> None:
    ident = {"identifier": [{"system": "urn:test", "value": "abc"}]}
    created = client.put("/fhir/Patient?identifier=urn:test|abc", json=patient(**ident))
    assert created.status_code == 201
    pid = created.json()["id"]
    updated = client.put(
        "/fhir/Patient?identifier=urn:test|abc", json=patient(gender="male", **ident)
    )
    assert updated.status_code == 200 and updated.json()["id"] == pid
    assert updated.json()["meta"]["versionId"] == "2"
    assert client.delete("/fhir/Patient?identifier=urn:test|abc").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410
