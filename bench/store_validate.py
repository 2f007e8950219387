"""Validation rate of hygie.store.validation on typical resources.

Prints ``validate: N resources/s (ratio x vs goal)``: the store's ingest goal needs
validation alone to reach 20,000 typical resources/s (a Patient, an Observation with a
valueQuantity), so that with the database write it still passes 3,000 resources/s.

The peer is the pydantic model validation of ``fhir.resources`` 6.4.0 (FHIR 4.0.1),
which is not a dependency of Hygie: give ``--peer-python`` the interpreter of a
virtualenv that has it (``pip install fhir.resources==6.4.0 'pydantic<2'``, as
tools/gen_r4_structure.py does) and the same samples are parsed there, in this run.

``validate_records`` is the CPU-time rate over the synthetic patients' records (about
85% Observations, then Conditions, Encounters, Patients...), each read once, records
never seen before, as an import reads them.

Usage: .venv/bin/python bench/store_validate.py [--seconds 2] [--peer-python PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from typing import Any

from hygie.store.synthetic import generate_patient_resources, generate_territory
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


def records_rate(seconds: float, patients: int = 50) -> float:
    """Synthetic patient records validated per CPU second, each record read once."""
    territory = generate_territory(1)
    for res in generate_patient_resources(5, territory=territory, seed=1):
        assert not validate_resource(res), validate_resource(res)
    done = 0
    spent = 0.0
    seed = 2000
    while spent < seconds:
        seed += 1
        work = list(generate_patient_resources(patients, territory=territory, seed=seed))
        start = time.process_time()
        for res in work:
            validate_resource(res)
        spent += time.process_time() - start
        done += len(work)
    return done / spent


#: Run by the peer interpreter: parse the samples (stdin) with fhir.resources models.
_PEER = """
import json, sys, time
from fhir.resources import construct_fhir_element
samples, seconds = json.load(sys.stdin)
best = 0.0
for _ in range(5):
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds / 5:
        for res in samples:
            construct_fhir_element(res["resourceType"], res)
        done += len(samples)
    best = max(best, done / elapsed)
print(best)
"""


def peer_rate(python: str, resources: list[dict[str, Any]], seconds: float) -> float:
    """The fhir.resources rate on the same samples, in another interpreter."""
    done = subprocess.run(
        [python, "-c", _PEER],
        input=json.dumps([resources, seconds]),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--peer-python", help="interpreter with fhir.resources 6.4.0")
    args = parser.parse_args()
    cases = (
        ("validate_patient", [PATIENT]),
        ("validate_observation", [OBSERVATION]),
        ("validate", [PATIENT, OBSERVATION]),
    )
    for name, sample in cases:
        value = rate(sample, args.seconds)
        versus = f"{value / GOAL:.2f} x vs goal {GOAL:,}/s"
        if args.peer_python:
            peer = peer_rate(args.peer_python, sample, args.seconds)
            versus += f"; {value / peer:.1f} x vs fhir.resources {peer:,.0f}/s"
        print(f"{name}: {value:,.0f} resources/s ({versus})")
    records = records_rate(args.seconds)
    print(f"validate_records: {records:,.0f} resources/s ({records / GOAL:.2f} x vs goal "
          f"{GOAL:,}/s; CPU time, synthetic patients' records, each read once)")


if __name__ == "__main__":
    main()
