"""HTTP routes of the mobility service (mounted under /mobility): a few lines of glue each.

JSON under ``/mobility/api/...``, the SVG map at ``/mobility/map.svg`` and the page at
``/mobility/``. Errors are RFC 9457 problem+json.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.mobility import charts, release, storage
from hygie.mobility.geography import GeographyNotFound, find_geo_dir, load_geography
from hygie.security.responses import problem_response

#: Published aggregates are public statistics, but the platform's login still applies.
PUBLIC_PATHS: list[str] = []


class BadRequest(ValueError):
    """A query parameter is missing or malformed."""


def mobility_root(request: Request) -> Path:
    settings = request.app.state.platform.settings
    return Path(settings.extra.get("mobility_root") or settings.var_dir / "mobility")


def _geo(request: Request):  # type: ignore[no-untyped-def]
    settings = request.app.state.platform.settings
    return load_geography(find_geo_dir(settings.extra.get("mobility_geo_dir")))


def problem(status: int, title: str, detail: str) -> Response:
    return problem_response(status, detail, title=title)


def _date(request: Request, name: str, default: dt.date | None = None) -> dt.date:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"query parameter {name!r} is required (YYYY-MM-DD)")
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(f"{name}={raw!r} is not a date (YYYY-MM-DD)") from exc


def _handle(fn):  # type: ignore[no-untyped-def]
    """Translate the service's errors into problem+json responses."""
    async def endpoint(request: Request) -> Response:
        try:
            return await run_in_threadpool(fn, request)
        except BadRequest as exc:
            return problem(400, "Bad request", str(exc))
        except (release.ReleaseNotFound, FileNotFoundError) as exc:
            return problem(404, "Not found", str(exc))
        except GeographyNotFound as exc:
            return problem(503, "Reference data missing", str(exc))
        except ValueError as exc:
            return problem(400, "Bad request", str(exc))
    return endpoint


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.copy()
    if "date" in out:
        out["date"] = out["date"].map(lambda d: d.isoformat())
    if "people" in out:
        out["people"] = out["people"].map(lambda v: None if pd.isna(v) else round(float(v), 1))
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in out.to_dict(orient="records")]


def list_releases(request: Request) -> Response:
    root = mobility_root(request)
    items = []
    for day in storage.release_days(root):
        m = release.read_manifest(root, day)
        items.append({"date": day.isoformat(), "devices": m["devices"],
                      "epsilon_total": m["epsilon_total"], "rule": m["rule"],
                      "threshold_respected": m["privacy_report"].get("threshold_respected")})
    return JSONResponse({"releases": items})


def privacy_report(request: Request) -> Response:
    raw = request.path_params["date"]
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(f"{raw!r} is not a date (YYYY-MM-DD)") from exc
    return JSONResponse(release.read_manifest(mobility_root(request), day))


def presence(request: Request) -> Response:
    day = _date(request, "date")
    level = request.query_params.get("level", "departement")
    table = release.read_presence(mobility_root(request), level, start=day, end=day)
    return JSONResponse({"date": day.isoformat(), "level": level, "slot_minutes": 30,
                         "cells": _records(table.drop(columns=["date"]))})


def od(request: Request) -> Response:
    day = _date(request, "date")
    level = request.query_params.get("level", "departement")
    kind = request.query_params.get("kind", "trips")
    table = release.read_od(mobility_root(request), kind, level, start=day, end=day)
    return JSONResponse({"date": day.isoformat(), "kind": kind, "level": level,
                         "cells": _records(table.drop(columns=["date"]))})


def _default_days(root: Path, request: Request) -> tuple[dt.date, dt.date]:
    days = storage.release_days(root)
    if not days:
        raise release.ReleaseNotFound("no release published yet: run `hygie mobility run`")
    return _date(request, "date", days[-1]), _date(request, "baseline", days[0])


def map_svg(request: Request) -> Response:
    root = mobility_root(request)
    day, baseline = _default_days(root, request)
    svg = charts.choropleth_svg(_geo(request), charts.presence_change(root, day, baseline))
    return Response(svg, media_type="image/svg+xml")


def page(request: Request) -> Response:
    from hygie.web.pages import render

    root = mobility_root(request)
    days = storage.release_days(root)
    if not days:
        return render(request, "mobility/index.html", {"days": [], "svgs": None})
    day, baseline = _default_days(root, request)
    zone = request.query_params.get("zone", "75")
    geo = _geo(request)
    svgs = charts.dashboard_svgs(root, geo, day, baseline, zone)
    manifest = release.read_manifest(root, day)
    return render(request, "mobility/index.html", {
        "days": days, "day": day, "baseline": baseline, "zone": zone, "svgs": svgs,
        "manifest": manifest, "zones": sorted(geo.zone_names("departement").items()),
    })


def routes() -> list[BaseRoute]:
    return [
        Route("/", _handle(page), name="mobility_page"),
        Route("/map.svg", _handle(map_svg)),
        Route("/api/releases", _handle(list_releases)),
        Route("/api/releases/{date}/privacy", _handle(privacy_report)),
        Route("/api/presence", _handle(presence)),
        Route("/api/od", _handle(od)),
    ]
