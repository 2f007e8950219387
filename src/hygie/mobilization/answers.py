"""Reading what staff answer: yes or no, and when they will be there.

Answers come as SMS text ("1", "oui 20", "OK dans 1h30", "non", "2", "je ne peux
pas"), as keys pressed on a call ("1", "2") or as the choice made on an e-mail answer
page ("J'arrive sous 30 min", "Je ne peux pas venir"). The rules, in order:

1. the text is folded (lower case, no accents, apostrophes and punctuation as spaces);
2. a leading ``1`` or ``2`` alone as a word is the key of the menu (yes / no);
3. otherwise the first yes-word or no-expression found decides ("oui", "ok", "j'arrive",
   "dispo"... / "non", "pas dispo", "ne peux pas", "impossible"...); the earliest wins,
   so "oui mais pas avant 2h" is a yes;
4. a yes may carry a delay: a duration ("20", "20 min", "1h", "1h30", "une heure",
   "une demi-heure") or an arrival time after "à", "a", "vers" or "pour" ("à 14h30",
   "vers 9h"), read in Europe/Paris and taken as the next such time;
5. a duration alone ("20 min", "1h") means yes with that delay; a bare number other than
   1 and 2 means nothing (it could be a delay or a typing slip): the person is asked
   again once.

Hand-written because no library reads French SMS replies; the rules are small and
tested one by one (tests/mobilization/test_answers.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hygie.mobilization.model import Meaning

PARIS = ZoneInfo("Europe/Paris")
#: Longest delay taken from an answer; beyond it the delay is ignored (not the answer).
MAX_ETA_MINUTES = 24 * 60

_YES_WORDS = {
    "oui",
    "o",
    "ok",
    "okay",
    "yes",
    "y",
    "ouais",
    "present",
    "presente",
    "arrive",
    "jarrive",
    "viens",
    "dispo",
    "disponible",
    "go",
    "partant",
    "partante",
    "volontaire",
    "affirmatif",
    "d'accord",
    "daccord",
    "venir",
}
_NO_PATTERNS = [
    r"\bnon\b",
    r"\bno\b",
    r"\bn\b",
    r"\bpas (?:dispo|disponible|possible|libre)",
    r"\bindisponible\b",
    r"\bimpossible\b",
    r"\bpeux pas\b",
    r"\bpourrai pas\b",
    r"\bpeut pas\b",
    r"\babsent",
    r"\bempeche",
    r"\bnegatif\b",
    r"\bmalade\b",
]
_NO = re.compile("|".join(_NO_PATTERNS))
_CLOCK = re.compile(r"\b(?:a|vers|pour)\s+(\d{1,2})\s*(?:h|:)\s*(\d{2})?\b")
_HOURS = re.compile(r"\b(\d{1,2})\s*h(?:eures?|rs?)?\s*(\d{1,2})?\b")
_MINUTES = re.compile(r"\b(\d{1,4})\s*(?:min|mins|minutes?|mn|m)\b")
_NUMBER = re.compile(r"\b(\d{1,4})\b")
_WORD_DELAYS = [
    (re.compile(r"\bune? demi[ -]?heure\b"), 30),
    (re.compile(r"\bune heure et demie?\b"), 90),
    (re.compile(r"\bune heure\b"), 60),
    (re.compile(r"\bun quart d ?heure\b"), 15),
    (re.compile(r"\bdeux heures\b"), 120),
]


@dataclass(frozen=True)
class ParsedAnswer:
    meaning: Meaning
    #: Minutes from the answer to the arrival, when the person gave them.
    eta_minutes: int | None = None


def fold(text: str) -> str:
    """Lower case, no accents, apostrophes and punctuation as spaces, single spaces."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    plain = re.sub(r"[’'`]", "", plain)
    plain = re.sub(r"[^a-z0-9:\s]", " ", plain)
    return " ".join(plain.split())


def _delay(folded: str, received_ms: int) -> int | None:
    """Minutes until arrival found in a folded text, or None."""
    clock = _CLOCK.search(folded)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2) or 0)
        if hour < 24 and minute < 60:
            received = datetime.fromtimestamp(received_ms / 1000, UTC).astimezone(PARIS)
            arrival = received.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if arrival < received:
                arrival += timedelta(days=1)
            return max(0, round((arrival - received).total_seconds() / 60))
    for pattern, minutes in _WORD_DELAYS:
        if pattern.search(folded):
            return minutes
    hours = _HOURS.search(folded)
    if hours:
        return int(hours.group(1)) * 60 + int(hours.group(2) or 0)
    minutes = _MINUTES.search(folded)
    if minutes:
        return int(minutes.group(1))
    return None


def parse_answer(text: str, received_ms: int) -> ParsedAnswer:
    """What ``text`` says (see the module docstring); ``received_ms`` dates clock times."""
    folded = fold(text)
    if not folded:
        return ParsedAnswer(Meaning.UNKNOWN)
    words = folded.split()
    meaning: Meaning | None = None
    rest = folded
    if words[0] in ("1", "2"):
        meaning = Meaning.YES if words[0] == "1" else Meaning.NO
        rest = " ".join(words[1:])
    else:
        no = _NO.search(folded)
        yes_at = next((i for i, w in enumerate(words) if w in _YES_WORDS), None)
        yes_pos = len(" ".join(words[:yes_at])) if yes_at is not None else None
        if no is not None and (yes_pos is None or no.start() < yes_pos):
            meaning = Meaning.NO
        elif yes_pos is not None:
            meaning = Meaning.YES
            assert yes_at is not None
            rest = " ".join(words[yes_at + 1 :])
    if meaning is Meaning.NO:
        return ParsedAnswer(Meaning.NO)
    eta = _delay(rest, received_ms)
    if eta is None and meaning is Meaning.YES:
        number = _NUMBER.search(rest)
        if number is not None and rest.startswith(number.group(1)):
            eta = int(number.group(1))  # "oui 20", "1 20": minutes
    if meaning is None:
        if eta is None:
            return ParsedAnswer(Meaning.UNKNOWN)
        meaning = Meaning.YES  # "20 min", "1h": a delay alone is a yes
    if eta is not None and not 0 <= eta <= MAX_ETA_MINUTES:
        eta = None
    return ParsedAnswer(meaning, eta)
