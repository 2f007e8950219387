"""Answer links carried by e-mails: signed, expiring, naming one message.

A link is ``<base_url>/channels/r/<token>``, where the token is a JWT (HS256, RFC 7519)
with the message id as subject, an audience of its own and an expiry. The secret is
made on first use and kept in the database, so that every process of the platform
(server workers, the dispatcher) signs and checks with the same one. Opening a link
shows the question; only the form's POST records the answer, because mail filters
open links to scan them.
"""

from __future__ import annotations

import secrets
import time

import jwt
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from hygie.channels import tables as t
from hygie.channels.errors import AnswerLinkError, AnswerLinkExpired

AUDIENCE = "hygie:channels:answer"
_NAME = "answer-links"


class AnswerLinks:
    """Makes and checks answer links for one platform."""

    def __init__(self, engine: Engine, base_url: str, ttl_s: int) -> None:
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        if self._secret is None:
            with self.engine.begin() as conn:
                value = conn.scalar(select(t.secret.c.value).where(t.secret.c.name == _NAME))
            if value is None:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(t.secret).values(name=_NAME,
                                                             value=secrets.token_bytes(32)))
                except IntegrityError:
                    pass  # another process made it first: read theirs
                with self.engine.begin() as conn:
                    value = conn.scalar(select(t.secret.c.value).where(
                        t.secret.c.name == _NAME))
            self._secret = bytes(value)
        return self._secret

    def token(self, message_id: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        return jwt.encode({"sub": message_id, "aud": AUDIENCE, "iat": issued,
                           "exp": issued + self.ttl_s}, self.secret(), algorithm="HS256")

    def url(self, message_id: str) -> str:
        return f"{self.base_url}/channels/r/{self.token(message_id)}"

    def verify(self, token: str) -> str:
        """The message id the token names; raise AnswerLinkExpired or AnswerLinkError."""
        try:
            claims = jwt.decode(token, self.secret(), algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["exp", "sub", "aud"]})
        except jwt.ExpiredSignatureError as exc:
            raise AnswerLinkExpired("this answer link has expired") from exc
        except jwt.PyJWTError as exc:
            raise AnswerLinkError("this answer link is not valid") from exc
        return str(claims["sub"])
