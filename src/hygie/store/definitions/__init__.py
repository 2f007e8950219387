"""FHIR R4 definitions the store needs at run time, shipped inside the package.

The files here are trimmed copies of official R4 (4.0.1) content (CC0), written by
the scripts in ``tools/`` so that the package never reads outside itself.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


@cache
def patient_compartment() -> dict[str, list[str]]:
    """Resource type -> the search parameters that put it in a Patient's compartment."""
    members: dict[str, list[str]] = json.loads((FOLDER / "patient-compartment.json").read_text())
    return members
