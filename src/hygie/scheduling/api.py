"""HTTP routes of the scheduling service, mounted under ``/scheduling``.

Patients use the public pages (``/rdv``, ``/manage/<secret>``, ``/offer/<secret>``,
``/preadmission/<secret>``) and the JSON routes under ``/public/api/``: a booking
needs a mobile number proved by SMS code, and a link's secret is the credential for
what follows. Staff use ``/`` (agendas), ``/staff/preadmissions`` and the JSON routes
under ``/api/``, which need the SMART scopes of what they change in the store
(``Appointment`` to book, ``Schedule`` to publish availability, ``Patient`` to validate
a pre-admission). Every engine error becomes RFC 9457 problem+json here, and only here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hygie.scheduling import pages
from hygie.scheduling.availability import local_day_bounds, local_instant, parse_hhmm
from hygie.scheduling.engine import SchedulingService
from hygie.scheduling.errors import InvalidInput, SchedulingError, TooManyRequests
from hygie.scheduling.model import (
    PARIS,
    Agenda,
    AppointmentType,
    Booking,
    Closure,
    OpeningRule,
    Patient,
    SlotView,
    to_local,
)
from hygie.scheduling.projection import slot_resource
from hygie.security.middleware import require_scope
from hygie.security.model import InsufficientScope
from hygie.security.responses import problem_response, scope_problem
from hygie.store.outcomes import FhirError
from hygie.web.bodies import read_json_object

#: Path prefixes (under /scheduling) reachable without an account.
PUBLIC_PATHS: list[str] = ["/rdv", "/manage/", "/offer/", "/preadmission/", "/public/"]
#: Largest JSON body accepted, in bytes.
MAX_JSON_BODY = 64 * 1024


def problem(status: int, title: str, detail: str, slug: str,
            headers: dict[str, str] | None = None) -> Response:
    return problem_response(status, detail, headers, title=title,
                            type_=f"urn:hygie:problem:scheduling:{slug}")


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
        except TooManyRequests as exc:
            return problem(exc.status, exc.title, exc.detail, exc.slug,
                           {"Retry-After": str(exc.retry_after)})
        except SchedulingError as exc:
            return problem(exc.status, exc.title, exc.detail, exc.slug)
        except InsufficientScope as exc:
            return scope_problem(exc, "urn:hygie:problem:scheduling:forbidden")
        except FhirError as exc:  # the store refused a resource built from the input
            return problem(exc.status, "Refused by the health-data store", str(exc), "store")
    wrapper.__name__ = handler.__name__
    return wrapper


def service_of(request: Request) -> SchedulingService:
    return SchedulingService.for_platform(request.app.state.platform)


def text_field(data: dict[str, Any], name: str, required: bool = True,
               max_len: int = 200) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{name} must be a string of at most {max_len} characters")
    return value.strip()


def int_field(data: dict[str, Any] | Any, name: str) -> int:
    value = data.get(name)
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an integer") from exc
    if not 0 <= number < 2**62:
        raise InvalidInput(f"{name} is out of range")
    return number


def patient_from(data: dict[str, Any]) -> Patient:
    return Patient(family=text_field(data, "family", max_len=100) or "",
                   given=text_field(data, "given", max_len=100) or "",
                   birth_date=text_field(data, "birth_date", max_len=10) or "",
                   phone=text_field(data, "phone", required=False, max_len=30),
                   email=text_field(data, "email", required=False),
                   patient_ref=text_field(data, "patient_ref", required=False, max_len=100))


def parse_day(value: str | None, default: date | None = None) -> date:
    if not value:
        if default is None:
            raise InvalidInput("a date is required")
        return default
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("dates are YYYY-MM-DD") from exc


def slot_json(slot: SlotView) -> dict[str, Any]:
    local = to_local(slot.start_utc)
    return {"id": slot.id, "agenda": slot.agenda_id, "practitioner": slot.agenda_display,
            "site": slot.site_id, "site_name": slot.site_name, "service": slot.service_code,
            "service_label": slot.service_label, "type": slot.type_code,
            "start": slot.start_utc, "end": slot.end_utc, "status": slot.status,
            "day": local.date().isoformat(), "time": local.strftime("%H:%M"),
            "local": local.isoformat()}


def booking_json(booking: Booking, service: SchedulingService) -> dict[str, Any]:
    local = to_local(booking.start_utc)
    out = {"id": booking.id, "slot": booking.slot_id, "agenda": booking.agenda_id,
           "site": booking.site_id, "type": booking.type_code, "status": booking.status,
           "start": booking.start_utc, "end": booking.end_utc,
           "day": local.date().isoformat(), "time": local.strftime("%H:%M"),
           "local": local.isoformat(), "family": booking.patient.family,
           "given": booking.patient.given, "source": booking.source,
           "revision": booking.revision}
    if booking.manage_secret:
        out["manage_url"] = service.manage_url(booking.manage_secret)
    return out


def _search_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    first = parse_day(q.get("from"), default=to_local(service_of(request).clock()).date())
    days = int_field({"days": q.get("days", "14")}, "days")
    if not 1 <= days <= 366:
        raise InvalidInput("days must be between 1 and 366")
    lo = local_instant(first, time(0), PARIS)
    hi = local_instant(date.fromordinal(first.toordinal() + days), time(0), PARIS)
    limit = int_field({"limit": q.get("limit", "50")}, "limit")
    return {"first_utc": lo, "last_utc": hi, "type_code": q.get("type") or None,
            "service_code": q.get("service") or None, "site_id": q.get("site") or None,
            "agenda_id": q.get("agenda") or None, "limit": limit}


# --- public ------------------------------------------------------------------------

@translated
async def public_options(request: Request) -> Response:
    service = service_of(request)
    kinds, agendas = await run_in_threadpool(
        lambda: (service.appointment_types(), service.agendas()))
    sites = sorted({(a.site_id, a.site_name) for a in agendas if a.active})
    services = sorted({(a.service_code, a.service_label) for a in agendas if a.active})
    return json_response({
        "types": [{"code": k.code, "label": k.label, "minutes": k.duration_min}
                  for k in kinds.values()],
        "sites": [{"id": i, "name": n} for i, n in sites],
        "services": [{"code": c, "label": lbl} for c, lbl in services]})


@translated
async def public_slots(request: Request) -> Response:
    args = _search_args(request)
    found = await run_in_threadpool(lambda: service_of(request).search(**args))
    return json_response({"slots": [slot_json(s) for s in found]})


@translated
async def public_verify(request: Request) -> Response:
    data = await read_json(request)
    client = request.client.host if request.client else None
    phone = await run_in_threadpool(service_of(request).request_code,
                                    text_field(data, "phone", max_len=30) or "", client)
    return json_response({"phone": phone, "sent": True}, 202)


@translated
async def public_confirm(request: Request) -> Response:
    data = await read_json(request)
    token = await run_in_threadpool(service_of(request).confirm_code,
                                    text_field(data, "phone", max_len=30) or "",
                                    text_field(data, "code", max_len=10) or "")
    return json_response({"token": token})


@translated
async def public_book(request: Request) -> Response:
    data = await read_json(request)
    service = service_of(request)
    booking = await run_in_threadpool(service.book_verified, int_field(data, "slot"),
                                      patient_from({**data, "patient_ref": None}),
                                      text_field(data, "token", max_len=100) or "")
    return json_response(booking_json(booking, service), 201)


@translated
async def public_waitlist(request: Request) -> Response:
    data = await read_json(request)
    service = service_of(request)
    first = parse_day(text_field(data, "from", max_len=10))
    last = parse_day(text_field(data, "to", max_len=10))
    entry = await run_in_threadpool(
        service.join_waitlist, patient_from({**data, "patient_ref": None}),
        text_field(data, "token", max_len=100) or "", text_field(data, "type") or "",
        local_instant(first, time(0), PARIS),
        local_day_bounds(last, PARIS)[1], text_field(data, "site", required=False),
        text_field(data, "service", required=False))
    return json_response({"entry": entry, "status": "waiting"}, 201)


@translated
async def public_manage(request: Request) -> Response:
    service = service_of(request)
    secret = request.path_params["secret"]
    booking = await run_in_threadpool(service.booking_by_secret, secret)
    out = booking_json(booking, service)
    if request.method == "GET":
        agenda = await run_in_threadpool(service.agenda, booking.agenda_id)
        out["practitioner"], out["site_name"] = agenda.display, agenda.site_name
        return json_response(out)
    action = request.path_params["action"]
    if action == "cancel":
        booking = await run_in_threadpool(service.cancel, booking.id)
    elif action == "move":
        data = await read_json(request)
        new_slot = int_field(data, "slot")
        slot = await run_in_threadpool(service.slot, new_slot)
        if slot.type_code != booking.type_code:
            raise InvalidInput("an appointment can only move to a slot of the same type")
        booking = await run_in_threadpool(service.move, booking.id, new_slot)
    else:
        raise InvalidInput(f"unknown action {action!r}")
    return json_response(booking_json(booking, service))


@translated
async def public_offer(request: Request) -> Response:
    service = service_of(request)
    secret = request.path_params["secret"]
    if request.method == "GET":
        slot, _patient = await run_in_threadpool(service.offer, secret)
        return json_response({"slot": slot_json(slot)})
    booking = await run_in_threadpool(service.claim_offer, secret)
    return json_response(booking_json(booking, service), 201)


# --- staff -------------------------------------------------------------------------

@translated
async def api_slots(request: Request) -> Response:
    """Free slots as a FHIR searchset Bundle of Slot resources."""
    require_scope(request, "Slot", "s")
    args = _search_args(request)
    service = service_of(request)
    found, kinds = await run_in_threadpool(
        lambda: (service.search(**args), service.appointment_types()))
    entries = [{"resource": slot_resource(s, kinds[s.type_code].label if s.type_code in kinds
                                          else s.type_code)} for s in found]
    return Response(orjson.dumps({"resourceType": "Bundle", "type": "searchset",
                                  "total": len(entries), "entry": entries}),
                    media_type="application/fhir+json")


@translated
async def api_day(request: Request) -> Response:
    require_scope(request, "Appointment", "s")
    service = service_of(request)
    q = request.query_params
    day = parse_day(q.get("date"), default=to_local(service.clock()).date())
    agenda_ids = [a for a in q.getlist("agenda") if a]
    if not agenda_ids:
        site = q.get("site")
        agenda_ids = [a.id for a in await run_in_threadpool(service.agendas, site)]
    lo, hi = local_day_bounds(day, PARIS)
    rows = await run_in_threadpool(service.day_view, agenda_ids, lo, hi)
    for row in rows:
        local = to_local(row["start_utc"])
        row["time"] = local.strftime("%H:%M")
        row["end_time"] = to_local(row["end_utc"]).strftime("%H:%M")
    return json_response({"date": day.isoformat(), "slots": rows})


@translated
async def api_book(request: Request) -> Response:
    require_scope(request, "Appointment", "c")
    data = await read_json(request)
    service = service_of(request)
    patient = patient_from(data)
    if patient.phone:
        from hygie.scheduling.verification import normalize_mobile

        patient = Patient(patient.family, patient.given, patient.birth_date,
                          normalize_mobile(patient.phone), patient.email, patient.patient_ref)
    booking = await run_in_threadpool(service.book, int_field(data, "slot"), patient)
    return json_response(booking_json(booking, service), 201)


@translated
async def api_booking(request: Request) -> Response:
    service = service_of(request)
    booking_id = request.path_params["booking_id"]
    action = request.path_params.get("action")
    if action is None:
        require_scope(request, "Appointment", "r")
        booking = await run_in_threadpool(service.booking, booking_id)
    elif action == "cancel":
        require_scope(request, "Appointment", "u")
        booking = await run_in_threadpool(service.cancel, booking_id)
    elif action == "move":
        require_scope(request, "Appointment", "u")
        data = await read_json(request)
        booking = await run_in_threadpool(service.move, booking_id, int_field(data, "slot"))
    else:
        raise InvalidInput(f"unknown action {action!r}")
    return json_response(booking_json(booking, service))


@translated
async def api_types(request: Request) -> Response:
    require_scope(request, "Schedule", "u")
    data = await read_json(request)
    kind = AppointmentType(text_field(data, "code", max_len=64) or "",
                           text_field(data, "label") or "", int_field(data, "duration_min"),
                           bool(data.get("preadmission", False)))
    await run_in_threadpool(service_of(request).put_appointment_type, kind)
    return json_response({"code": kind.code}, 201)


@translated
async def api_agendas(request: Request) -> Response:
    service = service_of(request)
    if request.method == "GET":
        require_scope(request, "Schedule", "s")
        found = await run_in_threadpool(service.agendas, request.query_params.get("site"))
        return json_response({"agendas": [a.__dict__ for a in found]})
    require_scope(request, "Schedule", "u")
    data = await read_json(request)
    agenda = Agenda(
        id=text_field(data, "id", max_len=64) or "", kind=text_field(data, "kind") or "",
        actor_ref=text_field(data, "actor_ref") or "", display=text_field(data, "display") or "",
        site_id=text_field(data, "site_id", max_len=64) or "",
        site_name=text_field(data, "site_name") or "",
        service_code=text_field(data, "service_code", max_len=64) or "",
        service_label=text_field(data, "service_label") or "",
        timezone=text_field(data, "timezone", required=False) or "Europe/Paris",
        public_holidays=bool(data.get("public_holidays", True)),
        active=bool(data.get("active", True)))
    await run_in_threadpool(service.put_agenda, agenda)
    return json_response({"id": agenda.id}, 201)


@translated
async def api_rules(request: Request) -> Response:
    require_scope(request, "Schedule", "u")
    service = service_of(request)
    agenda_id = request.path_params["agenda_id"]
    data = await read_json(request)
    days = data.get("weekdays")
    if not isinstance(days, list) or not all(isinstance(d, int) for d in days):
        raise InvalidInput("weekdays is a list of ISO weekday numbers")
    start = text_field(data, "start", max_len=5) or ""
    end = text_field(data, "end", max_len=5) or ""
    parse_hhmm(start, "start")
    parse_hhmm(end, "end")
    rule = OpeningRule(agenda_id, tuple(days), start, end, text_field(data, "type") or "",
                       parse_day(text_field(data, "valid_from", max_len=10)),
                       parse_day(text_field(data, "valid_to", required=False, max_len=10))
                       if data.get("valid_to") else None)
    rule_id = await run_in_threadpool(service.add_rule, rule)
    return json_response({"id": rule_id}, 201)


@translated
async def api_delete_rule(request: Request) -> Response:
    require_scope(request, "Schedule", "u")
    rule_id = int_field(request.path_params, "rule_id")
    removed = await run_in_threadpool(service_of(request).remove_rule, rule_id)
    return json_response({"removed_slots": removed})


@translated
async def api_closures(request: Request) -> Response:
    require_scope(request, "Schedule", "u")
    data = await read_json(request)
    first = parse_day(text_field(data, "from", max_len=10))
    last = parse_day(text_field(data, "to", max_len=10))
    zone = ZoneInfo("Europe/Paris")
    closure = Closure(local_instant(first, time(0), zone), local_day_bounds(last, zone)[1],
                      text_field(data, "reason") or "",
                      text_field(data, "agenda", required=False, max_len=64),
                      text_field(data, "site", required=False, max_len=64))
    closure_id, affected = await run_in_threadpool(service_of(request).add_closure, closure)
    return json_response({"id": closure_id, "bookings_to_move": affected}, 201)


@translated
async def api_cap(request: Request) -> Response:
    require_scope(request, "Schedule", "u")
    data = await read_json(request)
    await run_in_threadpool(service_of(request).put_site_cap, request.path_params["site_id"],
                            int_field(data, "max_arrivals"),
                            int_field({"w": data.get("window_min", 15)}, "w"))
    return json_response({"site": request.path_params["site_id"]})


@translated
async def api_generate(request: Request) -> Response:
    require_scope(request, "Schedule", "u")
    data = await read_json(request)
    first = parse_day(text_field(data, "from", max_len=10))
    last = parse_day(text_field(data, "to", max_len=10))
    if last < first or (last - first).days > 731:
        raise InvalidInput("generate at most two years at once, 'to' after 'from'")
    created = await run_in_threadpool(service_of(request).generate, first, last,
                                      text_field(data, "agenda", required=False, max_len=64))
    return json_response({"created": created})


@translated
async def api_waitlist(request: Request) -> Response:
    require_scope(request, "Appointment", "s")
    rows = await run_in_threadpool(service_of(request).waitlist,
                                   request.query_params.get("status", "waiting"))
    return json_response({"entries": [{k: v for k, v in r.items() if k != "offer_token"}
                                      for r in rows]})


def start_with_app(platform: Any) -> Callable[[], None]:
    """Start the background worker when the server starts (reminders and offers are
    persisted, so they resume after a restart); returns the function that stops it."""
    return SchedulingService.for_platform(platform).stop_worker


def routes() -> list[BaseRoute]:
    """The service's routes, mounted under /scheduling by app.py."""
    from hygie.scheduling import preadmission_api

    return [
        *pages.routes(),
        *preadmission_api.routes(),
        Route("/public/api/options", public_options),
        Route("/public/api/slots", public_slots),
        Route("/public/api/verify", public_verify, methods=["POST"]),
        Route("/public/api/verify/confirm", public_confirm, methods=["POST"]),
        Route("/public/api/bookings", public_book, methods=["POST"]),
        Route("/public/api/waitlist", public_waitlist, methods=["POST"]),
        Route("/public/api/manage/{secret}", public_manage),
        Route("/public/api/manage/{secret}/{action}", public_manage, methods=["POST"]),
        Route("/public/api/offer/{secret}", public_offer, methods=["GET", "POST"]),
        Route("/api/slots", api_slots),
        Route("/api/day", api_day),
        Route("/api/bookings", api_book, methods=["POST"]),
        Route("/api/bookings/{booking_id}", api_booking),
        Route("/api/bookings/{booking_id}/{action}", api_booking, methods=["POST"]),
        Route("/api/types", api_types, methods=["POST"]),
        Route("/api/agendas", api_agendas, methods=["GET", "POST"]),
        Route("/api/agendas/{agenda_id}/rules", api_rules, methods=["POST"]),
        Route("/api/rules/{rule_id}", api_delete_rule, methods=["DELETE"]),
        Route("/api/closures", api_closures, methods=["POST"]),
        Route("/api/caps/{site_id}", api_cap, methods=["PUT"]),
        Route("/api/generate", api_generate, methods=["POST"]),
        Route("/api/waitlist", api_waitlist),
    ]
