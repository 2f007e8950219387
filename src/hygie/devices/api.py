"""HTTP routes of the biomedical gateway, mounted under ``/devices``.

``/devices/`` is the live ICU board (the page polls ``/devices/api/board``);
``/devices/api/journal`` counts journal messages by status for the operator. Reading
the board needs the right to search Observations; errors are problem+json.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hygie.devices.board import board_state, columns
from hygie.devices.journal import open_journal
from hygie.security.responses import problem_response
from hygie.web.pages import render

#: Nothing of the gateway is public: devices talk MLLP and MQTT, people sign in.
PUBLIC_PATHS: list[str] = []


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _store(request: Request) -> Any:
    platform = request.app.state.platform
    store = platform.parts.get("store")
    if store is None:
        from hygie.store.server import open_store

        store = open_store(platform)
    return store


def _require_read(request: Request) -> None:
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        principal.require("Observation", "s")


async def board_page(request: Request) -> Response:
    _require_read(request)
    return render(request, "devices/board.html", {"columns": columns()})


async def board_data(request: Request) -> Response:
    _require_read(request)
    unit = request.query_params.get("unit") or None
    if unit is not None and len(unit) > 100:
        return problem_response(400, "unit is too long", title="Bad request")
    platform = request.app.state.platform
    beds = await run_in_threadpool(
        board_state, platform.engine, _store(request).repository, unit=unit
    )
    return _json({"columns": columns(), "beds": [b.as_dict() for b in beds]})


async def journal_counts(request: Request) -> Response:
    _require_read(request)
    platform = request.app.state.platform
    counts = await run_in_threadpool(open_journal(platform).counts)
    return _json(counts)


def routes() -> list[BaseRoute]:
    return [
        Route("/", board_page, methods=["GET"]),
        Route("/api/board", board_data, methods=["GET"]),
        Route("/api/journal", journal_counts, methods=["GET"]),
    ]
