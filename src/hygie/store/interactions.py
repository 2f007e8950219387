"""The FHIR RESTful interactions, free of any web framework.

``handle(request, ctx)`` takes a plain ``FhirRequest`` (method, path segments, query
pairs, headers, body), checks that the path and the body agree, calls one repository
method and returns a ``FhirResponse``. Anything raised below is a ``FhirError``;
``api.py`` is only the adapter to HTTP. Each function names the section of
http://hl7.org/fhir/R4/http.html it implements.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from hygie.store import outcomes
from hygie.store.access import AccessPolicy, AuditSink, NoAudit, ScopesOnly
from hygie.store.bundles import history_bundle, searchset
from hygie.store.model import ID_RE, StoredResource, WriteResult, parse_instant
from hygie.store.repository import Repository


class Principal(Protocol):
    """Who is calling; the security package provides the implementation."""

    def require(self, resource_type: str, interaction: str) -> None: ...


@dataclass(frozen=True)
class FhirRequest:
    """An HTTP request reduced to what FHIR needs; ``path`` is split after the base."""

    method: str
    path: tuple[str, ...]
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    principal: Principal | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def prefer(self, key: str) -> str | None:
        """A token of the Prefer header (RFC 7240), e.g. ``return`` or ``handling``."""
        raw = self.header("prefer") or ""
        for part in raw.split(","):
            for token in part.split(";"):
                name, _, value = token.strip().partition("=")
                if name.strip().lower() == key:
                    return value.strip().strip('"').lower() or "true"
        return None

    def param(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None


@dataclass
class FhirResponse:
    """Status, headers and a body: a resource dict, or stored JSON bytes as they are."""

    status: int
    resource: dict[str, Any] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Set by an interaction that told the audit sink itself, inside its own write
    #: transaction (a transaction Bundle); ``handle`` then does not tell it again.
    audited: bool = False


@dataclass
class StoreContext:
    """What the interactions need besides the request."""

    repository: Repository
    base_url: str
    resource_types: frozenset[str]
    capability: Callable[[], dict[str, Any]]
    #: Operations registered by name, e.g. "$export" (system, type or instance level).
    operations: dict[str, Callable[[FhirRequest, StoreContext], FhirResponse]] = field(
        default_factory=dict
    )
    max_bundle_entries: int = 10_000
    project: Callable[[dict[str, Any], list[tuple[str, str]]], dict[str, Any]] | None = None
    #: Access rules beyond scopes, and where interactions are reported (store/access.py).
    access: AccessPolicy = field(default_factory=ScopesOnly)
    audit: AuditSink = field(default_factory=NoAudit)
    #: Reads by id are served on the event loop (the database is a local file).
    local_reads: bool = True


#: Methods of the interactions that write one resource (create, update, patch, delete).
_SINGLE_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_ETAG_RE = re.compile(r'^\s*(?:W/)?"?([0-9]+)"?\s*$')

_SEARCH_CONTROL = {"_format", "_pretty", "_cursor"}


def _allow(req: FhirRequest, res_type: str, interaction: str) -> None:
    if req.principal is not None:
        req.principal.require(res_type, interaction)


def _guard(ctx: StoreContext, req: FhirRequest, res_type: str, res_id: str) -> None:
    """The access rules on one stored resource, after the scopes (store/access.py)."""
    if req.principal is not None:
        ctx.access.check_resource(req.principal, res_type, res_id)


def _guard_body(ctx: StoreContext, req: FhirRequest, body: dict[str, Any]) -> None:
    """The access rules on a body about to be written."""
    if req.principal is not None:
        ctx.access.check_body(req.principal, body)


def _guard_wide(ctx: StoreContext, req: FhirRequest, what: str) -> None:
    """The access rules on an interaction that spans many patients."""
    if req.principal is not None:
        ctx.access.check_wide(req.principal, what)


def parse_body(req: FhirRequest, expected_type: str | None = None) -> dict[str, Any]:
    """Parse a JSON resource body, with precise errors for each way it can be wrong."""
    if not req.body.strip():
        raise outcomes.invalid("the request has no body; a FHIR resource in JSON is expected")
    try:
        data = orjson.loads(req.body)
    except orjson.JSONDecodeError as exc:
        raise outcomes.invalid(f"the body is not valid JSON: {exc}", code="structure") from exc
    if not isinstance(data, dict):
        raise outcomes.invalid("the body must be a JSON object (a FHIR resource)", code="structure")
    res_type = data.get("resourceType")
    if not isinstance(res_type, str):
        raise outcomes.invalid(
            "the body has no resourceType", expression="resourceType", code="structure"
        )
    if expected_type is not None and res_type != expected_type:
        raise outcomes.invalid(
            f"resourceType {res_type!r} does not match the URL's {expected_type}",
            expression="resourceType",
        )
    return data


def _parse_version(etag: str, header: str) -> int:
    match = _ETAG_RE.match(etag)
    if not match:
        raise outcomes.invalid(f'{header} must be an ETag like W/"3", got {etag!r}')
    return int(match.group(1))


def _check_type(ctx: StoreContext, res_type: str) -> None:
    if res_type not in ctx.resource_types:
        raise outcomes.FhirError(
            outcomes.Issue("not-supported", f"{res_type!r} is not an R4 resource type"), status=404
        )


def _check_id(res_type: str, res_id: str) -> None:
    if not ID_RE.match(res_id):
        raise outcomes.invalid(f"{res_id!r} is not a valid FHIR id", expression=f"{res_type}.id")


def _resource_headers(ctx: StoreContext, stored: StoredResource) -> dict[str, str]:
    return {
        "ETag": stored.etag,
        "Last-Modified": stored.last_modified,
        "Location": f"{ctx.base_url}/{stored.res_type}/{stored.res_id}/_history/{stored.version}",
    }


def _read_response(ctx: StoreContext, req: FhirRequest, stored: StoredResource) -> FhirResponse:
    headers = _resource_headers(ctx, stored)
    del headers["Location"]
    wanted = _project_query(req)
    if wanted and ctx.project is not None:
        return FhirResponse(200, resource=ctx.project(stored.resource, wanted), headers=headers)
    return FhirResponse(200, raw=stored.body, headers=headers)


def _project_query(req: FhirRequest) -> list[tuple[str, str]]:
    return [(k, v) for k, v in req.query if k in ("_summary", "_elements")]


def _write_response(ctx: StoreContext, req: FhirRequest, result: WriteResult) -> FhirResponse:
    """Answer a write as the Prefer header asks (http.html#ops: return=)."""
    stored = result.stored
    status = 201 if result.created else 200
    headers = _resource_headers(ctx, stored)
    prefer = req.prefer("return")
    if prefer == "minimal":
        return FhirResponse(status, headers=headers)
    if prefer == "operationoutcome":
        what = (
            "created"
            if result.created
            else ("matched; nothing written" if result.unchanged else "updated")
        )
        return FhirResponse(
            status,
            resource=outcomes.ok(f"{stored.res_type}/{stored.res_id} {what}"),
            headers=headers,
        )
    return FhirResponse(status, raw=stored.body, headers=headers)


# --- instance level -------------------------------------------------------------


def read(ctx: StoreContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    """http.html#read, with If-None-Match for conditional reads."""
    _allow(req, res_type, "r")
    _check_id(res_type, res_id)
    _guard(ctx, req, res_type, res_id)
    stored = ctx.repository.read(res_type, res_id)
    none_match = req.header("if-none-match")
    if (
        none_match
        and _ETAG_RE.match(none_match)
        and _parse_version(none_match, "If-None-Match") == stored.version
    ):
        return FhirResponse(304, headers={"ETag": stored.etag})
    return _read_response(ctx, req, stored)


def vread(
    ctx: StoreContext, req: FhirRequest, res_type: str, res_id: str, vid: str
) -> FhirResponse:
    """http.html#vread: a deleted version answers 410 Gone."""
    _allow(req, res_type, "r")
    _check_id(res_type, res_id)
    if not vid.isdigit():
        raise outcomes.not_found(res_type, res_id, vid)
    _guard(ctx, req, res_type, res_id)
    stored = ctx.repository.vread(res_type, res_id, int(vid))
    if stored.deleted:
        raise outcomes.gone(res_type, res_id)
    return _read_response(ctx, req, stored)


def update(ctx: StoreContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    """http.html#update, version-aware with If-Match; creates when the id is new."""
    _allow(req, res_type, "u")
    _check_id(res_type, res_id)
    body = parse_body(req, res_type)
    if "id" not in body:
        raise outcomes.invalid(
            "an update needs the resource id in the body", expression=f"{res_type}.id"
        )
    if body["id"] != res_id:
        raise outcomes.invalid(
            f"the body's id {body['id']!r} does not match the URL's id {res_id!r}",
            expression=f"{res_type}.id",
        )
    if_match = req.header("if-match")
    version = _parse_version(if_match, "If-Match") if if_match else None
    _guard(ctx, req, res_type, res_id)
    _guard_body(ctx, req, body)
    result = ctx.repository.update(res_type, res_id, body, if_match=version)
    if result.created:
        _allow(req, res_type, "c")
    return _write_response(ctx, req, result)


def patch(ctx: StoreContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    """http.html#patch with a JSON Patch document (RFC 6902)."""
    _allow(req, res_type, "u")
    _check_id(res_type, res_id)
    content_type = (req.header("content-type") or "").split(";")[0].strip()
    if content_type not in ("application/json-patch+json", ""):
        raise outcomes.FhirError(
            outcomes.Issue(
                "not-supported",
                f"PATCH needs Content-Type application/json-patch+json, not {content_type}",
            ),
            status=415,
        )
    try:
        operations = orjson.loads(req.body)
    except orjson.JSONDecodeError as exc:
        raise outcomes.invalid(f"the JSON Patch body is not valid JSON: {exc}") from exc
    if not isinstance(operations, list):
        raise outcomes.invalid("a JSON Patch document is a JSON array of operations")
    if_match = req.header("if-match")
    version = _parse_version(if_match, "If-Match") if if_match else None
    _guard(ctx, req, res_type, res_id)
    with ctx.repository.transaction():  # a patched body out of reach rolls back
        result = ctx.repository.patch(res_type, res_id, operations, if_match=version)
        _guard_body(ctx, req, result.stored.resource)
    return _write_response(ctx, req, result)


def delete(ctx: StoreContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    """http.html#delete: idempotent; history is kept."""
    _allow(req, res_type, "d")
    _check_id(res_type, res_id)
    _guard(ctx, req, res_type, res_id)
    result = ctx.repository.delete(res_type, res_id)
    headers = {"ETag": result.stored.etag} if result else {}
    return FhirResponse(204, headers=headers)


def history(
    ctx: StoreContext, req: FhirRequest, res_type: str | None, res_id: str | None
) -> FhirResponse:
    """http.html#history at instance, type or system level, newest first."""
    _allow(req, res_type or "*", "r")
    if res_type and res_id:
        _check_id(res_type, res_id)
        _guard(ctx, req, res_type, res_id)
        ctx.repository.vread(res_type, res_id, 1)  # 404 for an unknown resource
    else:
        _guard_wide(ctx, req, "history of a type or of the system")
    since_text = req.param("_since")
    since = None
    if since_text:
        try:
            since = parse_instant(since_text)
        except ValueError as exc:
            raise outcomes.invalid(
                f"_since must be an instant, got {since_text!r}", expression="_since"
            ) from exc
    count_text = req.param("_count") or "50"
    if not count_text.isdigit():
        raise outcomes.invalid(
            f"_count must be a positive integer, got {count_text!r}", expression="_count"
        )
    page = ctx.repository.history(
        res_type, res_id, since=since, count=int(count_text), cursor=req.param("_cursor")
    )
    path = "/".join(p for p in (res_type, res_id, "_history") if p)
    return FhirResponse(200, resource=history_bundle(ctx.base_url, path, req.query, page))


# --- type level -----------------------------------------------------------------


def create(ctx: StoreContext, req: FhirRequest, res_type: str) -> FhirResponse:
    """http.html#create, and conditional create with If-None-Exist."""
    _allow(req, res_type, "c")
    body = parse_body(req, res_type)
    body.pop("id", None)  # the server assigns the id (http.html#create)
    _guard_body(ctx, req, body)
    criteria = req.header("if-none-exist")
    if criteria:
        _allow(req, res_type, "s")
        result = ctx.repository.conditional_create(body, criteria)
    else:
        result = ctx.repository.create(body)
    return _write_response(ctx, req, result)


def conditional_update(ctx: StoreContext, req: FhirRequest, res_type: str) -> FhirResponse:
    """http.html#cond-update: PUT [type]?criteria."""
    _allow(req, res_type, "u")
    _allow(req, res_type, "s")
    body = parse_body(req, res_type)
    _guard_body(ctx, req, body)
    criteria = _criteria(req)
    return _write_response(ctx, req, ctx.repository.conditional_update(res_type, criteria, body))


def conditional_delete(ctx: StoreContext, req: FhirRequest, res_type: str) -> FhirResponse:
    """http.html#cdelete: DELETE [type]?criteria (one match; several with _multiple... no)."""
    _allow(req, res_type, "d")
    _allow(req, res_type, "s")
    _guard_wide(ctx, req, "conditional delete")
    ctx.repository.conditional_delete(res_type, _criteria(req))
    return FhirResponse(204)


def _criteria(req: FhirRequest) -> str:
    from urllib.parse import urlencode

    pairs = [(k, v) for k, v in req.query if k not in _SEARCH_CONTROL]
    if not pairs:
        raise outcomes.invalid("a conditional interaction needs search criteria in the URL")
    return urlencode(pairs)


def search(
    ctx: StoreContext,
    req: FhirRequest,
    res_type: str | None,
    query: list[tuple[str, str]] | None = None,
) -> FhirResponse:
    """search.html: GET [type]?..., POST [type]/_search, and system search."""
    query = req.query if query is None else query
    if res_type is None:
        types = [t for k, v in query if k == "_type" for t in v.split(",") if t]
        for t in types:
            _check_type(ctx, t)
            _allow(req, t, "s")
        if not types:
            _allow(req, "*", "s")
    else:
        _allow(req, res_type, "s")
    strict = req.prefer("handling") == "strict"
    params = [(k, v) for k, v in query if k not in _SEARCH_CONTROL]
    restrict = ctx.access.search_restriction(req.principal, res_type) if req.principal else ()
    page = ctx.repository.search(
        res_type, params, strict=strict, cursor=req.param("_cursor"), restrict=restrict
    )
    for stored in page.included:
        _allow(req, stored.res_type, "r")
    warning = None
    if page.warnings:
        warning = outcomes.outcome(
            outcomes.Issue("not-supported", w, severity="warning") for w in page.warnings
        )
    wanted = _project_query(req)
    project = (lambda r: ctx.project(r, wanted)) if wanted and ctx.project else None
    bundle = searchset(ctx.base_url, res_type or "", query, page, project=project, outcome=warning)
    return FhirResponse(200, resource=bundle)


def validate(
    ctx: StoreContext, req: FhirRequest, res_type: str, res_id: str | None
) -> FhirResponse:
    """operation-resource-validate: report issues without storing anything."""
    from hygie.store.validation import validate_resource

    body = parse_body(req)
    if body.get("resourceType") == "Parameters" and res_type != "Parameters":
        inner = [
            p.get("resource") for p in body.get("parameter", []) if p.get("name") == "resource"
        ]
        if not inner or not isinstance(inner[0], dict):
            raise outcomes.invalid("$validate Parameters need a 'resource' parameter")
        body = inner[0]
    if body.get("resourceType") != res_type:
        raise outcomes.invalid(
            f"resourceType {body.get('resourceType')!r} does not match the URL's {res_type}",
            expression="resourceType",
        )
    issues = validate_resource(body, expected_type=res_type)
    if res_id is not None and body.get("id") not in (None, res_id):
        issues.append(
            outcomes.Issue(
                "invalid", "the body's id does not match the URL", expression=f"{res_type}.id"
            )
        )
    if not issues:
        return FhirResponse(200, resource=outcomes.ok("the resource is valid"))
    return FhirResponse(200, resource=outcomes.outcome(issues))


# --- dispatch -------------------------------------------------------------------


def handle(req: FhirRequest, ctx: StoreContext) -> FhirResponse:
    """Route a request by method and path shape (http.html#summary).

    The audit sink is told how each interaction ended: its response, or the error
    (a refusal included) that stopped it. A write of one resource tells it inside the
    write's transaction, so that its record commits, or rolls back, with it; a
    transaction Bundle does the same in its own (``FhirResponse.audited``).
    """
    try:
        if req.method in _SINGLE_WRITES and 0 < len(req.path) <= 2 and req.path[-1] != "_search" \
                and not any(p.startswith("$") for p in req.path):
            with ctx.repository.transaction():
                response = _dispatch(req, ctx)
                ctx.audit.record(req, response, None)
            return response
        response = _dispatch(req, ctx)
    except outcomes.FhirError as exc:
        ctx.audit.record(req, None, exc)
        raise
    if not response.audited:
        ctx.audit.record(req, response, None)
    return response


def _dispatch(req: FhirRequest, ctx: StoreContext) -> FhirResponse:
    path, method = req.path, req.method
    n = len(path)
    if n == 0:
        if method == "GET":
            return search(ctx, req, None)
        if method == "POST":
            from hygie.store.transactions import batch_or_transaction

            return batch_or_transaction(ctx, req)
        raise _method_not_allowed(method, "the base URL")
    head = path[0]
    if head == "metadata" and n == 1:
        if method != "GET":
            raise _method_not_allowed(method, "/metadata")
        return FhirResponse(200, resource=ctx.capability())
    if head == "_history" and n == 1 and method == "GET":
        return history(ctx, req, None, None)
    if head.startswith("$"):
        return _operation(ctx, req, head, *path[1:])
    res_type = head
    _check_type(ctx, res_type)
    if n == 1:
        if method == "GET":
            return search(ctx, req, res_type)
        if method == "POST":
            return create(ctx, req, res_type)
        if method == "PUT":
            return conditional_update(ctx, req, res_type)
        if method == "DELETE":
            return conditional_delete(ctx, req, res_type)
        raise _method_not_allowed(method, res_type)
    second = path[1]
    if n == 2 and second == "_search" and method == "POST":
        from urllib.parse import parse_qsl

        form = parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        return search(ctx, req, res_type, [*req.query, *form])
    if n == 2 and second == "_history" and method == "GET":
        return history(ctx, req, res_type, None)
    if n == 2 and second.startswith("$"):
        if second == "$validate" and method == "POST":
            return validate(ctx, req, res_type, None)
        return _operation(ctx, req, second, res_type)
    res_id = second
    if n == 2:
        if method in ("GET", "HEAD"):
            return read(ctx, req, res_type, res_id)
        if method == "PUT":
            return update(ctx, req, res_type, res_id)
        if method == "PATCH":
            return patch(ctx, req, res_type, res_id)
        if method == "DELETE":
            return delete(ctx, req, res_type, res_id)
        raise _method_not_allowed(method, f"{res_type}/{res_id}")
    third = path[2]
    if third == "_history" and method == "GET":
        if n == 3:
            return history(ctx, req, res_type, res_id)
        if n == 4:
            return vread(ctx, req, res_type, res_id, path[3])
    if n == 3 and third.startswith("$"):
        if third == "$validate" and method == "POST":
            return validate(ctx, req, res_type, res_id)
        return _operation(ctx, req, third, res_type, res_id)
    raise outcomes.FhirError(
        outcomes.Issue("not-supported", f"no FHIR interaction at /{'/'.join(path)}"), status=404
    )


def _operation(ctx: StoreContext, req: FhirRequest, name: str, *scope: str) -> FhirResponse:
    """Run a named operation; its request path is what the operation applies to.

    ``[type]/[id]/$op`` gives ``(type, id)``; ``$op/a/b`` at the base gives ``(a, b)``.
    """
    handler = ctx.operations.get(name)
    if handler is None:
        raise outcomes.FhirError(
            outcomes.Issue("not-supported", f"operation {name} is not supported here"), status=404
        )
    scoped = FhirRequest(req.method, tuple(scope), req.query, req.headers, req.body, req.principal)
    return handler(scoped, ctx)


def _method_not_allowed(method: str, where: str) -> outcomes.FhirError:
    return outcomes.FhirError(
        outcomes.Issue("not-supported", f"{method} is not allowed on {where}"), status=405
    )
