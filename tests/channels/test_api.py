"""The channels routes in the platform's app: JSON API, problem+json, operator pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.channels import Channel, OutboundMessage, Receipt, Status, channels_for
from hygie.channels.model import PartOutcome
from hygie.platform import Platform
from hygie.security.tokens import issue_service_token

BASE = "http://testserver"


@pytest.fixture
def client(sqlite_platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform=sqlite_platform), base_url=BASE) as c:
        token = issue_service_token(sqlite_platform, subject="followup-service",
                                    scope="system/*.rs channels:send")
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def body(**kw: object) -> dict[str, object]:
    return {"idempotency_key": "k1", "owner": "followup:7", "channel": "sms",
            "recipient": "0612345678", "text": "Bonjour, comment allez-vous ?",
            "expected_answers": ["BIEN", "MAL"], **kw}


def test_enqueue_read_and_list(client: TestClient) -> None:
    created = client.post("/channels/api/messages", json=body())
    assert created.status_code == 201, created.text
    message = created.json()
    assert message["status"] == "queued" and message["recipient"] == "+33612345678"
    assert created.headers["Location"] == f"/channels/api/messages/{message['id']}"
    again = client.post("/channels/api/messages", json=body())
    assert again.json()["id"] == message["id"]
    read = client.get(f"/channels/api/messages/{message['id']}").json()
    assert [e["status"] for e in read["timeline"]] == ["queued"]
    listed = client.get("/channels/api/messages", params={"owner": "followup:"}).json()
    assert [m["id"] for m in listed] == [message["id"]]


@pytest.mark.parametrize(("payload", "status", "slug"), [
    (body(channel="fax"), 422, "invalid-message"),
    (body(recipient="pas un numéro"), 422, "invalid-message"),
    (body(text=""), 422, "invalid-message"),
    (body(expected_answers="OUI"), 422, "invalid-message"),
    (body(ttl_s=-1), 422, "invalid-message"),
    ([1, 2], 422, "invalid-message"),
    ("not json", 422, "invalid-message"),
])
def test_bad_input_is_problem_json(client: TestClient, payload: object, status: int,
                                   slug: str) -> None:
    if payload == "not json":
        r = client.post("/channels/api/messages", content=b"{nope",
                        headers={"Content-Type": "application/json"})
    else:
        r = client.post("/channels/api/messages", json=payload)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == f"urn:hygie:problem:channels:{slug}"


def test_conflict_not_found_and_scope(client: TestClient, sqlite_platform: Platform) -> None:
    assert client.post("/channels/api/messages", json=body()).status_code == 201
    r = client.post("/channels/api/messages", json=body(text="autre"))
    assert r.status_code == 409 and r.json()["type"].endswith("idempotency-conflict")
    assert client.get("/channels/api/messages/nope").status_code == 404
    assert client.get("/channels/api/messages", params={"status": "x"}).status_code == 422
    reader = issue_service_token(sqlite_platform, subject="reader", scope="system/*.rs")
    r = client.post("/channels/api/messages", json=body(idempotency_key="k2"),
                    headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403
    anonymous = client.get("/channels/api/messages", headers={"Authorization": ""})
    assert anonymous.status_code in (401, 303)


def test_pages_in_french(client: TestClient, sqlite_platform: Platform) -> None:
    ch = channels_for(sqlite_platform)
    record = ch.enqueue(OutboundMessage("p1", "followup:7", Channel.SMS, "+33612345678",
                                        "Votre rendez-vous est demain à 9h.",
                                        expected_answers=["OUI", "NON"]))
    [env] = ch.outbox.claim(Channel.SMS, "w", 1)
    ch.outbox.record([(env, Receipt(Status.SUBMITTED, parts=(PartOutcome(1, "accepted",
                                                                          "x1"),)))])
    ch.inbox.receive_sms([("+33612345678", "Oui")])
    outbox = client.get("/channels/")
    assert outbox.status_code == 200
    assert "Messagerie" in outbox.text and "répondu" in outbox.text
    filtered = client.get("/channels/", params={"status": "failed", "channel": "fax"})
    assert filtered.status_code == 200 and "Aucun message." in filtered.text
    detail = client.get(f"/channels/messages/{record.id}")
    assert detail.status_code == 200
    for word in ("en file", "transmis", "répondu", "Heures de Paris"):
        assert word in detail.text
    assert client.get("/channels/messages/inconnu").status_code == 404
    inbox = client.get("/channels/inbox")
    assert inbox.status_code == 200 and "Oui" in inbox.text and "réponse" in inbox.text
    sim = client.get("/channels/simulator")
    assert sim.status_code == 200 and "Simulateur." in sim.text
