"""HTTP routes of the mobilization service, mounted under ``/mobilization``.

Pages: ``/`` (plans, launch form, campaigns), ``/campaigns/<id>`` (the live board),
``/directory`` (the staff directory). JSON routes under ``/api/`` need the SMART scopes
of what they touch in the store: reading the board is reading ``CommunicationRequest``,
launching and closing write them (``CommunicationRequest.c``), plans are
``PlanDefinition``, the directory ``PractitionerRole``. The board's updates are pushed as
server-sent events (``/api/campaigns/<id>/events``): the stream is woken by the service
when this process changes the campaign, looks at the campaign's journal every
``STREAM_POLL_S`` for changes made by other processes, and sends the board when it
moved. Every engine error becomes RFC 9457 problem+json here, and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hygie.mobilization import pages
from hygie.mobilization.engine import MobilizationService
from hygie.mobilization.errors import (
    CampaignClosed,
    ConfirmationRequired,
    InvalidInput,
    MobilizationError,
    NotFound,
)
from hygie.mobilization.model import Campaign
from hygie.mobilization.plans import parse_plan, plan_to_dict
from hygie.security.middleware import require_scope
from hygie.security.model import InsufficientScope
from hygie.security.responses import problem_response, scope_problem
from hygie.web.bodies import read_json_object

#: Largest JSON body, and largest CSV upload, in bytes.
MAX_JSON_BODY = 256 * 1024
MAX_CSV_BODY = 20 * 1024 * 1024
#: How often a board stream looks for news made by other processes (seconds), the
#: shortest time between two boards it sends, and how often it sends a keep-alive.
STREAM_POLL_S = 0.2
STREAM_MIN_GAP_S = 0.1
STREAM_KEEPALIVE_S = 15.0

_STATUS: list[tuple[type[MobilizationError], int, str, str]] = [
    (NotFound, 404, "Not found", "not-found"),
    (CampaignClosed, 409, "Campaign closed", "closed"),
    (ConfirmationRequired, 428, "Confirmation required", "confirmation-required"),
    (InvalidInput, 422, "Invalid input", "invalid"),
    (MobilizationError, 400, "Bad request", "error"),
]


def problem(status: int, title: str, detail: str, slug: str,
            headers: dict[str, str] | None = None) -> Response:
    return problem_response(status, detail, headers, title=title,
                            type_=f"urn:hygie:problem:mobilization:{slug}")


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
        except MobilizationError as exc:
            for kind, status, title, slug in _STATUS:
                if isinstance(exc, kind):
                    return problem(status, title, str(exc), slug)
            raise
        except InsufficientScope as exc:
            return scope_problem(exc, "urn:hygie:problem:mobilization:forbidden")

    wrapper.__name__ = handler.__name__
    return wrapper


def service_of(request: Request) -> MobilizationService:
    return MobilizationService.for_platform(request.app.state.platform)


def who(principal: Any) -> tuple[str, str | None]:
    """(display name, FHIR reference) of the caller, for the journal and the record."""
    display = (
        getattr(principal, "display", None) or getattr(principal, "subject", None) or "inconnu"
    )
    return str(display), getattr(principal, "fhir_user", None)


def campaign_json(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.id,
        "plan_id": c.plan_id,
        "plan": c.plan_name,
        "level": c.level,
        "level_name": c.level_name,
        "exercise": c.exercise,
        "mode": "exercise" if c.exercise else "alert",
        "status": c.status,
        "launched_by": c.launched_by,
        "launched_ms": c.launched_ms,
        "closed_ms": c.closed_ms,
        "closed_by": c.closed_by,
        "note": c.note,
        "board": f"/mobilization/campaigns/{c.id}",
    }


# --- plans ------------------------------------------------------------------------------


@translated
async def api_plans(request: Request) -> Response:
    require_scope(request, "PlanDefinition", "s")
    service = service_of(request)
    plans = await run_in_threadpool(service.plans)
    roles, units = await run_in_threadpool(service.directory_labels)
    out = []
    for plan in plans:
        data = plan_to_dict(plan) | {"version": plan.version}
        for level in data["levels"]:
            for need in level["requests"]:
                if need.get("role") in roles:
                    need["role_label"] = roles[need["role"]]
                if need.get("unit") in units:
                    need["unit_label"] = units[need["unit"]]
        out.append(data)
    return json_response({"plans": out})


@translated
async def api_plan(request: Request) -> Response:
    plan_id = request.path_params["plan_id"]
    service = service_of(request)
    if request.method == "GET":
        require_scope(request, "PlanDefinition", "r")
        plan = await run_in_threadpool(service.plan, plan_id)
        return json_response(plan_to_dict(plan) | {"version": plan.version})
    if request.method == "DELETE":
        require_scope(request, "PlanDefinition", "d")
        await run_in_threadpool(service.archive_plan, plan_id)
        return Response(status_code=204)
    require_scope(request, "PlanDefinition", "u")
    data = await read_json(request)
    if data.get("id", plan_id) != plan_id:
        raise InvalidInput("id: the body's id differs from the path's")
    plan = parse_plan({**data, "id": plan_id})
    saved = await run_in_threadpool(service.save_plan, plan)
    return json_response(plan_to_dict(saved) | {"version": saved.version})


# --- campaigns --------------------------------------------------------------------------


def _bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name}: true or false is required")
    return value


def _str(data: dict[str, Any], name: str, max_len: int = 200, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name}: required")
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{name}: a string of at most {max_len} characters")
    return value


@translated
async def api_campaigns(request: Request) -> Response:
    service = service_of(request)
    if request.method == "GET":
        require_scope(request, "CommunicationRequest", "s")
        mode = request.query_params.get("mode")
        if mode not in (None, "exercise", "alert"):
            raise InvalidInput("mode: exercise or alert")
        found = await run_in_threadpool(
            service.campaigns,
            status=request.query_params.get("status") or None,
            exercise=None if mode is None else mode == "exercise",
        )
        return json_response({"campaigns": [campaign_json(c) for c in found]})
    principal = require_scope(request, "CommunicationRequest", "c")
    data = await read_json(request)
    plan_id = _str(data, "plan", 64, required=True)
    level = data.get("level")
    if isinstance(level, bool) or not isinstance(level, int):
        raise InvalidInput("level: an integer is required")
    exercise = _bool(data, "exercise")
    display, ref = who(principal)
    campaign, created = await run_in_threadpool(
        lambda: service.launch_once(
            plan_id or "",
            level,
            exercise=exercise,
            launched_by=display,
            launched_by_ref=ref,
            confirm=_str(data, "confirm", 20),
            launch_key=_str(data, "launch_key", 200),
            note=_str(data, "note", 500),
        )
    )
    return json_response(campaign_json(campaign), 201 if created else 200)


@translated
async def api_campaign(request: Request) -> Response:
    require_scope(request, "CommunicationRequest", "r")
    campaign = await run_in_threadpool(
        service_of(request).campaign, request.path_params["campaign_id"]
    )
    return json_response(campaign_json(campaign))


@translated
async def api_close(request: Request) -> Response:
    principal = require_scope(request, "CommunicationRequest", "c")
    data = await read_json(request)
    display, _ref = who(principal)
    campaign = await run_in_threadpool(
        lambda: service_of(request).close(
            request.path_params["campaign_id"],
            closed_by=display,
            confirm=data.get("confirm") is True,
        )
    )
    return json_response(campaign_json(campaign))


def _after(request: Request) -> int:
    raw = request.query_params.get("after", "0")
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput("after: a journal entry id")
    return int(raw)


@translated
async def api_board(request: Request) -> Response:
    require_scope(request, "CommunicationRequest", "r")
    board = await run_in_threadpool(
        service_of(request).board, request.path_params["campaign_id"], _after(request)
    )
    return json_response(board)


@translated
async def api_events(request: Request) -> Response:
    """The board as server-sent events: one ``board`` event at once, then one each
    time the campaign changes: at once when this process made the change (the
    service wakes the stream), within ``STREAM_POLL_S`` when another did (the
    stream looks at the campaign's journal), never more often than every
    ``STREAM_MIN_GAP_S`` (a burst of answers is one board, not one each)."""
    require_scope(request, "CommunicationRequest", "r")
    service = service_of(request)
    campaign_id = request.path_params["campaign_id"]
    first = await run_in_threadpool(service.board, campaign_id, 0)
    last_event_id = request.headers.get("last-event-id", "")
    seen = int(last_event_id) if last_event_id.isdigit() else 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal seen
        loop = asyncio.get_running_loop()
        board = first if seen == 0 else await run_in_threadpool(service.board, campaign_id, seen)
        sent_at = heard_at = loop.time()
        with service.watching(campaign_id) as news:
            while True:
                if board is not None:
                    seen = board["version"]
                    yield (
                        f"id: {seen}\nevent: board\ndata: ".encode() + orjson.dumps(board) + b"\n\n"
                    )
                    sent_at = heard_at = loop.time()
                if await request.is_disconnected():
                    return
                gap = sent_at + STREAM_MIN_GAP_S - loop.time()
                if gap > 0:
                    await asyncio.sleep(gap)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), STREAM_POLL_S)
                news.clear()
                if loop.time() - heard_at >= STREAM_KEEPALIVE_S:
                    heard_at = loop.time()
                    yield b": keep-alive\n\n"
                version = await run_in_threadpool(service.board_version, campaign_id)
                board = (
                    await run_in_threadpool(service.board, campaign_id, seen)
                    if version != seen
                    else None
                )

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- directory --------------------------------------------------------------------------


@translated
async def api_staff(request: Request) -> Response:
    require_scope(request, "PractitionerRole", "s")
    q = request.query_params
    try:
        limit = int(q.get("limit", "200"))
    except ValueError as exc:
        raise InvalidInput("limit: an integer") from exc
    found = await run_in_threadpool(
        lambda: service_of(request).staff(
            query=q.get("q"),
            role=q.get("role"),
            unit=q.get("unit"),
            hospital=q.get("hospital"),
            limit=limit,
        )
    )
    return json_response(
        {
            "staff": [
                {
                    "id": s.id,
                    "practitioner": s.practitioner_id,
                    "name": s.name,
                    "role": s.role_code,
                    "role_label": s.role_label,
                    "unit": s.unit_id,
                    "unit_label": s.unit_label,
                    "hospital": s.hospital_id,
                    "skills": list(s.skills),
                    "phone": s.phone,
                    "email": s.email,
                    "available": s.available,
                }
                for s in found
            ]
        }
    )


@translated
async def api_import(request: Request) -> Response:
    require_scope(request, "PractitionerRole", "c")
    require_scope(request, "Practitioner", "c")
    body = await request.body()
    if len(body) > MAX_CSV_BODY:
        raise InvalidInput(f"the file is larger than {MAX_CSV_BODY // (1024 * 1024)} MiB")
    report = await run_in_threadpool(service_of(request).import_csv, body)
    return json_response(
        {
            "lines": report.lines,
            "written": report.written,
            "errors": [{"line": n, "error": e} for n, e in report.errors[:1000]],
        }
    )


@translated
async def api_sync(request: Request) -> Response:
    require_scope(request, "PractitionerRole", "s")
    entries = await run_in_threadpool(service_of(request).sync_directory)
    return json_response({"entries": entries})


def start_with_app(platform: Any) -> Callable[[], None]:
    """Start the service with the server (answers routed here, worker running); return
    the function that stops it. Timers are rows, so a restart picks them up."""
    return MobilizationService.for_platform(platform).stop_worker


def routes() -> list[BaseRoute]:
    """The service's routes, mounted under /mobilization by app.py."""
    return [
        *pages.routes(),
        Route("/api/plans", api_plans),
        Route("/api/plans/{plan_id}", api_plan, methods=["GET", "PUT", "DELETE"]),
        Route("/api/campaigns", api_campaigns, methods=["GET", "POST"]),
        Route("/api/campaigns/{campaign_id}", api_campaign),
        Route("/api/campaigns/{campaign_id}/close", api_close, methods=["POST"]),
        Route("/api/campaigns/{campaign_id}/board", api_board),
        Route("/api/campaigns/{campaign_id}/events", api_events),
        Route("/api/staff", api_staff),
        Route("/api/staff/import", api_import, methods=["POST"]),
        Route("/api/staff/sync", api_sync, methods=["POST"]),
    ]
