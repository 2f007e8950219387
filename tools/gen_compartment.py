"""Write the patient compartment (resource type -> linking parameters) into the package.

Reads the official CompartmentDefinition-patient.json (FHIR R4, CC0) from the shared
reference data and keeps only what the store needs at run time.

Usage: python tools/gen_compartment.py ../shared/data/fhir-r4/CompartmentDefinition-patient.json
"""

import json
import sys
from pathlib import Path

OUT = (
    Path(__file__).resolve().parent.parent / "src/hygie/store/definitions/patient-compartment.json"
)


def main(source: str) -> None:
    definition = json.loads(Path(source).read_text())
    members = {r["code"]: r["param"] for r in definition["resource"] if r.get("param")}
    OUT.write_text(json.dumps(members, indent=1, sort_keys=True) + "\n")
    print(f"{len(members)} resource types in the patient compartment -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
