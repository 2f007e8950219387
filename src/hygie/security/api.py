"""HTTP routes of the security package: token endpoint, keys, discovery, sign-in.

* ``POST /oauth/token``: OAuth 2.0 client credentials grant (RFC 6749 §4.4), client
  authenticated by HTTP Basic or by ``client_id``/``client_secret`` in the form
  (§2.3.1), errors as §5.2 JSON.
* ``GET /.well-known/jwks.json``: the public signing keys (RFC 7517).
* ``GET /.well-known/smart-configuration`` (also under ``/fhir``): SMART App Launch
  discovery (https://hl7.org/fhir/smart-app-launch/conformance.html), listing only
  what the platform does today.
* ``GET/POST /login`` and ``GET /logout``: the browser session, in a cookie holding a
  short-lived signed JWT; the form is protected by a double-submit CSRF token.

Each route is glue: parse, call ``clients``/``users``/``tokens``, write the answer.
Argon2 checks run in the thread pool so a sign-in never stalls the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hygie.security import oauth
from hygie.security.clients import authenticate_client
from hygie.security.grants import revoke_access
from hygie.security.middleware import SESSION_COOKIE
from hygie.security.model import InsufficientScope, Kind, Principal
from hygie.security.responses import auth_param, is_fhir_path, outcome_response, problem_response
from hygie.security.scopes import ScopeError, ScopeSet
from hygie.security.signin import signin_for
from hygie.security.tokens import InvalidToken, tokens_for
from hygie.security.users import authenticate_user
from hygie.web.pages import render

#: Paths of this package that need no credentials (the middleware also knows them).
#: ``/oauth/authorize`` is public so that it can send a browser without a session to
#: the sign-in page itself, with the request to resume.
PUBLIC_PATHS = ["/oauth/token", "/oauth/revoke", "/oauth/authorize", "/.well-known/",
                "/fhir/.well-known/", "/login", "/logout"]

#: Name of the login form's CSRF cookie.
CSRF_COOKIE = "hygie_csrf"
#: Name of the cookie of a half-done sign-in (password right, second factor due).
PENDING_COOKIE = "hygie_mfa"

#: Largest form body read by the token endpoint and the login form.
MAX_FORM_BYTES = 16 * 1024

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: ``error`` code, human ``description``, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers={**_NO_STORE, **self.headers})


class FormError(ValueError):
    """Raised when a form body is not a small, well-formed urlencoded form."""


async def read_form(request: Request) -> dict[str, str]:
    """Read an ``application/x-www-form-urlencoded`` body of at most ``MAX_FORM_BYTES``.

    Every parameter may appear once (RFC 6749 §3.1 and §3.2 say so for OAuth requests).
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise FormError("the body must be application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"the body is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise FormError("the body is not a valid urlencoded form") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise FormError(f"parameter {key!r} appears more than once")
        form[key] = value
    return form


# --- token endpoint ---------------------------------------------------------------------


def basic_from_header(request: Request) -> tuple[str, str] | None:
    """HTTP Basic client credentials of a request, or None when it has none."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return _basic_credentials(credentials)
    except OAuthError as exc:
        raise oauth.OAuthError(exc.error, exc.description) from None


def _basic_credentials(header: str) -> tuple[str, str]:
    """Client id and secret from ``Authorization: Basic`` (RFC 6749 §2.3.1 encoding)."""
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise OAuthError("invalid_request", "malformed HTTP Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_request", "malformed HTTP Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


async def token(request: Request) -> Response:
    """POST /oauth/token: client credentials (RFC 6749 §4.4), authorization code with
    PKCE (§4.1.3, RFC 7636) and refresh token (§6) grants."""
    try:
        return await _token(request)
    except OAuthError as exc:
        return exc.response()
    except oauth.OAuthError as exc:
        return exc.response()


async def _token(request: Request) -> Response:
    try:
        form = await read_form(request)
    except FormError as exc:
        raise OAuthError("invalid_request", str(exc)) from None
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "missing grant_type")
    if grant_type in ("authorization_code", "refresh_token"):
        basic = basic_from_header(request)
        if basic is not None and ("client_id" in form and "client_secret" in form):
            raise OAuthError("invalid_request",
                             "use one client authentication method, not Basic and the form")
        if grant_type == "authorization_code":
            return await oauth.authorization_code_grant(request, form, basic)
        return await oauth.refresh_token_grant(request, form, basic)
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type",
                         f"grant_type {grant_type!r} is not supported; use client_credentials, "
                         "authorization_code or refresh_token")

    challenge = {"WWW-Authenticate": 'Basic realm="hygie"'}
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    in_form = "client_id" in form or "client_secret" in form
    if scheme.lower() == "basic":
        if in_form:
            raise OAuthError("invalid_request",
                             "use one client authentication method, not Basic and the form")
        client_id, secret = _basic_credentials(credentials)
    elif in_form:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    else:
        raise OAuthError("invalid_client", "client authentication is required", 401, challenge)
    platform = request.app.state.platform
    client = await run_in_threadpool(authenticate_client, platform.engine, client_id, secret)
    if client is None:
        raise OAuthError("invalid_client", "unknown client, wrong secret or disabled client",
                         401, challenge)

    requested = form.get("scope", "").strip()
    if requested:
        try:
            scopes = ScopeSet.parse(requested)
        except ScopeError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        missing = scopes.missing_from(client.allowed_scopes)
        if missing:
            raise OAuthError("invalid_scope",
                             f"not allowed for this client: {' '.join(missing)}")
    else:
        scopes = client.allowed_scopes  # RFC 6749 §3.3: the registered default
    issued = tokens_for(platform).issue(Principal(
        subject=client.client_id, kind=Kind.SERVICE, scopes=scopes,
        client_id=client.client_id, display=client.name,
    ))
    body = {"access_token": issued.token, "token_type": "Bearer",
            "expires_in": issued.expires_in, "scope": str(scopes)}
    return JSONResponse(body, headers=_NO_STORE)


# --- discovery ----------------------------------------------------------------------------


async def jwks(request: Request) -> Response:
    """GET /.well-known/jwks.json: the keys that verify platform tokens."""
    keys = tokens_for(request.app.state.platform).keys
    body = await run_in_threadpool(keys.jwks)
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


async def smart_configuration(request: Request) -> Response:
    """GET /.well-known/smart-configuration: what a SMART client can use.

    Standalone launch only (no EHR launch), public and confidential clients, PKCE S256,
    OpenID Connect, offline access, patient and user scopes in v1 and v2 syntax.
    """
    settings = request.app.state.platform.settings
    body = {
        **oauth.discovery(settings.base_url.rstrip("/"), settings.token_issuer),
        "capabilities": ["launch-standalone", "client-public", "client-confidential-symmetric",
                         "context-standalone-patient", "context-banner", "sso-openid-connect",
                         "permission-offline", "permission-online", "permission-patient",
                         "permission-user", "permission-v1", "permission-v2"],
    }
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


# --- login ----------------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``/``: no open redirect.

    Refuses absolute and scheme-relative URLs (``//host``, ``/\\host``, which browsers
    read as another host), control characters, and the login page itself.
    """
    if not target or len(target) > 2048 or not target.startswith("/"):
        return "/"
    if target.startswith(("//", "/\\")) or "\\" in target:
        return "/"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return target


def _is_https(request: Request) -> bool:
    return request.app.state.platform.settings.base_url.startswith("https://")


def _login_page(request: Request, *, next_url: str, error: str | None = None,
                username: str = "", status_code: int = 200) -> Response:
    csrf = secrets.token_urlsafe(32)
    response = render(request, "security/login.html", {
        "csrf_token": csrf, "next_url": next_url, "error": error, "username": username,
    }, status_code=status_code)
    # framing and the content policy are set for every page by protection.py
    response.headers.update({"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
    response.set_cookie(CSRF_COOKIE, csrf, max_age=3600, path="/login",
                        secure=_is_https(request), httponly=True, samesite="strict")
    return response


def _origin_ok(request: Request) -> bool:
    """False when the browser says the form was posted from another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    base = urlsplit(request.app.state.platform.settings.base_url)
    own = {f"{base.scheme}://{base.netloc}", f"{request.url.scheme}://{request.url.netloc}"}
    return origin in own


async def login_form(request: Request) -> Response:
    """GET /login: the sign-in form (or straight on when already signed in)."""
    next_url = safe_next(request.query_params.get("next"))
    if getattr(request.state, "user", None) is not None:
        return RedirectResponse(next_url, status_code=303)
    return _login_page(request, next_url=next_url)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _locked_page(request: Request, next_url: str, username: str, seconds: int) -> Response:
    minutes = max(1, (seconds + 59) // 60)
    response = _login_page(request, next_url=next_url, username=username[:128],
                           status_code=429, error="Trop de tentatives de connexion. Réessayez "
                           f"dans {minutes} minute{'s' if minutes > 1 else ''}.")
    response.headers["Retry-After"] = str(max(1, seconds))
    return response


async def login_submit(request: Request) -> Response:
    """POST /login: CSRF, throttling, password; then the second factor when due."""
    try:
        form = await read_form(request)
    except FormError:
        return _login_page(request, next_url="/", status_code=400,
                           error="Le formulaire envoyé est invalide. Veuillez réessayer.")
    next_url = safe_next(form.get("next"))
    username = form.get("username", "")
    sent = form.get("csrf_token", "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not (expected and sent and hmac.compare_digest(sent.encode(), expected.encode())
            and _origin_ok(request)):
        return _login_page(request, next_url=next_url, username=username[:128], status_code=403,
                           error="Votre formulaire de connexion a expiré. Veuillez réessayer.")
    platform = request.app.state.platform
    signin = signin_for(platform)
    wait = signin.per_address.take(_client_address(request))
    if wait:
        return _locked_page(request, next_url, username, int(wait + 1))
    locked = await run_in_threadpool(signin.throttle.locked_for, username)
    if locked:
        await run_in_threadpool(signin.failed, username, "locked")
        return _locked_page(request, next_url, username, locked)
    user = await run_in_threadpool(authenticate_user, platform.engine, username,
                                   form.get("password", ""))
    if user is None:
        lock = await run_in_threadpool(signin.failed, username, "wrong password")
        if lock:
            return _locked_page(request, next_url, username, lock)
        return _login_page(request, next_url=next_url, username=username[:128],
                           error="Identifiant ou mot de passe incorrect.")
    if await run_in_threadpool(signin.second_factor_due, user):
        pending = tokens_for(platform).issue_pending(user.principal())
        response = RedirectResponse("/login/totp?" + urlencode({"next": next_url}),
                                    status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(PENDING_COOKIE, pending.token, max_age=pending.expires_in,
                            path="/login", secure=_is_https(request), httponly=True,
                            samesite="strict")
        response.delete_cookie(CSRF_COOKIE, path="/login")
        return response
    return await _open_session(request, user.principal(), next_url)


async def _open_session(request: Request, principal: Principal, next_url: str) -> Response:
    platform = request.app.state.platform
    await run_in_threadpool(signin_for(platform).succeeded, principal)
    issued = tokens_for(platform).issue_session(principal)
    response = RedirectResponse(next_url, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=issued.expires_in, path="/",
                        secure=_is_https(request), httponly=True, samesite="lax")
    response.delete_cookie(CSRF_COOKIE, path="/login")
    response.delete_cookie(PENDING_COOKIE, path="/login")
    return response


def _pending(request: Request) -> Principal | None:
    token = request.cookies.get(PENDING_COOKIE)
    if not token:
        return None
    try:
        return tokens_for(request.app.state.platform).verify_pending(token)
    except InvalidToken:
        return None


async def totp_form(request: Request) -> Response:
    """GET /login/totp: the code of the authenticator app (or enrolment, the first time)."""
    principal = _pending(request)
    next_url = safe_next(request.query_params.get("next"))
    if principal is None:
        return RedirectResponse("/login?" + urlencode({"next": next_url}), status_code=303)
    return await _totp_page(request, principal, next_url)


async def _totp_page(request: Request, principal: Principal, next_url: str,
                     error: str | None = None, status_code: int = 200) -> Response:
    platform = request.app.state.platform
    signin = signin_for(platform)
    enrolment = await run_in_threadpool(signin.enrolment, principal.subject)
    csrf = secrets.token_urlsafe(32)
    response = render(request, "security/totp.html", {
        "csrf_token": csrf, "next_url": next_url, "error": error, "enrolment": enrolment,
        "display": principal.display,
    }, status_code=status_code)
    response.headers.update({"Cache-Control": "no-store"})
    response.set_cookie(CSRF_COOKIE, csrf, max_age=600, path="/login",
                        secure=_is_https(request), httponly=True, samesite="strict")
    return response


async def totp_submit(request: Request) -> Response:
    """POST /login/totp: check the code; open the session."""
    try:
        form = await read_form(request)
    except FormError:
        form = {}
    next_url = safe_next(form.get("next"))
    principal = _pending(request)
    if principal is None:
        return RedirectResponse("/login?" + urlencode({"next": next_url}), status_code=303)
    sent, expected = form.get("csrf_token", ""), request.cookies.get(CSRF_COOKIE, "")
    if not (expected and sent and hmac.compare_digest(sent.encode(), expected.encode())
            and _origin_ok(request)):
        return await _totp_page(request, principal, next_url, status_code=403,
                                error="Le formulaire a expiré. Veuillez réessayer.")
    signin = signin_for(request.app.state.platform)
    locked = await run_in_threadpool(signin.throttle.locked_for, principal.subject)
    if locked:
        return _locked_page(request, next_url, principal.subject, locked)
    if not await run_in_threadpool(signin.check_code, principal.subject, form.get("code", "")):
        lock = await run_in_threadpool(signin.failed, principal.subject, "wrong TOTP code")
        if lock:
            return _locked_page(request, next_url, principal.subject, lock)
        return await _totp_page(request, principal, next_url, status_code=400,
                                error="Code incorrect ou déjà utilisé.")
    return await _open_session(request, principal, next_url)


async def logout(request: Request) -> Response:
    """GET /logout: forget the session cookie and go back to the sign-in page."""
    user: Principal | None = getattr(request.state, "user", None)
    platform = request.app.state.platform
    if user is not None:
        if user.token_id and user.expires_at:  # the cookie may have been copied: end it
            await run_in_threadpool(revoke_access, platform.engine, user.token_id,
                                    user.expires_at)
        await run_in_threadpool(signin_for(platform).signed_out, user)
    response = RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(SESSION_COOKIE, path="/", secure=_is_https(request),
                           httponly=True, samesite="lax")
    return response


# --- errors ---------------------------------------------------------------------------------


async def insufficient_scope_handler(request: Request, exc: Exception) -> Response:
    """Render ``InsufficientScope`` as 403 with the RFC 6750 §3.1 challenge."""
    assert isinstance(exc, InsufficientScope)
    headers = {"WWW-Authenticate": 'Bearer realm="hygie", error="insufficient_scope", '
                                   f'scope="{auth_param(exc.scope)}"'}
    detail = exc.issues[0].diagnostics
    if is_fhir_path(request.url.path):
        return outcome_response(403, "forbidden", detail, headers)
    return problem_response(403, detail, headers)


def routes() -> list[BaseRoute]:
    """The security routes; ``app.py`` mounts them at the root of the site."""
    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
        Route("/fhir/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/login/totp", totp_form, methods=["GET"]),
        Route("/login/totp", totp_submit, methods=["POST"]),
        Route("/logout", logout, methods=["GET"]),
        Route("/oauth/authorize", oauth.authorize, methods=["GET"]),
        Route("/oauth/authorize", oauth.authorize_decision, methods=["POST"]),
        Route("/oauth/revoke", oauth.revoke, methods=["POST"]),
        Route("/oauth/userinfo", oauth.userinfo, methods=["GET"]),
        Route("/.well-known/openid-configuration", oauth.openid_configuration,
              methods=["GET"]),
    ]


def exception_handlers() -> dict[Any, Any]:
    """The exception handlers ``app.py`` registers for this package."""
    return {InsufficientScope: insufficient_scope_handler}
