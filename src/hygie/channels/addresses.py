"""Recipient addresses: phone numbers in E.164 and e-mail addresses.

Numbers are kept in E.164 (``+33612345678``) so that a reply from ``33612345678``
(international TON) or ``0612345678`` (national TON) finds the same conversation and
the same opt-out. ``phonenumbers`` knows each country's numbering plan.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from hygie.channels.errors import InvalidAddress
from hygie.channels.model import Channel

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)*"
                    r"[A-Za-z0-9-]{1,63}$")
#: SMPP type of number (SMPP v3.4 §5.2.5): international, national, alphanumeric.
TON_INTERNATIONAL, TON_NATIONAL, TON_ALPHANUMERIC = 1, 2, 5


@lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str = "FR") -> str:
    """E.164 form of a phone number written in any usual way; raise InvalidAddress."""
    text = raw.strip()
    if text.isdigit() and not text.startswith("0") and len(text) > 9:
        text = "+" + text  # SMPP international numbers come without the plus
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidAddress(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidAddress("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """The address with its domain in lower case; raise InvalidAddress."""
    text = raw.strip()
    if not _EMAIL.match(text):
        raise InvalidAddress("not an e-mail address")
    local, domain = text.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def normalize_address(channel: Channel, raw: str, region: str = "FR") -> str:
    """The canonical address of a recipient on this channel."""
    if channel is Channel.EMAIL:
        return normalize_email(raw)
    return normalize_phone(raw, region)


def smpp_address(e164: str) -> tuple[int, int, str]:
    """(TON, NPI, digits) of an E.164 number for submit_sm."""
    return TON_INTERNATIONAL, 1, e164.lstrip("+")


def smpp_source(source: str) -> tuple[int, int, str]:
    """(TON, NPI, address) of the sender: a number, or alphanumeric (at most 11)."""
    digits = source.lstrip("+")
    if digits.isdigit():
        return TON_INTERNATIONAL, 1, digits
    return TON_ALPHANUMERIC, 0, source[:11]

