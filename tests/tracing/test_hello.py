"""Verification of reported HELLOs: each rejection reason, on real keys and records."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from hygie.tracing.contacts import _load_users
from hygie.tracing.engine import TracingService
from hygie.tracing.epochs import EPOCH_SECONDS, EPOCHS_PER_DAY, epoch_of_ntp, epoch_start_ntp
from hygie.tracing.hello import verify
from hygie.tracing.model import HelloBatch, HelloCheck, contact_blob
from hygie.tracing.phone import PhoneApp
from tests.tracing.conftest import Clock, register

Hello = tuple[int, int, bytes, int]


def lookup_for(svc: TracingService) -> Callable[[Iterable[int]], dict[int, bytes]]:
    def lookup(ids: Iterable[int]) -> dict[int, bytes]:
        with svc.engine.connect() as conn:
            return {i: v[0] for i, v in _load_users(svc, conn, set(ids)).items()}
    return lookup


def heard(sender: PhoneApp, start: int, n: int = 5, step: int = 30) -> list[Hello]:
    out = []
    for k in range(n):
        _, _, t16, mac = sender.hello(start + k * step)
        out.append((start + k * step + 1, t16, mac, -55))
    return out


def check(svc: TracingService, contacts: list[tuple[bytes, int, list[Hello]]]) -> list[int]:
    batch = HelloBatch.from_blobs([contact_blob(e, c, h) for e, c, h in contacts])
    result = verify(batch, svc.codec, lookup_for(svc))
    return result.hello_check.tolist()


def contact_of(sender: PhoneApp, start: int, hellos: list[Hello]) -> tuple[bytes, int, list[Hello]]:
    ebid, ecc = sender.tuples[epoch_of_ntp(start)]
    return ebid, ecc, hellos


def test_valid_contact_passes_and_names_its_owner(sqlite_service: TracingService,
                                                   clock: Clock) -> None:
    a = register(sqlite_service)
    start = clock.ntp()
    batch = HelloBatch.from_blobs([contact_blob(*contact_of(a, start, heard(a, start)))])
    result = verify(batch, sqlite_service.codec, lookup_for(sqlite_service))
    assert result.hello_check.tolist() == [HelloCheck.OK] * 5
    assert result.contact_ok.tolist() == [True]
    assert result.contact_epoch.tolist() == [epoch_of_ntp(start)]


def test_bad_mac_rejects_the_whole_contact(sqlite_service: TracingService, clock: Clock) -> None:
    a = register(sqlite_service)
    start = clock.ntp()
    hellos = heard(a, start)
    t, t16, mac, rssi = hellos[2]
    hellos[2] = (t, t16, bytes([mac[0] ^ 1]) + mac[1:], rssi)
    got = check(sqlite_service, [contact_of(a, start, hellos)])
    assert got[2] == HelloCheck.BAD_MAC
    assert {got[i] for i in (0, 1, 3, 4)} == {HelloCheck.CONTACT_REJECTED}


def test_delayed_replay_fails_the_time_tolerance(sqlite_service: TracingService,
                                                 clock: Clock) -> None:
    a = register(sqlite_service)
    start = clock.ntp()
    # Captured at `start`, re-broadcast 4 minutes later (same epoch): over 180 s.
    _, t16, mac, _ = heard(a, start, 1)[0]
    replayed = [(start + 240, t16, mac, -50)]
    assert check(sqlite_service, [contact_of(a, start, replayed)]) == [HelloCheck.TIME_TOLERANCE]
    # The 16-bit time wraps around: a HELLO sent just before a wrap is still on time.
    wrap = start - (start & 0xFFFF) + 0x10000 + 5  # 5 s after a wrap
    h = a.hello(wrap - 10)
    assert h[2] > 0xFFF0  # sent before the wrap, received after it
    got = check(sqlite_service, [(h[1], h[0], [(wrap, h[2], h[3], -50)])])
    assert got == [HelloCheck.OK]


def test_epoch_mismatch(sqlite_service: TracingService, clock: Clock) -> None:
    a = register(sqlite_service)
    start = clock.ntp()
    later = start + 3 * EPOCH_SECONDS
    ebid, ecc = a.tuples[epoch_of_ntp(start)]
    # An EBID of an earlier epoch presented (with a fresh time) three epochs later.
    from hygie.tracing.protocol import hello_mac

    t16 = later & 0xFFFF
    forged = [(later + 1, t16, hello_mac(a.ka, ecc, ebid, t16), -50)]
    assert check(sqlite_service, [(ebid, ecc, forged)]) == [HelloCheck.EPOCH_MISMATCH]


def test_unknown_user_foreign_country_and_unknown_day(sqlite_service: TracingService,
                                                      clock: Clock) -> None:
    a, b = register(sqlite_service), register(sqlite_service)
    start = clock.ntp()
    b_contact = contact_of(b, start, heard(b, start, 2))
    # Unregistered: the row is gone.
    sqlite_service.unregister(b.unregister_request(start + 1))
    ebid, ecc, hellos = contact_of(a, start, heard(a, start, 2))
    foreign = (ebid, ecc ^ 0x21 ^ 0x33, hellos)  # as if issued by another country
    old = start - 40 * 86400  # no server key that day
    got = check(sqlite_service, [b_contact, foreign, (ebid, ecc, [(old, old & 0xFFFF,
                                                                    bytes(5), -50)])])
    assert got == [HelloCheck.UNKNOWN_USER] * 2 + [HelloCheck.FOREIGN] * 2 + [
        HelloCheck.NO_DAY_KEY]


def test_duplicate_hello_is_a_replay(sqlite_service: TracingService, clock: Clock) -> None:
    a = register(sqlite_service)
    start = clock.ntp()
    hellos = heard(a, start, 3)
    got = check(sqlite_service, [contact_of(a, start, [*hellos, hellos[1]])])
    assert got.count(HelloCheck.REPLAY) == 1
    assert HelloCheck.OK not in got


def test_contact_across_midnight_uses_the_previous_days_key(sqlite_service: TracingService,
                                                            clock: Clock) -> None:
    a = register(sqlite_service)
    # The last epoch of a day, received a few seconds into the next day.
    day = epoch_of_ntp(clock.ntp()) // EPOCHS_PER_DAY + 1
    last_epoch = (day + 1) * EPOCHS_PER_DAY - 1
    sent = epoch_start_ntp(last_epoch) + EPOCH_SECONDS - 20
    ecc, ebid, t16, mac = a.hello(sent)
    got = check(sqlite_service, [(ebid, ecc, [(sent + 30, t16, mac, -50)])])
    assert got == [HelloCheck.OK]


def test_many_contacts_at_once_keep_their_order(sqlite_service: TracingService,
                                                clock: Clock) -> None:
    phones = [register(sqlite_service) for _ in range(4)]
    start = clock.ntp()
    contacts = [contact_of(p, start, heard(p, start, 3 + i)) for i, p in enumerate(phones)]
    batch = HelloBatch.from_blobs([contact_blob(*c) for c in contacts])
    result = verify(batch, sqlite_service.codec, lookup_for(sqlite_service))
    assert result.contact_ok.all()
    assert np.diff(batch.starts).tolist() == [3, 4, 5, 6]
