"""The staff directory: who can be called, read from the store's Practitioner and
PractitionerRole resources, and a CSV import that writes those resources.

The store is the source of truth (http://hl7.org/fhir/R4/practitionerrole.html): one
directory entry per PractitionerRole, with its person's name, the role's code and text,
the unit (``location``), the hospital (``organization``), skills (the role's
``specialty`` and the person's ``qualification`` texts), the mobile phone and e-mail
(role ``telecom`` first, then the person's), availability (``active``, ``period`` and
``notAvailable``) and the weekly hours (``availableTime``) that say who is on duty.
:func:`sync_directory` rebuilds the table from the store; a campaign reads the table,
so that launching never waits for thousands of FHIR reads.

CSV columns (header line, ``;`` or ``,`` separated, UTF-8)::

    identifiant;nom;prenom;role;unite;etablissement;competences;telephone;email;disponible

``role`` is a role code or a known role label (``Infirmier de réanimation``),
``unite`` a Location id and ``etablissement`` an Organization id, ``competences`` a
``|``-separated list, ``disponible`` ``oui`` or ``non``. Optional columns
``role_libelle``, ``unite_libelle`` and ``etablissement_libelle`` give display texts.
Each line becomes a Practitioner (identified by ``identifiant``) and a PractitionerRole,
written through the store's bulk path (validated R4).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import Connection, Engine, delete, func, insert, select

from hygie.mobilization import tables as t
from hygie.mobilization.errors import InvalidInput
from hygie.mobilization.model import Staff

PARIS = ZoneInfo("Europe/Paris")
#: Identifier system of the staff numbers of imported people.
STAFF_ID_SYSTEM = "https://hygie.example/fhir/sid/matricule"
#: Code system of roles given by label only in an import.
LOCAL_ROLE_SYSTEM = "https://hygie.example/fhir/CodeSystem/staff-role"
#: Largest CSV file accepted, and most lines.
MAX_CSV_BYTES = 20 * 1024 * 1024
MAX_CSV_ROWS = 100_000
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_REQUIRED = ("identifiant", "nom", "prenom", "role")


# --- reading the store -------------------------------------------------------------------


def _ref_id(ref: Any, prefix: str) -> str | None:
    value = (ref or {}).get("reference") if isinstance(ref, dict) else None
    if isinstance(value, str) and value.startswith(prefix + "/"):
        return value.split("/", 1)[1]
    return None


def _telecom(items: Iterable[dict[str, Any]], system: str) -> str | None:
    """The first value of a system; for phones, mobile numbers only (an SMS to a
    landline reaches nobody)."""
    found = [
        c
        for c in items
        if c.get("system") == system
        and c.get("value")
        and (system != "phone" or c.get("use") == "mobile")
    ]
    return str(found[0]["value"]) if found else None


def _name(practitioner: dict[str, Any], fallback: str) -> str:
    for name in practitioner.get("name", []):
        parts = [*name.get("given", []), name.get("family", "")]
        text = name.get("text") or " ".join(p for p in parts if p)
        if text:
            return str(text)[:200]
    return fallback[:200]


def _covers(period: dict[str, Any] | None, today: str) -> bool:
    if not period:
        return True
    start, end = period.get("start", ""), period.get("end", "")
    return (not start or start[:10] <= today) and (not end or today <= end[:10])


def _available(role: dict[str, Any], today: str) -> bool:
    if role.get("active") is False or not _covers(role.get("period"), today):
        return False
    return not any(_covers(na.get("during"), today) for na in role.get("notAvailable", []))


def staff_from_role(
    role: dict[str, Any], practitioner: dict[str, Any] | None, today: str
) -> Staff | None:
    """The directory entry of one PractitionerRole (None without a practitioner)."""
    practitioner = practitioner or {}
    pid = _ref_id(role.get("practitioner"), "Practitioner")
    if pid is None:
        return None
    codes = role.get("code") or [{}]
    first = codes[0]
    coding = (first.get("coding") or [{}])[0]
    code = str(coding.get("code") or "")
    label = str(first.get("text") or coding.get("display") or code)
    if not code:
        return None
    location = (role.get("location") or [None])[0]
    organization = role.get("organization")
    skills = [
        s.get("text") or (s.get("coding") or [{}])[0].get("display")
        for s in role.get("specialty", [])
    ]
    skills += [q.get("code", {}).get("text") for q in practitioner.get("qualification", [])]
    telecoms = [*role.get("telecom", []), *practitioner.get("telecom", [])]
    return Staff(
        id=str(role["id"]),
        practitioner_id=pid,
        name=_name(practitioner, (role.get("practitioner") or {}).get("display") or pid),
        role_code=code[:64],
        role_label=label[:200],
        unit_id=_ref_id(location, "Location"),
        unit_label=((location or {}).get("display") or _ref_id(location, "Location")),
        hospital_id=_ref_id(organization, "Organization"),
        hospital_label=(
            (organization or {}).get("display") or _ref_id(organization, "Organization")
        ),
        skills=tuple(sorted({s for s in skills if s})),
        phone=_telecom(telecoms, "phone"),
        email=_telecom(telecoms, "email"),
        available=_available(role, today) and practitioner.get("active", True) is not False,
        hours=tuple(role.get("availableTime", [])),
    )


def _row(s: Staff, now: int) -> dict[str, Any]:
    return {
        "id": s.id,
        "practitioner_id": s.practitioner_id,
        "name": s.name,
        "role_code": s.role_code,
        "role_label": s.role_label,
        "unit_id": s.unit_id,
        "unit_label": (s.unit_label or "")[:200] or None,
        "hospital_id": s.hospital_id,
        "hospital_label": (s.hospital_label or "")[:200] or None,
        "skills": list(s.skills),
        "phone": s.phone,
        "email": s.email,
        "available": s.available,
        "hours": list(s.hours),
        "updated_ms": now,
    }


def put_staff(conn: Connection, entries: Sequence[Staff], now: int) -> None:
    """Insert or replace directory entries (by PractitionerRole id)."""
    ids = [s.id for s in entries]
    for i in range(0, len(ids), 500):
        conn.execute(delete(t.staff).where(t.staff.c.id.in_(ids[i : i + 500])))
    for i in range(0, len(entries), 2000):
        conn.execute(insert(t.staff), [_row(s, now) for s in entries[i : i + 2000]])


def _today(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(PARIS).date().isoformat()


def sync_directory(engine: Engine, repository: Any, now_ms: int | None = None) -> int:
    """Rebuild the directory from every current PractitionerRole; return its size."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    today = _today(now)
    people = {s.res_id: s.resource for s in repository.iter_resources(["Practitioner"])}
    entries = []
    for stored in repository.iter_resources(["PractitionerRole"]):
        role = stored.resource
        entry = staff_from_role(
            role, people.get(_ref_id(role.get("practitioner"), "Practitioner") or ""), today
        )
        if entry is not None:
            entries.append(entry)
    from hygie.mobilization.transactions import writing

    with writing(engine) as conn:
        conn.execute(delete(t.staff))
        put_staff(conn, entries, now)
    return len(entries)


# --- reading the table --------------------------------------------------------------------


def staff_of(row: Any) -> Staff:
    return Staff(
        id=row.id,
        practitioner_id=row.practitioner_id,
        name=row.name,
        role_code=row.role_code,
        role_label=row.role_label,
        unit_id=row.unit_id,
        unit_label=row.unit_label,
        hospital_id=row.hospital_id,
        hospital_label=row.hospital_label,
        skills=tuple(row.skills or ()),
        phone=row.phone,
        email=row.email,
        available=row.available,
        hours=tuple(row.hours or ()),
    )


def list_staff(
    engine: Engine,
    *,
    query: str | None = None,
    role: str | None = None,
    unit: str | None = None,
    hospital: str | None = None,
    limit: int = 200,
) -> list[Staff]:
    q = select(t.staff).order_by(t.staff.c.name, t.staff.c.id)
    if query:
        q = q.where(func.lower(t.staff.c.name).contains(query.lower(), autoescape=True))
    if role:
        q = q.where(t.staff.c.role_code == role)
    if unit:
        q = q.where(t.staff.c.unit_id == unit)
    if hospital:
        q = q.where(t.staff.c.hospital_id == hospital)
    with engine.connect() as conn:
        return [staff_of(r) for r in conn.execute(q.limit(max(1, min(limit, 5000))))]


@dataclass(frozen=True)
class DirectorySummary:
    """Counts for the directory page: people, and entries by role and by unit."""

    entries: int
    reachable: int
    unavailable: int
    roles: list[tuple[str, str, int]]
    units: list[tuple[str | None, str | None, str | None, int]]


def summary(engine: Engine) -> DirectorySummary:
    s = t.staff.c
    with engine.connect() as conn:
        entries = conn.scalar(select(func.count()).select_from(t.staff)) or 0
        reachable = (
            conn.scalar(select(func.count()).where((s.phone.is_not(None)) | (s.email.is_not(None))))
            or 0
        )
        unavailable = conn.scalar(select(func.count()).where(s.available.is_(False))) or 0
        roles = [
            (r.role_code, r.role_label, r.n)
            for r in conn.execute(
                select(
                    s.role_code, func.min(s.role_label).label("role_label"), func.count().label("n")
                )
                .group_by(s.role_code)
                .order_by(func.min(s.role_label))
            )
        ]
        units = [
            (r.unit_id, r.unit_label, r.hospital_label, r.n)
            for r in conn.execute(
                select(
                    s.unit_id,
                    func.min(s.unit_label).label("unit_label"),
                    func.min(s.hospital_label).label("hospital_label"),
                    func.count().label("n"),
                )
                .group_by(s.unit_id)
                .order_by(func.min(s.hospital_label), func.min(s.unit_label))
            )
        ]
    return DirectorySummary(entries, reachable, unavailable, roles, units)


def on_duty(hours: Sequence[dict[str, Any]], when_ms: int) -> bool:
    """Whether weekly hours (PractitionerRole.availableTime) cover this instant (Paris)."""
    local = datetime.fromtimestamp(when_ms / 1000, UTC).astimezone(PARIS)
    day, clock = _DAYS[local.weekday()], local.strftime("%H:%M:%S")
    for slot in hours:
        if day not in slot.get("daysOfWeek", _DAYS):
            continue
        if slot.get("allDay"):
            return True
        start = slot.get("availableStartTime", "00:00:00")
        end = slot.get("availableEndTime", "24:00:00")
        if (start <= clock < end) if start <= end else (clock >= start or clock < end):
            return True
    return False


# --- CSV import --------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did: lines read, people and roles written, refused lines."""

    lines: int = 0
    written: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def _hash_id(*parts: str) -> str:
    return "mob-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _mobile(raw: str) -> str:
    try:
        number = phonenumbers.parse(raw, "FR")
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"telephone: {raw!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"telephone: {raw!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    sample = text[:4096]
    delimiter = ";" if sample.count(";") >= sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if reader.fieldnames is None:
        raise InvalidInput("the file is empty")
    names = [_slug(n or "").replace("-", "_") for n in reader.fieldnames]
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise InvalidInput(
            f"missing column(s): {', '.join(missing)} (expected: {', '.join(_REQUIRED)}, ...)"
        )
    reader.fieldnames = names
    for number, row in enumerate(reader, start=2):
        yield number, {k: (v or "").strip() for k, v in row.items() if k}


def resources_from_csv_row(
    row: dict[str, str],
    known_roles: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Practitioner and PractitionerRole of one CSV line (raise InvalidInput)."""
    for column in _REQUIRED:
        if not row.get(column):
            raise InvalidInput(f"{column}: required")
    ident = row["identifiant"][:64]
    pid = _hash_id(ident)
    role_text = row["role"]
    if role_text in known_roles:  # a code of the directory
        code: str | None = role_text
        label = row.get("role_libelle") or known_roles[role_text]
    else:  # a label: the directory's code for it, else a local code made from it
        code = next((c for c, text in known_roles.items() if _slug(text) == _slug(role_text)), None)
        label = row.get("role_libelle") or role_text
    telecom: list[dict[str, Any]] = []
    if row.get("telephone"):
        telecom.append({"system": "phone", "value": _mobile(row["telephone"]), "use": "mobile"})
    if row.get("email"):
        email = row["email"]
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email) or len(email) > 320:
            raise InvalidInput(f"email: {email!r} is not an e-mail address")
        telecom.append({"system": "email", "value": email, "use": "work"})
    practitioner: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": pid,
        "active": True,
        "identifier": [{"system": STAFF_ID_SYSTEM, "value": ident}],
        "name": [{"family": row["nom"][:100], "given": [row["prenom"][:100]]}],
    }
    if telecom:
        practitioner["telecom"] = telecom
    coding = (
        {"system": "http://snomed.info/sct", "code": code}
        if code and code.isdigit()
        else {"system": LOCAL_ROLE_SYSTEM, "code": code or _slug(role_text)[:64]}
    )
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": _hash_id(ident, coding["code"], row.get("unite", "")),
        "active": True,
        "practitioner": {
            "reference": f"Practitioner/{pid}",
            "display": f"{row['prenom']} {row['nom']}"[:200],
        },
        "code": [{"coding": [coding], "text": label[:200]}],
    }
    if row.get("unite"):
        role["location"] = [
            {
                "reference": f"Location/{row['unite']}",
                "display": row.get("unite_libelle") or row["unite"],
            }
        ]
    if row.get("etablissement"):
        role["organization"] = {
            "reference": f"Organization/{row['etablissement']}",
            "display": row.get("etablissement_libelle") or row["etablissement"],
        }
    skills = [s.strip() for s in re.split(r"\|", row.get("competences", "")) if s.strip()]
    if skills:
        role["specialty"] = [{"text": s[:200]} for s in skills]
    if telecom:
        role["telecom"] = telecom
    available = _slug(row.get("disponible", "oui") or "oui")
    if available in ("non", "no", "0", "false", "indisponible"):
        role["notAvailable"] = [{"description": "Indisponible (import)"}]
    elif available not in ("oui", "yes", "1", "true", "disponible"):
        raise InvalidInput(f"disponible: oui or non, not {row.get('disponible')!r}")
    return practitioner, role


def import_csv(
    engine: Engine, repository: Any, data: bytes, now_ms: int | None = None, chunk: int = 1000
) -> ImportReport:
    """Write the people of a CSV file to the store and to the directory.

    Lines with an error are reported (line number and reason) and skipped; the others
    are written in chunks, each one store transaction then one directory update.
    """
    if len(data) > MAX_CSV_BYTES:
        raise InvalidInput(f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the file is not UTF-8 text") from exc
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    today = _today(now)
    with engine.connect() as conn:
        known = {
            r.role_code: r.role_label
            for r in conn.execute(select(t.staff.c.role_code, t.staff.c.role_label).distinct())
        }
    from hygie.store.outcomes import FhirError

    report = ImportReport()
    batch: list[tuple[int, dict[str, Any], dict[str, Any]]] = []

    def flush() -> None:
        prepared, entries = [], []
        for line, person, role in batch:
            try:
                prepared += [repository.prepare(person), repository.prepare(role)]
            except FhirError as exc:
                report.errors.append((line, _fhir_message(exc)))
                continue
            entry = staff_from_role(role, person, today)
            if entry is not None:
                entries.append(entry)
        if prepared:
            repository.put_many(prepared)
            from hygie.mobilization.transactions import writing

            with writing(engine) as conn:
                put_staff(conn, entries, now)
            report.written += len(entries)
        batch.clear()

    for line, row in _rows(text):
        report.lines += 1
        if report.lines > MAX_CSV_ROWS:
            raise InvalidInput(f"the file has more than {MAX_CSV_ROWS} lines")
        try:
            person, role = resources_from_csv_row(row, known)
        except InvalidInput as exc:
            report.errors.append((line, str(exc)))
            continue
        batch.append((line, person, role))
        if len(batch) >= chunk:
            flush()
    flush()
    return report


def _fhir_message(exc: Exception) -> str:
    outcome = getattr(exc, "outcome", None) or {}
    issues = outcome.get("issue", []) if isinstance(outcome, dict) else []
    if issues:
        first = issues[0]
        where = ", ".join(first.get("expression", []))
        return f"{first.get('diagnostics', 'invalid')}" + (f" ({where})" if where else "")
    return type(exc).__name__
