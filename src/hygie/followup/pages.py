"""The clinician pages: alerts by severity, a patient's timeline with charts, enrolling.

Pages are rendered on the server with what they show; the buttons (acknowledge,
resolve with a comment, call, end the follow-up) call the JSON routes of ``api.py``
from a few lines of script and reload. Charts are SVG drawn here from the measured
answers, with the protocol's thresholds as dashed lines, so the page needs no
charting library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.followup.errors import FollowupError
from hygie.followup.model import Level
from hygie.followup.protocols import effective_rules
from hygie.followup.schedule import day_text, local_text
from hygie.web.pages import render

WIDTH, HEIGHT, PAD = 640, 160, 28
#: Chart titles for the usual codes (the LOINC displays are English).
TITLES = {
    "8310-5": "Température",
    "59408-5": "Saturation (SpO2)",
    "2708-6": "Saturation",
    "8867-4": "Pouls",
    "8889-8": "Pouls",
}
#: How an answer was read, as the timeline says it.
OUTCOMES = {
    "value": "compris",
    "skip": "sans mesure",
    "unclear": "non compris",
    "distress": "détresse",
    "unsolicited": "hors questionnaire",
    "stop": "STOP",
    "ignored": "ignoré (suivi terminé)",
}


@dataclass(frozen=True)
class Chart:
    """One measured question over time, as SVG coordinates."""

    title: str
    unit: str
    points: list[tuple[float, float, str, str]]  # x, y, value text, time text
    thresholds: list[tuple[float, str, int, str]]  # y, label, level, value text
    low: float
    high: float
    path: str


def chart(
    title: str, unit: str, series: list[tuple[int, float]], thresholds: list[tuple[float, str, int]]
) -> Chart | None:
    if not series:
        return None
    values = [v for _t, v in series] + [v for v, _label, _lv in thresholds]
    low, high = min(values), max(values)
    if high - low < 1:
        low, high = low - 1, high + 1
    margin = (high - low) * 0.1
    low, high = low - margin, high + margin
    first, last = series[0][0], series[-1][0]
    span = max(last - first, 1)

    def x(at: int) -> float:
        return PAD + (at - first) / span * (WIDTH - 2 * PAD) if len(series) > 1 else WIDTH / 2

    def y(value: float) -> float:
        return HEIGHT - PAD - (value - low) / (high - low) * (HEIGHT - 2 * PAD)

    points = [
        (round(x(at), 1), round(y(v), 1), f"{v:g}", local_text(at, "%d/%m %H:%M"))
        for at, v in series
    ]
    path = " ".join(f"{px},{py}" for px, py, _v, _t in points)
    lines = [(round(y(v), 1), label, lv, f"{v:g}") for v, label, lv in thresholds]
    return Chart(title, unit, points, lines, low, high, path)


def _can(request: Request, resource_type: str, interaction: str) -> bool:
    principal = getattr(request.state, "principal", None)
    return principal is not None and principal.may(resource_type, interaction)


def _forbidden(request: Request) -> Response:
    return render(request, "followup/forbidden.html", {}, status_code=403)


def _service(request: Request) -> Any:
    from hygie.followup.engine import FollowupService

    return FollowupService.for_platform(request.app.state.platform)


async def dashboard(request: Request) -> Response:
    if not _can(request, "Flag", "s"):
        return _forbidden(request)
    service = _service(request)
    show = request.query_params.get("status", "active")
    alerts, counts, enrollments = await run_in_threadpool(
        lambda: (
            service.alerts(None if show == "all" else show),
            service.counts(),
            service.enrollments("active", limit=100),
        )
    )
    groups = [
        (level, [a for a in alerts if a.level is level]) for level in sorted(Level, reverse=True)
    ]
    return render(
        request,
        "followup/dashboard.html",
        {
            "groups": groups,
            "counts": counts,
            "enrollments": enrollments,
            "show": show,
            "when": local_text,
            "day": day_text,
        },
    )


async def timeline(request: Request) -> Response:
    if not _can(request, "QuestionnaireResponse", "s"):
        return _forbidden(request)
    service = _service(request)
    eid = request.path_params["enrollment_id"]

    def load() -> dict[str, Any]:
        e = service.enrollment(eid)
        protocol = service.protocol(e.protocol_id)
        rules = effective_rules(protocol, e.overrides.rules, e.overrides.removed)
        charts = []
        for link_id, series in service.series(eid).items():
            q = protocol.question(link_id)
            if q is None:
                continue
            lines = [
                (float(r.value), r.label, int(r.level))
                for r in rules
                if r.item == link_id and not isinstance(r.value, bool)
            ]
            title = TITLES.get(q.code[1], q.code[2]) if q.code else link_id
            drawn = chart(title, q.unit_display or "", series, lines)
            if drawn is not None:
                charts.append(drawn)
        return {
            "e": e,
            "protocol": protocol,
            "charts": charts,
            "sessions": service.sessions(eid),
            "answers": service.answers(eid),
            "alerts": service.alerts(None, enrollment_id=eid),
            "focus": request.query_params.get("alert"),
        }

    try:
        context = await run_in_threadpool(load)
    except FollowupError as exc:
        return render(
            request, "followup/forbidden.html", {"message": exc.detail}, status_code=exc.status
        )
    return render(
        request,
        "followup/timeline.html",
        {**context, "when": local_text, "day": day_text, "width": WIDTH, "height": HEIGHT,
         "outcomes": OUTCOMES},
    )


async def alert_page(request: Request) -> Response:
    """Where a notification links: the patient's timeline with the alert on top."""
    if not _can(request, "Flag", "r"):
        return _forbidden(request)
    service = _service(request)
    alert_id = request.path_params["alert_id"]
    try:
        alert = await run_in_threadpool(service.alert, alert_id)
    except FollowupError as exc:
        return render(
            request, "followup/forbidden.html", {"message": exc.detail}, status_code=exc.status
        )
    return RedirectResponse(
        f"/followup/enrollments/{alert.enrollment_id}?alert={alert.id}", status_code=303
    )


async def enroll_page(request: Request) -> Response:
    if not _can(request, "Consent", "c"):
        return _forbidden(request)
    service = _service(request)
    protocols = await run_in_threadpool(service.protocols)
    return render(
        request,
        "followup/enroll.html",
        {
            "protocols": [p for p in protocols if p.active],
            "patient": request.query_params.get("patient", ""),
        },
    )


async def protocols_page(request: Request) -> Response:
    """The protocols, each editable as its JSON definition (saved through the API)."""
    if not _can(request, "Questionnaire", "s"):
        return _forbidden(request)
    import json

    from hygie.followup.protocols import protocol_definition

    service = _service(request)
    protocols = await run_in_threadpool(service.protocols)
    return render(
        request,
        "followup/protocols.html",
        {
            "protocols": [
                (p, json.dumps(protocol_definition(p), ensure_ascii=False, indent=2))
                for p in protocols
            ]
        },
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard),
        Route("/enroll", enroll_page),
        Route("/protocols", protocols_page),
        Route("/enrollments/{enrollment_id}", timeline),
        Route("/alerts/{alert_id}", alert_page),
    ]
