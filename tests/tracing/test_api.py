"""The HTTP routes, as the app and staff call them: bodies, statuses, problem+json."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.testclient import TestClient

from hygie.tracing import api
from hygie.tracing import tables as t
from hygie.tracing.engine import TracingService
from hygie.tracing.phone import PhoneApp, b64
from tests.tracing.conftest import Clock, meet

PNG = b"\x89PNG\r\n\x1a\n"


def answer_of(svc: TracingService, cid: str) -> str:
    with svc.engine.connect() as conn:
        return str(conn.execute(sa.select(t.captcha.c.answer)
                                .where(t.captcha.c.id == cid)).scalar_one())


def register_http(client: TestClient, svc: TracingService) -> PhoneApp:
    phone = PhoneApp()
    cid = client.post("/tracing/api/captcha", json={"type": "image"}).json()["id"]
    r = client.post("/tracing/api/register", json={
        "captchaId": cid, "captcha": answer_of(svc, cid),
        "clientPublicECDHKey": phone.public_key()})
    assert r.status_code == 201, r.text
    key = client.get("/tracing/api/config").json()["serverPublicKey"]
    phone.complete_registration(key, r.json()["tuples"])
    return phone


def assert_problem(r: object, status: int, slug: str) -> dict[str, object]:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["status"] == status and body["type"].endswith(slug) and body["detail"]
    return dict(body)


def test_public_paths_cover_the_app_routes() -> None:
    public = {p for p in api.PUBLIC_PATHS}
    assert {"/api/register", "/api/status", "/api/report", "/api/captcha"} <= public
    assert not any(p.startswith("/api/staff") for p in public)


def test_config_and_captcha_media(client: TestClient, sqlite_service: TracingService) -> None:
    cfg = client.get("/tracing/api/config").json()
    assert cfg["epochDurationSeconds"] == 900 and cfg["serverPublicKey"]
    cid = client.post("/tracing/api/captcha", json={"type": "image"}).json()["id"]
    img = client.get(f"/tracing/api/captcha/{cid}/image")
    assert img.status_code == 200 and img.content.startswith(PNG)
    assert img.headers["content-type"] == "image/png"
    aid = client.post("/tracing/api/captcha", json={"type": "audio"}).json()["id"]
    wav = client.get(f"/tracing/api/captcha/{aid}/audio")
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"
    assert_problem(client.get(f"/tracing/api/captcha/{cid}/audio"), 403, "captcha")
    assert_problem(client.get("/tracing/api/captcha/nope/image"), 403, "captcha")
    assert_problem(client.post("/tracing/api/captcha", json={"type": "video"}), 400,
                   "invalid-request")


def test_registration_errors(client: TestClient, sqlite_service: TracingService) -> None:
    phone = PhoneApp()
    cid = client.post("/tracing/api/captcha", json={"type": "image"}).json()["id"]
    body = {"captchaId": cid, "captcha": "WRONG", "clientPublicECDHKey": phone.public_key()}
    assert_problem(client.post("/tracing/api/register", json=body), 403, "captcha")
    body["captcha"] = "X"
    assert_problem(client.post("/tracing/api/register", json=body), 403, "captcha")
    assert_problem(client.post("/tracing/api/register", content=b"{not json"), 400,
                   "invalid-request")
    assert_problem(client.post("/tracing/api/register", json={"clientPublicECDHKey": "%%"}),
                   400, "invalid-request")


def test_captcha_rate_limit(client: TestClient, sqlite_service: TracingService) -> None:
    for _ in range(sqlite_service.settings.captcha_per_window):
        assert client.post("/tracing/api/captcha", json={"type": "image"}).status_code == 201
    r = client.post("/tracing/api/captcha", json={"type": "image"})
    assert_problem(r, 429, "rate-limited")
    assert int(r.headers["retry-after"]) >= 1


def test_full_flow_over_http(client: TestClient, sqlite_service: TracingService,
                             clock: Clock) -> None:
    alice = register_http(client, sqlite_service)
    bob = register_http(client, sqlite_service)
    meet(alice, bob, clock.ntp(), 30)
    clock.advance(2400)
    code = client.post("/tracing/api/staff/codes", json={"kind": "short"})
    assert code.status_code == 201 and len(code.json()["code"]) == 6
    r = client.post("/tracing/api/report", json=alice.report(code.json()["code"]))
    assert r.status_code == 202 and r.json()["contacts"] > 0
    # The report's background pass already ran: the queue is empty.
    assert client.get("/tracing/api/staff/stats").json()["queued_contacts"] == 0
    status = client.post("/tracing/api/status", json=bob.status_request(clock.ntp()))
    assert status.status_code == 200
    body = status.json()
    assert body["atRisk"] is True and body["riskLevel"] == 4 and body["tuples"]
    assert {c["name"] for c in body["config"]} >= {"app.riskModel.r0"}
    r = client.post("/tracing/api/status", json=bob.status_request(clock.ntp()))
    assert_problem(r, 409, "replay")
    clock.advance(60)
    r = client.post("/tracing/api/status", json=bob.status_request(clock.ntp()))
    assert_problem(r, 429, "too-soon")
    assert int(r.headers["retry-after"]) > 0
    again = client.post("/tracing/api/report", json=alice.report(code.json()["code"]))
    assert_problem(again, 403, "submission-code")
    r = client.post("/tracing/api/delete-history", json=bob.delete_history_request(clock.ntp()))
    assert r.status_code == 200
    clock.advance(1)
    assert client.post("/tracing/api/unregister",
                       json=bob.unregister_request(clock.ntp())).status_code == 200
    clock.advance(1)
    r = client.post("/tracing/api/status", json=bob.status_request(clock.ntp()))
    assert_problem(r, 404, "unknown-user")


def test_authentication_problems(client: TestClient, sqlite_service: TracingService,
                                 clock: Clock) -> None:
    phone = register_http(client, sqlite_service)
    req = phone.status_request(clock.ntp())
    assert_problem(client.post("/tracing/api/status", json=dict(req, mac=b64(bytes(32)))),
                   401, "bad-mac")
    assert_problem(client.post("/tracing/api/status",
                               json=phone.status_request(clock.ntp() + 120)), 400,
                   "time-tolerance")
    assert_problem(client.post("/tracing/api/status", json=dict(req, epochId="x")), 400,
                   "invalid-request")
    assert_problem(client.post("/tracing/api/status", json=[1, 2]), 400, "invalid-request")


def test_process_route(client: TestClient) -> None:
    body = client.post("/tracing/api/staff/process").json()
    assert body == {"contacts": 0, "hellos": 0, "checks": {}, "exposuresAdded": 0,
                    "usersUpdated": 0}
