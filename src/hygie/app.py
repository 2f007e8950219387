"""Builds the ASGI application: mounts each service's routes under one app.

This is one of the two modules that know every service (with ``cli.py``). The
order of the stack is fixed here: error handling outside, then authentication,
then the routes. Every error leaves as an OperationOutcome under /fhir and as
problem+json (RFC 9457) elsewhere.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hygie.channels import api as channels_api
from hygie.channels.runtime import start_with_app as start_channels
from hygie.config import Settings, load_settings
from hygie.devices import api as devices_api
from hygie.epidemic import api as epidemic_api
from hygie.followup import api as followup_api
from hygie.imaging import api as imaging_api
from hygie.mobility import api as mobility_api
from hygie.mobilization import api as mobilization_api
from hygie.platform import Platform, open_platform
from hygie.scheduling import api as scheduling_api
from hygie.security import api as security_api
from hygie.security import pages as security_pages
from hygie.security.installation import install as install_security
from hygie.security.middleware import AuthMiddleware
from hygie.security.model import Kind
from hygie.security.protection import ClientRateLimit, EdgeProtection
from hygie.security.responses import problem_response
from hygie.store import api as store_api
from hygie.store import outcomes
from hygie.store import pages as store_pages
from hygie.store.server import open_store
from hygie.tracing import api as tracing_api
from hygie.web.pages import NavEntry, render

log = logging.getLogger("hygie")

#: Top navigation: one entry per service; ``built=False`` shows it greyed out.
NAV = [
    NavEntry("Dossier patient", "/record",
             summary="Recherche de patients, séjours, problèmes, documents et constantes."),
    NavEntry("Suivi à domicile", "/followup",
             summary="Patients COVID suivis par SMS à domicile, alertes aux soignants."),
    NavEntry("Mobilisation", "/mobilization",
             summary="Plans blancs : rappel des personnels par SMS, courriel et appel."),
    NavEntry("Réanimation", "/devices",
             summary="Respirateurs et moniteurs connectés, alarmes et constantes en direct."),
    NavEntry("Rendez-vous", "/scheduling",
             summary="Agendas, prise de rendez-vous en ligne et préadmissions."),
    NavEntry("Imagerie", "/imaging",
             summary="Scanners thoraciques, annotation des lésions et quantification."),
    NavEntry("Mobilité", "/mobility",
             summary="Présence et flux de population anonymes, par département."),
    NavEntry("Épidémie", "/epidemic",
             summary="Modèles épidémiques alimentés par les flux de mobilité."),
    NavEntry("Traçage", "/tracing",
             summary="Centres de dépistage et application de recherche des contacts."),
    NavEntry("Messagerie", "/channels",
             summary="SMS, courriels et appels envoyés par la plateforme, et leur suivi."),
]

#: Paths anyone may call without a token.
PUBLIC_PATHS = ["/static/", "/fhir/metadata", "/favicon.ico", "/openapi.json",
                *("/tracing" + p for p in tracing_api.PUBLIC_PATHS),
                *("/channels" + p for p in channels_api.PUBLIC_PATHS),
                *("/scheduling" + p for p in scheduling_api.PUBLIC_PATHS)]


def problem(status: int, title: str, detail: str | None = None) -> Response:
    """An RFC 9457 problem+json response (an empty detail is left out)."""
    return problem_response(status, detail or None, title=title)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/fhir"):
        return store_api.outcome_response(outcomes.FhirError(
            outcomes.Issue("not-supported", exc.detail or "not found"), status=exc.status_code))
    return problem(exc.status_code, exc.detail or "error")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    if request.url.path.startswith("/fhir"):
        return store_api.outcome_response(outcomes.FhirError(
            outcomes.Issue("exception", "internal error; see the server log"), status=500))
    return problem(500, "Internal error", "see the server log")


async def _home(request: Request) -> Response:
    """Practitioners start at the patient record search, their daily tool, and a
    patient at their own record (where ``/record`` sends them); anyone else (an
    administrator) at the home page, which lists the services rather than landing on
    one their account does not open."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.kind in (Kind.PRACTITIONER, Kind.PATIENT):
        return RedirectResponse("/record", status_code=303)
    return render(request, "home.html", {"is_admin": principal is not None
                                         and principal.kind == Kind.ADMIN})


async def _favicon(request: Request) -> Response:
    return FileResponse(Path(__file__).parent / "web" / "static" / "favicon.svg",
                        media_type="image/svg+xml")


def serve_app() -> Starlette:
    """The app as each worker process of ``hygie serve`` builds it.

    What it holds once built (the modules, the FHIR definitions, the validators, the
    routes: some 200,000 objects) lives as long as the process, so it is moved out of
    the garbage collector's reach (``gc.freeze``): each full collection walked all of
    it again, 60 to 110 ms of a worker's time once or twice per hundred Bundles. The
    youngest generation is collected every 20,000 allocations instead of 700: a Bundle
    parsed and validated allocates hundreds of thousands of objects, nearly all freed
    by reference counting (6 % less CPU per resource ingested).
    """
    app = create_app()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    return app


def _fhir_first(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes under /fhir first, each group in its own order.

    A request is matched against the routes one after the other, and almost all of a
    platform's traffic is FHIR: behind the 25 routes of the sign-in, OAuth and security
    pages, each FHIR request spent about 15 us (a tenth of a read by id) failing to
    match them. The relative order inside each group is kept, so that a specific FHIR
    route (``/fhir/.well-known/...``) still comes before ``/fhir/{path:path}``.
    """
    def fhir(route: BaseRoute) -> bool:
        path = getattr(route, "path", "")
        return path == "/fhir" or path.startswith("/fhir/")
    return [r for r in routes if fhir(r)] + [r for r in routes if not fhir(r)]


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> Starlette:
    """Build the platform's ASGI app for these settings (or an already open platform)."""
    platform = platform or open_platform(settings or load_settings())
    install_security(platform)  # encryption, access rules, audit: before the store opens
    open_store(platform)
    static = Path(__file__).parent / "web" / "static"
    routes: list[Any] = _fhir_first([
        Route("/", _home),
        Route("/favicon.ico", _favicon),
        Mount("/static", StaticFiles(directory=static), name="static"),
        *security_api.routes(),
        *security_pages.routes(),
        *store_api.routes(),
        *store_pages.routes(),
        Mount("/devices", routes=devices_api.routes()),
        Mount("/epidemic", routes=epidemic_api.routes()),
        Mount("/mobility", routes=mobility_api.routes()),
        Mount("/tracing", routes=tracing_api.routes()),
        Mount("/imaging", routes=imaging_api.routes()),
        Mount("/channels", routes=channels_api.routes()),
        Mount("/scheduling", routes=scheduling_api.routes()),
        Mount("/followup", routes=followup_api.routes()),
        Mount("/mobilization", routes=mobilization_api.routes()),
    ])

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        platform.parts["bulk_exports"].resume()
        stop_channels = start_channels(platform)
        stop_scheduling = scheduling_api.start_with_app(platform)
        stop_followup = followup_api.start_with_app(platform)
        stop_mobilization = mobilization_api.start_with_app(platform)
        yield
        stop_mobilization()
        stop_followup()
        stop_scheduling()
        stop_channels()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(EdgeProtection, platform=platform),
                    Middleware(AuthMiddleware, platform=platform, public_paths=PUBLIC_PATHS),
                    Middleware(ClientRateLimit, platform=platform)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error,
                            **security_api.exception_handlers()},
    )
    app.state.platform = platform
    app.state.nav = NAV
    return app
