"""Assembles the store for a running platform: repository, operations, capability.

``open_store(platform)`` is called once by ``app.py`` and ``cli.py``; it attaches the
``StoreContext`` to ``platform.parts["store"]`` where the HTTP edge and the services
find it. The context is the one place that lists the operations the server offers,
and the CapabilityStatement is computed from that list.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hygie.platform import Platform
from hygie.store.access import PARTS
from hygie.store.bulk import BulkExports, import_operation
from hygie.store.capability import build_capability
from hygie.store.everything import patient_everything
from hygie.store.interactions import StoreContext
from hygie.store.sql_repository import SqlRepository

_OPERATION_DEFS = [
    {
        "name": "everything",
        "type": "Patient",
        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    },
    {
        "name": "validate",
        "type": "*",
        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    },
    {
        "name": "export",
        "type": "system",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    },
    {
        "name": "export",
        "type": "Patient",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
    },
    {
        "name": "export",
        "type": "Group",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
    },
    {
        "name": "import",
        "type": "system",
        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/import",
    },
]


@cache
def resource_types() -> tuple[str, ...]:
    """Every concrete R4 resource type, from the structure definitions."""
    from hygie.store.structure import structure

    return tuple(sorted(structure().resource_types))


def _search_params() -> dict[str, list[dict[str, str]]]:
    from hygie.store.search.params import registry

    reg = registry()
    out: dict[str, list[dict[str, str]]] = {}
    for res_type in resource_types():
        out[res_type] = [
            {"name": p.code, "type": p.type, "definition": p.url}
            for p in sorted(reg.for_type(res_type).values(), key=lambda p: p.code)
            if p.supported
        ]
    return out


def _project(resource: dict[str, Any], query: list[tuple[str, str]]) -> dict[str, Any]:
    from hygie.store.summary import select_elements, summarize

    for key, value in query:
        if key == "_summary" and value != "false":
            resource = summarize(resource, value)
        elif key == "_elements":
            resource = select_elements(resource, [e.strip() for e in value.split(",") if e.strip()])
    return resource


def open_store(platform: Platform) -> StoreContext:
    """Build the store's context for this platform and attach it to ``platform.parts``.

    A security layer that put a body codec, an access policy or an audit sink in
    ``platform.parts`` (names in ``hygie.store.access.PARTS``) gets them plugged in.
    """
    settings = platform.settings
    repository = SqlRepository(
        platform.engine,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        default_total=settings.default_total,
        total_cap=settings.estimate_total_cap,
        max_include=settings.max_include,
        codec=platform.parts.get(PARTS["codec"]),
    )
    base = settings.base_url.rstrip("/") + "/fhir"
    exports = BulkExports(platform.engine, repository, settings.var_dir / "bulk", base)
    capability: dict[str, Any] = {}

    def get_capability() -> dict[str, Any]:
        if not capability:
            capability.update(
                build_capability(
                    base,
                    list(resource_types()),
                    _search_params(),
                    _OPERATION_DEFS,
                    token_url=settings.base_url.rstrip("/") + "/oauth/token",
                )
            )
        return capability

    ctx = StoreContext(
        repository=repository,
        base_url=base,
        resource_types=frozenset(resource_types()),
        capability=get_capability,
        operations={
            "$everything": patient_everything,
            "$export": exports.kick_off,
            "$export-status": exports.status,
            "$import": import_operation,
        },
        max_bundle_entries=settings.max_bundle_entries,
        project=_project,
        local_reads=platform.engine.dialect.name == "sqlite",
    )
    if PARTS["access"] in platform.parts:
        ctx.access = platform.parts[PARTS["access"]]
    if PARTS["audit"] in platform.parts:
        ctx.audit = platform.parts[PARTS["audit"]]
    platform.parts["store"] = ctx
    platform.parts["bulk_exports"] = exports
    platform.closers.append(exports.close)
    return ctx
