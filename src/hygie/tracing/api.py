"""HTTP routes of the tracing service, mounted under ``/tracing``.

The app-facing routes follow the ROBERT server's JSON (``captcha``, ``register``,
``status``, ``report``, ``unregister``, ``delete-history``); they are public, since
the app authenticates with its MAC and not with an account. Issuing submission codes,
running a processing pass, importing test sites and reading counts are for
authenticated staff, under ``/api/staff/``. Every engine error becomes RFC 9457 problem+json here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.security.responses import problem_response
from hygie.tracing.errors import (
    InvalidRequest,
    MissingExtra,
    RateLimited,
    TooSoon,
    TracingError,
)

if TYPE_CHECKING:
    from hygie.tracing.engine import TracingService

#: Path prefixes (under /tracing) reachable without an account.
PUBLIC_PATHS: list[str] = [
    "/api/config", "/api/captcha", "/api/register", "/api/status", "/api/report",
    "/api/unregister", "/api/delete-history", "/api/test-sites", "/centres",
]
MAX_APP_BODY = 64 * 1024
MAX_REPORT_BODY = 32 * 1024 * 1024
MAX_IMPORT_BODY = 64 * 1024 * 1024


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(status: int, title: str, detail: str, slug: str,
            headers: dict[str, str] | None = None) -> Response:
    return problem_response(status, detail, headers, title=title,
                            type_=f"urn:hygie:problem:tracing:{slug}")


def _service(request: Request) -> TracingService:
    # Imported here so that the platform starts without the optional extra.
    try:
        from hygie.tracing.engine import TracingService
    except ImportError as exc:
        raise MissingExtra(f"{exc.name} is missing: pip install 'hygie[tracing]'") from exc
    return TracingService.for_platform(request.app.state.platform)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _json(request: Request, limit: int = MAX_APP_BODY) -> Any:
    body = await request.body()
    if len(body) > limit:
        raise InvalidRequest(f"the body is larger than {limit} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("the body is not valid JSON") from exc


Handler = Callable[[Request], Awaitable[Response]]


def translated(handler: Handler) -> Handler:
    """Turn the engine's errors into problem+json (the one place that does it)."""
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except (RateLimited, TooSoon) as exc:
            return problem(exc.status, exc.title, exc.detail, exc.slug,
                           {"Retry-After": str(exc.retry_after)})
        except TracingError as exc:
            return problem(exc.status, exc.title, exc.detail, exc.slug)
    return wrapper


# --- app-facing ------------------------------------------------------------------------

@translated
async def config(request: Request) -> Response:
    return ORJSONResponse(_service(request).config())


@translated
async def create_captcha(request: Request) -> Response:
    body = await _json(request)
    kind = str(body.get("type", "image")).lower() if isinstance(body, dict) else ""
    cid = await run_in_threadpool(_service(request).create_captcha, kind, _client(request))
    return ORJSONResponse({"id": cid, "type": kind}, status_code=201)


@translated
async def captcha_media(request: Request) -> Response:
    kind = request.path_params["kind"]
    data = await run_in_threadpool(_service(request).captcha_media,
                                   request.path_params["cid"], kind)
    media = "image/png" if kind == "image" else "audio/wav"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


@translated
async def register(request: Request) -> Response:
    body = await _json(request)
    svc = _service(request)
    done = await run_in_threadpool(svc.register, body, _client(request))
    return ORJSONResponse({"tuples": done.tuples, "timeStart": done.time_start,
                           "config": done.config}, status_code=201)


@translated
async def status(request: Request) -> Response:
    body = await _json(request)
    svc = _service(request)
    # On SQLite the request is a few local reads and one write: answering it on the
    # event loop is cheaper than a thread hop; a networked database gets the thread.
    found = (svc.status(body) if svc.engine.dialect.name == "sqlite"
             else await run_in_threadpool(svc.status, body))
    out: dict[str, Any] = {"riskLevel": found.risk_level, "atRisk": found.at_risk,
                           "lastContactDate": found.last_contact_date,
                           "lastRiskScoringDate": found.last_risk_scoring_date,
                           "config": found.config}
    if found.tuples is not None:
        out["tuples"] = found.tuples
    return ORJSONResponse(out)


@translated
async def unregister(request: Request) -> Response:
    body = await _json(request)
    await run_in_threadpool(_service(request).unregister, body)
    return ORJSONResponse({"success": True})


@translated
async def delete_history(request: Request) -> Response:
    body = await _json(request)
    await run_in_threadpool(_service(request).delete_history, body)
    return ORJSONResponse({"success": True})


@translated
async def post_report(request: Request) -> Response:
    from hygie.tracing.contacts import process_contacts, report

    body = await _json(request, MAX_REPORT_BODY)
    svc = _service(request)
    n = await run_in_threadpool(report, svc, body)
    # The contacts are committed; verify and score them after answering.
    return ORJSONResponse({"success": True, "contacts": n}, status_code=202,
                          background=BackgroundTask(process_contacts, svc))


# --- staff -----------------------------------------------------------------------------

@translated
async def post_code(request: Request) -> Response:
    body = await _json(request) if await request.body() else {}
    kind = body.get("kind", "short") if isinstance(body, dict) else "short"
    from hygie.tracing.contacts import issue_code

    code = await run_in_threadpool(issue_code, _service(request), str(kind))
    return ORJSONResponse({"code": code.code, "kind": code.kind, "expires": code.expires_unix},
                          status_code=201)


@translated
async def post_process(request: Request) -> Response:
    from hygie.tracing.contacts import process_contacts

    done = await run_in_threadpool(process_contacts, _service(request))
    return ORJSONResponse({"contacts": done.contacts, "hellos": done.hellos,
                           "checks": done.checks, "exposuresAdded": done.exposures_added,
                           "usersUpdated": done.users_updated})


@translated
async def stats(request: Request) -> Response:
    return ORJSONResponse(await run_in_threadpool(_service(request).stats))


# --- test sites ------------------------------------------------------------------------

def _flag(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    low = value.lower()
    if low in ("1", "true", "yes", "oui"):
        return True
    if low in ("0", "false", "no", "non"):
        return False
    raise InvalidRequest(f"{name} must be true or false")


def site_query(params: Any) -> tuple[float, float, int, Any]:
    """Position, limit and filters (a ``SiteFilter``) of a nearest-site query string."""
    from hygie.tracing.testsites import SiteFilter

    try:
        lat, lon = float(params["lat"]), float(params["lon"])
    except (KeyError, ValueError) as exc:
        raise InvalidRequest("lat and lon are required decimal degrees") from exc
    try:
        limit = int(params.get("limit", "10"))
    except ValueError as exc:
        raise InvalidRequest("limit must be an integer") from exc
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100")
    return lat, lon, limit, SiteFilter(
        pcr=_flag(params.get("pcr"), "pcr"), antigenic=_flag(params.get("antigenic"), "antigenic"),
        without_appointment=_flag(params.get("walk_in"), "walk_in"),
        public=params.get("public", "").strip(), mod_prel=params.get("mod_prel", "").strip())


@translated
async def nearest_sites(request: Request) -> Response:
    lat, lon, limit, where = site_query(request.query_params)
    found = _service(request).site_index().nearest(lat, lon, limit, where)
    return ORJSONResponse({"sites": [s.as_dict(d) for s, d in found]})


@translated
async def import_sites(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_IMPORT_BODY:
        raise InvalidRequest(f"the file is larger than {MAX_IMPORT_BODY} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    stored, skipped = await run_in_threadpool(_service(request).import_sites, text)
    return ORJSONResponse({"imported": stored, "skipped": skipped})


async def centres_page(request: Request) -> Response:
    from hygie.web.pages import render

    index = _service(request).site_index()
    # start where the sites are (their median position), Paris when none are listed
    lat, lon = (float(np.median([s.latitude for s in index.sites])),
                float(np.median([s.longitude for s in index.sites]))) if len(index) else (
        48.8566, 2.3522)
    return render(request, "tracing/centres.html",
                  {"count": len(index), "lat": round(lat, 4), "lon": round(lon, 4)})


async def home(request: Request) -> Response:
    return RedirectResponse(request.url_for("tracing_centres"), status_code=303)


def routes() -> list[BaseRoute]:
    """Routes of the tracing service, mounted by app.py under /tracing."""
    return [
        Route("/", home, methods=["GET"]),
        Route("/centres", centres_page, methods=["GET"], name="tracing_centres"),
        Route("/api/config", config, methods=["GET"]),
        Route("/api/captcha", create_captcha, methods=["POST"]),
        Route("/api/captcha/{cid}/{kind:str}", captcha_media, methods=["GET"]),
        Route("/api/register", register, methods=["POST"]),
        Route("/api/status", status, methods=["POST"]),
        Route("/api/report", post_report, methods=["POST"]),
        Route("/api/unregister", unregister, methods=["POST"]),
        Route("/api/delete-history", delete_history, methods=["POST"]),
        Route("/api/test-sites", nearest_sites, methods=["GET"]),
        Route("/api/staff/codes", post_code, methods=["POST"]),
        Route("/api/staff/process", post_process, methods=["POST"]),
        Route("/api/staff/stats", stats, methods=["GET"]),
        Route("/api/staff/test-sites", import_sites, methods=["POST"]),
    ]
