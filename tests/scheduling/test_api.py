"""The HTTP routes: public booking with SMS verification, manage links, staff routes,
and problem+json for every refusal."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Any

from hygie.platform import Platform
from hygie.scheduling.availability import local_instant
from hygie.scheduling.engine import SchedulingService
from hygie.scheduling.model import PARIS
from tests.scheduling.conftest import last_sms, staff_token

PHONE = "+33612345678"


def _verify(client: Any, platform: Platform, phone: str = "06 12 34 56 78") -> str:
    sent = client.post("/scheduling/public/api/verify", json={"phone": phone})
    assert sent.status_code == 202, sent.text
    code = re.search(r"\b(\d{6})\b", last_sms(platform, sent.json()["phone"]))
    assert code
    confirmed = client.post("/scheduling/public/api/verify/confirm",
                            json={"phone": phone, "code": code.group(1)})
    assert confirmed.status_code == 200, confirmed.text
    return str(confirmed.json()["token"])


def _first_slot(client: Any, **query: str) -> dict[str, Any]:
    res = client.get("/scheduling/public/api/slots", params={"from": "2021-03-01", **query})
    assert res.status_code == 200, res.text
    return dict(res.json()["slots"][0])


def test_public_booking_needs_a_verified_mobile(client: Any, platform: Platform) -> None:
    options = client.get("/scheduling/public/api/options").json()
    assert {t["code"] for t in options["types"]} == {"consultation", "anesthesie"}
    assert options["sites"] == [{"id": "ch-jeanne-sorel", "name": "CH Jeanne-Sorel"}]
    slot = _first_slot(client, type="consultation")
    # The clock says 09:00 in Paris: the 09:00 slot has started, 09:20 comes first.
    assert (slot["day"], slot["time"]) == ("2021-03-01", "09:20")
    person = {"family": "Durand", "given": "Alice", "birth_date": "1980-02-03"}
    refused = client.post("/scheduling/public/api/bookings",
                          json={**person, "slot": slot["id"], "token": "forged"})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    token = _verify(client, platform)
    booked = client.post("/scheduling/public/api/bookings",
                         json={**person, "slot": slot["id"], "token": token})
    assert booked.status_code == 201, booked.text
    body = booked.json()
    assert body["time"] == "09:20" and body["status"] == "booked"
    assert "rendez-vous confirmé le 01/03/2021 à 09:20" in last_sms(platform, PHONE)
    again = client.post("/scheduling/public/api/bookings",
                        json={**person, "slot": slot["id"], "token": token})
    assert again.status_code == 409
    assert again.json()["type"] == "urn:hygie:problem:scheduling:slot-unavailable"
    # The manage link works without an account: move, then cancel.
    secret = body["manage_url"].rsplit("/", 1)[1]
    page = client.get(f"/scheduling/manage/{secret}")
    assert page.status_code == 200 and "Mon rendez-vous" in page.text
    other = _first_slot(client, type="consultation", **{"from": "2021-03-05"})
    moved = client.post(f"/scheduling/public/api/manage/{secret}/move", json={"slot": other["id"]})
    assert moved.status_code == 200 and moved.json()["day"] == "2021-03-05"
    wrong_type = _first_slot(client, type="anesthesie")
    assert client.post(f"/scheduling/public/api/manage/{secret}/move",
                       json={"slot": wrong_type["id"]}).status_code == 400
    cancelled = client.post(f"/scheduling/public/api/manage/{secret}/cancel", json={})
    assert cancelled.json()["status"] == "cancelled"
    assert client.get("/scheduling/public/api/manage/nope").status_code == 404


def test_wrong_codes_are_counted_and_limited(client: Any, platform: Platform) -> None:
    client.post("/scheduling/public/api/verify", json={"phone": PHONE})
    for _ in range(5):
        wrong = client.post("/scheduling/public/api/verify/confirm",
                            json={"phone": PHONE, "code": "000000"})
        assert wrong.status_code == 403
    code = re.search(r"\b(\d{6})\b", last_sms(platform, PHONE)).group(1)  # type: ignore[union-attr]
    late = client.post("/scheduling/public/api/verify/confirm", json={"phone": PHONE,
                                                                     "code": code})
    assert late.status_code == 403 and "too many" in late.json()["detail"]
    for _ in range(4):
        client.post("/scheduling/public/api/verify", json={"phone": PHONE})
    limited = client.post("/scheduling/public/api/verify", json={"phone": PHONE})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    landline = client.post("/scheduling/public/api/verify", json={"phone": "01 44 55 66 77"})
    assert landline.status_code == 400 and "mobile" in landline.json()["detail"]


def test_bad_input_is_a_problem_never_a_500(client: Any) -> None:
    for path, body in [("/scheduling/public/api/verify", b"not json"),
                       ("/scheduling/public/api/verify", b"[1]"),
                       ("/scheduling/public/api/bookings", b'{"slot": "x"}'),
                       ("/scheduling/public/api/bookings", b'{"slot": 1e99}'),
                       ("/scheduling/public/api/waitlist", b'{"from": "2021-02-30"}')]:
        res = client.post(path, content=body)
        assert 400 <= res.status_code < 500, (path, body, res.text)
        assert res.headers["content-type"] == "application/problem+json"
    assert client.get("/scheduling/public/api/slots?from=yesterday").status_code == 400
    assert client.get("/scheduling/public/api/slots?days=9999").status_code == 400
    assert client.post("/scheduling/public/api/verify",
                       content=b"{" + b" " * 70000 + b"}").status_code == 400


def test_staff_routes_need_a_token_with_the_right_scopes(client: Any, platform: Platform,
                                                         service: SchedulingService) -> None:
    assert client.get("/scheduling/api/day?date=2021-03-02").status_code == 401
    reader = {"Authorization": f"Bearer {staff_token(platform, 'system/*.rs')}"}
    writer = {"Authorization": f"Bearer {staff_token(platform)}"}
    at = local_instant(date(2021, 3, 2), time(9, 20), PARIS)
    slot = service.search(first_utc=at, last_utc=at + 1)[0].id
    person = {"family": "Martin", "given": "Paul", "birth_date": "1950-06-07",
              "phone": "0698765432"}
    denied = client.post("/scheduling/api/bookings", json={**person, "slot": slot},
                         headers=reader)
    assert denied.status_code == 403 and "Appointment.c" in denied.json()["detail"]
    booked = client.post("/scheduling/api/bookings", json={**person, "slot": slot},
                         headers=writer)
    assert booked.status_code == 201, booked.text
    day = client.get("/scheduling/api/day?site=ch-jeanne-sorel&date=2021-03-02",
                     headers=reader).json()
    row = next(r for r in day["slots"] if r["id"] == slot)
    assert (row["status"], row["family"], row["time"]) == ("booked", "Martin", "09:20")
    bundle = client.get("/scheduling/api/slots?type=anesthesie&from=2021-03-01&days=3",
                        headers=reader)
    assert bundle.headers["content-type"] == "application/fhir+json"
    slots = [e["resource"] for e in bundle.json()["entry"]]
    assert [s["start"] for s in slots][:2] == ["2021-03-02T13:00:00Z", "2021-03-02T13:30:00Z"]
    assert slots[0]["schedule"] == {"reference": "Schedule/ag-anesth-1",
                                    "display": "Dr Paul Martin"}
    booking_id = booked.json()["id"]
    cancelled = client.post(f"/scheduling/api/bookings/{booking_id}/cancel", headers=writer)
    assert cancelled.json()["status"] == "cancelled"
    # Availability: a new rule, generation, a site closure that reports bookings to move.
    assert client.post("/scheduling/api/agendas/ag-anesth-1/rules", headers=writer, json={
        "weekdays": [4], "start": "14:00", "end": "15:00", "type": "anesthesie",
        "valid_from": "2021-03-01"}).status_code == 201
    overlap = client.post("/scheduling/api/agendas/ag-anesth-1/rules", headers=writer, json={
        "weekdays": [4], "start": "14:30", "end": "16:00", "type": "anesthesie",
        "valid_from": "2021-03-01"})
    assert overlap.status_code == 400 and "overlaps" in overlap.json()["detail"]
    made = client.post("/scheduling/api/generate", headers=writer,
                       json={"from": "2021-03-01", "to": "2021-03-31"})
    assert made.json()["created"] == 2 * 4  # four Thursdays, two 30-minute slots
    closed = client.post("/scheduling/api/closures", headers=writer, json={
        "site": "ch-jeanne-sorel", "from": "2021-03-04", "to": "2021-03-04",
        "reason": "exercice plan blanc"})
    assert closed.status_code == 201
    assert client.get("/scheduling/public/api/slots?from=2021-03-04&days=1").json()[
        "slots"] == []
    assert client.put("/scheduling/api/caps/ch-jeanne-sorel", headers=writer,
                      json={"max_arrivals": 0}).status_code == 400


def test_codes_are_limited_per_address_too(client: Any) -> None:
    for i in range(20):
        sent = client.post("/scheduling/public/api/verify", json={"phone": f"06123400{i:02d}"})
        assert sent.status_code == 202, sent.text
    refused = client.post("/scheduling/public/api/verify", json={"phone": "0612340099"})
    assert refused.status_code == 429 and "address" in refused.json()["detail"]
