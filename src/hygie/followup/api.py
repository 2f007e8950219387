"""HTTP routes of remote follow-up, mounted under ``/followup``.

Clinicians use the pages (``/``: alerts by severity; ``/enrollments/<id>``: a patient's
timeline; ``/alerts/<id>``: the alert a notification links to; ``/enroll``: enrolling a
patient) and the JSON routes under ``/api/``. Each route needs the SMART scope of what
it reads or changes in the record: ``Flag`` for alerts, ``QuestionnaireResponse`` to read
answers, ``Consent`` to enroll or end a follow-up, ``Questionnaire`` to edit protocols.
Every engine error becomes RFC 9457 problem+json here, and only here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hygie.followup import pages
from hygie.followup.engine import FollowupService
from hygie.followup.enrollments import overrides_from_json
from hygie.followup.errors import FollowupError, InvalidInput
from hygie.followup.model import Alert, Enrollment, EnrollmentRequest, Overrides
from hygie.followup.protocols import protocol_definition
from hygie.followup.schedule import local_text
from hygie.security.middleware import require_scope
from hygie.security.model import InsufficientScope
from hygie.security.responses import problem_response, scope_problem
from hygie.store.outcomes import FhirError
from hygie.web.bodies import read_json_object

MAX_JSON_BODY = 256 * 1024


def problem(status: int, title: str, detail: str, slug: str,
            headers: dict[str, str] | None = None) -> Response:
    return problem_response(status, detail, headers, title=title,
                            type_=f"urn:hygie:problem:followup:{slug}")


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


async def read_json(request: Request) -> dict[str, Any]:
    return await read_json_object(request, MAX_JSON_BODY, InvalidInput)


Handler = Callable[[Request], Awaitable[Response]]


def translated(handler: Handler) -> Handler:
    """Turn the engine's errors (and missing scopes) into problem+json."""

    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except FollowupError as exc:
            return problem(exc.status, exc.title, exc.detail, exc.slug)
        except InsufficientScope as exc:
            return scope_problem(exc, "urn:hygie:problem:followup:forbidden")
        except FhirError as exc:
            return problem(exc.status, "Refused by the health-data store", str(exc), "store")

    wrapper.__name__ = handler.__name__
    return wrapper


def service_of(request: Request) -> FollowupService:
    return FollowupService.for_platform(request.app.state.platform)


def require(request: Request, resource_type: str, interaction: str) -> str:
    """Check the caller's scope; return who they are (for the alert's history)."""
    principal = require_scope(request, resource_type, interaction)
    return str(principal.display or principal.subject)[:128]


def text_field(
    data: dict[str, Any], name: str, required: bool = True, max_len: int = 200
) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{name} must be a string of at most {max_len} characters")
    return value.strip()


def enrollment_json(e: Enrollment) -> dict[str, Any]:
    return {
        "id": e.id,
        "patient": e.patient_id,
        "patient_name": e.patient_name,
        "phone": e.phone,
        "language": e.language,
        "protocol": e.protocol_id,
        "start": e.start,
        "end": e.end,
        "status": str(e.status),
        "consent": e.consent_id,
        "team": e.team,
        "hospital": e.hospital,
        "overrides": e.overrides.as_json(),
        "next_due": local_text(e.next_due_ms, "%Y-%m-%dT%H:%M") if e.next_due_ms else None,
        "ended_reason": e.end_reason,
    }


def alert_json(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "enrollment": a.enrollment_id,
        "patient": a.patient_id,
        "patient_name": a.patient_name,
        "session": a.session_id,
        "kind": str(a.kind),
        "level": int(a.level),
        "level_label": a.level.label,
        "reasons": list(a.reasons),
        "status": str(a.status),
        "raised": local_text(a.raised_ms, "%Y-%m-%dT%H:%M"),
        "escalations": a.escalations,
        "comment": a.comment,
        "events": [
            {
                "at": local_text(e.at_ms, "%Y-%m-%dT%H:%M"),
                "kind": e.kind,
                "actor": e.actor,
                "detail": e.detail,
            }
            for e in a.events
        ],
    }


# --- protocols -------------------------------------------------------------------------


@translated
async def api_protocols(request: Request) -> Response:
    require(request, "Questionnaire", "s")
    found = await run_in_threadpool(service_of(request).protocols)
    return json_response(
        {
            "protocols": [
                {"id": p.id, "title": p.title, "version": p.version, "active": p.active}
                for p in found
            ]
        }
    )


@translated
async def api_protocol(request: Request) -> Response:
    service = service_of(request)
    protocol_id = request.path_params["protocol_id"]
    if request.method == "GET":
        require(request, "Questionnaire", "r")
        protocol = await run_in_threadpool(service.protocol, protocol_id)
        return json_response({**protocol_definition(protocol), "version": protocol.version})
    who = require(request, "Questionnaire", "u")
    data = await read_json(request)
    if data.get("id", protocol_id) != protocol_id:
        raise InvalidInput("the body's id differs from the path's")
    saved = await run_in_threadpool(
        service.save_protocol, {**data, "id": protocol_id}, who, bool(data.get("active", True))
    )
    return json_response({**protocol_definition(saved), "version": saved.version})


# --- enrollments -----------------------------------------------------------------------


@translated
async def api_enrollments(request: Request) -> Response:
    service = service_of(request)
    if request.method == "GET":
        require(request, "Consent", "s")
        q = request.query_params
        found = await run_in_threadpool(
            service.enrollments, q.get("status") or None, q.get("patient") or None
        )
        return json_response({"enrollments": [enrollment_json(e) for e in found]})
    who = require(request, "Consent", "c")
    data = await read_json(request)
    protocol_id = text_field(data, "protocol", max_len=64) or ""
    overrides = Overrides()
    if data.get("overrides"):
        protocol = await run_in_threadpool(service.protocol, protocol_id)
        overrides = overrides_from_json(data["overrides"], protocol)
    consent = data.get("consent")
    if not isinstance(consent, bool):
        raise InvalidInput("consent must be true (the patient agreed) or false")
    enrollment_request = EnrollmentRequest(
        patient_id=text_field(data, "patient", max_len=64) or "",
        protocol_id=protocol_id,
        phone=text_field(data, "phone", max_len=30) or "",
        start=text_field(data, "start", max_len=10) or "",
        consent=consent,
        end=text_field(data, "end", required=False, max_len=10),
        consent_method=text_field(data, "consent_method", required=False, max_len=10) or "oral",
        language=text_field(data, "language", required=False, max_len=8) or "fr",
        team=text_field(data, "team", required=False, max_len=64),
        overrides=overrides,
    )
    enrollment = await run_in_threadpool(service.enroll, enrollment_request, who)
    return json_response(enrollment_json(enrollment), 201)


@translated
async def api_enrollment(request: Request) -> Response:
    service = service_of(request)
    eid = request.path_params["enrollment_id"]
    action = request.path_params.get("action")
    if action is None:
        require(request, "QuestionnaireResponse", "s")

        def view() -> dict[str, Any]:
            e = service.enrollment(eid)
            return {
                **enrollment_json(e),
                "sessions": [
                    {
                        "id": s.id,
                        "due": local_text(s.due_ms, "%Y-%m-%dT%H:%M"),
                        "status": str(s.status),
                        "answers": s.answers,
                        "level": s.level,
                        "late": s.late,
                    }
                    for s in service.sessions(eid)
                ],
                "answers": service.answers(eid),
                "alerts": [alert_json(a) for a in service.alerts(None, enrollment_id=eid)],
                "series": service.series(eid),
            }

        return json_response(await run_in_threadpool(view))
    if action == "end":
        who = require(request, "Consent", "u")
        data = await read_json(request)
        reason = text_field(data, "reason", required=False, max_len=300) or ""
        e = await run_in_threadpool(service.end, eid, who, reason)
        return json_response(enrollment_json(e))
    if action == "overrides":
        require(request, "Consent", "u")
        data = await read_json(request)
        e = await run_in_threadpool(service.update_overrides, eid, data)
        return json_response(enrollment_json(e))
    raise InvalidInput(f"unknown action {action!r}")


# --- alerts ----------------------------------------------------------------------------


@translated
async def api_alerts(request: Request) -> Response:
    require(request, "Flag", "s")
    status = request.query_params.get("status", "active")
    if status not in ("active", "open", "acknowledged", "resolved", "all"):
        raise InvalidInput("status: active, open, acknowledged, resolved or all")
    found = await run_in_threadpool(service_of(request).alerts, None if status == "all" else status)
    return json_response({"alerts": [alert_json(a) for a in found]})


@translated
async def api_alert(request: Request) -> Response:
    service = service_of(request)
    alert_id = request.path_params["alert_id"]
    action = request.path_params.get("action")
    if action is None:
        require(request, "Flag", "r")
        return json_response(alert_json(await run_in_threadpool(service.alert, alert_id)))
    who = require(request, "Flag", "u")
    data = await read_json(request)
    if action == "acknowledge":
        alert = await run_in_threadpool(service.acknowledge, alert_id, who)
    elif action == "resolve":
        alert = await run_in_threadpool(
            service.resolve, alert_id, who, text_field(data, "comment", max_len=2000) or ""
        )
    elif action == "call":
        alert = await run_in_threadpool(
            service.record_call,
            alert_id,
            who,
            text_field(data, "detail", required=False, max_len=300),
        )
    else:
        raise InvalidInput(f"unknown action {action!r}")
    return json_response(alert_json(alert))


def start_with_app(platform: Any) -> Callable[[], None]:
    """Start the service (answer handler, worker) when the server starts; sessions,
    timers and alerts are persisted, so they resume after a restart. Returns the
    function that stops it."""
    return FollowupService.for_platform(platform).stop_worker


def routes() -> list[BaseRoute]:
    """The service's routes, mounted under /followup by app.py."""
    return [
        *pages.routes(),
        Route("/api/protocols", api_protocols),
        Route("/api/protocols/{protocol_id}", api_protocol, methods=["GET", "PUT"]),
        Route("/api/enrollments", api_enrollments, methods=["GET", "POST"]),
        Route("/api/enrollments/{enrollment_id}", api_enrollment),
        Route("/api/enrollments/{enrollment_id}/{action}", api_enrollment, methods=["POST", "PUT"]),
        Route("/api/alerts", api_alerts),
        Route("/api/alerts/{alert_id}", api_alert),
        Route("/api/alerts/{alert_id}/{action}", api_alert, methods=["POST"]),
    ]
