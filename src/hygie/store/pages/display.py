"""How FHIR values read in French on a page: dates in Paris time, names, codes, contacts.

The store keeps times in UTC and FHIR dates may be partial (``2020``, ``2020-03``), so
every date shown goes through ``parse_when``/``format_when``, which keep the precision
that was recorded and convert instants to Europe/Paris
(https://hl7.org/fhir/R4/datatypes.html#dateTime). Names follow the French usage of the
INS reference (family name in capitals, then given names), and identifiers are labelled
by what they are (INS, IPP...) rather than by their system URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

Json = dict[str, Any]

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")

GENDERS = {"male": "Homme", "female": "Femme", "other": "Autre", "unknown": "Inconnu"}

#: Identifier systems with a well-known short name: the French national ones (INS-NIR,
#: INS-NIA and the test INS, ANS "Référentiel INS"), RPPS, FINESS, and our own.
_SYSTEM_LABELS = {
    "urn:oid:1.2.250.1.213.1.4.8": "INS",
    "urn:oid:1.2.250.1.213.1.4.9": "INS (NIA)",
    "urn:oid:1.2.250.1.213.1.4.10": "INS (test)",
    "urn:oid:1.2.250.1.213.1.4.11": "INS (démo)",
    "urn:oid:1.2.250.1.71.4.2.1": "RPPS",
}
_SYSTEM_SUFFIX_LABELS = {"/sid/ins": "INS", "/sid/ipp": "IPP", "/sid/rpps": "RPPS",
                         "/sid/finess": "FINESS", "/sid/nir": "NIR"}
#: v2-0203 identifier type codes (https://terminology.hl7.org/CodeSystem-v2-0203.html).
_TYPE_LABELS = {"NH": "INS", "NI": "INS", "SS": "NIR", "PI": "IPP", "MR": "N° de dossier",
                "PPN": "Passeport", "DL": "Permis de conduire"}
#: Identifier labels that mean "the national health identity" (shown first, spaced).
NATIONAL_LABELS = frozenset({"INS", "INS (NIA)", "INS (test)", "INS (démo)", "NIR"})


def parse_when(text: Any) -> tuple[datetime, str] | None:
    """A FHIR date/dateTime/instant as (aware datetime, precision), or None if unusable.

    Precision is ``year``, ``month``, ``day`` or ``time``. A date without time stands for
    the start of that day in Paris; a time without an offset (invalid in FHIR, yet seen)
    is read as UTC, the store's convention.
    """
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    partial = _PARTIAL_DATE.match(value)
    try:
        if partial:
            year, month, day = partial.groups()
            moment = datetime(int(year), int(month or 1), int(day or 1), tzinfo=PARIS)
            precision = "day" if day else "month" if month else "year"
            return moment, precision
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, "time"


def format_moment(moment: datetime, *, with_time: bool = True) -> str:
    """An aware datetime as ``12/03/2020 14:05`` in Paris time."""
    local = moment.astimezone(PARIS)
    return local.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def format_when(text: Any, empty: str = "") -> str:
    """A FHIR date or dateTime for display, at the precision it was recorded with."""
    parsed = parse_when(text)
    if parsed is None:
        return empty
    moment, precision = parsed
    if precision == "year":
        return f"{moment.year:04d}"
    if precision == "month":
        return f"{moment.month:02d}/{moment.year:04d}"
    return format_moment(moment, with_time=precision == "time")


def iso_when(text: Any) -> str:
    """The machine-readable form for a ``<time datetime>`` attribute (or empty)."""
    parsed = parse_when(text)
    if parsed is None:
        return ""
    moment, precision = parsed
    if precision == "time":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(text)


def sort_key(text: Any) -> float:
    """Seconds since the epoch for sorting (unknown dates sort as oldest)."""
    parsed = parse_when(text)
    return parsed[0].timestamp() if parsed else float("-inf")


def today_paris() -> date:
    return datetime.now(PARIS).date()


def age_years(birth: Any, at: date | None = None) -> int | None:
    """Completed years of age on ``at`` (today in Paris by default), None if unknown."""
    parsed = parse_when(birth)
    if parsed is None:
        return None
    born, precision = parsed[0].date(), parsed[1]
    day = at or today_paris()
    years = day.year - born.year
    if precision != "year" and (day.month, day.day) < (born.month, born.day):
        years -= 1
    return years


def age_text(birth: Any, at: date | None = None) -> str:
    """Age in the clinical usage: years from 2 years on, months before, days at first."""
    parsed = parse_when(birth)
    if parsed is None:
        return ""
    born, precision = parsed
    day = at or today_paris()
    born_day = born.date()
    if precision == "year":
        return f"{day.year - born_day.year} ans"
    months = (day.year - born_day.year) * 12 + day.month - born_day.month
    if precision == "day" and day.day < born_day.day:
        months -= 1
    if months < 0:
        return ""
    if months >= 24:
        return f"{months // 12} ans"
    if months >= 1 or precision == "month":
        return f"{months} mois"
    days = (day - born_day).days
    return f"{days} jour{'s' if days > 1 else ''}"


def concept_text(concept: Any, empty: str = "") -> str:
    """The human text of a CodeableConcept: its text, else a coding's display or code."""
    if not isinstance(concept, dict):
        return empty
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return str(concept["text"]).strip()
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            return str(coding["code"])
    return empty


def concepts_text(concepts: Any) -> list[str]:
    """The texts of a list of CodeableConcepts, skipping empty ones."""
    if not isinstance(concepts, list):
        return []
    return [t for t in (concept_text(c) for c in concepts) if t]


def codes_in(concept: Any, system: str | None = None) -> list[str]:
    """The codes of a CodeableConcept (of one system when given)."""
    if not isinstance(concept, dict):
        return []
    return [str(c["code"]) for c in concept.get("coding") or []
            if isinstance(c, dict) and c.get("code")
            and (system is None or c.get("system") == system)]


def human_name(names: Any) -> str:
    """The name to show: the official (else usual, else first) HumanName, FAMILY Given."""
    if not isinstance(names, list) or not names:
        return ""
    chosen = None
    for use in ("official", "usual", None):
        chosen = next((n for n in names if isinstance(n, dict)
                       and (use is None or n.get("use") == use)), None)
        if chosen:
            break
    if not chosen:
        return ""
    family = str(chosen.get("family") or "").upper()
    given = " ".join(str(g) for g in chosen.get("given") or [] if g)
    text = " ".join(p for p in (family, given) if p)
    return text or str(chosen.get("text") or "")


def other_names(names: Any, shown: str) -> list[str]:
    """Other names worth showing (maiden name, usual name) besides the one shown."""
    if not isinstance(names, list):
        return []
    labels = {"maiden": "née", "usual": "nom d'usage", "nickname": "surnom", "old": "ancien nom"}
    out = []
    for name in names:
        if not isinstance(name, dict):
            continue
        text = human_name([name])
        if text and text != shown:
            out.append(f"{labels.get(str(name.get('use')), 'autre nom')} {text}")
    return out


def reference_display(ref: Any, names: dict[str, str] | None = None, empty: str = "") -> str:
    """A Reference for display: its ``display``, else the name resolved for its target."""
    if not isinstance(ref, dict):
        return empty
    if ref.get("display"):
        return str(ref["display"])
    target = ref.get("reference")
    if isinstance(target, str) and names and target in names:
        return names[target]
    return empty


@dataclass(frozen=True)
class IdentifierView:
    """One identifier as shown: a short label, the value laid out for reading."""

    label: str
    value: str
    national: bool


def identifier_label(identifier: Json) -> str:
    system = str(identifier.get("system") or "")
    if system in _SYSTEM_LABELS:
        return _SYSTEM_LABELS[system]
    for suffix, label in _SYSTEM_SUFFIX_LABELS.items():
        if system.endswith(suffix):
            return label
    for code in codes_in(identifier.get("type")):
        if code in _TYPE_LABELS:
            return _TYPE_LABELS[code]
    return concept_text(identifier.get("type")) or "Identifiant"


def spaced_nir(value: str) -> str:
    """A 15-digit NIR/INS grouped as printed on a carte Vitale: 1 84 12 76 451 089 46."""
    if len(value) != 15 or not value[0].isdigit():
        return value
    groups = (value[0], value[1:3], value[3:5], value[5:7], value[7:10], value[10:13], value[13:])
    return " ".join(groups)


def identifiers_view(identifiers: Any) -> list[IdentifierView]:
    """Identifiers to show, national identity first; entries without a value are left out."""
    if not isinstance(identifiers, list):
        return []
    out = []
    for ident in identifiers:
        if not isinstance(ident, dict) or not ident.get("value"):
            continue
        label = identifier_label(ident)
        national = label in NATIONAL_LABELS
        value = str(ident["value"])
        out.append(IdentifierView(label, spaced_nir(value) if national else value, national))
    return sorted(out, key=lambda i: not i.national)


def phone_text(value: str) -> str:
    """A French number for reading: +33612345678 -> 06 12 34 56 78; others unchanged."""
    digits = value.replace(" ", "").replace(".", "")
    if digits.startswith("+33") and len(digits) == 12 and digits[3:].isdigit():
        digits = "0" + digits[3:]
    if len(digits) == 10 and digits.isdigit() and digits.startswith("0"):
        return " ".join(digits[i:i + 2] for i in range(0, 10, 2))
    return value


def telecom_view(telecoms: Any) -> list[tuple[str, str, str]]:
    """(label, text, href) for each ContactPoint with a value."""
    labels = {"phone": "Tél.", "email": "Courriel", "fax": "Fax", "sms": "SMS",
              "url": "Site", "pager": "Bip", "other": "Contact"}
    uses = {"home": "domicile", "work": "travail", "mobile": "mobile", "temp": "temporaire"}
    out = []
    for point in telecoms if isinstance(telecoms, list) else []:
        if not isinstance(point, dict) or not point.get("value"):
            continue
        system = str(point.get("system") or "other")
        value = str(point["value"])
        label = labels.get(system, "Contact")
        if point.get("use") in uses:
            label += f" ({uses[str(point['use'])]})"
        if system in ("phone", "sms"):
            out.append((label, phone_text(value), "tel:" + value.replace(" ", "")))
        elif system == "email":
            out.append((label, value, "mailto:" + value))
        else:
            out.append((label, value, ""))
    return out


def address_text(address: Any) -> str:
    """One line for an Address: lines, postal code and city."""
    if not isinstance(address, dict):
        return ""
    if address.get("text") and not address.get("line"):
        return str(address["text"])
    lines = [str(x) for x in address.get("line") or [] if x]
    town = " ".join(str(x) for x in (address.get("postalCode"), address.get("city")) if x)
    parts = [*lines, town] if town else lines
    if address.get("country") and str(address["country"]).upper() not in ("FR", "FRA", "FRANCE"):
        parts.append(str(address["country"]))
    return ", ".join(parts)


def duration_text(start: datetime, end: datetime) -> str:
    """A stay's length: hours under a day, else days (calendar nights, as hospitals count)."""
    span = end - start
    if span < timedelta(0):
        return ""
    if span < timedelta(days=1):
        hours = int(span.total_seconds() // 3600)
        return f"{hours} h" if hours else f"{int(span.total_seconds() // 60)} min"
    days = (end.astimezone(PARIS).date() - start.astimezone(PARIS).date()).days
    return f"{days} jour{'s' if days > 1 else ''}"


def number_text(value: float, decimals: int) -> str:
    """A number the French way: decimal comma, fixed decimals."""
    return f"{value:.{decimals}f}".replace(".", ",")
