"""Batch verification of reported HELLO messages (ROBERT v1.1, section 6).

For each contact (one EBID seen over one epoch) of a positive user's report, the
server: decrypts the EBID with the day's key and checks its epoch against the
reception time (steps 3 and 6), recovers the country from the ECC with K_G (step 2),
checks that each HELLO's 16-bit time is within tolerance of its reception time
(step 5: a HELLO re-broadcast later fails here), finds the registration of id_A
(step 4) and verifies each HELLO's MAC with that user's K_A (step 8). As the ROBERT
server does, a contact with any failing HELLO is dropped whole. The same HELLO seen
twice in a batch is a replay and fails.

Everything is done over the whole batch: the checks with numpy, and the MACs with
``macs.hello_macs`` (two compiled SHA-256 compressions per HELLO from each key's
precomputed HMAC states), or one ``hmac.digest`` call per HELLO without numba.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

import numpy as np

from hygie.tracing import macs
from hygie.tracing.epochs import EPOCH_SECONDS, EPOCHS_PER_DAY, SERVICE_START_NTP
from hygie.tracing.model import HelloBatch, HelloCheck, Verification
from hygie.tracing.protocol import HELLO_MAC_BYTES, ID_BITS, ID_MASK, SALT_HELLO, EbidCodec

#: Looks up K_A for registered ids; ids missing from the answer are unknown.
KeyLookup = Callable[[Iterable[int]], dict[int, bytes]]


def _epochs_of(ntp: np.ndarray) -> np.ndarray:
    return (ntp.astype(np.int64) - SERVICE_START_NTP) // EPOCH_SECONDS


def _decrypt(codec: EbidCodec, ebid: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, ...]:
    epoch = np.full(len(ebid), -1, dtype=np.int64)
    id_a = np.full(len(ebid), -1, dtype=np.int64)
    for d in np.unique(day):
        cipher = codec.cipher(int(d))
        if cipher is None:
            continue
        sel = day == d
        plain = cipher.decrypt_blocks(ebid[sel])
        epoch[sel] = (plain >> np.uint64(ID_BITS)).astype(np.int64)
        id_a[sel] = (plain & np.uint64(ID_MASK)).astype(np.int64)
    return epoch, id_a


def _macs_with_hashlib(keys: list[bytes], key_of: np.ndarray, msgs: np.ndarray) -> np.ndarray:
    """Same result as ``macs.hello_macs``, one ``hmac.digest`` call per message."""
    blob = msgs.tobytes()
    digest = hmac.digest
    out = bytearray(HELLO_MAC_BYTES * len(msgs))
    for j, k in enumerate(key_of.tolist()):
        if k >= 0:
            out[5 * j: 5 * j + 5] = digest(keys[k], blob[12 * j: 12 * j + 12], "sha256")[:5]
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(-1, HELLO_MAC_BYTES)


def verify(batch: HelloBatch, codec: EbidCodec, lookup: KeyLookup, *,
           time_tolerance_s: int = 180) -> Verification:
    """Check every HELLO of the batch; see the module docstring for the steps."""
    n_c, n_h = batch.n_contacts, batch.n_hellos
    starts = batch.starts
    sizes = np.diff(starts)
    owner = np.repeat(np.arange(n_c), sizes)  # contact of each HELLO
    h = batch.hellos
    time_rx = h["time_rx"].astype(np.int64)
    check = np.zeros(n_h, dtype=np.uint8)
    has_hellos = sizes > 0

    # Steps 3 and 6: the EBID's epoch must match the reception time (one epoch of slack).
    first_rx = np.full(n_c, SERVICE_START_NTP, dtype=np.int64)
    first_rx[has_hellos] = time_rx[starts[:-1][has_hellos]]
    rx_epoch = _epochs_of(first_rx)
    epoch, id_a = _decrypt(codec, batch.ebid, rx_epoch // EPOCHS_PER_DAY)
    near = np.abs(epoch - rx_epoch) <= 1
    # Around midnight the EBID may come from the neighbouring day's key.
    for shift in (-1, 1):
        retry = ~near & (epoch >= -1)
        if not retry.any():
            break
        e2, i2 = _decrypt(codec, batch.ebid[retry], rx_epoch[retry] // EPOCHS_PER_DAY + shift)
        good = np.abs(e2 - rx_epoch[retry]) <= 1
        idx = np.flatnonzero(retry)[good]
        epoch[idx], id_a[idx] = e2[good], i2[good]
        near[idx] = True
    no_key = np.array([codec.cipher(int(d)) is None for d in rx_epoch // EPOCHS_PER_DAY],
                      dtype=bool) if n_c else np.zeros(0, dtype=bool)

    # Step 2: the country sealed in the ECC.
    foreign = (codec.ecc_pads(batch.ebid) ^ batch.ecc) != codec.country

    # Per HELLO: step 6 again for each reception, step 5 on the 16-bit time.
    hello_epoch_ok = np.abs(_epochs_of(time_rx) - epoch[owner]) <= 1
    diff = (h["time16"].astype(np.int64) - (time_rx & 0xFFFF)) % 65536
    time_ok = np.minimum(diff, 65536 - diff) <= time_tolerance_s

    # Replays: the same (EBID, time, MAC) more than once in the batch.
    mac_int = np.frombuffer(h["mac"].tobytes(), dtype=np.uint8).reshape(-1, HELLO_MAC_BYTES)
    mac40 = np.zeros(n_h, dtype=np.uint64)
    for i in range(HELLO_MAC_BYTES):
        mac40 = (mac40 << np.uint64(8)) | mac_int[:, i].astype(np.uint64)
    second = (h["time16"].astype(np.uint64) << np.uint64(40)) | mac40
    first = batch.ebid[owner]
    order = np.lexsort((second, first))
    dup_sorted = np.zeros(n_h, dtype=bool)
    if n_h > 1:
        same = (first[order][1:] == first[order][:-1]) & (second[order][1:] == second[order][:-1])
        dup_sorted[1:] = same
    replay = np.zeros(n_h, dtype=bool)
    replay[order] = dup_sorted

    # Assign the first failing reason, in the order of the specification's steps.
    check[(~hello_epoch_ok)] = HelloCheck.EPOCH_MISMATCH
    check[~time_ok & (check == 0)] = HelloCheck.TIME_TOLERANCE
    check[replay & (check == 0)] = HelloCheck.REPLAY
    contact_bad = foreign | no_key | ~near
    per_contact = np.where(no_key, HelloCheck.NO_DAY_KEY,
                           np.where(foreign, HelloCheck.FOREIGN, HelloCheck.EPOCH_MISMATCH))
    check = np.where(contact_bad[owner], per_contact[owner], check).astype(np.uint8)

    # Step 4: registrations of the remaining contacts.
    bad_counts = np.bincount(owner, weights=check != 0, minlength=n_c)
    live = ~contact_bad & (bad_counts == 0) & has_hellos
    keys = lookup({int(i) for i in id_a[live]})

    # Step 8: MACs, one HMAC per HELLO, contact by contact. The messages
    # (0x01 || ECC || EBID || time) are laid out for the whole batch first.
    msgs = np.empty((n_h, 12), dtype=np.uint8)
    msgs[:, 0] = SALT_HELLO
    msgs[:, 1] = batch.ecc[owner]
    msgs[:, 2:10] = batch.ebid.astype(">u8").view(np.uint8).reshape(-1, 8)[owner]
    msgs[:, 10:12] = h["time16"].astype(">u2").view(np.uint8).reshape(-1, 2)
    ids = id_a.tolist()
    starts_l = starts.tolist()
    checked = np.zeros(n_h, dtype=bool)
    key_list: list[bytes] = []
    key_index: dict[int, int] = {}
    key_of = np.full(n_h, -1, dtype=np.int64)
    for c in np.flatnonzero(live).tolist():
        user = ids[c]
        lo, hi = starts_l[c], starts_l[c + 1]
        slot = key_index.get(user)
        if slot is None:
            ka = keys.get(user)
            if ka is None:
                check[lo:hi] = HelloCheck.UNKNOWN_USER
                continue
            slot = key_index[user] = len(key_list)
            key_list.append(ka)
        key_of[lo:hi] = slot
        checked[lo:hi] = True
    if macs.available():
        got = macs.hello_macs(key_list, key_of, msgs)
    else:
        got = _macs_with_hashlib(key_list, key_of, msgs)
    expected = np.frombuffer(h["mac"].tobytes(), dtype=np.uint8).reshape(-1, HELLO_MAC_BYTES)
    check[checked & (got != expected).any(axis=1)] = HelloCheck.BAD_MAC

    # A contact with one failing HELLO is dropped whole; mark its other HELLOs.
    failing = (np.bincount(owner, weights=check != 0, minlength=n_c) > 0) | ~has_hellos
    check[(check == 0) & failing[owner]] = HelloCheck.CONTACT_REJECTED
    ok = ~failing
    return Verification(hello_check=check, contact_ok=ok,
                        contact_id_a=np.where(ok, id_a, -1),
                        contact_epoch=np.where(ok, epoch, -1))
