"""The messages of a campaign: texts from the plan's templates, per channel, and the
marks that keep exercises apart from real alerts.

Every message is described by an *outgoing* row before it is handed to the channels
outbox. Its idempotency key names the campaign, the person and why it is sent (the
attempt for an alert, the answer for a reply), so handing it over again after a crash
returns the message already queued. Its owner (``mobilization:alerte:<campaign>:<contact>``
or ``mobilization:exercice:...``) routes the answers back here and shows, in the
channels' pages, which messages belong to an exercise.

An exercise says so in every message: ``[EXERCICE]`` before each SMS, "Ceci est un
exercice" before and after each call, ``[EXERCICE]`` in each e-mail subject and a
banner line before and after the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from hygie.mobilization.model import Templates

PARIS = ZoneInfo("Europe/Paris")
OWNER_PREFIX = "mobilization:"
#: Answers understood, per channel (the channels match replies against them).
SMS_ANSWERS = ("1", "2", "OUI", "NON")
VOICE_ANSWERS = ("1", "2")
EMAIL_ANSWERS = (
    "J'arrive sous 30 min",
    "J'arrive sous 1 h",
    "J'arrive sous 2 h",
    "Je ne peux pas venir",
)
#: How long a reply (confirmation, stand-down) is worth sending.
REPLY_TTL_S = 6 * 3600


def owner(campaign_id: str, contact_id: str, exercise: bool) -> str:
    return f"{OWNER_PREFIX}{'exercice' if exercise else 'alerte'}:{campaign_id}:{contact_id}"


def contact_of_owner(value: str) -> tuple[str, str] | None:
    """(campaign id, contact id) named by an owner string, or None."""
    parts = value.split(":")
    if len(parts) != 4 or parts[0] + ":" != OWNER_PREFIX or parts[1] not in ("alerte", "exercice"):
        return None
    return parts[2], parts[3]


def clock(ms: int | None) -> str:
    """HH:MM in Paris (what messages and the board show)."""
    if ms is None:
        return "non précisée"
    return _minute(ms // 60_000)


@lru_cache(maxsize=4096)
def _minute(minute: int) -> str:
    # Remembered by the minute: a board shows hundreds of arrivals several times a
    # second, most of them at a few dozen distinct minutes.
    return datetime.fromtimestamp(minute * 60, UTC).astimezone(PARIS).strftime("%Hh%M")


class _Missing(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


def fill(template: str, values: Mapping[str, Any]) -> str:
    """The template with its placeholders replaced (unknown ones by nothing)."""
    return template.format_map(_Missing(values)).strip()


@dataclass(frozen=True)
class Text:
    """What one message says on one channel."""

    text: str
    subject: str | None = None


def mark_exercise(text: Text, channel: str, exercise: bool) -> Text:
    """Put the exercise marks on a message (nothing for a real alert)."""
    if not exercise:
        return text
    if channel == "sms":
        return Text("[EXERCICE] " + text.text, text.subject)
    if channel == "voice":
        return Text(f"Ceci est un exercice. {text.text} Ceci est un exercice.", text.subject)
    banner = "*** EXERCICE : ceci n'est pas une alerte réelle ***"
    return Text(f"{banner}\n\n{text.text}\n\n{banner}", "[EXERCICE] " + (text.subject or ""))


def alert_text(
    templates: Templates, channel: str, values: Mapping[str, Any], exercise: bool
) -> Text:
    """The alert of one request on one channel."""
    if channel == "voice":
        base = Text(fill(templates.voice, values))
    elif channel == "email":
        base = Text(fill(templates.email, values), fill(templates.email_subject, values))
    else:
        base = Text(fill(templates.alert, values))
    return mark_exercise(base, channel, exercise)


def reply_text(
    templates: Templates, kind: str, channel: str, values: Mapping[str, Any], exercise: bool
) -> Text:
    """A confirmation, clarification, stand-down or closing message."""
    template = {
        "confirmation": templates.confirmation,
        "clarification": templates.clarification,
        "standdown": templates.standdown,
        "closing": templates.closing,
    }[kind]
    text = fill(template, values)
    subject = None
    if channel == "email":
        subject = fill(templates.email_subject, values)
    return mark_exercise(Text(text, subject), channel, exercise)


def expected_answers(channel: str) -> list[str]:
    if channel == "voice":
        return list(VOICE_ANSWERS)
    if channel == "email":
        return list(EMAIL_ANSWERS)
    return list(SMS_ANSWERS)
