"""Hashing of user passwords and client secrets with Argon2id (RFC 9106), via argon2-cffi.

Both kinds of secret go through the same two functions so that the cost of a check does
not depend on whether the account exists: ``verify_secret(None, ...)`` spends one full
Argon2 verification against a fixed dummy hash before answering False. That is what
keeps "unknown user" and "wrong password" indistinguishable by timing.
"""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: argon2-cffi's defaults follow RFC 9106's second recommended option (Argon2id,
#: t=3, m=64 MiB, p=4), which is what we want for staff passwords and client secrets.
_HASHER = PasswordHasher()


def hash_secret(secret: str) -> str:
    """The Argon2id hash (PHC string format) to store for ``secret``."""
    return _HASHER.hash(secret)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(16))


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """True when ``secret`` matches ``stored_hash``; same cost when there is no hash."""
    dummy = _dummy_hash()  # made on the first check of either kind, so both pay for it
    try:
        return _HASHER.verify(stored_hash or dummy, secret) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored_hash)
