"""Online pre-admission files: invitation, answers, documents, review state.

A file is opened for a planned stay (by staff, or when an appointment of a type that
needs it is booked) and reached by the patient through a link whose secret is the
credential. The patient fills it in and uploads documents (identity card, insurance
card...) as often as needed until submitting; staff then validate it, which writes
the FHIR resources (``admission.py``), or send it back with a note. Answers are
checked here field by field, so a reviewer sees clean data and the store never
receives a malformed resource from a typo. Uploads are limited in size and number,
and only PDF, JPEG and PNG files are accepted, recognised by their first bytes rather
than by what the browser claims.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.booking import token_hash
from hygie.scheduling.errors import InvalidInput, InvalidState, NotFound, PayloadTooLarge
from hygie.scheduling.ins import nir_problem, nir_sex, normalize_nir
from hygie.scheduling.model import PreadmissionStatus

#: What documents may be uploaded, with their French labels.
DOCUMENT_KINDS = {
    "identity": "Pièce d'identité",
    "insurance-card": "Carte Vitale ou attestation de droits",
    "complementary-card": "Carte de complémentaire santé",
    "prescription": "Ordonnance ou courrier du médecin",
    "other": "Autre document",
}
_MAGIC = {b"%PDF-": "application/pdf", b"\xff\xd8\xff": "image/jpeg",
          b"\x89PNG\r\n\x1a\n": "image/png"}
GENDERS = ("female", "male", "other", "unknown")
RELATIONSHIPS = {"C": "Personne à prévenir", "N": "Proche (famille)",
                 "E": "Employeur", "U": "Autre"}
CONSENTS = {
    "care": "J'accepte les soins prévus et l'hospitalisation programmée",
    "data_sharing": "J'accepte le partage de mes données de santé entre les équipes du GHT",
    "trusted_person": "Je désigne la personne à prévenir comme personne de confiance",
}


@dataclass(frozen=True)
class Upload:
    id: int
    kind: str
    title: str
    content_type: str
    size: int
    sha256: str


def new_file_id() -> str:
    return uuid.uuid4().hex


def invite(conn: Connection, *, file_id: str, secret: str, site_id: str,
           planned_start_utc: int, family: str, given: str, birth_date: str,
           phone: str | None, now: int, booking_id: str | None = None) -> None:
    """Open a pre-admission file reached with ``secret`` (kept as its hash)."""
    conn.execute(insert(t.preadmission).values(
        id=file_id, token=token_hash(secret), booking_id=booking_id, site_id=site_id,
        planned_start_utc=planned_start_utc, family=family, given=given,
        birth_date=birth_date, phone=phone, status=PreadmissionStatus.INVITED,
        created_utc=now, updated_utc=now))


def get(conn: Connection, file_id: str) -> Any:
    row = conn.execute(select(t.preadmission).where(t.preadmission.c.id == file_id)).first()
    if row is None:
        raise NotFound(f"no pre-admission file {file_id!r}")
    return row


def by_secret(conn: Connection, secret: str) -> Any:
    row = conn.execute(select(t.preadmission).where(
        t.preadmission.c.token == token_hash(secret))).first()
    if row is None:
        raise NotFound("this link does not match any pre-admission file")
    return row


def listing(conn: Connection, status: str | None = None, limit: int = 200) -> list[Any]:
    query = select(t.preadmission).order_by(t.preadmission.c.planned_start_utc).limit(limit)
    if status:
        query = query.where(t.preadmission.c.status == status)
    return list(conn.execute(query))


def _text(data: dict[str, Any], key: str, required: bool, max_len: int = 100) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{key} is required")
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInput(f"{key} must be text of at most {max_len} characters")
    return value.strip()


def clean_answers(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """Check the answers; returns them cleaned, and warnings for the reviewer."""
    if not isinstance(raw, dict):
        raise InvalidInput("the answers must be a JSON object")
    warnings: list[str] = []
    ident = raw.get("identity") or {}
    if not isinstance(ident, dict):
        raise InvalidInput("identity must be an object")
    identity = {k: _text(ident, k, k in ("family", "given", "birth_date", "gender"))
                for k in ("family", "given", "birth_date", "gender", "ins", "birth_place",
                          "address_line", "postal_code", "city", "email", "phone")}
    try:
        born = date.fromisoformat(identity["birth_date"] or "")
    except ValueError as exc:
        raise InvalidInput("identity.birth_date must be YYYY-MM-DD") from exc
    if born > date.today() or born.year < 1900:
        raise InvalidInput("identity.birth_date is not plausible")
    if identity["gender"] not in GENDERS:
        raise InvalidInput(f"identity.gender is one of {', '.join(GENDERS)}")
    if identity["postal_code"] and not re.fullmatch(r"\d{5}", identity["postal_code"]):
        raise InvalidInput("identity.postal_code has 5 digits")
    if identity["email"] and "@" not in identity["email"]:
        raise InvalidInput("identity.email is not an e-mail address")
    if identity["ins"]:
        problem = nir_problem(identity["ins"])
        if problem:
            raise InvalidInput(problem)
        identity["ins"] = normalize_nir(identity["ins"])
        sex = nir_sex(identity["ins"])
        if sex and identity["gender"] in ("female", "male") and sex != identity["gender"]:
            warnings.append("the sex in the INS differs from the declared gender")
        if identity["ins"][1:3] != f"{born.year % 100:02d}":
            warnings.append("the year of birth in the INS differs from the birth date")
    else:
        warnings.append("no INS given: identity to be checked at admission")
    ins_raw = raw.get("insurance") or {}
    if not isinstance(ins_raw, dict):
        raise InvalidInput("insurance must be an object")
    insurance = {k: _text(ins_raw, k, False) for k in ("amo_nir", "amo_fund", "amc_name",
                                                         "amc_member")}
    if insurance["amo_nir"]:
        problem = nir_problem(insurance["amo_nir"])
        if problem:
            raise InvalidInput("insurance.amo_nir: " + problem)
        insurance["amo_nir"] = normalize_nir(insurance["amo_nir"])
    else:
        warnings.append("no social security number: insurance to be checked")
    if bool(insurance["amc_name"]) != bool(insurance["amc_member"]):
        raise InvalidInput("a complementary insurance needs its name and member number")
    contact_raw = raw.get("contact") or {}
    if not isinstance(contact_raw, dict):
        raise InvalidInput("contact must be an object")
    contact = {k: _text(contact_raw, k, False) for k in ("family", "given", "relationship",
                                                         "phone")}
    if contact["family"] and not contact["phone"]:
        raise InvalidInput("the contact person needs a phone number")
    if contact["relationship"] and contact["relationship"] not in RELATIONSHIPS:
        raise InvalidInput(f"contact.relationship is one of {', '.join(RELATIONSHIPS)}")
    consents_raw = raw.get("consents") or {}
    if not isinstance(consents_raw, dict):
        raise InvalidInput("consents must be an object")
    consents = {k: bool(consents_raw.get(k, False)) for k in CONSENTS}
    if consents["trusted_person"] and not contact["family"]:
        raise InvalidInput("a trusted person must be named in the contact section")
    return {"identity": identity, "insurance": insurance, "contact": contact,
            "consents": consents}, warnings


def save_answers(conn: Connection, file_id: str, answers: dict[str, Any], now: int) -> None:
    row = get(conn, file_id)
    if row.status not in (PreadmissionStatus.INVITED, PreadmissionStatus.REJECTED):
        raise InvalidState("this file was submitted: it can no longer be changed")
    conn.execute(update(t.preadmission).where(t.preadmission.c.id == file_id).values(
        answers=orjson.dumps(answers).decode(), updated_utc=now))


def add_upload(conn: Connection, file_id: str, kind: str, title: str, data: bytes, now: int,
               max_bytes: int, max_files: int) -> Upload:
    row = get(conn, file_id)
    if row.status not in (PreadmissionStatus.INVITED, PreadmissionStatus.REJECTED):
        raise InvalidState("this file was submitted: documents can no longer be added")
    if kind not in DOCUMENT_KINDS:
        raise InvalidInput(f"the document kind is one of {', '.join(DOCUMENT_KINDS)}")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"a document may not exceed {max_bytes // (1024 * 1024)} MB")
    if not data:
        raise InvalidInput("the document is empty")
    content_type = next((ct for magic, ct in _MAGIC.items() if data.startswith(magic)), None)
    if content_type is None:
        raise InvalidInput("only PDF, JPEG and PNG documents are accepted")
    count = conn.execute(select(func.count()).select_from(t.upload).where(
        t.upload.c.preadmission_id == file_id)).scalar_one()
    if count >= max_files:
        raise InvalidInput(f"at most {max_files} documents per file")
    title = (title or DOCUMENT_KINDS[kind]).strip()[:200]
    digest = hashlib.sha256(data).hexdigest()
    upload_id = int(conn.execute(insert(t.upload).values(
        preadmission_id=file_id, kind=kind, title=title, content_type=content_type, data=data,
        sha256=digest, created_utc=now)).inserted_primary_key[0])
    return Upload(upload_id, kind, title, content_type, len(data), digest)


def uploads(conn: Connection, file_id: str) -> list[Upload]:
    rows = conn.execute(select(t.upload.c.id, t.upload.c.kind, t.upload.c.title,
                               t.upload.c.content_type, func.length(t.upload.c.data),
                               t.upload.c.sha256)
                        .where(t.upload.c.preadmission_id == file_id).order_by(t.upload.c.id))
    return [Upload(*r) for r in rows]


def upload_data(conn: Connection, file_id: str, upload_id: int) -> tuple[str, bytes]:
    row = conn.execute(select(t.upload.c.content_type, t.upload.c.data).where(
        t.upload.c.preadmission_id == file_id, t.upload.c.id == upload_id)).first()
    if row is None:
        raise NotFound(f"no document {upload_id} in this file")
    return str(row.content_type), bytes(row.data)


def mark(conn: Connection, file_id: str, status: str, now: int, **values: Any) -> None:
    conn.execute(update(t.preadmission).where(t.preadmission.c.id == file_id).values(
        status=status, updated_utc=now, **values))
