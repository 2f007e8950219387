"""Filling a store with the synthetic territory and its patients (``hygie demo``).

Seeding goes through the same bulk path as ``hygie import`` (validated, indexed,
written in batches), so the demo exercises the real write path. It is idempotent:
a store that already holds the territory's GHT is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from hygie.store import outcomes
from hygie.store.bulk import import_ndjson
from hygie.store.sql_repository import SqlRepository
from hygie.store.synthetic import generate_patient_resources, generate_territory

#: The id of the GHT Organization: its presence means the store was seeded.
GHT_ID = "ght-touraine-blesois"


@dataclass
class SeedResult:
    """What seeding found or wrote; ``territory`` is always the generated one."""

    territory: list[dict]
    written: int
    already_seeded: bool


def _lines(resources: Iterator[dict]) -> Iterator[bytes]:
    for resource in resources:
        yield orjson.dumps(resource)


def seed_store(
    repository: SqlRepository,
    *,
    patients: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Write the territory and ``patients`` patients unless the store already has them."""
    territory = generate_territory(seed)
    try:
        repository.read("Organization", GHT_ID)
        return SeedResult(territory, 0, already_seeded=True)
    except (outcomes.ResourceNotFound, outcomes.ResourceGone):
        pass
    report = import_ndjson(repository, _lines(iter(territory)), workers=1, progress=progress)
    written = report.written
    records = generate_patient_resources(patients, territory=territory, seed=seed)
    report2 = import_ndjson(repository, _lines(records), progress=progress)
    errors = report.errors + report2.errors
    if errors:
        _line, why = errors[0]
        raise RuntimeError(f"synthetic data refused ({len(errors)} records), first: {why}")
    return SeedResult(territory, written + report2.written, already_seeded=False)
