"""Bulk-data NDJSON files: one ``<Type>.ndjson`` per resource type.

The FHIR Bulk Data Access specification exchanges resources as newline-delimited JSON,
one file per resource type, one resource per line
(https://hl7.org/fhir/uv/bulkdata/export.html#bulk-data-output-file-organization).
Files are written as resources arrive, so a million resources never sit in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson


def write_ndjson(resources: Iterable[dict[str, Any]], folder: str | Path) -> dict[str, int]:
    """Write ``resources`` into ``folder``/``<Type>.ndjson``; the count of each type.

    Existing files of the same names are replaced. Raises ``ValueError`` on an item
    without ``resourceType`` (the file it belongs to cannot be named).
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    files: dict[str, IO[bytes]] = {}
    counts: dict[str, int] = {}
    try:
        for resource in resources:
            resource_type = resource.get("resourceType")
            if not isinstance(resource_type, str) or not resource_type.isalpha():
                raise ValueError(f"not a FHIR resource (resourceType={resource_type!r})")
            handle = files.get(resource_type)
            if handle is None:
                handle = files[resource_type] = (target / f"{resource_type}.ndjson").open("wb")
                counts[resource_type] = 0
            handle.write(orjson.dumps(resource) + b"\n")
            counts[resource_type] += 1
    finally:
        for handle in files.values():
            handle.close()
    return counts
