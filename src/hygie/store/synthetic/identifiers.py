"""Identifier systems of the synthetic data, and numbers shaped like French ones.

The numbers follow the public structure of their French models (length, leading
digits, check key) so that code handling real ones is exercised, but they are issued
under identifier systems of our own, under the reserved ``.example`` domain
(RFC 2606), so that no synthetic number can be mistaken for a real one:

=====================  ===========================================  =======================
system                 what it identifies                           shape
=====================  ===========================================  =======================
``FINESS_SYSTEM``      a hospital (legal entity) or one of its      9 digits: département,
                       sites, like the FINESS directory             ``0``, 5 digits, Luhn key
``RPPS_SYSTEM``        a health professional, like the RPPS         11 digits: ``10``,
                                                                    8 digits, Luhn key
``INS_SYSTEM``         a patient's national health identity, like   15 digits: sex, birth
                       the INS (NIR-based)                          year and month, place,
                                                                    order, key 97 - n mod 97
``IPP_SYSTEM``         a patient within the GHT (the IPP)           10 digits
``GHT_SYSTEM``         a groupement hospitalier de territoire       short code
=====================  ===========================================  =======================

The local code systems (``UNIT_KIND_SYSTEM``, ``DIPLOMA_SYSTEM``) hold the concepts that
no standard terminology covers: the kind of a hospital unit (used by the generator to
find units again) and French diplomas.
"""

from __future__ import annotations

import random
from datetime import date

#: Base URI of the identifier and code systems defined by Hygie.
HYGIE_FHIR_BASE = "https://hygie.example/fhir"

FINESS_SYSTEM = f"{HYGIE_FHIR_BASE}/sid/finess"
RPPS_SYSTEM = f"{HYGIE_FHIR_BASE}/sid/rpps"
INS_SYSTEM = f"{HYGIE_FHIR_BASE}/sid/ins"
IPP_SYSTEM = f"{HYGIE_FHIR_BASE}/sid/ipp"
GHT_SYSTEM = f"{HYGIE_FHIR_BASE}/sid/ght"

#: Local CodeSystem: kind of hospital unit (icu, emergency, cardiology...).
UNIT_KIND_SYSTEM = f"{HYGIE_FHIR_BASE}/CodeSystem/unit-kind"
#: Local CodeSystem: French diplomas (DES specialties, DEAS, DEMERM, sage-femme).
DIPLOMA_SYSTEM = f"{HYGIE_FHIR_BASE}/CodeSystem/diploma"


def luhn_key(digits: str) -> str:
    """The Luhn check digit to append to ``digits`` (ISO/IEC 7812-1 annex B)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 0:  # doubled: the rightmost digit before the key
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def is_luhn_valid(number: str) -> bool:
    """Whether the last digit of ``number`` is the Luhn key of the others."""
    return number.isdigit() and len(number) > 1 and luhn_key(number[:-1]) == number[-1]


def finess_number(rng: random.Random, department: str) -> str:
    """A FINESS-shaped number in ``department``: 8 digits then their Luhn key."""
    body = f"{department}0{rng.randrange(100000):05d}"
    return body + luhn_key(body)


def rpps_number(rng: random.Random) -> str:
    """An RPPS-shaped number: ``10``, 8 digits, then the Luhn key."""
    body = f"10{rng.randrange(100_000_000):08d}"
    return body + luhn_key(body)


def nir_key(nir13: str) -> str:
    """The two-digit key of a 13-digit NIR: 97 minus the number modulo 97."""
    return f"{97 - int(nir13) % 97:02d}"


def ins_number(gender: str, birth: date, department: str, serial: int) -> str:
    """An INS-shaped number (NIR structure) for a person.

    ``serial`` (0 to 999,999) fills the commune and order fields, so that distinct
    serials never give the same number; the caller passes the person's index.
    """
    sex = "2" if gender == "female" else "1"
    serial %= 1_000_000
    nir13 = f"{sex}{birth.year % 100:02d}{birth.month:02d}{department}{serial:06d}"
    return nir13 + nir_key(nir13)
