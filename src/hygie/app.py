"""Builds the ASGI application: mounts each service's routes under one app.

This is one of the two modules that know every service (with ``cli.py``).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from hygie.config import Settings, load_settings
from hygie.platform import Platform, open_platform
from hygie.web.pages import NavEntry

#: Top navigation: one entry per service; ``built=False`` shows it greyed out.
NAV = [
    NavEntry("Dossier patient", "/record"),
    NavEntry("Suivi à domicile", "/followup", built=False),
    NavEntry("Mobilisation", "/mobilization", built=False),
    NavEntry("Réanimation", "/devices", built=False),
    NavEntry("Rendez-vous", "/scheduling", built=False),
    NavEntry("Imagerie", "/imaging", built=False),
    NavEntry("Mobilité", "/mobility", built=False),
    NavEntry("Épidémie", "/epidemic", built=False),
    NavEntry("Traçage", "/tracing", built=False),
]


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> Starlette:
    """Build the platform's ASGI app for these settings (or an already open platform)."""
    platform = platform or open_platform(settings or load_settings())
    static = Path(__file__).parent / "web" / "static"
    routes: list[Any] = [Mount("/static", StaticFiles(directory=static), name="static")]

    @asynccontextmanager
    async def lifespan(_app: Starlette):  # type: ignore[no-untyped-def]
        yield

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.platform = platform
    app.state.nav = NAV
    return app
