"""Who is told of an alert: the care team of the enrollment, those on duty first.

A team is a FHIR ``CareTeam`` in the store (https://hl7.org/fhir/R4/careteam.html) whose
``participant.member`` are PractitionerRoles (or Practitioners). A PractitionerRole is
*on duty* when one of its ``availableTime`` entries covers the moment, in Europe/Paris
time (``allDay`` or ``daysOfWeek`` with ``availableStartTime``-``availableEndTime``; an
end before the start is a night shift running past midnight). An alert goes to the
members on duty; when nobody is, to every member, so that no alert is told to nobody.
An escalation goes to every member and to the team's own ``telecom`` (the unit's line).
Contact details are the role's ``telecom`` (mobile phone, e-mail), else the
Practitioner's.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hygie.followup.schedule import PARIS
from hygie.store.outcomes import FhirError

log = logging.getLogger("hygie.followup")

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How long a team read from the store is kept (seconds): alerts come in bursts.
CACHE_S = 60.0


@dataclass(frozen=True)
class Contact:
    """One person (or line) to tell: a FHIR reference, a name, and where to reach them."""

    ref: str
    name: str
    phone: str | None
    email: str | None
    available: tuple[dict[str, Any], ...] = ()

    def on_duty(self, at_ms: int) -> bool:
        if not self.available:
            return False
        local = datetime.fromtimestamp(at_ms / 1000, PARIS)
        day = _DAYS[local.weekday()]
        yesterday = _DAYS[(local.weekday() - 1) % 7]
        clock = local.strftime("%H:%M:%S")
        for slot in self.available:
            days = slot.get("daysOfWeek") or list(_DAYS)
            if slot.get("allDay") and day in days:
                return True
            start = str(slot.get("availableStartTime", "00:00:00"))
            end = str(slot.get("availableEndTime", "23:59:59"))
            if start <= end:
                if day in days and start <= clock < end:
                    return True
            elif (day in days and clock >= start) or (yesterday in days and clock < end):
                return True
        return False


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    members: tuple[Contact, ...]
    lines: tuple[Contact, ...]

    def on_duty(self, at_ms: int) -> list[Contact]:
        """Members on duty at that moment, or every member when nobody is."""
        found = [m for m in self.members if m.on_duty(at_ms)]
        return found or list(self.members)

    def everyone(self) -> list[Contact]:
        return [*self.members, *self.lines]


def _telecom(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    phone = email = None
    for entry in resource.get("telecom", []):
        texting = entry.get("system") == "sms" or (
            entry.get("system") == "phone" and entry.get("use") == "mobile"
        )
        if texting and not phone:
            phone = entry.get("value")
        elif entry.get("system") == "email" and not email:
            email = entry.get("value")
    return phone, email


def _name(resource: dict[str, Any], fallback: str) -> str:
    name = (resource.get("name") or [{}])[0]
    if isinstance(name, str):
        return name
    text = " ".join([*name.get("given", []), name.get("family", "")]).strip()
    return text or fallback


def read_team(repository: Any, team_id: str) -> Team | None:
    """The CareTeam ``team_id`` and its members' contacts, or None when unknown."""
    try:
        care_team = repository.read("CareTeam", team_id).resource
    except FhirError:
        return None
    members: list[Contact] = []
    for participant in care_team.get("participant", []):
        ref = (participant.get("member") or {}).get("reference", "")
        res_type, _, res_id = ref.partition("/")
        if res_type not in ("PractitionerRole", "Practitioner") or not res_id:
            continue
        try:
            member = repository.read(res_type, res_id).resource
        except FhirError:
            continue
        phone, email = _telecom(member)
        name = (member.get("practitioner") or {}).get("display") or _name(member, ref)
        if res_type == "PractitionerRole" and (phone is None or email is None):
            who = (member.get("practitioner") or {}).get("reference", "")
            if who.startswith("Practitioner/"):
                try:
                    person = repository.read("Practitioner", who.split("/", 1)[1]).resource
                    other_phone, other_email = _telecom(person)
                    phone, email = phone or other_phone, email or other_email
                except FhirError:
                    pass
        members.append(Contact(ref, name, phone, email, tuple(member.get("availableTime", []))))
    phone, email = _telecom(care_team)
    lines = (
        (Contact(f"CareTeam/{team_id}", care_team.get("name", team_id), phone, email),)
        if phone or email
        else ()
    )
    return Team(team_id, str(care_team.get("name", team_id)), tuple(members), lines)


class TeamDirectory:
    """Teams read from the store, kept for :data:`CACHE_S` seconds."""

    def __init__(self, repository: Any) -> None:
        self.repository = repository
        self._cache: dict[str, tuple[float, Team | None]] = {}
        self._lock = threading.Lock()

    def get(self, team_id: str) -> Team | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(team_id)
            if hit is not None and now - hit[0] < CACHE_S:
                return hit[1]
        team = read_team(self.repository, team_id)
        with self._lock:
            self._cache[team_id] = (now, team)
        return team

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()
