"""Every kind of bad input gets a 4xx OperationOutcome, never a 500."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def assert_outcome(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return body


@pytest.mark.parametrize(
    "payload", [b"{", b"[1, 2]", b'"text"', b"", b'{"no": "type"}', b"\xff\xfe", b"null"]
)
def test_malformed_bodies(client: TestClient, payload: bytes) -> None:
    assert_outcome(client.post("/fhir/Patient", content=payload, headers=FHIR), 400)


def test_wrong_resource_type(client: TestClient) -> None:
    body = assert_outcome(client.post("/fhir/Patient", json={"resourceType": "Observation"}), 400)
    assert body["issue"][0]["expression"] == ["resourceType"]


def test_unknown_resource_type(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Spaceship/1"), 404)
    assert_outcome(client.post("/fhir/Spaceship", json={"resourceType": "Spaceship"}), 404)


def test_invalid_id(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Patient/" + "x" * 65), 400)
    assert_outcome(client.get("/fhir/Patient/bad_id!"), 400)
    assert_outcome(
        client.put("/fhir/Patient/bad_id!", json={"resourceType": "Patient", "id": "bad_id!"}), 400
    )


def test_oversized_body(client: TestClient) -> None:
    limit = client.app.state.platform.settings.max_body_bytes  # type: ignore[attr-defined]
    big = b'{"resourceType": "Patient", "text": "' + b"x" * (limit + 10) + b'"}'
    assert_outcome(client.post("/fhir/Patient", content=big, headers=FHIR), 413)


def test_invalid_resource_is_422_with_location(client: TestClient) -> None:
    body = assert_outcome(
        client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "sometimes"}), 422
    )
    assert any("Patient.gender" in (i.get("expression") or [""])[0] for i in body["issue"])


def test_unknown_search_parameter_strict_and_lenient(client: TestClient) -> None:
    strict = client.get("/fhir/Patient?colour=blue", headers={"Prefer": "handling=strict"})
    body = assert_outcome(strict, 400)
    assert "colour" in body["issue"][0]["diagnostics"]
    lenient = client.get("/fhir/Patient?colour=blue")
    assert lenient.status_code == 200
    outcome = [e for e in lenient.json().get("entry", []) if e["search"]["mode"] == "outcome"]
    assert outcome and "colour" in str(outcome[0])


def test_bad_search_values(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Patient?birthdate=yesterday"), 400)
    assert_outcome(client.get("/fhir/Patient?_count=many"), 400)


def test_unsupported_formats(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Patient", headers={"Accept": "application/fhir+xml"}), 406)
    assert_outcome(client.get("/fhir/Patient?_format=xml"), 406)
    assert_outcome(
        client.post(
            "/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
        ),
        415,
    )


def test_method_not_allowed(client: TestClient) -> None:
    assert_outcome(client.post("/fhir/Patient/123", json={"resourceType": "Patient"}), 405)
    assert_outcome(client.delete("/fhir/metadata"), 405)


def test_bad_if_match(client: TestClient) -> None:
    assert_outcome(
        client.put(
            "/fhir/Patient/a",
            json={"resourceType": "Patient", "id": "a"},
            headers={"If-Match": "yesterday"},
        ),
        400,
    )


def test_no_token_is_401(client: TestClient) -> None:
    resp = client.get("/fhir/Patient", headers={"Authorization": ""})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/fhir/metadata", headers={"Authorization": ""}).status_code == 200


def test_scope_is_enforced(client: TestClient) -> None:
    from tests.store.conftest import service_token

    token = service_token(client.app.state.platform, "system/Observation.rs")  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/fhir/Observation", headers=headers).status_code == 200
    assert_outcome(client.get("/fhir/Patient", headers=headers), 403)
    assert_outcome(
        client.post("/fhir/Observation", json={"resourceType": "Observation"}, headers=headers), 403
    )
