"""Search for the FHIR store, in three stages each tested alone (docs/search.md).

- ``params``: the registry of the R4 search parameters, per resource type, with
  their expressions compiled (``registry()``);
- ``extract``: the index rows of a resource (``extract_index``), written by the
  repository in the same transaction as the resource;
- ``parse``: a query's pairs into a frozen ``SearchRequest`` (``parse_search``);
- ``compile``: a ``SearchRequest`` into SQLAlchemy Core selects
  (``compile_search`` -> ``CompiledSearch``).
"""

from hygie.store.search.compile import CompiledSearch, compartment_clause, compile_search
from hygie.store.search.extract import IndexRows, date_range, extract_index, normalize_string
from hygie.store.search.params import Registry, SearchParam, registry
from hygie.store.search.parse import SearchRequest, parse_search

__all__ = [
    "CompiledSearch",
    "IndexRows",
    "Registry",
    "SearchParam",
    "SearchRequest",
    "compartment_clause",
    "compile_search",
    "date_range",
    "extract_index",
    "normalize_string",
    "parse_search",
    "registry",
]
