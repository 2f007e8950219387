"""Sign-in throttling and lockout, per username, known or not.

After ``threshold`` failed sign-ins in a row (a wrong password or a wrong second-factor
code) a username is locked for ``lockout_s`` seconds, then each further failure locks
it again for twice as long, up to a day (ANSSI's recommendations on authentication
ask for a delay that grows). A success clears the count. Failures are counted for
usernames that do not exist too, so that a lockout message reveals nothing about
which accounts exist. Attempts per network address are limited separately
(``ratelimit.py``), against one address trying many usernames.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, delete, insert, select, update

from hygie.platform import write_transaction
from hygie.security.tables import login_failure
from hygie.security.users import normalize_username

MAX_LOCK_S = 86_400


class LoginThrottle:
    """Failed sign-ins and locks, in the ``login_failure`` table."""

    def __init__(self, engine: Engine, threshold: int = 5, lockout_s: int = 900) -> None:
        self.engine = engine
        self.threshold = threshold
        self.lockout_s = lockout_s

    @staticmethod
    def _key(username: str) -> str:
        return normalize_username(username)[:128]

    def locked_for(self, username: str) -> int:
        """Seconds the username stays locked (0: not locked)."""
        with self.engine.connect() as conn:
            until = conn.execute(select(login_failure.c.locked_until)
                                 .where(login_failure.c.username == self._key(username))).scalar()
        remaining = ((until or 0) - time.time_ns() // 1000) / 1e6
        return max(0, int(remaining + 0.999))

    def failure(self, username: str) -> int:
        """Count a failure; returns the seconds of lock it caused (0: none yet)."""
        key, now = self._key(username), time.time_ns() // 1000
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(login_failure).where(login_failure.c.username == key)
                               ).first()
            failures = (row.failures if row else 0) + 1
            lock_s = 0
            if failures >= self.threshold:
                lock_s = min(MAX_LOCK_S, self.lockout_s * 2 ** (failures - self.threshold))
            values = {"failures": failures, "last_failure": now,
                      "locked_until": now + lock_s * 1_000_000 if lock_s else 0}
            if row is None:
                conn.execute(insert(login_failure).values(username=key, **values))
            else:
                conn.execute(update(login_failure).where(login_failure.c.username == key)
                             .values(**values))
        return lock_s

    def success(self, username: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(delete(login_failure).where(
                login_failure.c.username == self._key(username)))
