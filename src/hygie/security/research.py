"""Pseudonymised research export, with a k-anonymity report on what it keeps.

For a research project (one secret project key), every patient's record leaves as NDJSON
with:

* **keyed pseudonyms** for every id and every reference: ``HMAC-SHA256(project key,
  "Type/id")``, hex. The same key gives the same pseudonyms at every export, so a
  project can add data over time; another project's key gives unrelated ones, so two
  projects cannot link their extracts; without the key a pseudonym cannot be traced back.
* **direct identifiers removed**: names, telecoms, street addresses, photos, contacts,
  identifiers (INS, IPP...), narrative text, free-text notes, the display text of
  references, attachments' content and URLs, ``meta`` tags.
* **dates shifted per patient**: every date of a patient's resources moves by the same
  number of days (from the key and the patient, never zero, within ``max_shift_days``),
  so intervals within a record are kept exactly, and calendar dates are not.
* **quasi-identifiers kept, generalised as needed**: sex, year of birth (after the
  shift), and the département (first two digits of the postal code). With ``min_k``,
  birth years are widened to 5- then 10-year bands, then the département is dropped,
  until at most 5 % of the patients are in combinations shared by fewer than ``min_k``;
  those few are left out, so that every combination exported is shared by ``min_k``.
  The report says what k the extract reached, what was generalised and how many
  patients were suppressed (Sweeney 2002; the CNIL's guidance on anonymisation asks
  for such a measure of re-identification risk).

The transformation walks JSON generically rather than per resource type, so any type of
the patient compartment is handled the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

#: Elements removed wherever they appear: direct identifiers and free text.
REMOVED_KEYS = frozenset({
    "identifier", "name", "telecom", "photo", "contact", "text", "note", "display",
    "comment", "description", "address", "meta", "url", "data", "title", "hash",
    "generalPractitioner", "link", "contained", "signature", "presentedForm",
})
#: Elements of Patient kept (after generalisation); everything else is removed.
PATIENT_KEPT = frozenset({"resourceType", "id", "gender", "birthDate", "deceasedBoolean",
                          "deceasedDateTime", "active", "maritalStatus", "multipleBirthBoolean"})
_DATE = re.compile(r"^(\d{4})(-\d{2})?(-\d{2})?(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?$")
_REFERENCE = re.compile(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/.*)?$")


@dataclass
class KAnonymityReport:
    """What the export kept of the quasi-identifiers and how identifying it is."""

    quasi_identifiers: list[str]
    patients: int = 0
    exported_patients: int = 0
    suppressed_patients: int = 0
    k: int = 0
    groups: int = 0
    patients_in_groups_under_5: int = 0
    generalisation: list[str] = field(default_factory=list)
    group_sizes: dict[int, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        sizes = ", ".join(f"{size}: {count}" for size, count in sorted(self.group_sizes.items())
                          [:12])
        return [
            f"quasi-identifiers kept: {', '.join(self.quasi_identifiers)}",
            f"generalisation: {', '.join(self.generalisation) or 'none'}",
            f"patients: {self.patients}, exported: {self.exported_patients}, "
            f"suppressed: {self.suppressed_patients}",
            f"equivalence classes: {self.groups}; k = {self.k}",
            f"patients in classes smaller than 5: {self.patients_in_groups_under_5}",
            f"class sizes (size: number of classes): {sizes}",
        ]


class Pseudonymiser:
    """Pseudonyms, date shifts and removals for one project key."""

    def __init__(self, project_key: bytes, max_shift_days: int = 180) -> None:
        if len(project_key) < 16:
            raise ValueError("a project key is at least 16 bytes")
        self.key = project_key
        self.max_shift_days = max_shift_days

    def pseudonym(self, res_type: str, res_id: str) -> str:
        return hmac.new(self.key, f"{res_type}/{res_id}".encode(), hashlib.sha256).hexdigest()[:40]

    def shift_days(self, patient_id: str) -> int:
        """The patient's date shift: in [-max, max], never zero."""
        digest = hmac.new(self.key, f"shift/{patient_id}".encode(), hashlib.sha256).digest()
        value = int.from_bytes(digest[:8], "big") % (2 * self.max_shift_days) \
            - self.max_shift_days
        return value + 1 if value >= 0 else value

    def _shift(self, text: str, days: int) -> str:
        match = _DATE.match(text)
        if match is None:
            return text
        year, month, day, clock = match.group(1), match.group(2), match.group(3), match.group(4)
        if month is None:
            moved = date(int(year), 7, 1) + timedelta(days=days)
            return f"{moved.year:04d}"
        if day is None:
            moved = date(int(year), int(month[1:]), 15) + timedelta(days=days)
            return f"{moved.year:04d}-{moved.month:02d}"
        try:
            moved = date(int(year), int(month[1:]), int(day[1:])) + timedelta(days=days)
        except ValueError:
            return text
        return moved.isoformat() + (clock or "")

    def transform(self, resource: dict[str, Any], patient_id: str) -> dict[str, Any]:
        """The pseudonymised copy of one resource of ``patient_id``'s record."""
        days = self.shift_days(patient_id)
        res_type = str(resource.get("resourceType"))
        source = resource
        if res_type == "Patient":
            source = {k: v for k, v in resource.items() if k in PATIENT_KEPT}
        out = self._walk(source, days, top=True)
        out["id"] = self.pseudonym(res_type, str(resource.get("id")))
        return out

    def _walk(self, value: Any, days: int, top: bool = False) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key in REMOVED_KEYS and not (top and key == "resourceType"):
                    continue
                if key == "reference" and isinstance(item, str):
                    match = _REFERENCE.match(item)
                    if match is None:
                        continue  # a reference we cannot pseudonymise is dropped
                    out[key] = f"{match.group(1)}/{self.pseudonym(match.group(1), match.group(2))}"
                    continue
                if key == "id" and top:
                    continue
                out[key] = self._walk(item, days)
            return out
        if isinstance(value, list):
            return [self._walk(v, days) for v in value]
        if isinstance(value, str):
            return self._shift(value, days)
        return value


def _department(patient: dict[str, Any]) -> str | None:
    for address in patient.get("address") or []:
        postal = str((address or {}).get("postalCode") or "")
        if len(postal) >= 2 and postal[:2].isdigit():
            return postal[:3] if postal.startswith("97") else postal[:2]
        if postal[:2] in ("2A", "2B"):
            return postal[:2]
    return None


def _band(year: str | None, width: int) -> str | None:
    if not year or not year[:4].isdigit():
        return None
    if width == 1:
        return year[:4]
    start = int(year[:4]) // width * width
    return f"{start}-{start + width - 1}"


def k_anonymise(keys: dict[str, tuple[str | None, str | None, str | None]], min_k: int,
                max_suppressed: float = 0.05
                ) -> tuple[dict[str, tuple[str | None, ...]], KAnonymityReport]:
    """Generalise (sex, birth year, département) per patient until at most
    ``max_suppressed`` of the patients are in classes smaller than ``min_k``; those are
    then left out, so every class exported has at least ``min_k`` patients.

    Returns the kept quasi-identifiers of the patients exported, and the report.
    """
    report = KAnonymityReport(["sex", "birth year", "département"], patients=len(keys))
    ladder = [(1, True, "birth year"), (5, True, "birth year in 5-year bands"),
              (10, True, "birth year in 10-year bands"),
              (10, False, "birth year in 10-year bands, département removed")]
    chosen: dict[str, tuple[str | None, ...]] = {}
    label = ladder[0][2]
    for width, with_dept, label in ladder:  # noqa: B007 (the last one tried is reported)
        chosen = {pid: (sex, _band(year, width), dept if with_dept else None)
                  for pid, (sex, year, dept) in keys.items()}
        sizes = Counter(chosen.values())
        suppressed = sum(n for n in sizes.values() if n < min_k)
        if min_k <= 1 or suppressed <= max_suppressed * len(keys):
            break
    if label != ladder[0][2]:
        report.generalisation = [label]
    if min_k > 1:
        chosen = {pid: qi for pid, qi in chosen.items() if sizes[qi] >= min_k}
    kept_sizes = Counter(chosen.values())
    report.exported_patients = len(chosen)
    report.suppressed_patients = len(keys) - len(chosen)
    report.groups = len(kept_sizes)
    report.k = min(kept_sizes.values()) if kept_sizes else 0
    report.patients_in_groups_under_5 = sum(n for n in kept_sizes.values() if n < 5)
    report.group_sizes = dict(Counter(kept_sizes.values()))
    return chosen, report


def patient_of(resource: dict[str, Any]) -> str | None:
    """The patient a resource of the compartment belongs to (its subject or patient)."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    for key in ("subject", "patient", "beneficiary", "individual"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            match = _REFERENCE.match(ref["reference"])
            if match and match.group(1) == "Patient":
                return match.group(2)
    return None


@dataclass
class ExportResult:
    folder: Path
    files: dict[str, int]
    report: KAnonymityReport


def export(patients: Iterable[dict[str, Any]], resources: Iterator[dict[str, Any]],
           folder: Path, project_key: bytes, *, min_k: int = 5,
           max_shift_days: int = 180) -> ExportResult:
    """Write the pseudonymised extract of ``patients`` and their ``resources``."""
    pseudo = Pseudonymiser(project_key, max_shift_days)
    keys: dict[str, tuple[str | None, str | None, str | None]] = {}
    shifted: dict[str, dict[str, Any]] = {}
    for patient in patients:
        pid = str(patient.get("id"))
        out = pseudo.transform(patient, pid)
        birth = out.get("birthDate")
        keys[pid] = (patient.get("gender"), birth[:4] if isinstance(birth, str) else None,
                     _department(patient))
        shifted[pid] = out
    kept, report = k_anonymise(keys, min_k)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}
    handles: dict[str, Any] = {}
    try:
        def write(resource: dict[str, Any]) -> None:
            res_type = str(resource["resourceType"])
            if res_type not in handles:
                handles[res_type] = open(folder / f"{res_type}.ndjson", "wb")  # noqa: SIM115
                files[res_type] = 0
            handles[res_type].write(orjson.dumps(resource) + b"\n")
            files[res_type] += 1

        for pid, out in shifted.items():
            if pid not in kept:
                continue
            sex, birth, dept = kept[pid]
            out.pop("birthDate", None)
            if birth and "-" not in birth:
                out["birthDate"] = birth
            elif birth:
                out["extension"] = [*out.get("extension", []), {
                    "url": "urn:hygie:research:birth-years", "valueString": birth}]
            if dept:
                out["address"] = [{"postalCode": dept, "country": "FR"}]
            if sex is None:
                out.pop("gender", None)
            write(out)
        for resource in resources:
            pid = patient_of(resource)
            if pid is None or pid not in kept or resource.get("resourceType") == "Patient":
                continue
            write(pseudo.transform(resource, pid))
    finally:
        for handle in handles.values():
            handle.close()
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    (folder / "k-anonymity.json").write_bytes(orjson.dumps(report.__dict__, option=options))
    return ExportResult(folder, files, report)

