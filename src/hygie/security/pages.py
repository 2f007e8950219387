"""Pages and routes of the trust layer, under /security, and the API description.

* ``GET /security/acces/{patient_id}``: "who looked at my record": every access to a
  patient's record in the audit trail, newest first, times in Europe/Paris. A patient
  sees their own; staff see those of the patients they may read; auditors all.
* ``GET/POST /security/urgence``: emergency access to a record out of reach, with a
  mandatory reason (``break_glass.py``).
* ``GET/POST /security/relecture``: the emergency accesses waiting for review.
* ``GET /openapi.json``: the OpenAPI 3.1 description of the HTTP API (``openapi.py``).

Forms carry a CSRF token bound to the session (an HMAC of the session's ``jti``).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.security import audit, break_glass
from hygie.security.audit_sink import record_security_event
from hygie.security.installation import install
from hygie.security.model import Kind, Principal
from hygie.security.openapi import openapi_document
from hygie.store.model import ID_RE
from hygie.store.outcomes import FhirError
from hygie.web.pages import render

_PARIS = ZoneInfo("Europe/Paris")
_ACTIONS = {"C": "création", "R": "consultation", "U": "modification", "D": "suppression",
            "E": "exécution"}


def _csrf(request: Request, principal: Principal) -> str:
    key = install(request.app.state.platform).master_key.derive("hygie csrf")
    return hmac.new(key, (principal.token_id or principal.subject).encode(),
                    hashlib.sha256).hexdigest()


def _csrf_ok(request: Request, principal: Principal, sent: str) -> bool:
    return hmac.compare_digest(sent.encode(), _csrf(request, principal).encode())


def _page_error(request: Request, status: int, message: str) -> Response:
    return render(request, "security/message.html", {"status": status, "message": message},
                  status_code=status)


def _principal(request: Request) -> Principal | None:
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else None


# --- who looked at my record ----------------------------------------------------------------


def _when(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.astimezone(_PARIS).strftime("%d/%m/%Y %H:%M:%S")


def access_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit events as the page lists them."""
    rows = []
    for event in events:
        agent = (event.get("agent") or [{}])[0]
        who = agent.get("who") or {}
        name = who.get("reference") or (who.get("identifier") or {}).get("value") \
            or who.get("display") or "?"
        roles = ", ".join(r.get("text", "") for r in agent.get("role") or [])
        subtype = (event.get("subtype") or [{}])[0].get("code", "")
        emergency = any(c.get("code") == "BTG" for p in event.get("purposeOfEvent") or []
                        for c in p.get("coding") or [])
        rows.append({
            "when": _when(event.get("recorded", "")), "who": name, "roles": roles,
            "action": _ACTIONS.get(event.get("action", ""), event.get("action", "")),
            "what": subtype, "refused": event.get("outcome") != audit.SUCCESS,
            "emergency": emergency, "seq": event.get("id"),
        })
    return rows


def _may_see_trail(request: Request, principal: Principal, patient_id: str) -> str | None:
    """Why the caller may not see this patient's access history (None: they may)."""
    if principal.kind is Kind.PATIENT:
        return None if principal.patient == patient_id else \
            "Vous ne pouvez consulter que l'historique de votre propre dossier."
    if "auditor" in principal.roles:
        return None
    ctx = request.app.state.platform.parts.get("store")
    try:
        principal.require("Patient", "r")
        if ctx is not None:
            ctx.access.check_resource(principal, "Patient", patient_id)
    except FhirError:
        return "Ce dossier n'est pas dans votre périmètre d'accès."
    return None


async def record_access(request: Request) -> Response:
    """GET /security/acces/{patient_id}: who looked at this record."""
    principal = _principal(request)
    patient_id = request.path_params["patient_id"]
    if principal is None:
        return _page_error(request, 401, "Identifiez-vous pour consulter cet historique.")
    if not ID_RE.match(patient_id):
        return _page_error(request, 404, "Aucun dossier ne porte cet identifiant.")
    why = await run_in_threadpool(_may_see_trail, request, principal, patient_id)
    if why:
        return _page_error(request, 403, why)
    parts = install(request.app.state.platform)
    events = await run_in_threadpool(parts.audit_chain.for_patient, patient_id, 500)
    return render(request, "security/record_access.html",
                  {"patient_id": patient_id, "rows": access_rows(events)})


# --- emergency access ---------------------------------------------------------------------------


async def emergency_form(request: Request) -> Response:
    """GET /security/urgence?patient=...: the emergency access form."""
    principal = _principal(request)
    if principal is None:
        return _page_error(request, 401, "Identifiez-vous pour demander un accès d'urgence.")
    patient_id = request.query_params.get("patient", "")[:64]
    return render(request, "security/emergency.html", {
        "patient_id": patient_id, "csrf_token": _csrf(request, principal),
        "hours": break_glass.EMERGENCY_HOURS, "min_reason": break_glass.MIN_REASON})


async def emergency_submit(request: Request) -> Response:
    """POST /security/urgence: grant, record (flagged for review), open the record."""
    from hygie.security.api import FormError, read_form

    principal = _principal(request)
    if principal is None:
        return _page_error(request, 401, "Identifiez-vous pour demander un accès d'urgence.")
    try:
        form = await read_form(request)
    except FormError:
        return _page_error(request, 400, "Le formulaire envoyé est invalide.")
    if not _csrf_ok(request, principal, form.get("csrf_token", "")):
        return _page_error(request, 403, "Le formulaire a expiré. Veuillez réessayer.")
    patient_id, reason = form.get("patient", "").strip(), form.get("reason", "")
    platform = request.app.state.platform
    parts = install(platform)
    try:
        grant = await run_in_threadpool(break_glass.open_emergency_access, platform.engine,
                                        principal, patient_id, reason)
    except break_glass.EmergencyRefused as exc:
        return render(request, "security/emergency.html", {
            "patient_id": patient_id[:64], "reason": reason[:1000], "error": str(exc),
            "csrf_token": _csrf(request, principal), "hours": break_glass.EMERGENCY_HOURS,
            "min_reason": break_glass.MIN_REASON}, status_code=400)
    parts.access.forget_grants(principal.subject)
    await run_in_threadpool(
        record_security_event, parts.audit_writer, what="emergency access",
        outcome=audit.SUCCESS, principal=principal, patients=[patient_id], emergency=True,
        description=f"emergency access {grant.id} until {grant.expires.isoformat()}: "
                    f"{grant.reason}",
        entities=[audit.entity(f"Patient/{patient_id}")])
    return RedirectResponse(f"/record/patient/{patient_id}", status_code=303)


# --- review -------------------------------------------------------------------------------------


async def review_page(request: Request) -> Response:
    """GET /security/relecture: emergency accesses waiting for review."""
    principal = _principal(request)
    if principal is None or not principal.roles & break_glass.REVIEWER_ROLES:
        return _page_error(request, 403, "Réservé aux auditeurs et administrateurs.")
    grants = await run_in_threadpool(break_glass.pending_reviews,
                                     request.app.state.platform.engine)
    rows = [{"id": g.id, "who": g.username, "patient": g.patient_id, "reason": g.reason,
             "when": g.created.astimezone(_PARIS).strftime("%d/%m/%Y %H:%M")} for g in grants]
    return render(request, "security/review.html",
                  {"rows": rows, "csrf_token": _csrf(request, principal)})


async def review_submit(request: Request) -> Response:
    """POST /security/relecture: record the review of one emergency access."""
    from hygie.security.api import FormError, read_form

    principal = _principal(request)
    if principal is None:
        return _page_error(request, 401, "Identifiez-vous.")
    try:
        form = await read_form(request)
    except FormError:
        return _page_error(request, 400, "Le formulaire envoyé est invalide.")
    if not _csrf_ok(request, principal, form.get("csrf_token", "")):
        return _page_error(request, 403, "Le formulaire a expiré. Veuillez réessayer.")
    grant_id = form.get("grant", "")
    if not grant_id.isdigit() or len(grant_id) > 18:
        return _page_error(request, 400, "Accès d'urgence inconnu.")
    platform = request.app.state.platform
    try:
        done = await run_in_threadpool(break_glass.review, platform.engine, int(grant_id),
                                       principal, form.get("note", ""))
    except break_glass.EmergencyRefused as exc:
        return _page_error(request, 403 if "Seuls" in str(exc) else 400, str(exc))
    if not done:
        return _page_error(request, 404, "Cet accès d'urgence est inconnu ou déjà relu.")
    await run_in_threadpool(
        record_security_event, install(platform).audit_writer, what="emergency review",
        outcome=audit.SUCCESS, principal=principal,
        description=f"emergency access {grant_id} reviewed: {form.get('note', '')[:500]}")
    return RedirectResponse("/security/relecture?" + urlencode({"relu": grant_id}),
                            status_code=303)


# --- API description ----------------------------------------------------------------------------


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json: the OpenAPI description of the platform's HTTP API."""
    base = request.app.state.platform.settings.base_url
    return JSONResponse(openapi_document(base), headers={"Cache-Control": "public, max-age=300"})


def routes() -> list[BaseRoute]:
    """The trust layer's pages; ``app.py`` mounts them at the root of the site."""
    return [
        Route("/security/acces/{patient_id}", record_access, methods=["GET"]),
        Route("/security/urgence", emergency_form, methods=["GET"]),
        Route("/security/urgence", emergency_submit, methods=["POST"]),
        Route("/security/relecture", review_page, methods=["GET"]),
        Route("/security/relecture", review_submit, methods=["POST"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
