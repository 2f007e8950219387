"""HTTP routes of the epidemic service (mounted under /epidemic): a few lines of glue each.

- ``GET  /``                   page: pick a scenario, ICU demand vs capacity, R(t)
- ``GET  /calibration``        page: fit to ICU admissions, posterior intervals
- ``GET  /api/scenarios``      the built-in scenarios
- ``POST /api/runs``           run a scenario given as JSON (the TOML keys) -> ICU demand
- ``GET  /api/reproduction``   R0 and R(t) of a built-in scenario (mean field)
- ``POST /api/calibrations``   fit beta, seeding and lockdown scale -> posterior intervals

Errors are RFC 9457 problem+json; the heavy modules are imported on first use.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.epidemic.charts import number_fr
from hygie.epidemic.errors import (
    EpidemicError,
    LimitExceeded,
    MobilityUnavailable,
    ReferenceDataMissing,
)
from hygie.security.responses import problem_response

PUBLIC_PATHS: list[str] = []
MAX_BODY = 256 * 1024
_STATUS = {LimitExceeded: 413, MobilityUnavailable: 409, ReferenceDataMissing: 503}


def problem(status: int, title: str, detail: str) -> Response:
    return problem_response(status, detail, title=title)


def _error(exc: Exception) -> Response:
    for cls, status in _STATUS.items():
        if isinstance(exc, cls):
            return problem(status, type(exc).__name__, str(exc))
    return problem(422, "Invalid scenario or parameters", str(exc))


def _extra(request: Request) -> dict[str, Any]:
    platform = getattr(request.app.state, "platform", None)
    return dict(platform.settings.extra) if platform is not None else {}


def _max_cells(request: Request) -> int:
    from hygie.epidemic.runner import DEFAULT_MAX_CELLS

    return int(_extra(request).get("epidemic_max_cells", DEFAULT_MAX_CELLS))


def _mobility_root(request: Request) -> Path | None:
    """The mobility service's release folder for this platform's settings."""
    platform = getattr(request.app.state, "platform", None)
    if platform is None:
        return None
    try:
        from hygie.mobility import data_root
    except ImportError:
        return None
    return data_root(platform.settings)


def _int_param(raw: str | None, default: int, lo: int, hi: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EpidemicError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise EpidemicError(f"{name} must lie in [{lo}, {hi}]")
    return value


def _run_builtin(extra: dict[str, Any], name: str, runs: int | None, max_cells: int) -> Any:
    from hygie.epidemic import runner, scenarios

    studies = scenarios.builtin_studies()
    if name not in studies:
        raise EpidemicError(f"unknown scenario {name!r}; known: {', '.join(studies)}")
    study = scenarios.load_study(studies[name])
    return runner.run_study(study, runner.reference_data(extra), runs=runs,
                            random_state=study.scenario.random_seed, max_cells=max_cells)


async def index(request: Request) -> Response:
    from hygie.epidemic import scenarios
    from hygie.web.pages import render

    studies = scenarios.builtin_studies()
    names = list(studies)
    chosen = request.query_params.get("scenario") or (names[0] if names else "")
    listed = [(name, scenarios.load_study(path).scenario.name) for name, path in studies.items()]
    ctx: dict[str, Any] = {"scenarios": listed, "chosen": chosen, "error": None,
                           "result": None, "charts": {}, "runs": None, "number": number_fr}
    try:
        runs = _int_param(request.query_params.get("runs"), 100, 10, 2000, "runs")
        ctx["runs"] = runs
        if chosen:
            result = await asyncio.to_thread(_run_builtin, _extra(request), chosen, runs,
                                             _max_cells(request))
            ctx.update(result=result, charts=result.charts())
    except EpidemicError as exc:
        ctx["error"] = str(exc)
        return render(request, "epidemic/index.html", ctx, status_code=_error(exc).status_code)
    return render(request, "epidemic/index.html", ctx)


async def calibration_page(request: Request) -> Response:
    from hygie.epidemic import runner
    from hygie.web.pages import render

    ctx: dict[str, Any] = {"error": None, "fit": None, "chart": "", "number": number_fr}
    try:
        steps = _int_param(request.query_params.get("steps"), 500, 100, 5000, "steps")
        ref = runner.reference_data(_extra(request))
        cal = await asyncio.to_thread(runner.calibrate, ref, n_steps=steps,
                                      burn_in=steps // 3, n_walkers=16)
        ctx.update(fit=runner.calibration_json(cal), chart=runner.fit_chart(cal))
    except EpidemicError as exc:
        ctx["error"] = str(exc)
        return render(request, "epidemic/calibration.html", ctx,
                      status_code=_error(exc).status_code)
    return render(request, "epidemic/calibration.html", ctx)


async def list_scenarios(request: Request) -> Response:
    from hygie.epidemic import scenarios

    out = []
    for name, path in scenarios.builtin_studies().items():
        st = scenarios.load_study(path)
        out.append({"name": name, "title": st.scenario.name,
                    "description": st.scenario.description, "population": st.population,
                    "start": st.scenario.start.isoformat(), "days": st.scenario.days})
    return JSONResponse({"scenarios": out})


async def create_run(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_BODY:
        return problem(413, "Body too large", f"at most {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return problem(400, "Malformed JSON", "the body is not valid JSON")
    if not isinstance(data, dict):
        return problem(422, "Invalid scenario", "the body must be a JSON object")
    try:
        from hygie.epidemic import runner, scenarios

        study = scenarios.parse_study(data.get("scenario", data))
        if study.coupling is not None or "root" in study.mobility:
            raise EpidemicError("mobility.source = 'file' and mobility.root are not "
                                "accepted over HTTP")
        runs = data.get("runs")
        result = await asyncio.to_thread(
            runner.run_study, study, runner.reference_data(_extra(request)),
            runs=runs if isinstance(runs, int) else None,
            random_state=study.scenario.random_seed, max_cells=_max_cells(request),
            mobility_root=_mobility_root(request))
    except EpidemicError as exc:
        return _error(exc)
    return JSONResponse(result.as_json())


async def reproduction(request: Request) -> Response:
    try:
        from hygie.epidemic import runner, scenarios
        from hygie.epidemic.reproduction import effective_reproduction_numbers

        name = request.query_params.get("scenario", "")
        studies = scenarios.builtin_studies()
        if name not in studies:
            raise EpidemicError(f"unknown scenario {name!r}; known: {', '.join(studies)}")
        study = scenarios.load_study(studies[name])
        model = runner.build_model(study, runner.reference_data(_extra(request)))
        r_t = await asyncio.to_thread(effective_reproduction_numbers, model, study.scenario)
    except EpidemicError as exc:
        return _error(exc)
    return JSONResponse({"scenario": name, "r0": float(r_t[0]),
                         "dates": [d.isoformat() for d in study.scenario.dates()],
                         "r_t": r_t.tolist()})


async def create_calibration(request: Request) -> Response:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return problem(400, "Malformed JSON", "the body is not valid JSON")
    if not isinstance(data, dict):
        return problem(422, "Invalid request", "the body must be a JSON object")
    try:
        from hygie.epidemic import runner

        steps = data.get("steps", 800)
        likelihood = data.get("likelihood", "negbin")
        if not isinstance(steps, int) or not 100 <= steps <= 5000:
            raise EpidemicError("steps must be an integer in [100, 5000]")
        if likelihood not in ("negbin", "poisson"):
            raise EpidemicError("likelihood must be 'negbin' or 'poisson'")
        ref = runner.reference_data(_extra(request))
        cal = await asyncio.to_thread(runner.calibrate, ref, n_steps=steps,
                                      burn_in=steps // 3, likelihood=likelihood)
    except EpidemicError as exc:
        return _error(exc)
    return JSONResponse(runner.calibration_json(cal))


def routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET"]),
        Route("/calibration", calibration_page, methods=["GET"]),
        Route("/api/scenarios", list_scenarios, methods=["GET"]),
        Route("/api/runs", create_run, methods=["POST"]),
        Route("/api/reproduction", reproduction, methods=["GET"]),
        Route("/api/calibrations", create_calibration, methods=["POST"]),
    ]
