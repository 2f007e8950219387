"""Synthetic FHIR R4 data: a fictional hospital territory and its patients.

Used by ``hygie demo`` to seed a store and by the benchmarks to fill one. Everything is
generated here from a seed (no downloaded data): the same seed gives the same output.

- ``generate_territory(seed)``: the GHT Touraine-Blésois, 3 hospitals with units,
  rooms and beds, about 150 practitioners and their roles (fixed, readable ids).
- ``territory_transaction(territory)``: those resources as a PUT transaction Bundle.
- ``generate_patient_bundles(n, territory=..., seed=...)``: one transaction Bundle per
  patient (``urn:uuid`` references), about 50 resources each.
- ``generate_patient_resources(n, territory=..., seed=...)``: the same patients as plain
  resources with ids, for bulk NDJSON import.
- ``write_ndjson(resources, folder)``: bulk-data files ``<Type>.ndjson``.

Identifier systems of our own (FINESS-, RPPS- and INS-like numbers) are documented in
``hygie.store.synthetic.identifiers``.
"""

from .identifiers import FINESS_SYSTEM, INS_SYSTEM, IPP_SYSTEM, RPPS_SYSTEM
from .ndjson import write_ndjson
from .patients import generate_patient_bundles, generate_patient_resources
from .territory import generate_territory, territory_transaction
from .territory_index import TerritoryIndex

__all__ = [
    "FINESS_SYSTEM",
    "INS_SYSTEM",
    "IPP_SYSTEM",
    "RPPS_SYSTEM",
    "TerritoryIndex",
    "generate_patient_bundles",
    "generate_patient_resources",
    "generate_territory",
    "territory_transaction",
    "write_ndjson",
]
