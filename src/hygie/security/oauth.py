"""OAuth 2.0 authorization code with PKCE, refresh tokens, revocation, OpenID Connect.

For the browser UI and for third-party apps launched standalone (SMART App Launch,
https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-standalone-launch):

* ``GET /oauth/authorize`` (RFC 6749 §4.1.1, RFC 7636 §4.3): checks the client and its
  exact redirect URI first (errors there are shown, never redirected: §4.1.2.1), sends
  a browser without a session to the sign-in page, then shows what the app asks for:
  the scopes, and for ``launch/patient`` the patient to open (a patient's own record,
  or one chosen by a practitioner among those in reach);
* ``POST /oauth/authorize``: the user's answer, CSRF-protected; redirects with a code
  or with ``error=access_denied``;
* grants ``authorization_code`` and ``refresh_token`` at ``POST /oauth/token`` (the
  client credentials grant stays in ``api.py``), answering the SMART launch context
  (``patient``) and an ``id_token`` when ``openid`` was granted;
* ``POST /oauth/revoke`` (RFC 7009), ``GET /oauth/userinfo`` (OIDC Core §5.3) and
  ``GET /.well-known/openid-configuration`` (OIDC Discovery §4).

The scopes a token gets are those asked for that the user holds too: a user/ or
patient/ scope must be covered by the account's own scopes, so an app can never get
more than the person who approved it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from hygie.security import grants
from hygie.security.clients import Client, authenticate_client, get_client
from hygie.security.model import Kind, Principal
from hygie.security.responses import problem_response
from hygie.security.scopes import ResourceScope, ScopeError, ScopeSet
from hygie.security.tokens import InvalidToken, tokens_for
from hygie.security.users import User, get_user
from hygie.web.pages import render

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_PARAM = 2048


class OAuthError(Exception):
    """An RFC 6749 §5.2 error for the token and revocation endpoints."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> JSONResponse:
        headers = dict(_NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="hygie"'
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers=headers)


# --- scopes a user may hand to an app -------------------------------------------------------


def grantable(requested: ScopeSet, user: User, *, patient_context: bool) -> ScopeSet:
    """The requested scopes the user can grant: identity scopes, and resource scopes
    covered by the account's own (a patient/ scope counts as the user/ one on the same
    type for staff, since it narrows to one patient)."""
    kept: list[str] = []
    for scope in requested.resource_scopes:
        if scope.context == "system":
            continue
        if scope.context == "patient" and not patient_context:
            continue
        as_user = ResourceScope(user.kind.scope_context, scope.resource_type, scope.permissions,
                                scope.query, scope.restrictions)
        if any(own.covers(as_user) or own.covers(scope) for own in user.scopes.resource_scopes):
            kept.append(str(scope))
    kept += sorted(requested.other)
    return ScopeSet.parse(" ".join(kept))


def principal_for(user: User, scopes: ScopeSet, client_id: str, patient: str | None) -> Principal:
    """What a token issued to ``client_id`` for ``user`` stands for."""
    base = user.principal()
    return Principal(subject=base.subject, kind=base.kind, scopes=scopes, client_id=client_id,
                     display=base.display, roles=base.roles,
                     patient=patient if patient else base.patient,
                     fhir_user=base.fhir_user, hospital=base.hospital)


# --- authorize ---------------------------------------------------------------------------------


def _csrf_for(request: Request, session_id: str) -> str:
    """A CSRF token bound to the browser session (an HMAC of its ``jti``)."""
    key = request.app.state.platform.parts["security.master_key"].derive("hygie csrf")
    return hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()


def _redirect_with(uri: str, params: dict[str, str]) -> RedirectResponse:
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303,
                            headers=_NO_STORE)


def _error_page(request: Request, message: str, status: int = 400) -> Response:
    return render(request, "security/authorize_error.html", {"message": message},
                  status_code=status)


async def _authorization_request(request: Request, params: dict[str, str]
                                 ) -> tuple[Client, dict[str, str]] | Response:
    """Validate an authorization request; a Response is an error to show or redirect."""
    if any(len(v) > _MAX_PARAM for v in params.values()):
        return _error_page(request, "La demande d'autorisation est trop longue.")
    platform = request.app.state.platform
    client_id = params.get("client_id", "")
    client = await run_in_threadpool(get_client, platform.engine, client_id) \
        if 0 < len(client_id) <= 64 else None
    if client is None or client.disabled:
        return _error_page(request, "Application inconnue ou désactivée.")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        return _error_page(request, "L'adresse de retour de l'application n'est pas "
                                    "enregistrée pour elle.")
    state = params.get("state")

    def fail(error: str, description: str) -> Response:
        out = {"error": error, "error_description": description}
        if state is not None:
            out["state"] = state
        return _redirect_with(redirect_uri, out)

    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "only response_type=code is supported")
    if params.get("code_challenge_method") != "S256" or \
            not grants.valid_challenge(params.get("code_challenge", "")):
        return fail("invalid_request", "PKCE is required: code_challenge with method S256")
    if "launch" in params:
        return fail("invalid_request", "EHR launch is not supported; use standalone launch")
    aud = params.get("aud")
    fhir_base = platform.settings.base_url.rstrip("/") + "/fhir"
    if aud is not None and aud.rstrip("/") != fhir_base:
        return fail("invalid_request", f"aud must be this server's FHIR base {fhir_base}")
    try:
        requested = ScopeSet.parse(params.get("scope", ""))
    except ScopeError as exc:
        return fail("invalid_scope", str(exc))
    missing = requested.missing_from(client.allowed_scopes)
    if missing:
        return fail("invalid_scope", f"not allowed for this client: {' '.join(missing)}")
    return client, {**params, "scope": str(requested)}


async def authorize(request: Request) -> Response:
    """GET /oauth/authorize: sign in if needed, then ask the user to approve."""
    params = dict(request.query_params)
    checked = await _authorization_request(request, params)
    if isinstance(checked, Response):
        return checked
    client, params = checked
    user_principal: Principal | None = getattr(request.state, "user", None)
    if user_principal is None:
        target = request.url.path + "?" + request.url.query
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    return await _consent_page(request, client, params, user_principal)


async def _consent_page(request: Request, client: Client, params: dict[str, str],
                        session: Principal, error: str | None = None) -> Response:
    platform = request.app.state.platform
    user = await run_in_threadpool(get_user, platform.engine, session.subject)
    if user is None or user.disabled:
        return _error_page(request, "Votre compte n'est pas actif.", 403)
    requested = ScopeSet.parse(params["scope"])
    wants_patient = requested.has("launch/patient")
    scopes = grantable(requested, user, patient_context=wants_patient or
                       user.kind is Kind.PATIENT)
    response = render(request, "security/authorize.html", {
        "client": client, "params": params, "scopes": list(scopes),
        "refused": sorted(set(requested) - set(scopes)),
        "needs_patient": wants_patient and user.kind is not Kind.PATIENT,
        "csrf_token": _csrf_for(request, session.token_id or ""), "error": error,
    }, status_code=400 if error else 200)
    response.headers.update(_NO_STORE)
    return response


async def authorize_decision(request: Request) -> Response:
    """POST /oauth/authorize: the user approves or refuses; redirect back to the app."""
    from hygie.security.api import FormError, read_form

    try:
        form = await read_form(request)
    except FormError as exc:
        return _error_page(request, f"Formulaire invalide : {exc}")
    session: Principal | None = getattr(request.state, "user", None)
    if session is None:
        return _error_page(request, "Votre session a expiré. Reprenez depuis l'application.",
                           401)
    sent = form.pop("csrf_token", "")
    if not hmac.compare_digest(sent.encode(), _csrf_for(request, session.token_id or "")
                               .encode()):
        return _error_page(request, "Le formulaire a expiré. Reprenez depuis l'application.",
                           403)
    decision = form.pop("decision", "")
    patient = form.pop("patient", "").strip()
    checked = await _authorization_request(request, form)
    if isinstance(checked, Response):
        return checked
    client, params = checked
    redirect_uri, state = params["redirect_uri"], params.get("state")
    out: dict[str, str] = {} if state is None else {"state": state}
    if decision != "approve":
        return _redirect_with(redirect_uri, {"error": "access_denied",
                                             "error_description": "the user refused", **out})
    platform = request.app.state.platform
    user = await run_in_threadpool(get_user, platform.engine, session.subject)
    if user is None or user.disabled:
        return _error_page(request, "Votre compte n'est pas actif.", 403)
    requested = ScopeSet.parse(params["scope"])
    launch_patient = None
    if requested.has("launch/patient"):
        if user.kind is Kind.PATIENT:
            launch_patient = user.principal().patient
        else:
            launch_patient = patient
            error = await run_in_threadpool(_check_launch_patient, request, user, patient)
            if error:
                return await _consent_page(request, client, params, session, error)
    scopes = grantable(requested, user, patient_context=launch_patient is not None)
    code = await run_in_threadpool(
        grants.new_code, platform.engine, client_id=client.client_id, username=user.username,
        redirect_uri=redirect_uri, scope=str(scopes), code_challenge=params["code_challenge"],
        nonce=params.get("nonce"), patient=launch_patient)
    return _redirect_with(redirect_uri, {"code": code, **out})


def _check_launch_patient(request: Request, user: User, patient: str) -> str | None:
    """Why the practitioner may not open ``patient`` in the app (None: they may)."""
    from hygie.store.model import ID_RE

    if not patient or not ID_RE.match(patient):
        return "Indiquez l'identifiant du patient à ouvrir dans l'application."
    platform = request.app.state.platform
    ctx = platform.parts.get("store")
    if ctx is None:
        return "Le dossier patient n'est pas disponible."
    from hygie.store.outcomes import FhirError

    try:
        ctx.access.check_resource(user.principal(), "Patient", patient)
        ctx.repository.read("Patient", patient)
    except FhirError as exc:
        if exc.status == 403:
            return "Ce patient n'est pas dans votre périmètre d'accès."
        return "Aucun patient ne porte cet identifiant."
    return None


# --- token endpoint grants --------------------------------------------------------------------


async def client_for_grant(request: Request, form: dict[str, str],
                           basic: tuple[str, str] | None) -> Client:
    """The client of a token or revocation request: confidential with its secret, or
    public with only its id (RFC 6749 §2.3, §3.2.1)."""
    platform = request.app.state.platform
    if basic is not None:
        client_id, secret = basic
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id:
        raise OAuthError("invalid_client", "client authentication is required", 401)
    if secret:
        client = await run_in_threadpool(authenticate_client, platform.engine, client_id, secret)
    else:
        found = await run_in_threadpool(get_client, platform.engine, client_id) \
            if len(client_id) <= 64 else None
        client = found if found is not None and found.public and not found.disabled else None
    if client is None:
        raise OAuthError("invalid_client", "unknown client, wrong secret or disabled client", 401)
    return client


def _token_body(request: Request, user: User, client: Client, scope: str,
                patient: str | None, nonce: str | None,
                refresh: str | None) -> dict[str, Any]:
    platform = request.app.state.platform
    scopes = ScopeSet.parse(scope)
    principal = principal_for(user, scopes, client.client_id, patient)
    tokens = tokens_for(platform)
    issued = tokens.issue(principal)
    body: dict[str, Any] = {"access_token": issued.token, "token_type": "Bearer",
                            "expires_in": issued.expires_in, "scope": str(scopes)}
    if scopes.has("offline_access") or scopes.has("online_access"):
        body["refresh_token"] = refresh or grants.issue_refresh(
            platform.engine, client_id=client.client_id, username=user.username,
            scope=str(scopes), patient=patient,
            lifetime_s=platform.settings.refresh_token_lifetime_s)
    if patient:
        body["patient"] = patient
        body["need_patient_banner"] = True
    if scopes.has("openid"):
        body["id_token"] = tokens.issue_id_token(principal, client_id=client.client_id,
                                                 nonce=nonce)
    return body


async def authorization_code_grant(request: Request, form: dict[str, str],
                                   basic: tuple[str, str] | None) -> Response:
    """grant_type=authorization_code (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5)."""
    client = await client_for_grant(request, form, basic)
    platform = request.app.state.platform
    try:
        grant = await run_in_threadpool(
            grants.redeem_code, platform.engine, form.get("code", ""), client_id=client.client_id,
            redirect_uri=form.get("redirect_uri"), code_verifier=form.get("code_verifier"))
    except grants.GrantError as exc:
        raise OAuthError(exc.error, exc.description) from None
    user = await run_in_threadpool(get_user, platform.engine, grant.username)
    if user is None or user.disabled:
        raise OAuthError("invalid_grant", "the account that approved this code is disabled")
    body = await run_in_threadpool(_token_body, request, user, client, grant.scope,
                                   grant.patient, grant.nonce, None)
    return JSONResponse(body, headers=_NO_STORE)


async def refresh_token_grant(request: Request, form: dict[str, str],
                              basic: tuple[str, str] | None) -> Response:
    """grant_type=refresh_token (RFC 6749 §6), with rotation."""
    client = await client_for_grant(request, form, basic)
    platform = request.app.state.platform
    try:
        grant = await run_in_threadpool(
            grants.use_refresh, platform.engine, form.get("refresh_token", ""),
            client_id=client.client_id, lifetime_s=platform.settings.refresh_token_lifetime_s)
    except grants.GrantError as exc:
        raise OAuthError(exc.error, exc.description) from None
    scope = grant.scope
    if form.get("scope"):
        try:
            narrower = ScopeSet.parse(form["scope"])
        except ScopeError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        if not narrower.issubset(ScopeSet.parse(grant.scope)):
            raise OAuthError("invalid_scope", "a refresh may only narrow the granted scopes")
        scope = str(narrower)
    user = await run_in_threadpool(get_user, platform.engine, grant.username)
    if user is None or user.disabled:
        raise OAuthError("invalid_grant", "the account of this refresh token is disabled")
    body = await run_in_threadpool(_token_body, request, user, client, scope, grant.patient,
                                   None, grant.token)
    return JSONResponse(body, headers=_NO_STORE)


# --- revocation, userinfo, discovery ------------------------------------------------------------


async def revoke(request: Request) -> Response:
    """POST /oauth/revoke (RFC 7009): always 200 for a valid client, whatever the token."""
    from hygie.security.api import FormError, basic_from_header, read_form

    try:
        form = await read_form(request)
        client = await client_for_grant(request, form, basic_from_header(request))
    except FormError as exc:
        return OAuthError("invalid_request", str(exc)).response()
    except OAuthError as exc:
        return exc.response()
    token = form.get("token", "")
    if not token:
        return OAuthError("invalid_request", "missing token").response()
    platform = request.app.state.platform
    done = await run_in_threadpool(grants.revoke_refresh, platform.engine, token,
                                   client.client_id)
    if not done:
        try:
            principal = tokens_for(platform).verify(token)
        except InvalidToken:
            principal = None
        if principal is not None and principal.client_id == client.client_id \
                and principal.token_id and principal.expires_at:
            await run_in_threadpool(grants.revoke_access, platform.engine, principal.token_id,
                                    principal.expires_at)
            platform.parts["security.revocations"].reload()
    return Response(status_code=200, headers=_NO_STORE)


async def userinfo(request: Request) -> Response:
    """GET /oauth/userinfo: the signed-in person's claims (needs ``openid``)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None or not principal.scopes.has("openid"):
        return problem_response(403, "userinfo needs an access token with the openid scope",
                                {"WWW-Authenticate": 'Bearer error="insufficient_scope", '
                                                     'scope="openid"'})
    body: dict[str, Any] = {"sub": principal.subject}
    if principal.scopes.has("profile") and principal.display:
        body["name"] = principal.display
    if principal.scopes.has("fhirUser") and principal.fhir_user:
        body["fhirUser"] = principal.fhir_user
    return JSONResponse(body, headers=_NO_STORE)


def discovery(base: str, issuer: str) -> dict[str, Any]:
    """What the SMART configuration and OpenID discovery documents share."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "none"],
        "scopes_supported": ["openid", "fhirUser", "profile", "launch/patient",
                             "offline_access", "online_access", "patient/*.rs", "user/*.rs",
                             "user/*.cruds", "system/*.rs"],
    }


async def openid_configuration(request: Request) -> Response:
    """GET /.well-known/openid-configuration (OpenID Connect Discovery 1.0 §4)."""
    platform = request.app.state.platform
    base = platform.settings.base_url.rstrip("/")
    body = {**discovery(base, platform.settings.token_issuer),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": ["sub", "name", "fhirUser", "nonce", "auth_time"]}
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})
