"""The ROBERT server: captcha, registration and the authenticated requests of an app.

``TracingService`` holds what every request needs (database engine, key store, EBID
codec, settings, clock) and implements ROBERT v1.1 sections 4 (registration), 7
(exposure status request) and 8 (unregister, delete exposure history). Positive
declarations and the processing of reported contacts live in ``contacts.py``.

Writes that race with other requests are single conditional statements (``UPDATE ...
WHERE last_request_time < :time``) whose row count says whether they applied, so the
same code is correct on SQLite and PostgreSQL without long read-then-write
transactions.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from hygie.tracing import captcha as captchas
from hygie.tracing import tables as t
from hygie.tracing.epochs import (
    EPOCHS_PER_DAY,
    SERVICE_START_NTP,
    day_of_epoch,
    epoch_of_ntp,
    epoch_start_ntp,
    ntp_from_unix,
)
from hygie.tracing.errors import (
    BadMac,
    CaptchaError,
    EpochMismatch,
    InvalidRequest,
    ReplayedRequest,
    TimeOutOfTolerance,
    TooSoon,
    UnknownUser,
)
from hygie.tracing.keystore import FileKeyStore, KeyStore
from hygie.tracing.model import Registered, Status, TracingSettings
from hygie.tracing.protocol import (
    ID_MASK,
    SALT_DELETE_HISTORY,
    SALT_STATUS,
    SALT_UNREGISTER,
    EbidCodec,
    derive_user_keys,
    load_public_key,
    request_mac,
)
from hygie.tracing.risk import evaluate
from hygie.tracing.testsites import SiteIndex, load_sites, parse_csv, replace_sites

#: Seconds an in-memory site index is trusted before re-reading the table.
SITE_INDEX_TTL_S = 60.0

RISK_LEVEL_HIGH = 4
RISK_LEVEL_NONE = 0

# Statements of the hot paths, built once (SQLAlchemy then reuses their compiled form).
_reg = t.registration
_SELECT_USER = sa.select(_reg).where(_reg.c.id_a == sa.bindparam("b_id"))
_STATUS_UPDATE = _reg.update().where(
    _reg.c.id_a == sa.bindparam("b_id"),
    _reg.c.last_request_time < sa.bindparam("b_time"),
    _reg.c.last_status_epoch == sa.bindparam("b_prev"),
).values(last_status_epoch=sa.bindparam("b_epoch"), last_request_time=sa.bindparam("b_time"),
         notified=sa.bindparam("b_notified"), notification_epoch=sa.bindparam("b_notif_epoch"))


def decode_b64(value: object, name: str, size: int | None = None) -> bytes:
    """Base64 field of a request, with a precise error when it is not what it should be."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{name} is not valid base64") from exc
    if size is not None and len(raw) != size:
        raise InvalidRequest(f"{name} must hold {size} bytes, not {len(raw)}")
    return raw


def require_int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be an integer between {lo} and {hi}")
    return value


@dataclass(frozen=True)
class AuthenticatedRequest:
    """An app request carrying (EBID, epoch, time, MAC), decoded but not yet verified."""

    ebid: bytes
    epoch: int
    time: int
    mac: bytes

    @classmethod
    def parse(cls, body: Any) -> AuthenticatedRequest:
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object")
        ebid = decode_b64(body.get("ebid"), "ebid", 8)
        epoch = require_int(body.get("epochId"), "epochId", 0, 0xFFFFFF)
        time_raw = decode_b64(body.get("time"), "time", 4)
        mac = decode_b64(body.get("mac"), "mac", 32)
        return cls(ebid, epoch, struct.unpack(">I", time_raw)[0], mac)


class _Registration(NamedTuple):
    id_a: int
    ka: bytes
    kenc: bytes
    last_status_epoch: int
    last_request_time: int
    notified: bool
    notification_epoch: int
    exposed_epochs: str


class _SqliteStatusPath:
    """The two statements of a status request, on a per-thread DB-API connection.

    Why: on SQLite a status request is one indexed read and one conditional write of
    a few microseconds each, and going through a SQLAlchemy ``Connection`` (checkout,
    ``BEGIN`` event, reset) costs five times more than the statements themselves. The
    connection comes from the platform's engine, so it has the platform's pragmas;
    each statement runs in autocommit mode (the platform's SQLite setting), which makes
    the conditional UPDATE atomic and durable on its own.
    """

    _SELECT = ("SELECT id_a, ka, kenc, last_status_epoch, last_request_time, notified, "
               "notification_epoch, exposed_epochs FROM tracing_registration WHERE id_a = ?")
    _UPDATE = ("UPDATE tracing_registration SET last_status_epoch = ?, last_request_time = ?, "
               "notified = ?, notification_epoch = ? "
               "WHERE id_a = ? AND last_request_time < ? AND last_status_epoch = ?")

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    def _cursor(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.raw_connection()
        return conn.cursor()

    def user(self, id_a: int) -> _Registration | None:
        cur = self._cursor()
        try:
            cur.execute(self._SELECT, (id_a,))
            row = cur.fetchone()
        finally:
            cur.close()
        return _Registration(*row) if row is not None else None

    def update(self, id_a: int, time_: int, prev_epoch: int, epoch: int, notified: bool,
               notification_epoch: int) -> int:
        cur = self._cursor()
        try:
            cur.execute(self._UPDATE, (epoch, time_, notified, notification_epoch, id_a, time_,
                                       prev_epoch))
            return int(cur.rowcount)
        finally:
            cur.close()


def open_keystore(config: dict[str, Any], folder: Any) -> KeyStore:
    """The key store the settings name: a PKCS#11 token when ``[tracing.pkcs11]`` gives
    ``library``, ``token`` and ``pin``; the owner-only file under ``folder`` otherwise."""
    hsm = config.get("pkcs11")
    if hsm:
        from hygie.tracing.pkcs11store import Pkcs11KeyStore

        return Pkcs11KeyStore(hsm["library"], hsm["token"], str(hsm["pin"]),
                              lock_path=folder / "pkcs11.lock")
    return FileKeyStore(folder / "keys.json")


class TracingService:
    """One ROBERT server over the platform's database; see the module docstring."""

    def __init__(self, engine: sa.Engine, keystore: KeyStore,
                 settings: TracingSettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.keystore = keystore
        self.settings = settings or TracingSettings()
        self.clock = clock
        self.codec = EbidCodec(keystore, self.settings.country_code)
        self.limiter = captchas.RateLimiter()
        self._postgres = engine.dialect.name == "postgresql"
        self._sites: tuple[float, SiteIndex] | None = None
        self._published = self.settings.risk.published()
        self._fast = _SqliteStatusPath(engine) if engine.dialect.name == "sqlite" else None

    @classmethod
    def for_platform(cls, platform: Any) -> TracingService:
        """The platform's service, built once (key store file under ``var_dir/tracing``)."""
        found = platform.parts.get("tracing")
        if found is None:
            settings = TracingSettings.from_extra(platform.settings.extra)
            store = open_keystore(platform.settings.extra.get("tracing", {}),
                                  platform.settings.var_dir / "tracing")
            found = cls(platform.engine, store, settings)
            platform.parts["tracing"] = found
        return found

    def create_tables(self) -> None:
        """Create this service's tables directly (tests; deployments run the migrations)."""
        t.registration.metadata.create_all(self.engine, tables=t.ALL_TABLES)

    # --- time -----------------------------------------------------------------------
    def now_ntp(self) -> int:
        return ntp_from_unix(self.clock())

    def current_epoch(self) -> int:
        return epoch_of_ntp(self.now_ntp())

    def config(self) -> dict[str, Any]:
        """What an app needs before registering: server key, time origin, parameters."""
        return {
            "serverPublicKey": base64.b64encode(self.keystore.registration_public_key()).decode(),
            "timeStart": SERVICE_START_NTP,
            "epochDurationSeconds": 900,
            "helloTimeToleranceSeconds": self.settings.hello_time_tolerance_s,
            "statusMinEpochGap": self.settings.status_min_epoch_gap,
            "config": self.settings.risk.published(),
        }

    # --- captcha --------------------------------------------------------------------
    def create_captcha(self, kind: str, client: str) -> str:
        """Create a single-use challenge of this kind; returns its id."""
        if kind not in captchas.KINDS:
            raise InvalidRequest(f"type must be one of {', '.join(captchas.KINDS)}")
        s = self.settings
        self.limiter.hit("captcha", client, s.captcha_per_window, s.rate_window_s)
        challenge = captchas.new_challenge(kind)
        cid = secrets.token_hex(16)
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(t.captcha.delete().where(t.captcha.c.expires < now))
            conn.execute(t.captcha.insert().values(id=cid, kind=kind, answer=challenge.answer,
                                                   expires=now + s.captcha_lifetime_s))
        return cid

    def captcha_media(self, cid: str, kind: str) -> bytes:
        """The PNG (image) or WAV (audio) of a pending challenge."""
        if kind not in captchas.KINDS:
            raise InvalidRequest(f"a captcha is served as {' or '.join(captchas.KINDS)}")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.captcha).where(t.captcha.c.id == cid)).first()
        if row is None or row.expires < int(self.clock()):
            raise CaptchaError("unknown or expired captcha: ask for a new one")
        if row.kind != kind:
            raise CaptchaError(f"this captcha is an {row.kind} challenge")
        if kind == "image":
            return captchas.render_image(row.answer)
        return captchas.render_audio(row.answer)

    def _consume_captcha(self, cid: object, answer: object) -> None:
        if not isinstance(cid, str) or not isinstance(answer, str):
            raise InvalidRequest("captchaId and captcha must be strings")
        with self.engine.begin() as conn:
            row = conn.execute(t.captcha.delete().where(t.captcha.c.id == cid)
                               .returning(t.captcha.c.answer, t.captcha.c.expires)).first()
        if row is None:
            raise CaptchaError("unknown or already used captcha: ask for a new one")
        if row.expires < int(self.clock()):
            raise CaptchaError("expired captcha: ask for a new one")
        if not captchas.answers_match(row.answer, answer):
            raise CaptchaError("wrong captcha answer: ask for a new one")

    # --- registration (section 4) ----------------------------------------------------
    def register(self, body: Any, client: str) -> Registered:
        """Check the captcha, derive K_A and K_A_enc by ECDH, store, return sealed tuples."""
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object")
        s = self.settings
        peer = load_public_key(decode_b64(body.get("clientPublicECDHKey"),
                                          "clientPublicECDHKey"))
        self.limiter.hit("register", client, s.registrations_per_window, s.rate_window_s)
        self._consume_captcha(body.get("captchaId"), body.get("captcha"))
        return self.register_key(peer)

    def register_key(self, peer: Any) -> Registered:
        """Registration once the captcha is solved (also used by the simulator's setup)."""
        ka, kenc = derive_user_keys(self.keystore.ecdh(peer))
        for _ in range(10):
            id_a = secrets.randbits(40)
            aad = id_a.to_bytes(5, "big")
            try:
                with self.engine.begin() as conn:
                    conn.execute(t.registration.insert().values(
                        id_a=id_a, ka=self.keystore.wrap(ka, aad),
                        kenc=self.keystore.wrap(kenc, aad), last_status_epoch=-1,
                        last_request_time=0, notified=False, notification_epoch=-1,
                        exposed_epochs="{}"))
                break
            except IntegrityError:
                continue  # id_A already taken: draw another
        else:  # pragma: no cover - 2^40 ids
            raise RuntimeError("could not draw a free id_A")
        first = self.current_epoch()
        n = self.settings.tuple_days * EPOCHS_PER_DAY
        return Registered(id_a=id_a, tuples=self.codec.sealed_tuples(kenc, id_a, first, n),
                          time_start=SERVICE_START_NTP, config=self.settings.risk.published())

    # --- authenticated requests (sections 7, 8) --------------------------------------
    def _authenticate(self, req: AuthenticatedRequest, salt: int) -> Any:
        """Verify time, epoch and MAC; returns the registration row (keys unwrapped)."""
        now = self.now_ntp()
        tol = self.settings.request_time_tolerance_s
        if abs(now - req.time) > tol:
            raise TimeOutOfTolerance(
                f"request time is {req.time - now:+d} s from the server's (tolerance {tol} s)")
        if abs(epoch_of_ntp(req.time) - req.epoch) > 1:
            raise EpochMismatch("epochId does not match the request time")
        found = self.codec.decrypt(req.ebid, req.epoch)
        if found is None:
            raise EpochMismatch("no server key for this epoch: the EBID is too old")
        epoch, id_a = found
        if epoch != req.epoch:
            raise EpochMismatch("the EBID was not issued for this epoch")
        if self._fast is not None:
            row: Any = self._fast.user(id_a)
        else:
            with self.engine.connect() as conn:
                row = conn.execute(_SELECT_USER, {"b_id": id_a}).first()
        if row is None:
            raise UnknownUser("no registration for this EBID")
        aad = id_a.to_bytes(5, "big")
        ka = self.keystore.unwrap(row.ka, aad)
        if not hmac.compare_digest(request_mac(ka, salt, req.ebid, req.epoch, req.time), req.mac):
            raise BadMac("the MAC does not verify")
        if req.time <= row.last_request_time:
            raise ReplayedRequest("a request with this time or a later one was already accepted")
        return row

    def _reason_not_applied(self, id_a: int, req: AuthenticatedRequest) -> Exception:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.registration.c.last_request_time)
                               .where(t.registration.c.id_a == id_a)).first()
        if row is None:
            return UnknownUser("no registration for this EBID")
        return ReplayedRequest("a request with this time or a later one was already accepted")

    def status(self, body: Any) -> Status:
        """Exposure status request (section 7): risk from LEE, SRE spacing, tuple renewal."""
        req = AuthenticatedRequest.parse(body)
        row = self._authenticate(req, SALT_STATUS)
        s = self.settings
        current = self.current_epoch()
        if row.last_status_epoch >= 0 and current - row.last_status_epoch < s.status_min_epoch_gap:
            wait = (row.last_status_epoch + s.status_min_epoch_gap - current) * 900
            raise TooSoon(f"at least {s.status_min_epoch_gap} epochs between status requests",
                          retry_after=max(wait, 1))
        found = evaluate(orjson.loads(row.exposed_epochs), current, s.risk)
        at_risk = found.at_risk
        notify = at_risk and not row.notified
        # Applies only if no other request changed SRE or the last time meanwhile.
        notified = bool(row.notified or notify)
        notif_epoch = current if notify else row.notification_epoch
        if self._fast is not None:
            done = self._fast.update(row.id_a, req.time, row.last_status_epoch, current,
                                     notified, notif_epoch)
        else:
            with self.engine.begin() as conn:
                done = conn.execute(_STATUS_UPDATE, {
                    "b_id": row.id_a, "b_time": req.time, "b_prev": row.last_status_epoch,
                    "b_epoch": current, "b_notified": notified,
                    "b_notif_epoch": notif_epoch}).rowcount
        if done != 1:
            raise self._reason_not_applied(row.id_a, req)
        renew = row.last_status_epoch < 0 or day_of_epoch(row.last_status_epoch) < day_of_epoch(
            current)
        tuples = None
        if renew:
            kenc = self.keystore.unwrap(row.kenc, row.id_a.to_bytes(5, "big"))
            tuples = self.codec.sealed_tuples(kenc, row.id_a, current,
                                              s.tuple_days * EPOCHS_PER_DAY)
        last_contact = None
        if at_risk and found.last_contact_epoch is not None:
            start = epoch_start_ntp(found.last_contact_epoch)
            last_contact = start - (start - SERVICE_START_NTP) % 86400  # that day, 00:00 UTC
        return Status(at_risk=at_risk, risk_level=RISK_LEVEL_HIGH if at_risk else RISK_LEVEL_NONE,
                      last_contact_date=last_contact, last_risk_scoring_date=self.now_ntp(),
                      tuples=tuples, config=self._published)

    def unregister(self, body: Any) -> None:
        """Unregister (section 8): the registration, its keys and its LEE are deleted."""
        req = AuthenticatedRequest.parse(body)
        row = self._authenticate(req, SALT_UNREGISTER)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "sqlite":
                # Overwrite freed pages so the keys do not linger in the database file.
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            done = conn.execute(t.registration.delete().where(
                t.registration.c.id_a == row.id_a,
                t.registration.c.last_request_time < req.time)).rowcount
        if done != 1:
            raise self._reason_not_applied(row.id_a, req)

    def delete_history(self, body: Any) -> None:
        """Delete exposure history (section 8): LEE and the notification state are cleared."""
        req = AuthenticatedRequest.parse(body)
        row = self._authenticate(req, SALT_DELETE_HISTORY)
        reg = t.registration
        with self.engine.begin() as conn:
            done = conn.execute(reg.update().where(
                reg.c.id_a == row.id_a, reg.c.last_request_time < req.time).values(
                exposed_epochs="{}", notified=False, notification_epoch=-1,
                last_request_time=req.time)).rowcount
        if done != 1:
            raise self._reason_not_applied(row.id_a, req)

    # --- test sites ------------------------------------------------------------------
    def import_sites(self, text: str) -> tuple[int, int]:
        """Replace the test-site list from a CSV; returns (stored, skipped rows)."""
        sites, skipped = parse_csv(text)
        stored = replace_sites(self.engine, sites)
        self._sites = (time.monotonic(), SiteIndex(sites))
        return stored, skipped

    def site_index(self) -> SiteIndex:
        """The in-memory index, re-read from the table at most every minute."""
        cached = self._sites
        if cached is None or time.monotonic() - cached[0] > SITE_INDEX_TTL_S:
            cached = self._sites = (time.monotonic(), SiteIndex(load_sites(self.engine)))
        return cached[1]

    # --- housekeeping -----------------------------------------------------------------
    def forget_old_keys(self) -> int:
        """Destroy daily keys older than the retention: their EBIDs become unreadable."""
        keep_from = day_of_epoch(self.current_epoch()) - self.settings.key_retention_days
        return self.codec.forget_days_before(keep_from)

    def stats(self) -> dict[str, int]:
        """Counts for the operator (no per-user information)."""
        with self.engine.connect() as conn:
            def count(table: sa.Table, *where: Any) -> int:
                return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                        .where(*where)).scalar_one())

            return {
                "registrations": count(t.registration),
                "notified": count(t.registration, t.registration.c.notified.is_(True)),
                "queued_contacts": count(t.contact),
                "pending_codes": count(t.submission_code,
                                       t.submission_code.c.used.is_(False),
                                       t.submission_code.c.expires >= int(self.clock())),
                "test_sites": count(t.test_site),
            }


__all__ = ["ID_MASK", "AuthenticatedRequest", "TracingService"]
