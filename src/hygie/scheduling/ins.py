"""The national health identifier (INS) as a patient types it: shape and key checks.

The INS of a person born in France is their NIR (social security number): 13
characters (sex, year and month of birth, département, commune, order) then a 2-digit
key equal to 97 minus the number modulo 97, Corsica's ``2A``/``2B`` counting as 19/18
for the key (ANS, "Référentiel INS", NIR structure). No library covers this French
identifier, hence these few lines. A number that passes is still only *declared*:
qualifying it needs the INSi teleservice, so pre-admission records it as provided and
staff confirm it at review.
"""

from __future__ import annotations

import re

#: OID of the INS-NIR (ANS), the identifier system written on the Patient.
INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"

_NIR = re.compile(r"^([12378])(\d{2})(\d{2})(\d{2}|2A|2B)(\d{3})(\d{3})(\d{2})$")


def normalize_nir(raw: str) -> str:
    """Remove spaces and dots, upper-case the Corsican letters."""
    return re.sub(r"[\s.\-]", "", raw or "").upper()


def nir_problem(raw: str) -> str | None:
    """Why ``raw`` is not a well-formed NIR with the right key, or None when it is."""
    nir = normalize_nir(raw)
    match = _NIR.match(nir)
    if match is None:
        return "the INS must have 15 characters: 13 for the number and a 2-digit key"
    month = int(match.group(3))
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return "the INS's month of birth is not valid"
    digits = nir[:13].replace("2A", "19").replace("2B", "18")
    key = 97 - int(digits) % 97
    if key != int(match.group(7)):
        return "the INS's key does not match: check the number"
    return None


def nir_sex(raw: str) -> str | None:
    """``male`` or ``female`` from the NIR's first digit (1/3/7 and 2/4/8)."""
    first = normalize_nir(raw)[:1]
    return {"1": "male", "3": "male", "7": "male", "2": "female", "4": "female",
            "8": "female"}.get(first)
