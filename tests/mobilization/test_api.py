"""The JSON routes behind the real authentication middleware: plans, a launch that must
be confirmed with the mode's word, a repeated launch key, the board, the close, and
the errors as problem+json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hygie.mobilization import tables as t
from tests.mobilization.conftest import BASE, ICU_NURSE, Rig, plan_definition, staff_csv


def build_app(platform: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    import hygie.web
    from hygie.mobilization import api
    from hygie.security.middleware import AuthMiddleware

    static = Path(hygie.web.__file__).parent / "static"
    app = Starlette(
        routes=[
            Mount("/static", StaticFiles(directory=static)),
            Mount("/mobilization", routes=api.routes()),
        ],
        middleware=[Middleware(AuthMiddleware, platform=platform, public_paths=["/static/"])],
    )
    app.state.platform = platform
    app.state.nav = []
    return app


def token(platform: Any, scope: str = "system/*.cruds") -> str:
    from hygie.security.tokens import issue_service_token

    return issue_service_token(platform, subject="regulation", scope=scope)


@pytest.fixture
def client(rig: Rig) -> Iterator[TestClient]:
    rig.service.import_csv(staff_csv([(i, ICU_NURSE, "icu") for i in range(1, 6)]))
    with TestClient(build_app(rig.platform), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token(rig.platform)}"
        yield c


def test_plans_launch_board_close(client: TestClient, rig: Rig) -> None:
    put = client.put("/mobilization/api/plans/plan-test", json=plan_definition(quota=1))
    assert put.status_code == 200 and put.json()["version"] == 1
    # the launch form names the needs as the directory does, not by their codes
    (listed_plan,) = client.get("/mobilization/api/plans").json()["plans"]
    need = listed_plan["levels"][0]["requests"][0]
    assert (need["role"], need["role_label"]) == (ICU_NURSE, "Infirmier de réanimation")
    assert (need["unit"], need["unit_label"]) == ("icu", "ICU")
    bad = client.put(
        "/mobilization/api/plans/plan-test",
        json={
            **plan_definition(),
            "levels": [{"level": 1, "requests": [{"role": ICU_NURSE, "quota": 0}]}],
        },
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["detail"] == "levels[0].requests[0].quota: between 1 and 100000"

    body = {"plan": "plan-test", "level": 1, "exercise": True, "launch_key": "k-1"}
    unconfirmed = client.post("/mobilization/api/campaigns", json=body)
    assert unconfirmed.status_code == 428 and "EXERCICE" in unconfirmed.json()["detail"]
    wrong_word = client.post("/mobilization/api/campaigns", json={**body, "confirm": "ALERTE"})
    assert wrong_word.status_code == 428
    with rig.platform.engine.connect() as conn:
        assert conn.execute(t.campaign.select()).first() is None  # nothing launched

    made = client.post("/mobilization/api/campaigns", json={**body, "confirm": "exercice"})
    assert made.status_code == 201
    campaign = made.json()
    assert campaign["mode"] == "exercise" and campaign["launched_by"] == "regulation"
    again = client.post("/mobilization/api/campaigns", json={**body, "confirm": "EXERCICE"})
    assert again.status_code == 200 and again.json()["id"] == campaign["id"]

    board = client.get(f"/mobilization/api/campaigns/{campaign['id']}/board").json()
    assert board["campaign"]["mode"] == "EXERCICE"
    assert board["requests"][0]["pending"] == 1
    assert [e["kind"] for e in board["events"]][:2] == ["launch", "asked"]
    listed = client.get("/mobilization/api/campaigns?mode=exercise").json()["campaigns"]
    assert [c["id"] for c in listed] == [campaign["id"]]
    assert client.get("/mobilization/api/campaigns?mode=alert").json()["campaigns"] == []

    rig.drain(until=lambda: len(rig.texts()) == 1)
    [(_to, text)] = rig.texts()
    assert text.startswith("[EXERCICE] Plan blanc test")

    close = client.post(f"/mobilization/api/campaigns/{campaign['id']}/close", json={})
    assert close.status_code == 428
    close = client.post(
        f"/mobilization/api/campaigns/{campaign['id']}/close", json={"confirm": True}
    )
    assert close.status_code == 200 and close.json()["status"] == "closed"
    twice = client.post(
        f"/mobilization/api/campaigns/{campaign['id']}/close", json={"confirm": True}
    )
    assert twice.status_code == 409
    assert client.get("/mobilization/api/campaigns/nope/board").status_code == 404

    # The launch and the close are AuditEvents in the store, marked as an exercise.
    rig.service.run_once()
    store = rig.service.repository
    launch = store.read("AuditEvent", f"mobilization-{campaign['id']}-launch").resource
    assert launch["purposeOfEvent"][0]["text"] == "EXERCICE"
    assert launch["outcomeDesc"].startswith("[EXERCICE] Déclenchement")
    assert store.read("AuditEvent", f"mobilization-{campaign['id']}-close").resource


def test_scopes_and_bad_bodies(client: TestClient, rig: Rig) -> None:
    reader = token(rig.platform, "system/CommunicationRequest.rs system/PlanDefinition.rs")
    headers = {"Authorization": f"Bearer {reader}"}
    denied = client.post(
        "/mobilization/api/campaigns",
        headers=headers,
        json={"plan": "x", "level": 1, "exercise": True, "confirm": "EXERCICE"},
    )
    assert denied.status_code == 403
    assert client.get("/mobilization/api/campaigns", headers=headers).status_code == 200
    assert client.post("/mobilization/api/campaigns", content=b"[1]").status_code == 422
    missing = client.post(
        "/mobilization/api/campaigns",
        json={"plan": "nope", "level": 1, "exercise": False, "confirm": "ALERTE"},
    )
    assert missing.status_code == 404
    no_mode = client.post("/mobilization/api/campaigns", json={"plan": "nope", "level": 1})
    assert no_mode.status_code == 422 and no_mode.json()["detail"].startswith("exercise")
    imported = client.post(
        "/mobilization/api/staff/import",
        content=b"identifiant;nom;prenom;role;telephone\nX1;Durand;Ana;224547003;0102\n",
    )
    assert imported.status_code == 200
    assert imported.json()["errors"][0]["line"] == 2
    assert "0102" in imported.json()["errors"][0]["error"]
