"""Second factor for staff: time-based one-time passwords (TOTP, RFC 6238) with pyotp.

The secret is 160 random bits (RFC 4226 §4 recommends at least 128), shown once at
enrolment as text and as a QR code (the ``otpauth://`` URI that authenticator apps
read), and stored sealed by the master key. A code is accepted for the current
30-second step or the one before or after (clock drift), and never twice: the last
accepted step is kept, so a code seen over someone's shoulder cannot be replayed.
Enrolment is complete once a first code was accepted (``totp_confirmed``).
"""

from __future__ import annotations

import time

import pyotp
import segno
from sqlalchemy import Engine, select, update

from hygie.platform import write_transaction
from hygie.security.encryption import MasterKey
from hygie.security.tables import app_user
from hygie.security.users import normalize_username

ISSUER = "Hygie"
STEP_S = 30
#: Steps accepted either side of the current one.
WINDOW = 1


def start_enrolment(engine: Engine, master: MasterKey, username: str) -> str:
    """Give the account a new, unconfirmed secret; returns it (base32) to show once."""
    secret = pyotp.random_base32(32)
    with write_transaction(engine) as conn:
        conn.execute(update(app_user).where(app_user.c.username == normalize_username(username))
                     .values(totp_secret=master.wrap(secret.encode()), totp_confirmed=False,
                             totp_last_step=0))
    return secret


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app imports."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no script, no network)."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#1b2733")


def status(engine: Engine, username: str) -> tuple[bool, bool]:
    """(has a secret, enrolment confirmed) for an account."""
    with engine.connect() as conn:
        row = conn.execute(select(app_user.c.totp_secret, app_user.c.totp_confirmed)
                           .where(app_user.c.username == normalize_username(username))).first()
    if row is None:
        return False, False
    return row.totp_secret is not None, bool(row.totp_confirmed)


def current_secret(engine: Engine, master: MasterKey, username: str) -> str | None:
    with engine.connect() as conn:
        sealed = conn.execute(select(app_user.c.totp_secret).where(
            app_user.c.username == normalize_username(username))).scalar()
    return master.unwrap(bytes(sealed)).decode() if sealed is not None else None


def check_code(engine: Engine, master: MasterKey, username: str, code: str,
               now: float | None = None) -> bool:
    """True when ``code`` is valid for the account and was not used before; confirms an
    enrolment on its first valid code."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return False
    username = normalize_username(username)
    with write_transaction(engine) as conn:
        row = conn.execute(select(app_user.c.totp_secret, app_user.c.totp_last_step)
                           .where(app_user.c.username == username)).first()
        if row is None or row.totp_secret is None:
            return False
        totp = pyotp.TOTP(master.unwrap(bytes(row.totp_secret)).decode())
        moment = time.time() if now is None else now
        current = int(moment // STEP_S)
        for step in range(current - WINDOW, current + WINDOW + 1):
            if step <= row.totp_last_step:
                continue
            if totp.verify(code, for_time=step * STEP_S):
                conn.execute(update(app_user).where(app_user.c.username == username)
                             .values(totp_last_step=step, totp_confirmed=True))
                return True
    return False
