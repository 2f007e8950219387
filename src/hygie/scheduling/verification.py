"""Proving a mobile number before a public booking: a 6-digit code sent by SMS.

The code is kept only as an HMAC-SHA256 under a server key (a 6-digit code hashed
without a key could be recovered from a database copy by trying the million values),
expires after ``CODE_TTL_S``, and allows ``MAX_ATTEMPTS`` tries. Once confirmed, the
person gets a random verification token (kept as its SHA-256) that books within
``TOKEN_TTL_S``. Codes are rate-limited per number (``MAX_CODES_PER_HOUR``) and per
asking address (``MAX_CODES_PER_CLIENT_HOUR``).
Numbers are parsed and checked with ``phonenumbers`` (libphonenumber's metadata):
only mobile numbers can receive the code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import phonenumbers
from sqlalchemy import Connection, func, insert, select, update

from hygie.scheduling import tables as t
from hygie.scheduling.errors import InvalidInput, TooManyRequests, VerificationFailed

CODE_TTL_S = 10 * 60
TOKEN_TTL_S = 30 * 60
MAX_ATTEMPTS = 5
MAX_CODES_PER_HOUR = 5
#: Codes one network address may ask for in an hour, whatever the numbers (SMS cost).
MAX_CODES_PER_CLIENT_HOUR = 20

_MOBILE = {phonenumbers.PhoneNumberType.MOBILE,
           phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalize_mobile(raw: str, region: str = "FR") -> str:
    """A mobile number in E.164 (``+33612345678``), from what a person typed."""
    try:
        number = phonenumbers.parse((raw or "").strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput("the phone number cannot be read") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("the phone number is not a valid number")
    if phonenumbers.number_type(number) not in _MOBILE:
        raise InvalidInput("a mobile number is needed to receive the code by SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _code_hash(key: bytes, phone: str, code: str) -> str:
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def _recent(conn: Connection, column: object, value: str, now: int) -> tuple[int, int]:
    count, oldest = conn.execute(select(func.count(), func.min(t.verification.c.created_utc))
                                 .where(column == value,  # type: ignore[operator]
                                        t.verification.c.created_utc > now - 3600)).one()
    return int(count), int(oldest or now)


def request_code(conn: Connection, phone: str, key: bytes, now: int,
                 client: str | None = None) -> str:
    """Create a code for ``phone`` (E.164); the caller sends it by SMS.

    Limited per number and per asking address (``client``), so that nobody can use the
    service to flood a number or send SMS at the hospital's expense.
    """
    count, oldest = _recent(conn, t.verification.c.phone, phone, now)
    if count >= MAX_CODES_PER_HOUR:
        raise TooManyRequests("too many codes asked for this number; try again later",
                              retry_after=max(1, oldest + 3600 - now))
    if client is not None:
        count, oldest = _recent(conn, t.verification.c.client, client, now)
        if count >= MAX_CODES_PER_CLIENT_HOUR:
            raise TooManyRequests("too many codes asked from this address; try again later",
                                  retry_after=max(1, oldest + 3600 - now))
    code = f"{secrets.randbelow(1_000_000):06d}"
    conn.execute(insert(t.verification).values(
        phone=phone, code_hash=_code_hash(key, phone, code), created_utc=now,
        expires_utc=now + CODE_TTL_S, attempts=0, client=client))
    return code


def confirm(conn: Connection, phone: str, code: str, key: bytes, now: int) -> str | None:
    """Check the latest code sent to ``phone``; returns a verification token.

    A wrong code returns None after counting the attempt, so that the caller commits
    the count before refusing (raising here would roll it back).
    """
    row = conn.execute(select(t.verification).where(
        t.verification.c.phone == phone, t.verification.c.token_hash.is_(None))
        .order_by(t.verification.c.created_utc.desc(), t.verification.c.id.desc())
        .limit(1)).first()
    if row is None or row.expires_utc <= now:
        raise VerificationFailed("no valid code for this number: ask for a new one")
    if row.attempts >= MAX_ATTEMPTS:
        raise VerificationFailed("too many wrong codes: ask for a new one")
    good = hmac.compare_digest(row.code_hash, _code_hash(key, phone, (code or "").strip()))
    if not good:
        conn.execute(update(t.verification).where(t.verification.c.id == row.id)
                     .values(attempts=row.attempts + 1))
        return None
    token = secrets.token_urlsafe(32)
    conn.execute(update(t.verification).where(t.verification.c.id == row.id).values(
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        token_expires_utc=now + TOKEN_TTL_S, attempts=row.attempts + 1))
    return token


def verified_phone(conn: Connection, token: str, now: int) -> str:
    """The number a verification token proves, while it is valid."""
    row = conn.execute(select(t.verification.c.phone, t.verification.c.token_expires_utc)
                       .where(t.verification.c.token_hash
                              == hashlib.sha256((token or "").encode()).hexdigest())).first()
    if row is None or row.token_expires_utc is None or row.token_expires_utc <= now:
        raise VerificationFailed("the phone verification has expired: verify the number again")
    return str(row.phone)
