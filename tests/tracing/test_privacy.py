"""Privacy properties as tests: what is stored, unlinkability, and real deletion."""

from __future__ import annotations

import base64
import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from hygie.store.schema import metadata
from hygie.tracing import tables as t
from hygie.tracing.contacts import issue_code, process_contacts, report
from hygie.tracing.engine import TracingService
from hygie.tracing.epochs import epoch_of_ntp
from hygie.tracing.phone import PhoneApp
from tests.tracing.conftest import Clock, meet, register


def test_stored_columns_are_exactly_robert_s() -> None:
    tracing_tables = {name for name in metadata.tables if name.startswith("tracing_")}
    assert tracing_tables == {"tracing_registration", "tracing_contact",
                              "tracing_submission_code", "tracing_captcha", "tracing_test_site"}
    # IDTable of ROBERT v1.1: id_A, K_A, K_A_enc, SRE, UN, LEE (+ anti-replay time).
    assert set(t.registration.c.keys()) == {
        "id_a", "ka", "kenc", "last_status_epoch", "last_request_time", "notified",
        "notification_epoch", "exposed_epochs"}
    # The queue keeps the contact and nothing about who sent it, or when.
    assert set(t.contact.c.keys()) == {"pk", "body"}
    assert set(t.submission_code.c.keys()) == {"code_hash", "kind", "expires", "used"}


def _all_bytes(svc: TracingService) -> bytes:
    """Every value of every tracing table, concatenated (to search for leaks)."""
    out = []
    with svc.engine.connect() as conn:
        for table in t.ALL_TABLES:
            for row in conn.execute(sa.select(table)):
                for v in row:
                    out.append(v if isinstance(v, bytes) else str(v).encode())
    return b"|".join(out)


def test_no_contact_graph_survives_processing(service: TracingService, clock: Clock) -> None:
    alice, bob, carol = register(service), register(service), register(service)
    meet(alice, bob, clock.ntp(), 30)
    meet(alice, carol, clock.ntp(), 20, rssi=-60)
    clock.advance(2000)
    body = alice.report(issue_code(service).code)
    report(service, body)
    process_contacts(service)
    dump = _all_bytes(service)
    for contact in body["contacts"]:  # type: ignore[union-attr]
        ebid = base64.b64decode(contact["ebid"])
        assert ebid not in dump and contact["ebid"].encode() not in dump
        for hello in contact["ids"]:
            assert base64.b64decode(hello["mac"]) not in dump
    with service.engine.connect() as conn:
        lees = conn.execute(sa.select(t.registration.c.exposed_epochs)).scalars().all()
    # What is left: for two users, epoch numbers and scores; nothing names Alice.
    non_empty = [x for x in lees if x != "{}"]
    assert len(non_empty) == 2
    for lee in non_empty:
        assert set(lee) <= set('{}[]":,.0123456789e-')


def test_ebids_of_one_user_are_unlinkable_without_the_key(sqlite_service: TracingService,
                                                          clock: Clock) -> None:
    phones = [register(sqlite_service) for _ in range(2)]
    mine = np.array([int.from_bytes(e, "big") for e, _ in phones[0].tuples.values()],
                    dtype=np.uint64)
    other = np.array([int.from_bytes(e, "big") for e, _ in phones[1].tuples.values()],
                     dtype=np.uint64)
    bits = ((mine[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(int)
    n = len(mine)
    # Every bit position is balanced (4 standard deviations) over one user's EBIDs.
    assert (np.abs(bits.sum(axis=0) - n / 2) < 4 * np.sqrt(n / 4)).all()
    # No field of the plaintext (epoch, id_A) shows through: all low 40 bits differ.
    assert len(set((mine & np.uint64(2**40 - 1)).tolist())) == n

    def hamming(a: np.ndarray, b: np.ndarray) -> float:
        x = a ^ b
        return float(np.mean([bin(int(v)).count("1") for v in x]))

    same_user = hamming(mine[1:], mine[:-1])
    two_users = hamming(mine, other)
    assert abs(same_user - 32) < 1.5 and abs(two_users - 32) < 1.5
    # A wrong key decrypts to garbage ids (never the user's).
    epoch = epoch_of_ntp(clock.ntp())
    ebid = phones[0].tuples[epoch][0]
    from hygie.tracing.skinny import Skinny64192

    wrong = Skinny64192(bytes(24)).decrypt_block(int.from_bytes(ebid, "big"))
    assert sqlite_service.codec.decrypt(ebid, epoch) != (wrong >> 40, wrong & (2**40 - 1))


def test_unregister_really_deletes(sqlite_service: TracingService, clock: Clock,
                                   tmp_path: Path) -> None:
    phone = register(sqlite_service)
    others = [register(sqlite_service) for _ in range(3)]
    with sqlite_service.engine.connect() as conn:
        secret = conn.execute(sa.select(t.registration.c.ka)).first()
        wrapped = {r.id_a: r.ka for r in conn.execute(sa.select(t.registration))}
    assert secret is not None
    epoch = epoch_of_ntp(clock.ntp())
    mine = sqlite_service.codec.decrypt(phone.tuples[epoch][0], epoch)
    assert mine is not None
    target = wrapped[mine[1]]
    sqlite_service.unregister(phone.unregister_request(clock.ntp()))
    with sqlite_service.engine.connect() as conn:
        ids = set(conn.execute(sa.select(t.registration.c.id_a)).scalars())
    sqlite_service.engine.dispose()
    url = sqlite_service.engine.url.database
    assert url is not None
    with contextlib.closing(sqlite3.connect(url)) as raw_conn:
        raw_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert mine[1] not in ids and len(ids) == len(others)
    raw = Path(url).read_bytes()
    wal = Path(url + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert target not in raw  # overwritten, not merely unlinked from the b-tree
    assert wrapped[next(iter(ids))] in raw  # the check can see a live key


def test_destroyed_day_keys_make_old_ebids_unreadable(sqlite_service: TracingService,
                                                      clock: Clock) -> None:
    alice, bob = register(sqlite_service), register(sqlite_service)
    meet(alice, bob, clock.ntp(), 20)
    epoch = epoch_of_ntp(clock.ntp())
    ebid = alice.tuples[epoch][0]
    assert sqlite_service.codec.decrypt(ebid, epoch) is not None
    clock.advance(17 * 86400)
    assert sqlite_service.forget_old_keys() > 0
    assert sqlite_service.codec.decrypt(ebid, epoch) is None
    report(sqlite_service, bob.report(issue_code(sqlite_service).code))
    done = process_contacts(sqlite_service)
    assert done.checks == {"no_day_key": done.hellos} and done.exposures_added == 0


def test_phone_keeps_only_derived_keys() -> None:
    phone = PhoneApp()
    assert phone.ka == b"" and phone.kenc == b""
