"""The problem+json bodies every non-FHIR route answers errors with (RFC 9457)."""

from __future__ import annotations

import orjson

from hygie.security.model import InsufficientScope
from hygie.security.responses import problem_response, scope_problem


def test_a_problem_says_its_kind_status_and_detail() -> None:
    res = problem_response(409, "the slot was taken meanwhile", title="Slot unavailable",
                           type_="urn:hygie:problem:scheduling:slot-unavailable")
    assert res.status_code == 409
    assert res.media_type == "application/problem+json"
    assert orjson.loads(res.body) == {
        "type": "urn:hygie:problem:scheduling:slot-unavailable",
        "title": "Slot unavailable",
        "status": 409,
        "detail": "the slot was taken meanwhile",
    }


def test_a_plain_problem_is_about_blank_titled_by_its_status() -> None:
    body = orjson.loads(problem_response(404).body)
    assert body == {"type": "about:blank", "title": "Not Found", "status": 404}


def test_a_missing_scope_is_a_403_whose_challenge_names_the_scope() -> None:
    exc = InsufficientScope('user/Flag.c"x', "this action needs user/Flag.c")
    res = scope_problem(exc, "urn:hygie:problem:followup:forbidden")
    assert res.status_code == 403
    assert orjson.loads(res.body)["detail"] == "this action needs user/Flag.c"
    # The scope is quoted in the header: a quote in it cannot end the parameter early.
    assert res.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="user/Flag.cx"')
