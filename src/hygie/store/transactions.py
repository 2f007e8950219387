"""Batch and transaction Bundles (http://hl7.org/fhir/R4/http.html#transaction).

A batch runs each entry on its own and reports each outcome. A transaction is
atomic: ids are assigned to created resources first, ``urn:uuid:`` full URLs and
conditional references (``Patient?identifier=...``) are rewritten into real
references, then entries run in the order the spec fixes (DELETE, POST, PUT/PATCH,
GET/HEAD) inside one database transaction; any failure rolls everything back and
the error names the entry that failed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from hygie.store import outcomes
from hygie.store.interactions import (
    FhirRequest,
    FhirResponse,
    StoreContext,
    _allow,
    _guard_body,
    handle,
    parse_body,
)
from hygie.store.model import WriteResult, format_instant, now_us

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
#: Characters without which an entry's url is a plain relative path (no scheme, query
#: or fragment for ``urlsplit`` to find).
_URL_MARKS = (":", "?", "#")


@cache
def _status_line(code: int) -> str:
    """``201 Created``: the status of a Bundle entry's response (http.html#transaction-response)."""
    from http import HTTPStatus

    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _split_url(url: str, base: str) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """Relative or absolute entry.request.url -> path segments and query pairs."""
    if url.startswith(base + "/"):
        url = url[len(base) + 1 :]
    if not any(c in url for c in _URL_MARKS):  # ``Observation``: the common case
        return tuple(s for s in url.split("/") if s), []
    parts = urlsplit(url)
    if parts.scheme:
        raise outcomes.invalid(f"request.url {url!r} must be relative to this server")
    segments = tuple(s for s in parts.path.split("/") if s)
    return segments, parse_qsl(parts.query, keep_blank_values=True)


def _entry_error(index: int, exc: outcomes.FhirError) -> outcomes.FhirError:
    issues = [
        outcomes.Issue(
            i.code,
            f"Bundle.entry[{index}]: {i.diagnostics}",
            i.severity,
            f"Bundle.entry[{index}].resource.{i.expression.split('.', 1)[1]}"
            if i.expression and "." in i.expression
            else i.expression,
        )
        for i in exc.issues
    ]
    return outcomes.FhirError(issues, status=exc.status)


def _check_bundle(ctx: StoreContext, req: FhirRequest) -> tuple[str, list[dict[str, Any]]]:
    bundle = parse_body(req, None)
    if bundle.get("resourceType") != "Bundle":
        raise outcomes.invalid(
            "POST to the base URL takes a Bundle of type batch or transaction",
            expression="resourceType",
        )
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise outcomes.invalid(
            f"Bundle.type must be batch or transaction, not {kind!r}", expression="Bundle.type"
        )
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise outcomes.invalid("Bundle.entry must be an array", expression="Bundle.entry")
    if len(entries) > ctx.max_bundle_entries:
        raise outcomes.too_costly(
            f"the Bundle has {len(entries)} entries; at most {ctx.max_bundle_entries} are accepted"
        )
    for i, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
            raise outcomes.invalid(
                "each entry needs request.method and request.url",
                expression=f"Bundle.entry[{i}].request",
            )
        if request["method"] not in _ORDER:
            raise outcomes.invalid(
                f"unknown request.method {request['method']!r}",
                expression=f"Bundle.entry[{i}].request.method",
            )
        if request["method"] in ("POST", "PUT") and not isinstance(entry.get("resource"), dict):
            raise outcomes.invalid(
                f"a {request['method']} entry needs a resource",
                expression=f"Bundle.entry[{i}].resource",
            )
    return kind, entries


def batch_or_transaction(ctx: StoreContext, req: FhirRequest) -> FhirResponse:
    kind, entries = _check_bundle(ctx, req)
    if kind == "batch":
        return _batch(ctx, req, entries)
    return _transaction(ctx, req, entries)


def _response_entry(ctx: StoreContext, resp: FhirResponse, want_body: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"status": _status_line(resp.status)}
    location = resp.headers.get("Location")
    if location:
        out["location"] = location.removeprefix(ctx.base_url + "/")
    if "ETag" in resp.headers:
        out["etag"] = resp.headers["ETag"]
    if "Last-Modified" in resp.headers:
        out["lastModified"] = resp.headers["Last-Modified"]
    entry: dict[str, Any] = {"response": out}
    if want_body:
        if resp.raw is not None:
            entry["resource"] = orjson.Fragment(resp.raw)
        elif resp.resource is not None:
            entry["resource"] = resp.resource
    return entry


def _bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": format_instant(now_us())},
        "type": kind,
        "entry": entries,
    }


def _sub_request(ctx: StoreContext, req: FhirRequest, entry: dict[str, Any]) -> FhirRequest:
    request = entry["request"]
    path, query = _split_url(request["url"], ctx.base_url)
    headers = {"prefer": "return=minimal"}
    for name, header in (
        ("ifMatch", "if-match"),
        ("ifNoneMatch", "if-none-match"),
        ("ifNoneExist", "if-none-exist"),
    ):
        if request.get(name):
            headers[header] = request[name]
    body = orjson.dumps(entry["resource"]) if "resource" in entry else b""
    if request["method"] == "PATCH" and entry.get("resource", {}).get("resourceType") == "Binary":
        import base64

        body = base64.b64decode(entry["resource"].get("data", ""))
        headers["content-type"] = "application/json-patch+json"
    return FhirRequest(request["method"], path, query, headers, body, req.principal)


def _batch(ctx: StoreContext, req: FhirRequest, entries: list[dict[str, Any]]) -> FhirResponse:
    """Each entry on its own; a failure becomes that entry's OperationOutcome."""
    want_body = req.prefer("return") == "representation"
    out = []
    for entry in entries:
        try:
            resp = handle(_sub_request(ctx, req, entry), ctx)
            out.append(_response_entry(ctx, resp, want_body or entry["request"]["method"] == "GET"))
        except outcomes.FhirError as exc:
            out.append({"response": {"status": _status_line(exc.status), "outcome": exc.outcome}})
    return FhirResponse(200, resource=_bundle("batch-response", out))


def _reference_holders(value: Any, found: list[dict[str, Any]]) -> None:
    """Append to ``found`` every object of ``value`` whose ``reference`` is a string.

    A transaction looks at references twice (conditional ones to resolve, full URLs of
    the Bundle to rewrite); walking the resources once and keeping the objects that
    hold them spares a walk over every element for each use.
    """
    if isinstance(value, dict):
        if value.get("reference").__class__ is str:
            found.append(value)
        for v in value.values():
            if isinstance(v, dict | list):
                _reference_holders(v, found)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict | list):
                _reference_holders(v, found)


def _is_conditional(ref: str) -> bool:
    """``Patient?identifier=...``: a reference resolved by a search (http.html#trules)."""
    return "?" in ref and not ref.startswith(("http:", "https:", "urn:"))


def _rewrite(holders: list[dict[str, Any]], mapping: dict[str, str]) -> None:
    """Replace, in place, references to full URLs of this Bundle by the ids they got."""
    for holder in holders:
        target = mapping.get(holder["reference"])
        if target is not None:
            holder["reference"] = target


def _transaction(
    ctx: StoreContext, req: FhirRequest, entries: list[dict[str, Any]]
) -> FhirResponse:
    """Run a transaction Bundle atomically.

    Validating and indexing the created resources is most of a Bundle's cost. When
    no entry needs the database to know its references (no ``ifNoneExist``, no
    conditional reference), the ids and rewrites are known up front, so that work is
    done before the write transaction starts: on SQLite the transaction holds the
    store's only write lock, and other writers wait only for the writes themselves.
    The threads of a process take turns for a whole Bundle (``write_turn``).

    The Bundle's audit record is written in the same transaction, so that it commits
    (or rolls back) with the writes: a separate one would take the write lock and
    commit a second time before the answer could go.
    """
    repo = ctx.repository
    holders: list[dict[str, Any]] = []
    for entry in entries:
        if "resource" in entry:
            _reference_holders(entry["resource"], holders)
    with repo.write_turn():
        if _needs_lookups(entries, holders):
            with repo.transaction():
                plan = _plan(ctx, req, entries, holders)
                return _audited(ctx, req, _execute(ctx, req, entries, plan))
        plan = _plan(ctx, req, entries, holders)
        with repo.transaction():
            return _audited(ctx, req, _execute(ctx, req, entries, plan))


def _audited(ctx: StoreContext, req: FhirRequest, response: FhirResponse) -> FhirResponse:
    """Record the Bundle's interaction inside its write transaction (see ``handle``)."""
    ctx.audit.record(req, response, None)
    response.audited = True
    return response


def _needs_lookups(entries: list[dict[str, Any]], holders: list[dict[str, Any]]) -> bool:
    """True when resolving the Bundle's ids or references reads the database."""
    for entry in entries:
        if entry["request"]["method"] == "POST" and entry["request"].get("ifNoneExist"):
            return True
    return any(_is_conditional(h["reference"]) for h in holders)


@dataclass
class _Plan:
    """What a transaction resolved before writing: ids, matches, prepared creates."""

    assigned: dict[int, str] = field(default_factory=dict)
    existing: dict[int, WriteResult] = field(default_factory=dict)
    creates: list[int] = field(default_factory=list)
    prepared: list[Any] = field(default_factory=list)


def _plan(
    ctx: StoreContext,
    req: FhirRequest,
    entries: list[dict[str, Any]],
    holders: list[dict[str, Any]],
) -> _Plan:
    """Assign ids, resolve conditional creates and references, rewrite, prepare creates.

    ``holders`` are the objects of the entries' resources that hold a reference
    (``_reference_holders``). Reads the database only for ``ifNoneExist`` and
    conditional references; the caller runs it inside the write transaction when there
    are any.
    """
    repo = ctx.repository
    plan = _Plan()
    mapping: dict[str, str] = {}
    # 1. ids for creates (and matches of conditional creates), ids of PUT targets
    for i, entry in enumerate(entries):
        request, full_url = entry["request"], entry.get("fullUrl")
        method = request["method"]
        if method == "POST":
            res_type = entry["resource"].get("resourceType", "")
            criteria = request.get("ifNoneExist")
            if criteria:
                try:
                    repo.lock(f"{res_type}?{criteria}")
                    found = repo.find(res_type, criteria)
                except outcomes.FhirError as exc:
                    raise _entry_error(i, exc) from exc
                if len(found) > 1:
                    raise _entry_error(
                        i,
                        outcomes.multiple_matches(
                            f"ifNoneExist {criteria!r} matches more than one {res_type}"
                        ),
                    )
                if found:
                    plan.existing[i] = WriteResult(found[0], unchanged=True)
                    if full_url:
                        mapping[full_url] = f"{res_type}/{found[0].res_id}"
                    continue
            plan.assigned[i] = str(uuid.uuid4())
            if full_url:
                mapping[full_url] = f"{res_type}/{plan.assigned[i]}"
        elif method == "PUT" and full_url:
            path, _query = _split_url(request["url"], ctx.base_url)
            if len(path) == 2:
                mapping[full_url] = f"{path[0]}/{path[1]}"
    # 2. conditional references
    conditional = {h["reference"] for h in holders if _is_conditional(h["reference"])}
    for ref in sorted(conditional):
        res_type, _, criteria = ref.partition("?")
        found = repo.find(res_type, criteria)
        if len(found) != 1:
            raise outcomes.unprocessable(
                [
                    outcomes.Issue(
                        "processing",
                        f"conditional reference {ref!r} matches {len(found)} resources; "
                        "exactly one is needed",
                    )
                ]
            )
        mapping[ref] = f"{res_type}/{found[0].res_id}"
    # 3. rewrite references in place (the resources are ours: parsed from the body)
    if mapping:
        _rewrite(holders, mapping)
    # 4. creates with assigned ids are validated and indexed now, written in one go later
    plan.creates = [i for i in plan.assigned if i not in plan.existing]
    for i in plan.creates:
        try:
            plan.prepared.append(_prepare_create(ctx, req, entries[i], plan.assigned[i]))
        except outcomes.FhirError as exc:
            raise _entry_error(i, exc) from exc
    return plan


def _execute(
    ctx: StoreContext, req: FhirRequest, entries: list[dict[str, Any]], plan: _Plan
) -> FhirResponse:
    """The writes of a planned transaction, inside the caller's database transaction."""
    repo = ctx.repository
    want_body = req.prefer("return") == "representation"
    results: list[dict[str, Any] | None] = [None] * len(entries)
    stamps: dict[int, str] = {}
    if plan.creates:
        written = repo.put_many(plan.prepared, known_new=True)  # type: ignore[attr-defined]
        for i, result in zip(plan.creates, written, strict=True):
            results[i] = _stored_entry(result.stored, "201 Created", want_body, stamps)
    for i, match in plan.existing.items():
        results[i] = _stored_entry(match.stored, "200 OK", want_body, stamps)
    # everything else, in the order the spec fixes
    order = sorted(range(len(entries)), key=lambda i: _ORDER[entries[i]["request"]["method"]])
    for i in order:
        if results[i] is not None:
            continue
        entry = entries[i]
        method = entry["request"]["method"]
        try:
            resp = handle(_sub_request(ctx, req, entry), ctx)
        except outcomes.FhirError as exc:
            raise _entry_error(i, exc) from exc
        results[i] = _response_entry(ctx, resp, want_body or method in ("GET", "HEAD"))
    return FhirResponse(200, resource=_bundle("transaction-response", [r for r in results if r]))


def _stored_entry(
    stored: Any, status: str, want_body: bool, stamps: dict[int, str]
) -> dict[str, Any]:
    """The response entry of a resource the transaction wrote or matched (what
    ``_response_entry`` makes of its interaction's response). ``stamps`` keeps the
    formatted times: a Bundle's creates all share one."""
    when = stored.last_updated
    modified = stamps.get(when)
    if modified is None:
        modified = stamps[when] = stored.last_modified
    entry: dict[str, Any] = {
        "response": {
            "status": status,
            "location": f"{stored.res_type}/{stored.res_id}/_history/{stored.version}",
            "etag": stored.etag,
            "lastModified": modified,
        }
    }
    if want_body and stored.body is not None:
        entry["resource"] = orjson.Fragment(stored.body)
    return entry


def _prepare_create(ctx: StoreContext, req: FhirRequest, entry: dict[str, Any], res_id: str) -> Any:
    """Check, validate and index one POST entry of a transaction (written later in bulk)."""
    path, _ = _split_url(entry["request"]["url"], ctx.base_url)
    resource = entry["resource"]
    res_type = resource.get("resourceType", "")
    if len(path) != 1 or path[0] != res_type:
        raise outcomes.invalid(
            f"POST url {entry['request']['url']!r} does not match resourceType {res_type!r}",
            expression="request.url",
        )
    _allow(req, res_type, "c")
    _guard_body(ctx, req, resource)
    resource.pop("id", None)
    return ctx.repository.prepare(resource, res_id)  # type: ignore[attr-defined]
