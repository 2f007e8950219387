"""Answers in plain words, read for one question; schedules in Paris wall-clock time."""

from __future__ import annotations

from datetime import date

import pytest

from hygie.followup.model import Question
from hygie.followup.schedule import local_text, next_session_ms, session_times
from hygie.followup.understanding import SKIP, UNCLEAR, VALUE, distress, understand

TEMP = Question("temp", "decimal", {"fr": "Température ?"}, low=34, high=43)
SPO2 = Question("spo2", "integer", {"fr": "Saturation ?"}, required=False, low=50, high=100)
BREATH = Question("breath", "boolean", {"fr": "Essoufflé ?"})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("38,5", 38.5),
        ("38.5", 38.5),
        ("38.5°", 38.5),
        ("38°5", 38.5),
        ("38,5 C", 38.5),
        ("j'ai 38,5 ce matin", 38.5),
        ("trente-huit et demi", 38.5),
        ("trente huit cinq", 38.5),
        ("trente-sept virgule deux", 37.2),
        ("37", 37.0),
        ("101 F", 38.3),
        ("  39  ", 39.0),
    ],
)
def test_temperatures(text: str, value: float) -> None:
    assert understand(TEMP, text).outcome == VALUE
    assert understand(TEMP, text).value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("94 %", 94.0),
        ("94%", 94.0),
        ("quatre-vingt-quinze", 95.0),
        ("95 pour cent", 95.0),
        ("sat 97", 97.0),
        ("quatre-vingt-dix-huit", 98.0),
        ("ninety six", 96.0),
    ],
)
def test_saturations(text: str, value: float) -> None:
    reading = understand(SPO2, text)
    assert (reading.outcome, reading.value) == (VALUE, value)


@pytest.mark.parametrize(
    "text", ["non", "pas d'oxymètre", "je ne sais pas", "pas d'appareil", "no device"]
)
def test_an_optional_measure_can_be_skipped(text: str) -> None:
    assert understand(SPO2, text).outcome == SKIP


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("oui", True),
        ("OUI", True),
        ("ouais", True),
        ("Oui un peu", True),
        ("yes", True),
        ("un peu", True),
        ("non", False),
        ("Non.", False),
        ("nan", False),
        ("pas du tout", False),
        ("pas vraiment", False),
        ("ok merci", False),
        ("ça va", False),
        ("RAS", False),
        ("no", False),
        ("non, un peu fatiguée", False),
    ],
)
def test_yes_and_no(text: str, value: bool) -> None:
    reading = understand(BREATH, text)
    assert (reading.outcome, reading.value) == (VALUE, value)


@pytest.mark.parametrize(
    ("question", "text"),
    [
        (TEMP, "bof"),
        (TEMP, "12"),
        (TEMP, "37 ou 38"),
        (TEMP, ""),
        (TEMP, "8h30"),
        (BREATH, "je sais pas"),
        (BREATH, "euh"),
        (SPO2, "150"),
        (TEMP, "non"),
    ],
)
def test_unclear_answers(question: Question, text: str) -> None:
    assert understand(question, text).outcome == UNCLEAR


def test_distress_is_found_unless_negated() -> None:
    assert distress("J'étouffe !") == "j etouffe"
    assert distress("douleur thoracique depuis ce matin") == "douleur thoracique"
    assert distress("pas de douleur thoracique") is None
    assert distress("38,2 merci") is None


def test_sessions_follow_paris_wall_clock_across_daylight_saving() -> None:
    # 29 March 2026: France moves to summer time; 08:00 stays 08:00 on the wall.
    times = session_times(date(2026, 3, 28), date(2026, 3, 30), ("08:00", "15:00"), None)
    assert [local_text(t, "%d %H:%M") for t in times] == [
        "28 08:00",
        "28 15:00",
        "29 08:00",
        "29 15:00",
        "30 08:00",
        "30 15:00",
    ]
    assert times[2] - times[0] == 23 * 3600 * 1000  # the night was an hour shorter
    chosen = session_times(date(2026, 3, 2), date(2026, 3, 8), ("10:00",), (1, 3, 5, 7))
    assert [local_text(t, "%d") for t in chosen] == ["02", "04", "06", "08"]
    assert (
        next_session_ms(chosen[-1], date(2026, 3, 2), date(2026, 3, 8), ("10:00",), (1, 3, 5, 7))
        is None
    )
