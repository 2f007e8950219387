"""What happens around a sign-in: throttling, lockout, second factor, and its audit.

The login routes (``api.py``) are glue over one ``SignIn`` per platform:

* ``per_address``: sign-in attempts from one network address per minute (a token
  bucket), against one machine trying many usernames;
* ``throttle``: failures per username and the growing lock (``throttle.py``);
* the TOTP second factor (``totp.py``), due for staff who enrolled, and for every
  staff member when ``totp_for_staff`` is set (the first sign-in then enrols);
* every success, failure, lock and sign-out becomes an AuditEvent, committed before
  the answer goes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hygie.platform import Platform
from hygie.security import audit, totp
from hygie.security.audit_sink import record_login
from hygie.security.installation import install
from hygie.security.model import Kind, Principal
from hygie.security.ratelimit import TokenBuckets
from hygie.security.throttle import LoginThrottle
from hygie.security.users import User

_STAFF = (Kind.PRACTITIONER, Kind.ADMIN)


@dataclass
class SignIn:
    """Sign-in policy for one platform (see the module docstring)."""

    platform: Platform
    throttle: LoginThrottle
    per_address: TokenBuckets

    @property
    def _writer(self) -> Any:
        return install(self.platform).audit_writer

    def failed(self, username: str, why: str) -> int:
        """Count and record a failed sign-in; returns the seconds of lock it caused."""
        lock = 0 if why == "locked" else self.throttle.failure(username)
        detail = why + (f"; username locked for {lock} s" if lock else "")
        record_login(self._writer, username=username, outcome=audit.MINOR_FAILURE,
                     description=f"sign-in refused: {detail}")
        return lock

    def succeeded(self, principal: Principal) -> None:
        self.throttle.success(principal.subject)
        record_login(self._writer, username=principal.subject, outcome=audit.SUCCESS,
                     description="signed in", principal=principal)

    def signed_out(self, principal: Principal) -> None:
        record_login(self._writer, username=principal.subject, outcome=audit.SUCCESS,
                     description="signed out", principal=principal, subtype="logout")

    def second_factor_due(self, user: User) -> bool:
        if user.kind not in _STAFF:
            return False
        if self.platform.settings.totp_for_staff:
            return True
        return totp.status(self.platform.engine, user.username)[1]

    def enrolment(self, username: str) -> dict[str, str] | None:
        """What the enrolment page shows (None when the account is enrolled already)."""
        has_secret, confirmed = totp.status(self.platform.engine, username)
        if confirmed:
            return None
        master = install(self.platform).master_key
        secret = totp.current_secret(self.platform.engine, master, username) if has_secret \
            else totp.start_enrolment(self.platform.engine, master, username)
        assert secret is not None
        uri = totp.provisioning_uri(secret, username)
        return {"secret": secret, "uri": uri, "qr": totp.qr_svg(uri)}

    def check_code(self, username: str, code: str) -> bool:
        return totp.check_code(self.platform.engine, install(self.platform).master_key,
                               username, code)


def signin_for(platform: Platform) -> SignIn:
    """The platform's ``SignIn``, built on first use from its settings."""
    found: SignIn | None = platform.parts.get("security.signin")
    if found is None:
        settings = platform.settings
        per_minute = max(1, int(settings.login_rate_per_minute))
        found = platform.parts.setdefault("security.signin", SignIn(
            platform, LoginThrottle(platform.engine, settings.lockout_threshold,
                                    settings.lockout_s),
            TokenBuckets(per_minute / 60, per_minute)))
    return found
