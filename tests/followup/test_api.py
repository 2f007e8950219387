"""The JSON API and the pages behind the real authentication middleware."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hygie.followup.model import AlertKind
from hygie.platform import Platform
from tests.followup.conftest import BASE, TEAM, Harness, add_patient, paris_ms


def build_app(platform: Platform) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    import hygie.web
    from hygie.followup import api
    from hygie.security.middleware import AuthMiddleware

    static = Path(hygie.web.__file__).parent / "static"
    app = Starlette(
        routes=[
            Mount("/static", StaticFiles(directory=static)),
            Mount("/followup", routes=api.routes()),
        ],
        middleware=[Middleware(AuthMiddleware, platform=platform, public_paths=["/static/"])],
    )
    app.state.platform = platform
    app.state.nav = []
    return app


def token(platform: Platform, scope: str = "system/*.cruds") -> str:
    from hygie.security.tokens import issue_service_token

    return issue_service_token(platform, subject="infirmiere-coordination", scope=scope)


@pytest.fixture
def client(harness: Harness) -> Iterator[TestClient]:
    with TestClient(build_app(harness.platform), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token(harness.platform)}"
        yield c


def test_enrollment_errors_are_precise_and_lose_nothing(
    harness: Harness, client: TestClient
) -> None:
    add_patient(harness.platform, "pat-api", "Louis", "Martin", "+33612300001")
    body = {
        "patient": "pat-api",
        "protocol": "covid19",
        "phone": "06 12 30 00 01",
        "start": "2026-03-02",
        "consent": True,
        "team": TEAM,
    }
    for change, status, slug in [
        ({"consent": False}, 422, "consent-missing"),
        ({"phone": "01 45 67 89 10"}, 422, "invalid-phone"),  # a landline
        ({"phone": "bonjour"}, 422, "invalid-phone"),
        ({"patient": "nobody"}, 404, "not-found"),
        ({"protocol": "nope"}, 404, "not-found"),
        ({"start": "02/03/2026"}, 422, "invalid"),
        (
            {
                "overrides": {
                    "rules": [{"item": "temp", "op": ">=", "value": "x", "level": 1, "label": "?"}]
                }
            },
            422,
            "invalid-protocol",
        ),
    ]:
        res = client.post("/followup/api/enrollments", json={**body, **change})
        assert res.status_code == status, (change, res.text)
        assert res.headers["content-type"] == "application/problem+json"
        assert res.json()["type"] == f"urn:hygie:problem:followup:{slug}"
    assert client.get("/followup/api/enrollments").json()["enrollments"] == []
    created = client.post(
        "/followup/api/enrollments",
        json={
            **body,
            "overrides": {
                "times": ["09:30"],
                "rules": [
                    {"item": "temp", "op": ">=", "value": 37.5, "level": 1, "label": "Fébricule"}
                ],
            },
        },
    )
    assert created.status_code == 201, created.text
    data = created.json()
    assert data["phone"] == "+33612300001" and data["end"] == "2026-03-15"
    assert data["next_due"] == "2026-03-02T09:30"
    again = client.post("/followup/api/enrollments", json=body)
    assert again.status_code == 409
    # The patient's schedule is changed: the next session follows it.
    changed = client.put(
        f"/followup/api/enrollments/{data['id']}/overrides", json={"times": ["07:15", "19:00"]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["next_due"] == "2026-03-02T19:00"  # 07:15 has passed (07:30)
    assert changed.json()["overrides"] == {"times": ["07:15", "19:00"]}
    bad = client.put(
        f"/followup/api/enrollments/{data['id']}/overrides",
        json={"rules": [{"item": "nope", "op": ">", "value": 1, "level": 1, "label": "x"}]},
    )
    assert bad.status_code == 422 and "overrides.rules[0].item" in bad.json()["detail"]
    # Consent recorded in the store.
    consent = harness.platform.parts["store"].repository.read("Consent", data["consent"])
    assert consent.resource["provision"]["period"] == {"start": "2026-03-02", "end": "2026-03-15"}
    # A scope without Consent creation is refused.
    weak = token(harness.platform, "system/Flag.rs")
    res = client.post(
        "/followup/api/enrollments", json=body, headers={"Authorization": f"Bearer {weak}"}
    )
    assert res.status_code == 403
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["type"] == "urn:hygie:problem:followup:forbidden"
    assert 'error="insufficient_scope"' in res.headers["www-authenticate"]


def test_protocols_are_editable_and_checked(client: TestClient) -> None:
    listed = client.get("/followup/api/protocols").json()["protocols"]
    assert [p["id"] for p in listed] == ["covid19"]
    covid = client.get("/followup/api/protocols/covid19").json()
    assert covid["schedule"]["times"] == ["08:00", "15:00"]
    assert covid["questionnaire"]["meta"]["profile"][0].endswith("sdc-questionnaire")
    covid["schedule"] = {"times": ["10:00"], "days": 7, "on_days": [1, 3, 5, 7]}
    saved = client.put("/followup/api/protocols/covid19", json=covid)
    assert saved.status_code == 200 and saved.json()["version"] == 2
    bad = dict(covid, rules=[{"item": "nothing", "op": ">", "value": 1, "level": 2, "label": "x"}])
    res = client.put("/followup/api/protocols/covid19", json=bad)
    assert res.status_code == 422 and "rules[0].item" in res.json()["detail"]
    bad = dict(covid, schedule={"times": ["25:00"]})
    assert (
        "schedule.times[0]"
        in client.put("/followup/api/protocols/covid19", json=bad).json()["detail"]
    )
    assert client.get("/followup/api/protocols/covid19").json()["version"] == 2


def test_dashboard_and_alert_actions(harness: Harness, client: TestClient, enroll: Any) -> None:
    e = enroll("gina", "+33612000007")
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to("+33612000007")) == 2)
    harness.answer_and_wait("+33612000007", "j'étouffe", 3)
    (alert,) = harness.service.alerts(enrollment_id=e.id)
    assert alert.kind is AlertKind.DISTRESS and alert.level == 3
    page = client.get("/followup/")
    assert page.status_code == 200 and "Urgence" in page.text and "Jeanne GINA" in page.text
    follow = client.get(f"/followup/alerts/{alert.id}", follow_redirects=False)
    assert follow.status_code == 303
    assert follow.headers["location"] == f"/followup/enrollments/{e.id}?alert={alert.id}"
    timeline = client.get(follow.headers["location"])
    assert timeline.status_code == 200 and "tel:+33612000007" in timeline.text
    # days as French pages write them
    assert f"Suivi du {date.fromisoformat(e.start):%d/%m/%Y} au" in timeline.text
    assert f"<td>{date.fromisoformat(e.start):%d/%m/%Y}</td>" in page.text
    assert (
        client.post(f"/followup/api/alerts/{alert.id}/call", json={}).json()["status"]
        == "acknowledged"
    )
    res = client.post(f"/followup/api/alerts/{alert.id}/resolve", json={})
    assert res.status_code == 422
    res = client.post(
        f"/followup/api/alerts/{alert.id}/resolve", json={"comment": "SAMU envoyé, hospitalisée"}
    )
    assert res.json()["status"] == "resolved"
    assert (
        client.post(
            f"/followup/api/alerts/{alert.id}/resolve", json={"comment": "again"}
        ).status_code
        == 409
    )
    ended = client.post(f"/followup/api/enrollments/{e.id}/end", json={"reason": "hospitalisée"})
    assert ended.json()["status"] == "ended"
    view = client.get(f"/followup/api/enrollments/{e.id}").json()
    assert view["alerts"][0]["status"] == "resolved" and view["status"] == "ended"
    events = client.get(f"/followup/api/alerts/{alert.id}").json()["events"]
    assert [ev["kind"] for ev in events] == [
        "raised",
        "notified",
        "acknowledged",
        "called",
        "resolved",
    ]
    assert view["answers"][0]["outcome"] == "distress"
