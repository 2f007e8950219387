"""HTTP routes of the channels package, mounted under ``/channels``.

Pages for operators (French): the outbox with each message's status timeline, the
inbox of what came back, and the simulator page showing what the loopback SMSC and
mail sink were "sent". A JSON API lets a back-end enqueue and read messages (scope
``channels:send`` to enqueue). The answer page of e-mail links (``/r/<token>``) is
public: the link itself is the credential. Every engine error becomes RFC 9457
problem+json (or a French error page for the answer page) here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.channels.errors import (
    AlreadyAnswered,
    AnswerLinkError,
    AnswerLinkExpired,
    ChannelError,
    IdempotencyConflict,
    InvalidMessage,
    MessageNotFound,
)
from hygie.channels.model import Channel, MessageRecord, OutboundMessage, Status
from hygie.channels.service import Channels, channels_for
from hygie.security.responses import problem_response

#: Path prefixes (under /channels) reachable without an account.
PUBLIC_PATHS: list[str] = ["/r/"]
MAX_BODY = 256 * 1024
PARIS = ZoneInfo("Europe/Paris")

STATUS_LABELS = {
    Status.QUEUED: "en file", Status.SENDING: "en cours d'envoi", Status.SUBMITTED: "transmis",
    Status.DELIVERED: "remis", Status.FAILED: "échec", Status.ANSWERED: "répondu",
}
CHANNEL_LABELS = {Channel.SMS: "SMS", Channel.EMAIL: "Courriel", Channel.VOICE: "Appel"}
_PROBLEMS: list[tuple[type[Exception], int, str]] = [
    (MessageNotFound, 404, "not-found"),
    (IdempotencyConflict, 409, "idempotency-conflict"),
    (AnswerLinkExpired, 410, "link-expired"),
    (AlreadyAnswered, 409, "already-answered"),
    (AnswerLinkError, 404, "invalid-link"),
    (InvalidMessage, 422, "invalid-message"),
    (ChannelError, 400, "channel-error"),
]


def problem(status: int, title: str, detail: str, slug: str) -> Response:
    return problem_response(status, detail, title=title,
                            type_=f"urn:hygie:problem:channels:{slug}")


def _problem_for(exc: ChannelError) -> Response:
    for kind, status, slug in _PROBLEMS:
        if isinstance(exc, kind):
            return problem(status, type(exc).__name__, str(exc) or slug, slug)
    return problem(400, "ChannelError", str(exc), "channel-error")


def _json_errors(handler: Callable[[Request], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ChannelError as exc:
            return _problem_for(exc)
    return wrapped


def _channels(request: Request) -> Channels:
    return channels_for(request.app.state.platform)


def paris(ms: int | None) -> str:
    """A UTC millisecond time shown in Europe/Paris."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=PARIS).strftime("%d/%m/%Y %H:%M:%S")


def _message_json(m: MessageRecord) -> dict[str, Any]:
    return {
        "id": m.id, "idempotency_key": m.idempotency_key, "owner": m.owner,
        "channel": str(m.channel), "recipient": m.recipient, "status": str(m.status),
        "attempts": m.attempts, "parts": m.parts, "answer": m.answer, "error": m.error,
        "expected_answers": list(m.expected_answers) if m.expected_answers is not None
        else None,
        "timeline": [{"status": e.status, "at_ms": e.at_ms, "detail": e.detail}
                     for e in m.timeline],
    }


async def _read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidMessage(f"body larger than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidMessage("the body is not JSON") from exc


def _outbound(data: Any) -> OutboundMessage:
    if not isinstance(data, dict):
        raise InvalidMessage("a JSON object is expected")
    try:
        channel = Channel(str(data.get("channel", "")))
    except ValueError as exc:
        raise InvalidMessage("channel: one of sms, email, voice") from exc
    expected = data.get("expected_answers")
    if expected is not None and (not isinstance(expected, list) or not all(
            isinstance(e, str) and e for e in expected)):
        raise InvalidMessage("expected_answers: a list of non-empty strings")
    fields: dict[str, Any] = {}
    for name in ("idempotency_key", "owner", "recipient", "text"):
        value = data.get(name)
        if not isinstance(value, str):
            raise InvalidMessage(f"{name}: a string is required")
        fields[name] = value
    for name in ("subject", "html", "about", "recipient_ref"):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidMessage(f"{name}: a string")
        fields[name] = value
    ttl = data.get("ttl_s")
    if ttl is not None and (not isinstance(ttl, int) or ttl <= 0):
        raise InvalidMessage("ttl_s: a positive integer")
    return OutboundMessage(channel=channel, expected_answers=expected, ttl_s=ttl, **fields)


# --- JSON API --------------------------------------------------------------------
@_json_errors
async def api_enqueue(request: Request) -> Response:
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        principal.require_scope("channels:send")
    message = _outbound(await _read_json(request))
    record = await run_in_threadpool(_channels(request).enqueue, message)
    return JSONResponse(_message_json(record), status_code=201,
                        headers={"Location": f"/channels/api/messages/{record.id}"})


@_json_errors
async def api_message(request: Request) -> Response:
    record = await run_in_threadpool(_channels(request).get, request.path_params["id"])
    return JSONResponse(_message_json(record))


@_json_errors
async def api_messages(request: Request) -> Response:
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in {str(s) for s in Status}:
        raise InvalidMessage("status: unknown value")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError as exc:
        raise InvalidMessage("limit: an integer") from exc
    records = await run_in_threadpool(lambda: _channels(request).find(
        owner_prefix=q.get("owner"), status=status, limit=limit))
    return JSONResponse([_message_json(r) for r in records])


# --- pages -------------------------------------------------------------------------
def _render(request: Request, template: str, context: dict[str, Any],
            status_code: int = 200) -> Response:
    from hygie.web.pages import render

    base = {"paris": paris, "status_labels": STATUS_LABELS, "channel_labels": CHANNEL_LABELS}
    return render(request, template, {**base, **context}, status_code=status_code)


async def outbox_page(request: Request) -> Response:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in {str(s) for s in Status}:
        status = None
    channel = q.get("channel") or None
    if channel is not None and channel not in {str(c) for c in Channel}:
        channel = None
    owner = (q.get("owner") or "").strip()[:200] or None
    ch = _channels(request)
    records, counts = await run_in_threadpool(lambda: (
        ch.find(owner_prefix=owner, status=status, channel=channel, limit=200),
        ch.outbox.counts()))
    return _render(request, "channels/outbox.html", {
        "records": records, "counts": counts, "status": status, "channel": channel,
        "owner": owner or "", "statuses": list(STATUS_LABELS), "channels": list(Channel)})


async def message_page(request: Request) -> Response:
    try:
        record = await run_in_threadpool(_channels(request).get, request.path_params["id"])
    except MessageNotFound:
        return _render(request, "channels/error.html",
                       {"title": "Message introuvable",
                        "detail": "Aucun message ne porte cet identifiant."}, 404)
    return _render(request, "channels/message.html", {"m": record})


async def inbox_page(request: Request) -> Response:
    items = await run_in_threadpool(_channels(request).recent_inbound, 200)
    return _render(request, "channels/inbox.html", {"items": items})


def _tail_jsonl(path: Path, limit: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[-limit:]
    out = []
    for line in reversed(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


async def simulator_page(request: Request) -> Response:
    from hygie.channels.simulators import simulator_dir

    folder = simulator_dir(request.app.state.platform.settings)
    sms = _tail_jsonl(folder / "sms.jsonl", 200)
    mails = _tail_jsonl(folder / "mail" / "index.jsonl", 100)
    calls = _tail_jsonl(folder / "calls.jsonl", 100)
    return _render(request, "channels/simulator.html", {
        "sms": sms, "mails": mails, "calls": calls,
        "at": lambda s: paris(int(s * 1000))})


# --- public answer page ------------------------------------------------------------
async def answer_page(request: Request) -> Response:
    ch = _channels(request)
    token = request.path_params["token"]
    try:
        record = await run_in_threadpool(ch.message_for_link, token)
    except AnswerLinkExpired:
        return _render(request, "channels/error.html", {
            "title": "Lien expiré",
            "detail": "Ce lien de réponse n'est plus valable."}, 410)
    except (AnswerLinkError, MessageNotFound):
        return _render(request, "channels/error.html", {
            "title": "Lien non valable", "detail": "Ce lien de réponse n'est pas reconnu."}, 404)
    if request.method == "POST":
        form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
        value = str(form.get("value", ""))
        try:
            record = await run_in_threadpool(ch.answer_by_link, token, value)
        except AlreadyAnswered:
            return _render(request, "channels/answer.html",
                           {"m": record, "token": token, "done": True, "already": True})
        except InvalidMessage as exc:
            return _render(request, "channels/answer.html",
                           {"m": record, "token": token, "error": str(exc)}, 422)
        return _render(request, "channels/answer.html", {"m": record, "token": token,
                                                         "done": True})
    return _render(request, "channels/answer.html", {
        "m": record, "token": token, "done": record.status is Status.ANSWERED,
        "already": record.status is Status.ANSWERED})


def routes() -> list[BaseRoute]:
    """Routes of the channels package, mounted by app.py under /channels."""
    return [
        Route("/", outbox_page),
        Route("/messages/{id}", message_page),
        Route("/inbox", inbox_page),
        Route("/simulator", simulator_page),
        Route("/r/{token}", answer_page, methods=["GET", "POST"]),
        Route("/api/messages", api_enqueue, methods=["POST"]),
        Route("/api/messages", api_messages, methods=["GET"]),
        Route("/api/messages/{id}", api_message),
    ]
