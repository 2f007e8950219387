"""Index extraction rate of hygie.store.search on typical resources.

Prints ``extract_index: N resources/s (ratio x vs fhirpathpy, ratio x vs goal)``; the
peer is fhirpathpy evaluating the same expressions (without building rows): the store's
ingest goal (3,000 resources/s with validation and the database write) needs
extraction alone to pass 10,000 typical resources/s. The resources are the
synthetic patients' records (about 85% Observations, then Conditions, Encounters,
MedicationRequests, Patients, DocumentReferences), as ``hygie demo`` writes them.
Rates are CPU time of this process, so that other load on the machine counts less.
``extract_index`` runs over the same records again and again; ``extract_index_fresh``
reads each record once, records it has never seen (other patients), as an import does,
so that what it remembers of earlier records (displays, dates, references) helps only
as much as it would there.

Usage: .venv/bin/python bench/search_extract.py [--patients 100] [--seconds 2]
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from hygie.store.search import extract_index, registry
from hygie.store.synthetic import generate_patient_resources, generate_territory

GOAL = 10_000


def rate_of(work: list[dict[str, Any]], run: Any, seconds: float) -> float:
    """Resources per CPU second of ``run`` over ``work``, repeated for ``seconds``."""
    done = 0
    start = time.process_time()
    while True:
        for resource in work:
            run(resource)
        done += len(work)
        spent = time.process_time() - start
        if spent >= seconds:
            return done / spent


def fresh_rate(patients: int, seconds: float) -> float:
    """Resources per CPU second over records read once each (new patients every pass)."""
    territory = generate_territory(1)
    done = 0
    spent = 0.0
    seed = 1000
    while spent < seconds:
        seed += 1
        work = list(generate_patient_resources(patients, territory=territory, seed=seed))
        start = time.process_time()
        for resource in work:
            extract_index(resource)
        spent += time.process_time() - start
        done += len(work)
    return done / spent


def fhirpathpy_extract(resource: dict[str, Any]) -> int:
    """Evaluate every indexed expression of the resource's type with fhirpathpy."""
    from fhirpathpy import evaluate
    from fhirpathpy.models import models

    found = 0
    for param in registry().params(resource["resourceType"]).values():
        if not param.indexed or param.expression is None:
            continue
        text = re.sub(r"\b(Resource|DomainResource)\.", resource["resourceType"] + ".",
                      param.expression)
        text = re.sub(r"\(([A-Za-z.]+) as ([A-Za-z]+)\)", r"\1.ofType(\2)", text)
        text = re.sub(r"\.as\(([A-Za-z]+)\)", r".ofType(\1)", text)
        text = re.sub(r"resolve\(\) is ([A-Za-z]+)", r"reference.startsWith('\1/')", text)
        found += len(evaluate(resource, text, {}, models["r4"]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    work = list(generate_patient_resources(args.patients, territory=generate_territory(1),
                                           seed=3))
    for resource in work:  # compile every type's expressions before timing
        extract_index(resource)
    ours = rate_of(work, extract_index, args.seconds)
    fresh = fresh_rate(args.patients, args.seconds)
    sample = work[: max(1, len(work) // 20)]
    theirs = rate_of(sample, fhirpathpy_extract, args.seconds)
    print(f"extract_index: {ours:,.0f} resources/s ({ours / theirs:.0f} x vs fhirpathpy, "
          f"{ours / GOAL:.1f} x vs goal {GOAL:,})")
    print(f"extract_index_fresh: {fresh:,.0f} resources/s ({fresh / theirs:.0f} x vs "
          f"fhirpathpy, {fresh / GOAL:.1f} x vs goal {GOAL:,}; each record read once)")
    print(f"fhirpathpy (expressions only): {theirs:,.0f} resources/s (1 x vs fhirpathpy)")


if __name__ == "__main__":
    main()
