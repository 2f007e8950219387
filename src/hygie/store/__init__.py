"""The FHIR R4 health-data store: repository, search, REST API.

What other packages may use; the modules behind these names are free to change.
Services reach the running store through ``platform.parts["store"]`` (a
``StoreContext``, built by ``open_store``) and its ``repository``.
"""

from hygie.store.interactions import StoreContext
from hygie.store.model import (
    HistoryPage,
    ResourceKey,
    SearchPage,
    StoredResource,
    WriteResult,
    format_instant,
    now_us,
    parse_instant,
)
from hygie.store.outcomes import (
    FhirError,
    InvalidResource,
    Issue,
    ResourceGone,
    ResourceNotFound,
    VersionConflict,
)
from hygie.store.repository import Repository
from hygie.store.server import open_store

__all__ = [
    "FhirError",
    "HistoryPage",
    "InvalidResource",
    "Issue",
    "Repository",
    "ResourceGone",
    "ResourceKey",
    "ResourceNotFound",
    "SearchPage",
    "StoreContext",
    "StoredResource",
    "VersionConflict",
    "WriteResult",
    "format_instant",
    "now_us",
    "open_store",
    "parse_instant",
]
