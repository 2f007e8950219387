"""Data types of the tracing service: settings, HELLO batches, results of each request."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from hygie.tracing.risk import DEFAULT_PARAMETERS, RiskParameters


@dataclass(frozen=True)
class TracingSettings:
    """Limits and tolerances of the tracing service (ROBERT v1.1 values by default).

    Read from ``settings.extra["tracing"]`` (a ``[tracing]`` table in hygie.toml).
    """

    #: Largest difference between a request's time and the server's (s).
    request_time_tolerance_s: int = 60
    #: Largest difference between a HELLO's 16-bit time and its reception time (s).
    hello_time_tolerance_s: int = 180
    #: Fewest epochs between two status requests of one user.
    status_min_epoch_gap: int = 2
    #: Days of (EBID, ECC) tuples returned at registration and at renewal.
    tuple_days: int = 4
    #: Days a daily key is kept after its day (EBIDs older than that cannot be read).
    key_retention_days: int = 15
    #: Captcha lifetime (s) and the most captchas one client may ask per window.
    captcha_lifetime_s: int = 300
    captcha_per_window: int = 20
    registrations_per_window: int = 10
    rate_window_s: int = 60
    #: Submission codes: short ones (6 characters) and long ones (UUID) lifetimes (s).
    short_code_lifetime_s: int = 3600
    long_code_lifetime_s: int = 8 * 86400
    #: Largest report: contacts and HELLOs per contact.
    max_report_contacts: int = 20_000
    max_hellos_per_contact: int = 2_000
    country_code: int = 0x21
    risk: RiskParameters = DEFAULT_PARAMETERS

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> TracingSettings:
        values = dict(extra.get("tracing", {}))
        risk = values.pop("risk", None)
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if risk:
            known["risk"] = RiskParameters(**{k: tuple(v) if k == "deltas" else v
                                              for k, v in risk.items()})
        return cls(**known)


class HelloCheck(IntEnum):
    """Outcome of verifying one HELLO (ROBERT v1.1, section 6, steps 2 to 8)."""

    OK = 0
    FOREIGN = 1          # ECC carries another country: belongs to the federation
    NO_DAY_KEY = 2       # no server key for that day (too old, or never issued)
    EPOCH_MISMATCH = 3   # EBID's epoch does not match the reception time
    TIME_TOLERANCE = 4   # HELLO's time too far from its reception time (delayed replay)
    UNKNOWN_USER = 5     # id_A not registered (or unregistered)
    BAD_MAC = 6          # MAC does not verify under K_A
    REPLAY = 7           # the same HELLO appears twice
    CONTACT_REJECTED = 8  # valid itself, but another HELLO of its contact was not


#: One HELLO as stored in the contact queue: 12 bytes, big-endian.
HELLO_DTYPE = np.dtype([("time_rx", ">u4"), ("time16", ">u2"), ("mac", "V5"), ("rssi", "i1")])
CONTACT_HEADER_BYTES = 9  # EBID (8) and ECC (1)


@dataclass
class HelloBatch:
    """Many contacts' HELLOs as flat arrays, in contact order.

    ``ebid``/``ecc``: shape (n_contacts,); ``hellos``: shape (n_hellos,) of
    ``HELLO_DTYPE``; ``starts``: shape (n_contacts + 1,), HELLOs of contact c are
    ``hellos[starts[c]:starts[c+1]]``.
    """

    ebid: np.ndarray
    ecc: np.ndarray
    hellos: np.ndarray
    starts: np.ndarray

    @property
    def n_contacts(self) -> int:
        return len(self.ebid)

    @property
    def n_hellos(self) -> int:
        return len(self.hellos)

    @classmethod
    def from_blobs(cls, blobs: list[bytes]) -> HelloBatch:
        """Decode queued contacts (header then HELLOs) without a Python loop per HELLO."""
        heads = b"".join(b[:CONTACT_HEADER_BYTES] for b in blobs)
        head = np.frombuffer(heads, dtype=np.uint8).reshape(-1, CONTACT_HEADER_BYTES)
        ebid = head[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        counts = np.fromiter(((len(b) - CONTACT_HEADER_BYTES) // HELLO_DTYPE.itemsize
                              for b in blobs), dtype=np.int64, count=len(blobs))
        hellos = np.frombuffer(b"".join(b[CONTACT_HEADER_BYTES:] for b in blobs),
                               dtype=HELLO_DTYPE)
        starts = np.zeros(len(blobs) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        return cls(ebid=ebid, ecc=head[:, 8].copy(), hellos=hellos, starts=starts)


def contact_blob(ebid: bytes, ecc: int, hellos: list[tuple[int, int, bytes, int]]) -> bytes:
    """Pack one contact (EBID, ECC, [(time_rx, time16, mac, rssi)]) for the queue."""
    arr = np.empty(len(hellos), dtype=HELLO_DTYPE)
    for i, (t, t16, mac, rssi) in enumerate(hellos):
        arr[i] = (t, t16, mac, rssi)
    return ebid + bytes((ecc,)) + arr.tobytes()


@dataclass
class Verification:
    """Result of verifying a batch: one check per HELLO, and per contact its owner."""

    hello_check: np.ndarray       # uint8 HelloCheck, shape (n_hellos,)
    contact_ok: np.ndarray        # bool, shape (n_contacts,)
    contact_id_a: np.ndarray      # int64, shape (n_contacts,), -1 when unknown
    contact_epoch: np.ndarray     # int64, shape (n_contacts,), -1 when unknown

    def counts(self) -> dict[str, int]:
        values, n = np.unique(self.hello_check, return_counts=True)
        return {HelloCheck(int(v)).name.lower(): int(c) for v, c in zip(values, n, strict=True)}


@dataclass(frozen=True)
class Registered:
    """What registration returns to the app."""

    id_a: int
    tuples: str
    time_start: int
    config: list[dict[str, Any]]


@dataclass(frozen=True)
class Status:
    """Answer to an exposure status request."""

    at_risk: bool
    risk_level: int
    last_contact_date: int | None      # NTP seconds of the day of the last risky contact
    last_risk_scoring_date: int        # NTP seconds of this evaluation
    tuples: str | None                 # sealed renewal tuples, once per day
    config: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ProcessingReport:
    """What one pass over the contact queue did (counts only: nothing about who)."""

    contacts: int
    hellos: int
    checks: dict[str, int]
    exposures_added: int
    users_updated: int


@dataclass(frozen=True)
class SubmissionCode:
    code: str
    kind: str
    expires_unix: int
