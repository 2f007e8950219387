"""``AuthMiddleware``: every request is authenticated before any route sees it.

Credentials are, in this order: an ``Authorization: Bearer`` access token (RFC 6750
§2.1), else the ``hygie_session`` cookie set by the login page. The caller becomes a
``Principal`` at ``request.state.principal`` (and, for a browser session, also at
``request.state.user``, which the page layout shows). A request without valid
credentials to a path that is not public gets:

* a ``303`` to ``/login?next=...`` when it is a browser asking for a page (GET or HEAD,
  ``Accept: text/html``, no Authorization header);
* otherwise ``401`` with ``WWW-Authenticate: Bearer`` (plus ``error="invalid_token"``
  when a token was presented, RFC 6750 §3.1) and an OperationOutcome for FHIR paths,
  problem+json elsewhere.

Public paths still see the principal when valid credentials come with the request.
A cookie-authenticated request that changes state (POST, PUT, PATCH, DELETE) must not
come from another origin: SameSite=Lax already keeps cross-site cookies off such
requests, and the ``Origin`` check here refuses what slips through (older browsers,
a sibling site on the same registrable domain).

It is a plain ASGI middleware, not a ``BaseHTTPMiddleware``: no request object and no
task per call, so a cached token costs a dictionary lookup on the read path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request, cookie_parser
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hygie.platform import Platform
from hygie.security.audit import CLIENT_ADDRESS
from hygie.security.model import InsufficientScope, Principal
from hygie.security.responses import auth_param, error_response, is_fhir_path
from hygie.security.tokens import InvalidToken, TokenService, tokens_for

#: Name of the browser session cookie.
SESSION_COOKIE = "hygie_session"

#: Paths open to anyone, whatever services declare: getting a token, signing in, keys
#: and discovery documents, static files, and the FHIR CapabilityStatement.
ALWAYS_PUBLIC = (
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/authorize",
    "/.well-known/",
    "/login",
    "/logout",
    "/static/",
    "/fhir/metadata",
    "/fhir/.well-known/",
)

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def require_scope(request: Request, resource_type: str, interaction: str) -> Principal:
    """The caller of a service route, once its token grants ``interaction`` on
    ``resource_type``; else ``InsufficientScope`` naming the scope it lacks.

    A request reaches a route without a principal only on a public path, where a
    service route that acts on data refuses it the same way.
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise InsufficientScope(f"user/{resource_type}.{interaction}", "authentication required")
    principal.require(resource_type, interaction)
    return principal


class AuthMiddleware:
    """Authenticate every HTTP and WebSocket request; see the module docstring."""

    def __init__(self, app: ASGIApp, platform: Platform,
                 public_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.platform = platform
        prefixes = dict.fromkeys([*ALWAYS_PUBLIC, *public_paths])
        #: Exact public paths, and prefixes (each ending with "/") of public subtrees.
        self._exact = frozenset(p.rstrip("/") or "/" for p in prefixes)
        self._prefixes = tuple(p if p.endswith("/") else p + "/" for p in prefixes)
        base = urlsplit(platform.settings.base_url)
        self._base_origin = f"{base.scheme}://{base.netloc}"
        self._tokens: TokenService | None = None

    @property
    def tokens(self) -> TokenService:
        if self._tokens is None:
            self._tokens = tokens_for(self.platform)
        return self._tokens

    def is_public(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = cookie = accept = origin = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"cookie":
                cookie = value.decode("latin-1") if cookie is None else (
                    cookie + "; " + value.decode("latin-1"))
            elif name == b"accept":
                accept = value
            elif name == b"origin":
                origin = value.decode("latin-1")

        principal: Principal | None = None
        failure: str | None = None
        from_cookie = False
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                try:
                    principal = self.tokens.verify(credentials.strip())
                except InvalidToken as exc:
                    failure = str(exc)
            elif scheme.lower() == "bearer":
                failure = "the Authorization header has no token"
        elif cookie is not None:
            session = cookie_parser(cookie).get(SESSION_COOKIE)
            if session:
                try:
                    principal = self.tokens.verify_session(session)
                    from_cookie = True
                except InvalidToken:
                    principal = None  # an expired session simply means: sign in again

        path: str = scope["path"]
        client = scope.get("client")
        address = CLIENT_ADDRESS.set(client[0] if client else None)
        try:
            if failure is not None:
                self._record_failure(failure)
            if not self.is_public(path):
                if principal is None:
                    await self._deny(scope, receive, send, authorization is not None, failure,
                                     accept)
                    return
                if from_cookie and scope.get("method") in _UNSAFE_METHODS \
                        and origin is not None and not self._same_origin(scope, origin):
                    response = error_response(
                        path, 403, "forbidden",
                        "cross-origin request refused for a browser session")
                    await response(scope, receive, send)
                    return

            state: dict[str, Any] = dict(scope.get("state") or {})
            state["principal"] = principal
            state["user"] = principal if from_cookie else None
            await self.app({**scope, "state": state}, receive, send)
        finally:
            CLIENT_ADDRESS.reset(address)

    def _record_failure(self, failure: str) -> None:
        """An invalid token presented: a failed access for the audit trail."""
        parts = self.platform.parts.get("security")
        if parts is None:
            return
        from hygie.security.audit_sink import record_security_event

        record_security_event(parts.audit_writer, what="authentication",
                              outcome="4", description=f"token refused: {failure}", wait=False)

    def _same_origin(self, scope: Scope, origin: str) -> bool:
        if origin == self._base_origin:
            return True
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"),
                                                    scope.get("scheme", "http"))
        return host is not None and origin == f"{scheme}://{host}"

    async def _deny(self, scope: Scope, receive: Receive, send: Send, had_authorization: bool,
                    failure: str | None, accept: bytes | None) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        path: str = scope["path"]
        if (not had_authorization and scope.get("method") in ("GET", "HEAD")
                and accept is not None and b"text/html" in accept and not is_fhir_path(path)):
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + ("?" + query if query else "")
            response: Response = RedirectResponse("/login?next=" + quote(target, safe=""),
                                                  status_code=303)
        else:
            challenge = 'Bearer realm="hygie"'
            if failure is not None:
                challenge += f', error="invalid_token", error_description="{auth_param(failure)}"'
            detail = failure or "authentication required: send an access token (Bearer)"
            response = error_response(path, 401, "login", detail,
                                      headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)
