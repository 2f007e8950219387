"""HTTP edge of the FHIR store: Starlette requests in, FHIR interactions, responses out.

Only adapts: reads the request into a ``FhirRequest`` (refusing oversized bodies and
formats we do not speak), runs ``interactions.handle`` in a worker thread, and writes
status, ``ETag``/``Location``/``Last-Modified`` and the body. Every error leaves as
an OperationOutcome; nothing below this module knows about HTTP.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from hygie.store import outcomes
from hygie.store.interactions import FhirRequest, StoreContext, handle

log = logging.getLogger("hygie.store")

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {
    "application/fhir+json",
    "application/json",
    "application/json-patch+json",
    "application/x-www-form-urlencoded",
    "text/json",
    "application/fhir+ndjson",
    "application/ndjson",
    "",
}
_XML_HINTS = ("xml",)


def outcome_response(exc: outcomes.FhirError, pretty: bool = False) -> Response:
    """Render a FhirError as an OperationOutcome response with its status."""
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hygie"'
    return _json_response(exc.status, exc.outcome, headers, pretty)


def _json_response(
    status: int,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    pretty: bool = False,
    raw: bytes | None = None,
) -> Response:
    if raw is not None and pretty:
        body, raw = orjson.loads(raw), None
    content = (
        raw
        if raw is not None
        else (
            orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else 0)
            if body is not None
            else b""
        )
    )
    media = f"{FHIR_JSON}; charset=utf-8" if content else None
    return Response(content, status_code=status, headers=headers, media_type=media)


def _check_format(request: Request) -> None:
    fmt = request.query_params.get("_format")
    if fmt and not any(t in fmt for t in ("json",)):
        raise outcomes.FhirError(
            outcomes.Issue(
                "not-supported", f"_format {fmt!r} is not supported; this server speaks JSON"
            ),
            status=406,
        )
    accept = request.headers.get("accept", "")
    if accept and "json" not in accept and "*/*" not in accept and "application/*" not in accept:
        raise outcomes.FhirError(
            outcomes.Issue("not-supported", f"cannot answer in {accept}; this server speaks JSON"),
            status=406,
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise outcomes.too_costly(f"the body has {declared} bytes; at most {limit} are accepted")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise outcomes.too_costly(f"the body is larger than the {limit} bytes accepted")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise outcomes.invalid("the client closed the connection before sending the body") from exc
    return b"".join(chunks)


def _check_content_type(request: Request, body: bytes) -> None:
    if not body:
        return
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in _JSON_TYPES or ctype.endswith("+json"):
        return
    raise outcomes.FhirError(
        outcomes.Issue(
            "not-supported", f"Content-Type {ctype!r} is not supported; send {FHIR_JSON}"
        ),
        status=415,
    )


def _is_point_read(segments: tuple[str, ...]) -> bool:
    """``Type/id`` or ``Type/id/_history/vid``: a single-row lookup."""
    n = len(segments)
    return (n == 2 and not segments[1].startswith(("$", "_"))) or (
        n == 4 and segments[2] == "_history"
    )


async def fhir_endpoint(request: Request) -> Response:
    """One endpoint for the whole FHIR REST API under /fhir."""
    ctx: StoreContext = request.app.state.platform.parts["store"]
    settings = request.app.state.platform.settings
    pretty = request.query_params.get("_pretty") == "true"
    try:
        _check_format(request)
        body = b""
        if request.method in ("POST", "PUT", "PATCH"):
            body = await _read_body(request, settings.max_body_bytes)
            _check_content_type(request, body)
        raw_path = request.path_params.get("path", "")
        segments = tuple(s for s in raw_path.split("/") if s)
        fhir_req = FhirRequest(
            method="GET" if request.method == "HEAD" else request.method,
            path=segments,
            query=list(request.query_params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            principal=getattr(request.state, "principal", None),
        )
        if fhir_req.method == "GET" and _is_point_read(segments) and ctx.local_reads:
            # A read by id is one indexed row in a local file: cheaper to run here than
            # to hand it to a worker thread and back (the hand-off costs more than the
            # query). A database server's round trip would stall the loop instead.
            resp = handle(fhir_req, ctx)
        else:
            resp = await run_in_threadpool(handle, fhir_req, ctx)
    except outcomes.FhirError as exc:
        return outcome_response(exc, pretty)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return outcome_response(
            outcomes.FhirError(
                outcomes.Issue("exception", "internal error; see the server log"), status=500
            ),
            pretty,
        )
    # For HEAD, uvicorn sends the headers (Content-Length included) and drops the body.
    return _json_response(resp.status, resp.resource, resp.headers, pretty, resp.raw)


async def export_file(request: Request) -> Response:
    """Download one NDJSON file of a completed export (same token as the kick-off)."""
    exports = request.app.state.platform.parts["bulk_exports"]
    principal = getattr(request.state, "principal", None)
    try:
        chunks = await run_in_threadpool(
            exports.open_file,
            request.path_params["job"],
            request.path_params["name"],
            getattr(principal, "subject", None),
        )
    except outcomes.FhirError as exc:
        return outcome_response(exc)
    return StreamingResponse(chunks, media_type="application/fhir+ndjson")


def routes() -> list[BaseRoute]:
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/fhir/$export-file/{job}/{name}", export_file, methods=["GET"]),
        Route("/fhir", fhir_endpoint, methods=methods),
        Route("/fhir/{path:path}", fhir_endpoint, methods=methods),
    ]
