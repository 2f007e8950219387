"""Emergency access ("break the glass"): opening a record out of reach, with a reason.

A practitioner who must treat a patient outside their hospital's reach (an emergency
transfer, a night on call for the territory) declares why; the record then opens for
``EMERGENCY_HOURS``. The grant is an AuditEvent with purpose of use ``BTG``
(http://terminology.hl7.org/CodeSystem/v3-ActReason), every access made through it is
flagged the same way, and the grant stays on the review list until an auditor or an
administrator has looked at it and written what they found.

Exception tree::

    ValueError
     +-- EmergencyRefused     the request cannot be granted (no reason, wrong kind...)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from hygie.platform import write_transaction
from hygie.security.model import Kind, Principal
from hygie.security.tables import break_glass
from hygie.store.model import ID_RE

EMERGENCY_HOURS = 4
MIN_REASON = 15
MAX_REASON = 1000
#: Roles that may review emergency accesses.
REVIEWER_ROLES = frozenset({"auditor", "admin"})


class EmergencyRefused(ValueError):
    """Raised when an emergency access cannot be granted; the message says why (French)."""


@dataclass(frozen=True)
class Grant:
    id: int
    username: str
    patient_id: str
    reason: str
    created: datetime
    expires: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None


def _grant(row: object) -> Grant:
    def when(us: int | None) -> datetime | None:
        return datetime.fromtimestamp(us / 1e6, UTC) if us else None

    return Grant(row.id, row.username, row.patient_id, row.reason,  # type: ignore[attr-defined]
                 when(row.created), when(row.expires), row.reviewed_by,  # type: ignore
                 when(row.reviewed_at), row.review_note)  # type: ignore[attr-defined]


def open_emergency_access(engine: Engine, principal: Principal, patient_id: str,
                          reason: str) -> Grant:
    """Grant ``principal`` the record of ``patient_id`` for ``EMERGENCY_HOURS``."""
    if principal.kind is not Kind.PRACTITIONER:
        raise EmergencyRefused("Seuls les soignants peuvent demander un accès d'urgence.")
    if not principal.may("Patient", "r"):
        raise EmergencyRefused("Votre compte ne permet pas de lire les dossiers patients.")
    if not ID_RE.match(patient_id):
        raise EmergencyRefused("Identifiant de patient invalide.")
    reason = " ".join(reason.split())
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        raise EmergencyRefused(f"Le motif doit compter entre {MIN_REASON} et {MAX_REASON} "
                               "caractères.")
    now = time.time_ns() // 1000
    expires = now + EMERGENCY_HOURS * 3600 * 1_000_000
    with write_transaction(engine) as conn:
        grant_id = conn.execute(insert(break_glass).returning(break_glass.c.id).values(
            username=principal.subject, patient_id=patient_id, reason=reason, created=now,
            expires=expires)).scalar_one()
        row = conn.execute(select(break_glass).where(break_glass.c.id == grant_id)).one()
    return _grant(row)


def pending_reviews(engine: Engine, limit: int = 500) -> list[Grant]:
    """Grants nobody has reviewed yet, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(break_glass).where(break_glass.c.reviewed_at.is_(None))
                            .order_by(break_glass.c.id).limit(limit)).all()
    return [_grant(r) for r in rows]


def review(engine: Engine, grant_id: int, reviewer: Principal, note: str) -> bool:
    """Record the review of a grant; False when there is no such unreviewed grant."""
    if not reviewer.roles & REVIEWER_ROLES:
        raise EmergencyRefused("Seuls les auditeurs et administrateurs relisent les accès "
                               "d'urgence.")
    note = note.strip()
    if not note:
        raise EmergencyRefused("Indiquez la conclusion de la relecture.")
    with write_transaction(engine) as conn:
        done = conn.execute(update(break_glass).where(
            break_glass.c.id == grant_id, break_glass.c.reviewed_at.is_(None)).values(
            reviewed_by=reviewer.subject, reviewed_at=time.time_ns() // 1000,
            review_note=note[:MAX_REASON])).rowcount
    return bool(done)
