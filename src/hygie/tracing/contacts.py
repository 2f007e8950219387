"""Positive declarations: submission codes, report intake, and the processing pass.

ROBERT v1.1, section 6: a user who tests positive gets a single-use code from a health
professional and uploads the HELLOs their phone received over the contagious period.
The server queues the contacts, and a processing pass (ROBERT's batch) verifies them
(``hello.verify``), scores each valid contact (``risk.score_contact``), adds the score
to the exposed epoch of the *sender* of the EBID, and deletes the contact. The queue
is read and emptied in the same transaction, so nothing of who met whom survives a pass.
"""

from __future__ import annotations

import secrets
import struct
import uuid
from collections import defaultdict
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from hygie.tracing import tables as t
from hygie.tracing.engine import TracingService, decode_b64, require_int
from hygie.tracing.errors import InvalidRequest, SubmissionCodeError
from hygie.tracing.hello import verify
from hygie.tracing.model import HelloBatch, ProcessingReport, SubmissionCode
from hygie.tracing.protocol import fingerprint
from hygie.tracing.risk import purge_exposures, score_contact

SHORT_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_HELLO = struct.Struct(">IH5sb")
#: Contacts read per transaction by a processing pass.
PASS_CHUNK = 20_000
_IN_CHUNK = 2_000


def issue_code(service: TracingService, kind: str = "short") -> SubmissionCode:
    """A single-use code for one positive declaration (short: 6 characters; long: UUID)."""
    s = service.settings
    if kind == "short":
        code = "".join(secrets.choice(SHORT_CODE_ALPHABET) for _ in range(6))
        life = s.short_code_lifetime_s
    elif kind == "long":
        code, life = str(uuid.uuid4()), s.long_code_lifetime_s
    else:
        raise InvalidRequest("kind must be short or long")
    expires = int(service.clock()) + life
    with service.engine.begin() as conn:
        conn.execute(t.submission_code.insert().values(
            code_hash=fingerprint(code.upper()), kind=kind, expires=expires, used=False))
    return SubmissionCode(code=code, kind=kind, expires_unix=expires)


def _consume_code(conn: sa.Connection, token: str, now: int) -> None:
    sc = t.submission_code
    h = fingerprint(token.strip().upper())
    done = conn.execute(sc.update().where(sc.c.code_hash == h, sc.c.used.is_(False),
                                          sc.c.expires >= now).values(used=True)).rowcount
    if done == 1:
        return
    row = conn.execute(sa.select(sc.c.used, sc.c.expires).where(sc.c.code_hash == h)).first()
    if row is None:
        raise SubmissionCodeError("unknown submission code")
    if row.used:
        raise SubmissionCodeError("this submission code was already used")
    raise SubmissionCodeError("this submission code has expired")


def parse_contacts(service: TracingService, contacts: Any) -> list[bytes]:
    """Validate a report's contacts and pack each for the queue (see ``tables.contact``)."""
    s = service.settings
    if not isinstance(contacts, list):
        raise InvalidRequest("contacts must be a list")
    if len(contacts) > s.max_report_contacts:
        raise InvalidRequest(f"at most {s.max_report_contacts} contacts per report")
    out = []
    pack = _HELLO.pack
    for i, c in enumerate(contacts):
        where = f"contacts[{i}]"
        if not isinstance(c, dict):
            raise InvalidRequest(f"{where} must be an object")
        ebid = decode_b64(c.get("ebid"), f"{where}.ebid", 8)
        ecc = decode_b64(c.get("ecc"), f"{where}.ecc", 1)
        ids = c.get("ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= s.max_hellos_per_contact:
            raise InvalidRequest(f"{where}.ids must list 1 to {s.max_hellos_per_contact} HELLOs")
        parts = [ebid, ecc]
        for j, h in enumerate(ids):
            w = f"{where}.ids[{j}]"
            if not isinstance(h, dict):
                raise InvalidRequest(f"{w} must be an object")
            parts.append(pack(
                require_int(h.get("timeCollectedOnDevice"), f"{w}.timeCollectedOnDevice",
                            0, 0xFFFFFFFF),
                require_int(h.get("timeFromHelloMessage"), f"{w}.timeFromHelloMessage",
                            0, 0xFFFF),
                decode_b64(h.get("mac"), f"{w}.mac", 5),
                require_int(h.get("rssiCalibrated"), f"{w}.rssiCalibrated", -127, 127)))
        out.append(b"".join(parts))
    return out


def report(service: TracingService, body: Any) -> int:
    """Queue a positive user's contacts, consuming the submission code; returns the count."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    token = body.get("token")
    if not isinstance(token, str) or not token.strip():
        raise InvalidRequest("token (the submission code) is required")
    blobs = parse_contacts(service, body.get("contacts"))
    with service.engine.begin() as conn:
        _consume_code(conn, token, int(service.clock()))
        if blobs:
            conn.execute(t.contact.insert(), [{"body": b} for b in blobs])
    return len(blobs)


def _load_users(service: TracingService, conn: sa.Connection,
                ids: set[int]) -> dict[int, tuple[bytes, str]]:
    """(K_A, LEE) of these registrations, locked for update where the engine can."""
    reg = t.registration
    found: dict[int, tuple[bytes, str]] = {}
    id_list = sorted(ids)
    unwrap = service.keystore.unwrap
    for k in range(0, len(id_list), _IN_CHUNK):
        q = sa.select(reg.c.id_a, reg.c.ka, reg.c.exposed_epochs).where(
            reg.c.id_a.in_(id_list[k:k + _IN_CHUNK]))
        if service._postgres:
            q = q.with_for_update()
        for row in conn.execute(q):
            found[row.id_a] = (unwrap(row.ka, row.id_a.to_bytes(5, "big")), row.exposed_epochs)
    return found


def process_contacts(service: TracingService, chunk: int = PASS_CHUNK) -> ProcessingReport:
    """Verify, score and forget every queued contact; see the module docstring."""
    totals: dict[str, int] = defaultdict(int)
    n_contacts = n_hellos = added = 0
    users: set[int] = set()
    tc = t.contact
    while True:
        with service.engine.begin() as conn:
            # Deleting first takes the write lock, and the queue leaves with this pass.
            sub = sa.select(tc.c.pk).order_by(tc.c.pk).limit(chunk).scalar_subquery()
            blobs = [r.body for r in conn.execute(
                tc.delete().where(tc.c.pk.in_(sub)).returning(tc.c.body))]
            if not blobs:
                break
            batch = HelloBatch.from_blobs(blobs)
            loaded: dict[int, tuple[bytes, str]] = {}

            def lookup(ids: Any, conn: sa.Connection = conn,
                       loaded: dict[int, tuple[bytes, str]] = loaded) -> dict[int, bytes]:
                loaded.update(_load_users(service, conn, set(ids)))
                return {i: v[0] for i, v in loaded.items()}

            result = verify(batch, service.codec, lookup,
                            time_tolerance_s=service.settings.hello_time_tolerance_s)
            for k, v in result.counts().items():
                totals[k] += v
            n_contacts += batch.n_contacts
            n_hellos += batch.n_hellos
            scores: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
            times = batch.hellos["time_rx"].astype(np.int64).tolist()
            rssis = batch.hellos["rssi"].astype(np.int64).tolist()
            starts = batch.starts.tolist()
            params = service.settings.risk
            for c in np.flatnonzero(result.contact_ok).tolist():
                lo, hi = starts[c], starts[c + 1]
                order = sorted(range(lo, hi), key=times.__getitem__)
                score = score_contact([times[i] for i in order], [rssis[i] for i in order],
                                      params)
                scores[int(result.contact_id_a[c])][int(result.contact_epoch[c])].append(score)
                added += 1
            current = service.current_epoch()
            updates = []
            for id_a, epochs in scores.items():
                lee = {int(k): v for k, v in orjson.loads(loaded[id_a][1]).items()}
                for e, sc in epochs.items():
                    lee.setdefault(e, []).extend(sc)
                lee = purge_exposures(lee, current, params)
                updates.append({"b_id": id_a, "b_lee": orjson.dumps(
                    {str(k): v for k, v in sorted(lee.items())}).decode()})
            if updates:
                reg = t.registration
                conn.execute(reg.update().where(reg.c.id_a == sa.bindparam("b_id")).values(
                    exposed_epochs=sa.bindparam("b_lee")), updates)
            users.update(scores)
    return ProcessingReport(contacts=n_contacts, hellos=n_hellos, checks=dict(totals),
                            exposures_added=added, users_updated=len(users))
