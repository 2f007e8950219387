"""Validation rate of hygie.store.validation on typical resources.

Prints ``validate: N resources/s (ratio x vs goal)``: the store's ingest goal needs
validation alone to reach 20,000 typical resources/s (a Patient, an Observation with a
valueQuantity), so that with the database write it still passes 3,000 resources/s.
No peer library runs here: the FHIR validators of the field need definitions packages
that are not installed (see the module docstring of hygie.store.validation).

Usage: .venv/bin/python bench/store_validate.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from hygie.store.validation import validate_resource

GOAL = 20_000

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "pat-0001",
    "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00Z"},
    "identifier": [
        {
            "use": "official",
            "system": "urn:oid:1.2.250.1.213.1.4.8",
            "value": "2840375123456",
        }
    ],
    "active": True,
    "name": [{"use": "official", "family": "Martin", "given": ["Claire", "Anne"]}],
    "telecom": [
        {"system": "phone", "value": "+33 6 12 34 56 78", "use": "mobile"},
        {"system": "email", "value": "claire.martin@example.org"},
    ],
    "gender": "female",
    "birthDate": "1984-07-12",
    "address": [
        {"line": ["12 rue des Lilas"], "city": "Créteil", "postalCode": "94000", "country": "FR"}
    ],
    "generalPractitioner": [{"reference": "Practitioner/prac-12"}],
    "managingOrganization": {"reference": "Organization/ght-94"},
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "obs-0001",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "code": {
        "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
        "text": "Heart rate",
    },
    "subject": {"reference": "Patient/pat-0001"},
    "effectiveDateTime": "2024-03-01T09:45:00+01:00",
    "valueQuantity": {
        "value": 72,
        "unit": "beats/minute",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    },
}


def rate(resources: list[dict[str, Any]], seconds: float, rounds: int = 5) -> float:
    """Resources validated per second: the best of ``rounds`` runs sharing ``seconds``
    (the best run is the one least disturbed by other processes on the machine)."""
    for res in resources:  # warm the table and check that the samples are valid
        assert not validate_resource(res), validate_resource(res)
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / rounds:
            for _ in range(100):
                for res in resources:
                    validate_resource(res)
            done += 100 * len(resources)
        best = max(best, done / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    for name, sample in (("patient", [PATIENT]), ("observation", [OBSERVATION])):
        value = rate(sample, args.seconds / 2)
        print(f"validate_{name}: {value:,.0f} resources/s ({value / GOAL:.2f} x vs goal)")
    value = rate([PATIENT, OBSERVATION], args.seconds)
    print(f"validate: {value:,.0f} resources/s ({value / GOAL:.2f} x vs goal {GOAL:,}/s)")


if __name__ == "__main__":
    main()
