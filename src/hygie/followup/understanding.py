"""Reading answers written in plain words: numbers, yes and no, "ok merci", distress.

Patients answer as they would answer a nurse: "38,5", "38.5°", "38°5", "94 %",
"trente-huit et demi", "quatre-vingt-quinze", "ouais", "pas du tout", "ok merci".
:func:`understand` reads one answer for one question and says what it means, or that
it is unclear (the conversation then asks again once, and hands over to a person).

Why hand-written: the libraries that turn number words into digits (``text2num``,
``word2number``) cover one language each and none knows the French way of saying a
temperature ("trente-huit cinq" is 38.5), units written after the number, or yes/no
variants. The vocabulary here is small, closed and tested word by word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from hygie.followup.model import Question

#: Outcomes of reading an answer.
VALUE, SKIP, UNCLEAR = "value", "skip", "unclear"


@dataclass(frozen=True)
class Reading:
    """What an answer means: a ``value`` (number or bool), a ``skip`` (the patient
    cannot measure it: allowed for optional questions), or ``unclear``."""

    outcome: str
    value: float | bool | None = None
    note: str | None = None


@lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """Lower case, no accents, apostrophes and punctuation as spaces, one space."""
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    plain = re.sub(r"[’'`´]", " ", plain)
    plain = re.sub(r"[^a-z0-9%°.,/?+\-\s]", " ", plain)
    return re.sub(r"\s+", " ", plain).strip()


# --- yes / no --------------------------------------------------------------------

_YES = {
    "oui",
    "ouais",
    "ouai",
    "ouii",
    "ouiii",
    "ui",
    "yes",
    "yep",
    "yeah",
    "yup",
    "y",
    "o",
    "si",
    "affirmatif",
    "exact",
    "exactement",
    "effectivement",
    "evidemment",
    "certes",
}
_YES_PHRASES = (
    "bien sur",
    "tout a fait",
    "un peu",
    "legerement",
    "beaucoup",
    "plutot oui",
    "a little",
    "a bit",
    "of course",
)
_NO = {
    "non",
    "nan",
    "nn",
    "no",
    "nope",
    "nop",
    "n",
    "aucun",
    "aucune",
    "rien",
    "jamais",
    "negatif",
    "none",
    "nothing",
    "never",
}
_NO_PHRASES = (
    "pas du tout",
    "pas vraiment",
    "plutot non",
    "not really",
    "not at all",
    "pas de",
    "pas d",
    "ne suis pas",
    "n ai pas",
    "ne me sens pas",
    "pas plus",
)
#: Whole answers that mean "nothing to report" (a no to a symptom question).
_NO_COMPLAINT = {
    "ok",
    "ok merci",
    "okay",
    "d accord",
    "merci",
    "ca va",
    "ca va bien",
    "ca va merci",
    "ca va tres bien",
    "tout va bien",
    "tout va bien merci",
    "bien",
    "tres bien",
    "ras",
    "r a s",
    "rien a signaler",
    "parfait",
    "nickel",
    "impeccable",
    "super",
    "all good",
    "fine",
    "i m fine",
    "im fine",
    "all fine",
    "good",
    "ok thanks",
    "ok thank you",
}
_DONT_KNOW = (
    "je ne sais pas",
    "je sais pas",
    "sais pas",
    "ne sais pas",
    "nsp",
    "aucune idee",
    "pas sur",
    "pas sure",
    "dont know",
    "don t know",
    "not sure",
    "no idea",
)
_NO_DEVICE = (
    "pas d appareil",
    "pas de thermometre",
    "pas d oxymetre",
    "pas de saturometre",
    "pas d oxymetre",
    "pas de tensiometre",
    "pas de cardio",
    "pas mesure",
    "pas pu mesurer",
    "pas pu la mesurer",
    "pas pu le mesurer",
    "non mesure",
    "impossible de mesurer",
    "pas pris",
    "no device",
    "not measured",
    "can t measure",
    "cannot measure",
    "couldn t measure",
    "no thermometer",
    "no oximeter",
)


def _has_phrase(folded: str, phrase: str) -> bool:
    return re.search(rf"(^| ){re.escape(phrase)}($| )", folded) is not None


def read_yes_no(text: str) -> bool | None:
    """True for yes, False for no (or "nothing to report"), None when unclear."""
    folded = fold(text).replace("?", " ").replace(".", " ").replace(",", " ").strip()
    folded = re.sub(r"\s+", " ", folded)
    if not folded or any(_has_phrase(folded, p) for p in _DONT_KNOW):
        return None
    words = folded.split()
    yes = [i for i, w in enumerate(words) if w in _YES]
    no = [i for i, w in enumerate(words) if w in _NO]
    yes_phrase = any(_has_phrase(folded, p) for p in _YES_PHRASES)
    no_phrase = any(_has_phrase(folded, p) for p in _NO_PHRASES) or "pas" in words
    is_yes = bool(yes) or yes_phrase
    is_no = bool(no) or no_phrase
    if is_yes and not is_no:
        return True
    if is_no and not is_yes:
        return False
    if is_yes and is_no and (yes or no):
        # "oui mais pas beaucoup", "non, un peu fatigué": the first yes or no decides.
        first_yes = yes[0] if yes else len(words)
        first_no = no[0] if no else len(words)
        return first_yes < first_no
    if folded in _NO_COMPLAINT:
        return False
    return None


# --- numbers ---------------------------------------------------------------------

_UNITS = {
    "zero": 0,
    "un": 1,
    "une": 1,
    "deux": 2,
    "trois": 3,
    "quatre": 4,
    "cinq": 5,
    "six": 6,
    "sept": 7,
    "huit": 8,
    "neuf": 9,
    "dix": 10,
    "onze": 11,
    "douze": 12,
    "treize": 13,
    "quatorze": 14,
    "quinze": 15,
    "seize": 16,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "vingt": 20,
    "vingts": 20,
    "trente": 30,
    "quarante": 40,
    "cinquante": 50,
    "soixante": 60,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_HUNDRED = {"cent", "cents", "hundred"}
_JOINERS = {"et", "and"}
_DECIMAL_MARKS = {"virgule", "point", "comma", "dot"}
_HALF = {"demi", "demie", "half"}


def _fits(current: int, word: str, previous: str) -> bool:
    """Whether ``word`` continues the number ``current`` (else it starts another)."""
    if word in _HUNDRED:
        return current % 100 == 0 or current < 10
    last_two = current % 100
    if word in _TENS:
        if word in ("vingt", "vingts") and last_two == 4:
            return True  # quatre-vingt
        return last_two == 0
    value = _UNITS[word]
    if value >= 10:
        return last_two in (0, 60, 80)  # dix, soixante-dix, quatre-vingt-douze
    if value == 0:
        return current == 0
    if previous == "dix":
        return value >= 7  # dix-sept, soixante-dix-huit
    return last_two % 10 == 0 and not 10 <= last_two < 20


def _add(current: int, word: str) -> int:
    if word in _HUNDRED:
        return (current or 1) * 100
    if word in _TENS:
        if word in ("vingt", "vingts") and current % 100 == 4:
            return current - 4 + 80
        return current + _TENS[word]
    return current + _UNITS[word]


def _word_groups(words: list[str]) -> list[tuple[int, int, int]]:
    """Runs of number words: (value, first word index, last word index)."""
    groups: list[tuple[int, int, int]] = []
    current, first, last = 0, -1, -1
    i = 0
    while i < len(words):
        word = words[i]
        after = words[i + 1] if i + 1 < len(words) else ""
        if (
            word in _JOINERS
            and first >= 0
            and (after in _UNITS or after in _TENS)
            and _fits(current, after, words[last])
        ):
            i += 1  # "vingt et un", "one hundred and ten"
            continue
        if word in _UNITS or word in _TENS or word in _HUNDRED:
            if first >= 0 and not _fits(current, word, words[last]):
                groups.append((current, first, last))
                first = -1
            if first < 0:
                current, first = 0, i
            current = _add(current, word)
            last = i
        elif first >= 0:
            groups.append((current, first, last))
            first = -1
        i += 1
    if first >= 0:
        groups.append((current, first, last))
    return groups


def words_to_numbers(folded: str) -> list[float]:
    """Numbers written in words (French or English), with their decimals."""
    words = re.sub(r"\b(pour cent|per cent|percent)\b", " ", folded).replace("-", " ").split()
    groups = _word_groups(words)
    out: list[float] = []
    skip = set()
    for n, (value, _first, last) in enumerate(groups):
        if n in skip:
            continue
        number = float(value)
        following = groups[n + 1] if n + 1 < len(groups) else None
        between = words[last + 1 : following[1]] if following else []
        if following and len(between) == 1 and between[0] in _DECIMAL_MARKS:
            digits = len(str(following[0]))
            number = value + following[0] / 10**digits
            skip.add(n + 1)
            last = following[2]
        elif following and not between and following[0] < 10 and value >= 10:
            number = value + following[0] / 10  # "trente-huit cinq": 38.5
            skip.add(n + 1)
            last = following[2]
        rest = words[last + 1 : last + 4]
        if (rest[:2] and rest[0] in _JOINERS and rest[1] in _HALF) or rest[:3] == [
            "and",
            "a",
            "half",
        ]:
            number += 0.5
        out.append(number)
    return out


#: A number in digits, with an optional decimal part ("38,5", "38.5", "38°5").
_DIGITS = re.compile(r"(?<![\d.,])(\d{1,3})(?:(?:[.,]|°)(\d{1,2}))?(?![\d])(\s*(?:h\b|:))?")
_HALF_AFTER = re.compile(r"^\s*(?:°|degres?|c)?\s*(?:et demi|et demie|and a half)")


def digit_numbers(folded: str) -> list[float]:
    """Numbers in digits, leaving out times of day ("8h", "8:30")."""
    out: list[float] = []
    for m in _DIGITS.finditer(folded):
        if m.group(3):
            continue  # a time of day, not a measure
        start = m.start()
        if start > 0 and folded[start - 1] == ":":
            continue
        value = float(m.group(1))
        if m.group(2):
            value += float(m.group(2)) / 10 ** len(m.group(2))
        elif _HALF_AFTER.match(folded[m.end() :]):
            value += 0.5
        out.append(value)
    return out


def read_number(text: str, low: float | None = None, high: float | None = None) -> float | None:
    """The one plausible number in ``text`` (within ``low``..``high``), or None when
    there is none or several different ones."""
    folded = fold(text)
    candidates = digit_numbers(folded) + words_to_numbers(folded)
    if "f" in folded.split() or "°f" in folded or "fahrenheit" in folded:
        candidates = [round((c - 32) * 5 / 9, 1) for c in candidates]
    plausible = {c for c in candidates if (low is None or c >= low) and (high is None or c <= high)}
    if len(plausible) == 1:
        return plausible.pop()
    return None


# --- distress ----------------------------------------------------------------------

_DISTRESS = (
    "douleur thoracique",
    "douleur a la poitrine",
    "douleur dans la poitrine",
    "mal a la poitrine",
    "mal dans la poitrine",
    "j etouffe",
    "etouffe",
    "etouffer",
    "peux plus respirer",
    "peux pas respirer",
    "arrive pas a respirer",
    "arrive plus a respirer",
    "du mal a respirer",
    "mal a respirer",
    "respire mal",
    "respire plus",
    "malaise",
    "au secours",
    "appelez le 15",
    "appeler le 15",
    "samu",
    "levres bleues",
    "perdu connaissance",
    "evanoui",
    "can t breathe",
    "cannot breathe",
    "chest pain",
    "short of breath at rest",
    "fainted",
)
_NEGATIONS = {"pas", "aucun", "aucune", "sans", "no", "not", "ni", "jamais"}


_DISTRESS_RE = re.compile(r"(?:^| )(" + "|".join(re.escape(p) for p in _DISTRESS) + r")(?= |$)")


def distress(text: str) -> str | None:
    """The distress phrase a message contains (not negated), or None."""
    folded = fold(text)
    for m in _DISTRESS_RE.finditer(folded):
        if any(w in _NEGATIONS for w in folded[: m.start(1)].split()[-3:]):
            continue  # "pas de douleur thoracique"
        return m.group(1)
    return None


# --- one answer to one question ------------------------------------------------------


def is_no_complaint(text: str) -> bool:
    """A message that says nothing but "fine, thanks" ("ok merci")."""
    folded = re.sub(
        r"\s+", " ", fold(text).replace(".", " ").replace(",", " ").replace("?", " ")
    ).strip()
    return folded in _NO_COMPLAINT


def understand(question: Question, text: str) -> Reading:
    """What ``text`` answers to ``question``."""
    folded = fold(text)
    if not folded:
        return Reading(UNCLEAR, note="empty")
    if question.kind == "boolean":
        value = read_yes_no(text)
        return Reading(VALUE, value) if value is not None else Reading(UNCLEAR)
    if not question.required and (
        any(_has_phrase(folded, p) for p in _NO_DEVICE + _DONT_KNOW)
        or folded in ("non", "no", "-", "x", "?")
    ):
        return Reading(SKIP)
    number = read_number(text, question.low, question.high)
    if number is None:
        outside = read_number(text)
        note = "out of range" if outside is not None else None
        return Reading(UNCLEAR, note=note)
    if question.kind == "integer":
        if number != int(number):
            return Reading(VALUE, float(round(number)))
        return Reading(VALUE, float(int(number)))
    return Reading(VALUE, number)
