"""Protection at the edge: security headers, rate limits, body and depth limits, CSRF,
and emergency access with its review."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.platform import Platform
from hygie.security.protection import json_depth_exceeds
from hygie.security.tables import audit_log
from hygie.security.tokens import issue_service_token
from tests.security.territory import (
    BASE,
    app_and_platform,
    client_for,
    make_platform,
    patient_principal,
    staff,
)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[TestClient, Platform]]:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                             base_url="https://hygie.example", rate_per_address=5,
                             burst_per_address=10, max_body_bytes=4096, max_json_depth=10)
    with TestClient(create_app(platform=platform), base_url="https://hygie.example",
                    follow_redirects=False) as http:
        yield http, platform
    platform.close()


def test_security_headers_on_every_answer(small: tuple[TestClient, Platform]) -> None:
    http, _ = small
    for path in ("/login", "/fhir/metadata", "/fhir/Patient", "/nowhere"):
        response = http.get(path)
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["strict-transport-security"].startswith("max-age=31536000")
        assert headers["referrer-policy"] == "same-origin"


def test_rate_limit_per_address(small: tuple[TestClient, Platform]) -> None:
    http, _ = small
    statuses = [http.get("/fhir/metadata").status_code for _ in range(14)]
    assert statuses[:10] == [200] * 10
    assert 429 in statuses[10:]
    limited = http.get("/fhir/metadata")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["issue"][0]["code"] == "throttled"


def test_rate_limit_per_client(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                             rate_per_client=2, burst_per_client=3)
    try:
        with TestClient(create_app(platform=platform), base_url=BASE) as http:
            one = {"Authorization": "Bearer " + issue_service_token(
                platform, subject="one", scope="system/Patient.rs")}
            two = {"Authorization": "Bearer " + issue_service_token(
                platform, subject="two", scope="system/Patient.rs")}
            first = [http.get("/fhir/Patient", headers=one).status_code for _ in range(5)]
            assert first[:3] == [200] * 3 and first[3:] == [429, 429]
            assert http.get("/fhir/Patient", headers=two).status_code == 200  # its own bucket
    finally:
        platform.close()


def test_body_and_depth_limits(small: tuple[TestClient, Platform]) -> None:
    http, platform = small
    token = {"Authorization": "Bearer " + issue_service_token(platform, subject="s",
                                                              scope="system/*.cruds"),
             "Content-Type": "application/fhir+json"}
    big = {"resourceType": "Patient", "name": [{"family": "x" * 5000}]}
    too_big = http.post("/fhir/Patient", content=orjson.dumps(big), headers=token)
    assert too_big.status_code == 413
    deep: dict[str, Any] = {"resourceType": "Patient", "extension": []}
    node = deep
    for _ in range(12):
        child: dict[str, Any] = {"url": "urn:x", "extension": []}
        node["extension"].append(child)
        node = child
    refused = http.post("/fhir/Patient", content=orjson.dumps(deep), headers=token)
    assert refused.status_code == 400 and "deeper than 10" in refused.text
    fine = http.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "male"},
                     headers=token)
    assert fine.status_code == 201


def test_depth_scanner() -> None:
    assert not json_depth_exceeds(b'{"a": [1, {"b": "[[[[[[[[[[[[[[[["}]}', 3)
    assert json_depth_exceeds(b'{"a": [[[[{}]]]]}', 5)
    assert not json_depth_exceeds(b'{"a": [[[[{}]]]]}', 6)
    assert not json_depth_exceeds(b'{"a": "\\"{{{{{{{{"}', 2)
    assert not json_depth_exceeds(b"[[[[[", 2)  # unbalanced: the parser says why


@pytest.fixture
def territory(tmp_path: Path) -> Iterator[tuple[Any, Platform]]:
    yield from app_and_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path)


def _session(app: Any, platform: Platform, principal: Any) -> TestClient:
    from hygie.security.tokens import tokens_for

    http = TestClient(app, base_url=BASE, follow_redirects=False)
    http.cookies.set("hygie_session", tokens_for(platform).issue_session(principal).token)
    http.headers["Accept"] = "text/html"
    return http


def test_break_the_glass_flagged_and_reviewed(territory: tuple[Any, Platform]) -> None:
    app, platform = territory
    nurse = staff("petit", {"nurse"}, "chu", "Practitioner/petit")
    http = _session(app, platform, nurse)
    api = client_for(app, platform, nurse)
    assert api.get("/fhir/Condition/cond-bruno").status_code == 403
    form = http.get("/security/urgence", params={"patient": "bruno"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf and 'value="bruno"' in form.text
    no_reason = http.post("/security/urgence", data={"patient": "bruno", "reason": "vite",
                                                     "csrf_token": csrf.group(1)})
    assert no_reason.status_code == 400 and "motif" in no_reason.text.lower()
    forged = http.post("/security/urgence", data={
        "patient": "bruno", "reason": "Arrêt cardiaque aux urgences du CHU",
        "csrf_token": "0" * 64})
    assert forged.status_code == 403
    assert api.get("/fhir/Condition/cond-bruno").status_code == 403
    granted = http.post("/security/urgence", data={
        "patient": "bruno", "reason": "Arrêt cardiaque aux urgences du CHU",
        "csrf_token": csrf.group(1)})
    assert granted.status_code == 303 and granted.headers["location"] == \
        "/record/patient/bruno"
    assert api.get("/fhir/Condition/cond-bruno").status_code == 200
    assert api.get("/fhir/Condition/cond-chloe").status_code == 200  # normal reach, unflagged
    assert api.get("/fhir/Condition/cond-anne").status_code == 200
    platform.parts["security"].audit_writer.close()
    events = platform.parts["security"].audit_chain.events(audit_log.c.agent == "petit")
    flagged = [e for e in events if any(c["code"] == "BTG" for p in e.get("purposeOfEvent", [])
                                        for c in p["coding"])]
    assert [e.get("subtype", [{}])[0].get("code") for e in flagged] == [None, "read"]
    assert "Arrêt cardiaque" in flagged[0]["outcomeDesc"]
    assert "Condition/cond-bruno" in orjson.dumps(flagged[1]).decode()
    # bruno's own history shows the emergency access
    history = _session(app, platform, patient_principal("bruno")).get("/security/acces/bruno")
    assert "accès d'urgence" in history.text
    # the review: auditors only, once
    assert http.get("/security/relecture").status_code == 403
    auditor = _session(app, platform, staff("audit", {"auditor"}, None))
    page = auditor.get("/security/relecture")
    grant = re.search(r'name="grant" value="(\d+)"', page.text)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert grant and token and "Arrêt cardiaque" in page.text
    done = auditor.post("/security/relecture", data={"grant": grant.group(1),
                                                     "note": "Justifié (SAMU)",
                                                     "csrf_token": token.group(1)})
    assert done.status_code == 303
    assert "Aucun accès d'urgence" in auditor.get("/security/relecture").text
    twice = auditor.post("/security/relecture", data={"grant": grant.group(1), "note": "x",
                                                      "csrf_token": token.group(1)})
    assert twice.status_code == 404


def test_cross_site_form_posts_are_refused(territory: tuple[Any, Platform]) -> None:
    app, platform = territory
    http = _session(app, platform, staff("petit", {"nurse"}, "chu", "Practitioner/petit"))
    evil = http.post("/security/urgence", data={"patient": "bruno", "reason": "x" * 20},
                     headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403


def test_record_pages_keep_to_the_boundaries_and_are_audited(
        territory: tuple[Any, Platform]) -> None:
    app, platform = territory
    http = _session(app, platform, staff("sud", {"physician"}, "ch-sud"))
    assert 'data-patient="bruno"' in http.get("/record", params={"name": "marchetti"}).text
    hidden = http.get("/record", params={"name": "lefebvre"})
    assert hidden.status_code == 200 and 'data-patient="' not in hidden.text
    assert http.get("/record/patient/bruno").status_code == 200
    assert http.get("/record/patient/anne").status_code == 403
    platform.parts["security"].audit_writer.close()  # reads are appended within 50 ms
    history = _session(app, platform, patient_principal("anne")).get("/security/acces/anne")
    assert "refusé" in history.text  # Dr Sud's attempt on Anne's record is in her history
    bruno = _session(app, platform, patient_principal("bruno")).get("/security/acces/bruno")
    assert "consultation" in bruno.text and "sud" in bruno.text
