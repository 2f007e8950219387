"""Browser pages of the patient record ("dossier patient"), under /record.

* ``GET /record``: search patients by name, birth date and identifier (INS, IPP...),
  run as a FHIR search on Patient (https://hl7.org/fhir/R4/patient.html#search) and
  paged with the store's cursor, so that the tenth page costs what the first does;
* ``GET /record/patient/{id}``: one record: identity header, a timeline of encounters,
  conditions, allergies, medication requests, documents and vital-sign charts;
* ``GET /record/patient/{id}/documents/{doc}/{n}``: the n-th attachment of one of the
  patient's DocumentReferences, from its inline data or from a Binary of the store.

The routes are glue: read the request, call the repository in the thread pool, build
the view with ``record`` and ``vitals``, render. Access is asked of the caller the
authentication middleware put at ``request.state.principal``: search or read on
Patient for the pages, and, for each section, search on its resource type; a section
the caller may not see is listed as withheld instead of failing the page. The store is
the core and does not import ``security``: the caller is known through ``Caller``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.store import outcomes
from hygie.store.interactions import FhirRequest, FhirResponse, StoreContext
from hygie.store.pages import record, vitals
from hygie.store.pages.display import (
    GENDERS,
    Json,
    address_text,
    age_text,
    format_when,
    human_name,
    identifiers_view,
)
from hygie.store.repository import Repository
from hygie.web.pages import render

#: Patients listed per page of search results.
PAGE_SIZE = 20
#: Most referenced resources (units, practitioners...) read to name them on one record.
MAX_NAMED = 200
#: Longest text accepted in a search field.
MAX_FIELD = 100

#: The record's sections, by resource type, in the order of the page.
SECTIONS = {
    "Encounter": "Séjours et consultations",
    "Condition": "Problèmes et diagnostics",
    "AllergyIntolerance": "Allergies",
    "MedicationRequest": "Prescriptions",
    "DocumentReference": "Documents",
    "Observation": "Constantes vitales",
}

#: Who each type's patient reference is (R4 element that carries the subject).
_SUBJECT = {"AllergyIntolerance": "patient"}

#: Attachment types a browser may show in the page's tab; others are downloaded.
_INLINE_TYPES = frozenset({"application/pdf", "text/plain", "text/html", "text/xml",
                           "application/xml", "image/png", "image/jpeg", "image/gif",
                           "image/webp", "image/svg+xml"})
#: Documents may contain active content: shown sandboxed, with nothing fetched.
_SANDBOX = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Caller(Protocol):
    """What these pages need of the principal that ``security`` puts on the request."""

    @property
    def patient(self) -> str | None: ...

    def require(self, resource_type: str, interaction: str) -> None: ...

    def may(self, resource_type: str, interaction: str) -> bool: ...


class PageError(Exception):
    """A page that cannot be shown, with the status and the French text to say why."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def _audit(ctx: StoreContext, caller: Caller, path: tuple[str, ...],
           resources: Iterable[Json] = (), *, error: outcomes.FhirError | None = None,
           query: Iterable[tuple[str, str]] = ()) -> None:
    """Report a page's read to the audit sink as the FHIR read it amounts to."""
    request = FhirRequest("GET", path, list(query), principal=caller)
    response = None if error else FhirResponse(200, resource={
        "resourceType": "Bundle", "entry": [
            {"fullUrl": f"{ctx.base_url}/{r.get('resourceType')}/{r.get('id')}", "resource": r}
            for r in resources]})
    ctx.audit.record(request, response, error)


def _store(request: Request) -> StoreContext:
    ctx: StoreContext = request.app.state.platform.parts["store"]
    return ctx


def _caller(request: Request) -> Caller:
    caller: Caller | None = getattr(request.state, "principal", None)
    if caller is None:
        raise PageError(401, "Connexion requise",
                        "Identifiez-vous pour consulter les dossiers patients.")
    return caller


def _require(caller: Caller, resource_type: str, interaction: str) -> None:
    try:
        caller.require(resource_type, interaction)
    except outcomes.FhirError as exc:
        raise PageError(403, "Accès refusé", _why(exc)) from exc


def _why(exc: outcomes.FhirError) -> str:
    detail = exc.issues[0].diagnostics if exc.issues else ""
    return ("Votre compte n'a pas les droits nécessaires pour consulter les dossiers "
            f"patients. {detail}").strip()


def _error_page(request: Request, error: PageError) -> Response:
    context = {"status": error.status, "heading": error.title, "message": error.message}
    if error.status == 401:
        context["login"] = "/login?next=" + quote(request.url.path, safe="")
    return render(request, "store/error.html", context, status_code=error.status)


def _fhir_error(exc: outcomes.FhirError, what: str) -> PageError:
    """Say in French what a store error means for the page (``what`` was being read).

    An id the store refuses as malformed names no resource either: 404, like an unknown one.
    """
    detail = exc.issues[0].diagnostics if exc.issues else ""
    if exc.status in (400, 404):
        return PageError(404, f"{what} introuvable",
                         f"Aucun {what.lower()} ne porte cet identifiant.")
    if exc.status == 410:
        return PageError(410, f"{what} supprimé", f"Ce {what.lower()} a été supprimé.")
    if exc.status == 403:
        return PageError(403, "Accès refusé", _why(exc))
    if exc.status < 500:
        return PageError(exc.status, "Demande invalide", detail or "La demande n'est pas valide.")
    return PageError(exc.status, "Service indisponible",
                     "Le dossier ne peut pas être lu pour le moment. Réessayez plus tard.")


# --- search ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchForm:
    """The search fields as typed, and the FHIR query they make."""

    name: str = ""
    birthdate: str = ""
    identifier: str = ""

    @property
    def empty(self) -> bool:
        return not (self.name or self.birthdate or self.identifier)

    def query(self) -> list[tuple[str, str]]:
        """FHIR search parameters; raises ``ValueError`` with a French message."""
        pairs = [("name", _escape(word)) for word in self.name.replace(",", " ").split()]
        if self.birthdate:
            pairs.append(("birthdate", parse_birthdate(self.birthdate).isoformat()))
        if self.identifier:
            pairs.append(("identifier", _escape("".join(self.identifier.split()), keep="|")))
        return pairs

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("name", self.name), ("birthdate", self.birthdate),
                                  ("identifier", self.identifier)) if v}


def _escape(value: str, keep: str = "") -> str:
    """Escape the characters FHIR search gives a meaning to (search.html#escaping)."""
    for char in "\\,$|":
        if char not in keep:
            value = value.replace(char, "\\" + char)
    return value


def parse_birthdate(text: str) -> date:
    """A birth date typed as 1950-03-12 (the date field) or 12/03/1950."""
    value = text.strip()
    try:
        if "/" in value:
            day, month, year = (int(p) for p in value.split("/"))
            parsed = date(year, month, day)
        else:
            parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError("La date de naissance doit être une date (JJ/MM/AAAA).") from None
    if parsed.year < 1850:
        raise ValueError("La date de naissance est trop ancienne.")
    return parsed


@dataclass(frozen=True)
class PatientRow:
    id: str
    name: str
    gender: str
    birth_date: str
    age: str
    national_id: str
    other_ids: str
    town: str


def patient_row(patient: Json) -> PatientRow:
    identifiers = identifiers_view(patient.get("identifier"))
    national = next((i for i in identifiers if i.national), None)
    others = ", ".join(f"{i.label} {i.value}" for i in identifiers if not i.national)
    addresses = patient.get("address") or []
    town = ""
    if addresses and isinstance(addresses[0], dict):
        town = str(addresses[0].get("city") or "") or address_text(addresses[0])
    return PatientRow(
        id=str(patient.get("id") or ""),
        name=human_name(patient.get("name")) or "Patient sans nom",
        gender=GENDERS.get(str(patient.get("gender")), ""),
        birth_date=format_when(patient.get("birthDate")),
        age=age_text(patient.get("birthDate")),
        national_id=national.value if national else "",
        other_ids=others,
        town=town,
    )


async def search_page(request: Request) -> Response:
    """GET /record: the patient search form and one page of results."""
    try:
        caller = _caller(request)
        if caller.patient:  # a patient's session only ever opens their own record
            return RedirectResponse(f"/record/patient/{caller.patient}", status_code=303)
        _require(caller, "Patient", "s")
    except PageError as exc:
        return _error_page(request, exc)
    params = request.query_params
    form = SearchForm(*(params.get(k, "").strip()[:MAX_FIELD]
                        for k in ("name", "birthdate", "identifier")))
    context: dict[str, Any] = {"form": form, "rows": [], "searched": False}
    if form.empty:
        return render(request, "store/search.html", context)
    try:
        query = form.query()
    except ValueError as exc:
        context["error"] = str(exc)
        return render(request, "store/search.html", context, status_code=400)
    start_text = params.get("start", "1")
    start = int(start_text) if start_text.isdigit() and 0 < len(start_text) < 9 else 1
    query += [("_count", str(PAGE_SIZE)), ("_total", "accurate"), ("_sort", "family,given")]
    ctx = _store(request)
    try:
        restrict = ctx.access.search_restriction(caller, "Patient")
        page = await run_in_threadpool(ctx.repository.search, "Patient", query,
                                       cursor=params.get("cursor") or None, restrict=restrict)
    except outcomes.FhirError as exc:
        _audit(ctx, caller, ("Patient",), error=exc, query=query)
        context["error"] = ("La recherche n'a pas pu aboutir : "
                            + (exc.issues[0].diagnostics if exc.issues else "erreur"))
        return render(request, "store/search.html", context, status_code=400)
    _audit(ctx, caller, ("Patient",), [m.resource for m in page.matches], query=query)
    rows = [patient_row(m.resource) for m in page.matches]
    context.update(searched=True, rows=rows, total=page.total, start=start,
                   end=start + len(rows) - 1)
    if page.next_cursor:
        context["next_url"] = "/record?" + urlencode(
            {**form.params(), "cursor": page.next_cursor, "start": start + len(rows)})
    if start > 1:
        context["first_url"] = "/record?" + urlencode(form.params())
    return render(request, "store/search.html", context)


# --- one record ------------------------------------------------------------------------


def _about(resource: Json, patient_id: str) -> bool:
    """True when the resource's subject is this patient (not, say, its performer)."""
    ref = resource.get(_SUBJECT.get(str(resource.get("resourceType")), "subject"))
    target = ref.get("reference") if isinstance(ref, dict) else None
    return isinstance(target, str) and (target == f"Patient/{patient_id}"
                                        or target.endswith(f"/Patient/{patient_id}"))


def _physical_type(location: Json) -> str:
    codes = record.codes_in(location.get("physicalType"))
    return codes[0] if codes else ""


def resolve_names(repo: Repository, references: Iterable[str], caller: Caller) -> dict[str, str]:
    """Names of referenced resources the caller may read; a bed or room also names its unit."""
    cache: dict[str, Json | None] = {}

    def load(target: str) -> Json | None:
        if target not in cache:
            res_type, _, res_id = target.partition("/")
            cache[target] = None
            if caller.may(res_type, "r") and len(cache) <= MAX_NAMED:
                with contextlib.suppress(outcomes.FhirError):
                    cache[target] = repo.read(res_type, res_id).resource
        return cache[target]

    names: dict[str, str] = {}
    for target in sorted(references):
        resource = load(target)
        if resource is None:
            continue
        name = record.resource_name(resource)
        if resource.get("resourceType") == "Location" and _physical_type(resource) in ("bd", "ro"):
            parent = resource
            for _ in range(3):  # bed -> room -> unit
                ref = (parent.get("partOf") or {}).get("reference")
                parent = load(ref) if isinstance(ref, str) and ref.startswith("Location/") \
                    else None
                if parent is None:
                    break
                if _physical_type(parent) == "wa":
                    name = f"{parent.get('name')} · {name}"
                    break
        if name:
            names[target] = name
    return names


def load_record(ctx: StoreContext, patient_id: str, caller: Caller,
                period: str = vitals.DEFAULT_PERIOD) -> dict[str, Any]:
    """Everything the record page shows, read in one go (runs in the thread pool)."""
    repo = ctx.repository
    try:
        ctx.access.check_resource(caller, "Patient", patient_id)  # boundaries beyond scopes
        patient = repo.read("Patient", patient_id).resource
    except outcomes.FhirError as exc:
        _audit(ctx, caller, ("Patient", patient_id), error=exc)
        raise _fhir_error(exc, "Dossier") from exc
    _audit(ctx, caller, ("Patient", patient_id), [patient])
    allowed = [t for t in SECTIONS if caller.may(t, "s")]
    grouped: dict[str, list[Json]] = {t: [] for t in SECTIONS}
    if allowed:
        for stored in repo.compartment("Patient", patient_id, allowed):
            if _about(stored.resource, patient_id):
                grouped[stored.res_type].append(stored.resource)
    names = resolve_names(
        repo, record.references_to_name([patient, *(r for rs in grouped.values() for r in rs)]),
        caller)
    header = record.patient_header(patient, names)
    charts, missing = vitals.build_charts(grouped["Observation"], adult=header.adult,
                                          days=vitals.PERIODS[period])
    return {
        "patient": header,
        "allowed": set(allowed),
        "withheld": [SECTIONS[t] for t in SECTIONS if t not in allowed],
        "encounters": record.timeline(grouped["Encounter"], names),
        "conditions": record.conditions_view(grouped["Condition"]),
        "allergies": record.allergies_view(grouped["AllergyIntolerance"]),
        "medications": record.medications_view(grouped["MedicationRequest"], names),
        "documents": record.documents_view(grouped["DocumentReference"], patient_id,
                                           ctx.base_url, names),
        "charts": charts,
        "missing_charts": missing,
        "period": period,
        "periods": {"7": "7 jours", "30": "30 jours", "90": "90 jours", "tout": "tout"},
        "sections": SECTIONS,
    }


def _check_patient(caller: Caller, patient_id: str) -> None:
    if caller.patient and caller.patient != patient_id:
        raise PageError(403, "Accès refusé", "Vous ne pouvez consulter que votre propre dossier.")


async def patient_page(request: Request) -> Response:
    """GET /record/patient/{id}: the record of one patient."""
    patient_id = request.path_params["patient_id"]
    period = request.query_params.get("constantes", vitals.DEFAULT_PERIOD)
    if period not in vitals.PERIODS:
        period = vitals.DEFAULT_PERIOD
    try:
        caller = _caller(request)
        _check_patient(caller, patient_id)
        _require(caller, "Patient", "r")
        context = await run_in_threadpool(load_record, _store(request), patient_id, caller,
                                          period)
    except PageError as exc:
        return _error_page(request, exc)
    return render(request, "store/patient.html", context)


# --- attachments -----------------------------------------------------------------------


def load_attachment(ctx: StoreContext, patient_id: str, doc_id: str, index: int,
                    caller: Caller) -> tuple[bytes, str, str]:
    """(content, media type, file name) of one attachment of one of the patient's documents."""
    repo = ctx.repository
    try:
        ctx.access.check_resource(caller, "DocumentReference", doc_id)
        document = repo.read("DocumentReference", doc_id).resource
    except outcomes.FhirError as exc:
        _audit(ctx, caller, ("DocumentReference", doc_id), error=exc)
        raise _fhir_error(exc, "Document") from exc
    _audit(ctx, caller, ("DocumentReference", doc_id), [document])
    contents = document.get("content") or []
    if not _about(document, patient_id) or not 0 <= index < len(contents):
        raise PageError(404, "Document introuvable", "Ce document n'est pas dans ce dossier.")
    attachment = contents[index].get("attachment") if isinstance(contents[index], dict) else None
    if not isinstance(attachment, dict):
        raise PageError(404, "Document introuvable", "Ce document n'a pas de contenu.")
    media = str(attachment.get("contentType") or "application/octet-stream")
    data = attachment.get("data")
    if not data:
        binary = record.binary_id(attachment.get("url"), ctx.base_url)
        if binary is None:
            raise PageError(404, "Document introuvable", "Ce document n'a pas de contenu ici.")
        _require(caller, "Binary", "r")
        try:
            resource = repo.read("Binary", binary).resource
        except outcomes.FhirError as exc:
            raise _fhir_error(exc, "Document") from exc
        data = resource.get("data")
        media = str(resource.get("contentType") or media)
        if not data:
            raise PageError(404, "Document introuvable", "Le contenu de ce document est vide.")
    try:
        content = base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PageError(422, "Document illisible",
                        "Le contenu enregistré n'est pas un base64 valide.") from exc
    title = str(attachment.get("title") or f"document-{doc_id}-{index}")
    return content, media, title


async def document_content(request: Request) -> Response:
    """GET /record/patient/{id}/documents/{doc}/{n}: one attachment, safely served."""
    patient_id = request.path_params["patient_id"]
    try:
        caller = _caller(request)
        _check_patient(caller, patient_id)
        _require(caller, "Patient", "r")
        _require(caller, "DocumentReference", "r")
        content, media, title = await run_in_threadpool(
            load_attachment, _store(request), patient_id, request.path_params["doc_id"],
            request.path_params["index"], caller)
    except PageError as exc:
        return _error_page(request, exc)
    base_type = media.split(";")[0].strip().lower()
    if base_type.startswith("text/") and "charset" not in media.lower():
        media = f"{base_type}; charset=utf-8"
    disposition = "inline" if base_type in _INLINE_TYPES else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(title, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    if base_type != "application/pdf":  # the browser's PDF viewer does not run sandboxed
        headers["Content-Security-Policy"] = _SANDBOX
    return Response(content, media_type=media, headers=headers)


def routes() -> list[BaseRoute]:
    """The record's pages; ``app.py`` adds them next to the FHIR API."""
    return [
        Route("/record", search_page, methods=["GET"]),
        Route("/record/patient/{patient_id}", patient_page, methods=["GET"]),
        Route("/record/patient/{patient_id}/documents/{doc_id}/{index:int}", document_content,
              methods=["GET"]),
    ]
