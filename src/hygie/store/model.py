"""The store's data types: what a read returns and what a write reports.

A stored body is kept as the exact JSON bytes that were written (with ``meta``
filled in), so that a read can answer with those bytes without parsing and
re-serialising them; ``resource`` parses them on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

import orjson

#: http://hl7.org/fhir/R4/datatypes.html#id
ID_RE = re.compile(r"^[A-Za-z0-9\-\.]{1,64}$")


def now_us() -> int:
    """The current time in microseconds since the epoch (how the store keeps times)."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


@lru_cache(maxsize=1024)
def format_instant(us: int) -> str:
    """Format epoch microseconds as a FHIR instant, UTC, millisecond precision."""
    dt = datetime.fromtimestamp(us / 1_000_000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_instant(text: str) -> int:
    """Parse an ISO-8601 instant (or a date) into epoch microseconds."""
    value = text.strip()
    if len(value) == 10:
        value += "T00:00:00+00:00"
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class ResourceKey:
    """A resource's identity: type and logical id."""

    res_type: str
    res_id: str

    def __str__(self) -> str:
        return f"{self.res_type}/{self.res_id}"


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as the store holds it."""

    res_type: str
    res_id: str
    version: int
    last_updated: int
    body: bytes | None
    deleted: bool = False
    method: str | None = None

    @cached_property
    def resource(self) -> dict[str, Any]:
        if self.body is None:
            return {}
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.res_type, self.res_id)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def last_modified(self) -> str:
        return format_instant(self.last_updated)


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the version now current and whether it created the resource."""

    stored: StoredResource
    created: bool = False
    #: For a conditional create that found a match: nothing was written.
    unchanged: bool = False


@dataclass
class SearchPage:
    """One page of search results, ready to be turned into a searchset Bundle."""

    matches: list[StoredResource]
    included: list[StoredResource] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    #: Parameters ignored under lenient handling, with why (become an OperationOutcome).
    warnings: list[str] = field(default_factory=list)


@dataclass
class HistoryPage:
    """One page of history entries, newest first."""

    entries: list[StoredResource]
    total: int | None = None
    next_cursor: str | None = None
