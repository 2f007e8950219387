"""Building the Bundles the store answers with: searchset and history.

Kept apart from the interactions so that the Python API (services) and the REST API
shape results the same way (http://hl7.org/fhir/R4/bundle.html).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import orjson

from hygie.store.model import HistoryPage, SearchPage, StoredResource, format_instant, now_us


def page_links(
    base: str, path: str, query: list[tuple[str, str]], next_cursor: str | None
) -> list[dict[str, str]]:
    """``self`` and ``next`` links; ``next`` carries the keyset cursor (stable paging)."""
    kept = [(k, v) for k, v in query if k != "_cursor"]
    url = f"{base}/{path}" if path else base
    links = [{"relation": "self", "url": url + ("?" + urlencode(kept) if kept else "")}]
    if next_cursor:
        links.append(
            {"relation": "next", "url": url + "?" + urlencode([*kept, ("_cursor", next_cursor)])}
        )
    return links


def _entry_resource(stored: StoredResource, project: Any) -> Any:
    if project is None and stored.body is not None:
        return orjson.Fragment(stored.body)
    return project(stored.resource) if project else stored.resource


def searchset(
    base: str,
    path: str,
    query: list[tuple[str, str]],
    page: SearchPage,
    *,
    project: Any = None,
    outcome: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A searchset Bundle; ``project`` applies _summary/_elements to each resource."""
    entries: list[dict[str, Any]] = []
    for stored in page.matches:
        entries.append(
            {
                "fullUrl": f"{base}/{stored.res_type}/{stored.res_id}",
                "resource": _entry_resource(stored, project),
                "search": {"mode": "match"},
            }
        )
    for stored in page.included:
        entries.append(
            {
                "fullUrl": f"{base}/{stored.res_type}/{stored.res_id}",
                "resource": _entry_resource(stored, project),
                "search": {"mode": "include"},
            }
        )
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": format_instant(now_us())},
        "type": "searchset",
    }
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = page_links(base, path, query, page.next_cursor)
    if entries:
        bundle["entry"] = entries
    return bundle


def history_bundle(
    base: str, path: str, query: list[tuple[str, str]], page: HistoryPage
) -> dict[str, Any]:
    """A history Bundle: each version with its request method and response status."""
    entries: list[dict[str, Any]] = []
    for stored in page.entries:
        url = f"{stored.res_type}/{stored.res_id}"
        entry: dict[str, Any] = {"fullUrl": f"{base}/{url}"}
        if stored.body is not None:
            entry["resource"] = orjson.Fragment(stored.body)
        method = {"create": "POST", "delete": "DELETE", "patch": "PATCH"}.get(
            stored.method or "", "PUT"
        )
        entry["request"] = {"method": method, "url": url if method != "POST" else stored.res_type}
        entry["response"] = {
            "status": {"POST": "201 Created", "DELETE": "204 No Content"}.get(method, "200 OK"),
            "etag": stored.etag,
            "lastModified": stored.last_modified,
        }
        entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": format_instant(now_us())},
        "type": "history",
    }
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = page_links(base, path, query, page.next_cursor)
    if entries:
        bundle["entry"] = entries
    return bundle
