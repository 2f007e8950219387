"""Reading staff answers: yes or no, and the delay or arrival time, one rule at a time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hygie.mobilization import Meaning, parse_answer

#: 13:10 in Paris, 7 March 2024.
AT = int(datetime(2024, 3, 7, 13, 10, tzinfo=ZoneInfo("Europe/Paris")).timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "meaning", "eta"),
    [
        ("1", Meaning.YES, None),
        ("OUI", Meaning.YES, None),
        ("oui 20", Meaning.YES, 20),
        ("1 20", Meaning.YES, 20),
        ("Oui, dans 20 min", Meaning.YES, 20),
        ("ok dans 1h30", Meaning.YES, 90),
        ("j'arrive dans une demi-heure", Meaning.YES, 30),
        ("oui vers 14h30", Meaning.YES, 80),
        ("oui à 9h", Meaning.YES, 20 * 60 - 10),  # tomorrow morning
        ("20 min", Meaning.YES, 20),
        ("2", Meaning.NO, None),
        ("non", Meaning.NO, None),
        ("Non désolé", Meaning.NO, None),
        ("je ne peux pas", Meaning.NO, None),
        ("pas dispo ce soir", Meaning.NO, None),
        ("oui mais pas avant 2h", Meaning.YES, 120),
        ("42", Meaning.UNKNOWN, None),
        ("peut-être", Meaning.UNKNOWN, None),
        ("", Meaning.UNKNOWN, None),
    ],
)
def test_answers(text: str, meaning: Meaning, eta: int | None) -> None:
    parsed = parse_answer(text, AT)
    assert (parsed.meaning, parsed.eta_minutes) == (meaning, eta)


def test_an_absurd_delay_keeps_the_yes_but_not_the_delay() -> None:
    assert parse_answer("oui 9999", AT).meaning is Meaning.YES
    assert parse_answer("oui 9999", AT).eta_minutes is None
