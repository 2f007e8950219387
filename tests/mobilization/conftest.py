"""Mobilization fixtures: a migrated platform with its store on each engine, the
loopback peers (SMSC, mail sink, SIP phone) started as processes, the channels pointed
at them, and the service without its worker thread (tests step it with ``run_once``).

Staff are simulated people with numbers ``+3361000xxxx`` and addresses
``agent<i>@hygie.test``; ``staff_csv`` writes them as the CSV import reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hygie.channels import Channel
from hygie.channels.peers import SmscHandle, run_smsc
from hygie.channels.service import Channels
from hygie.channels.settings import channel_settings
from hygie.channels.worker import Dispatcher
from hygie.config import load_settings
from hygie.mobilization import MobilizationService, Options, parse_plan
from hygie.platform import Platform, open_platform
from hygie.store.migrations import upgrade
from hygie.store.server import open_store

BASE = "http://testserver"
#: Short timers so that retries happen within a test.
FAST = {
    "retry_base_s": 0.2,
    "retry_max_s": 1.0,
    "poll_s": 0.05,
    "lease_s": 2.0,
    "in_doubt_grace_s": 3.0,
    "smpp_response_timeout_s": 3.0,
    "smpp_reconnect_max_s": 0.5,
}
ICU_NURSE = "224547003"
NURSE = "224535009"


def phone(i: int) -> str:
    return f"+3361{i:07d}"


def sms_texts(submissions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Whole SMS from the SMSC's submissions: parts of one message joined, in order."""
    out: list[tuple[str, str]] = []
    parts: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for s in submissions:
        if not s.get("total") or s["total"] <= 1:
            out.append((s["to"], s["text"]))
            continue
        group = parts.setdefault((s["to"], s["ref"]), [])
        group.append(s)
        if len(group) == s["total"]:
            out.append((s["to"], "".join(p["text"] for p in sorted(group, key=lambda p: p["seq"]))))
    return out


def make_platform(database_url: str, var_dir: Path, base_url: str = BASE) -> Platform:
    platform = open_platform(
        load_settings(database_url=database_url, var_dir=var_dir, base_url=base_url)
    )
    upgrade(platform.engine)
    open_store(platform)
    return platform


def staff_csv(people: list[tuple[int, str, str]]) -> bytes:
    """CSV of simulated staff: (number, role code, unit) per person."""
    lines = [
        "identifiant;nom;prenom;role;unite;etablissement;competences;telephone;email;"
        "disponible;role_libelle;unite_libelle"
    ]
    for i, role, unit in people:
        label = "Infirmier de réanimation" if role == ICU_NURSE else "Infirmier"
        lines.append(
            f"M{i:05d};Agent{i};Test;{role};{unit};ch-test;;{phone(i)};"
            f"agent{i}@hygie.test;oui;{label};{unit.upper()}"
        )
    return ("\n".join(lines) + "\n").encode()


def plan_definition(
    quota: int = 2,
    *,
    channels: tuple[str, ...] = ("sms",),
    wait_s: float = 60,
    cycles: int = 1,
    wave_size: int = 0,
    requests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": "plan-test",
        "name": "Plan blanc test",
        "hospital": "ch-test",
        "channels": list(channels),
        "wait_seconds": wait_s,
        "cycles": cycles,
        "wave_size": wave_size,
        "levels": [
            {
                "level": 1,
                "name": "Afflux",
                "requests": requests
                or [{"role": ICU_NURSE, "unit": "icu", "quota": quota, "deadline_minutes": 60}],
            }
        ],
    }


@dataclass
class Rig:
    """A platform, its channels on the loopback peers, a dispatcher and the service."""

    platform: Platform
    channels: Channels
    dispatcher: Dispatcher
    service: MobilizationService
    smsc: SmscHandle
    now: list[int] = field(default_factory=lambda: [1_700_000_000_000])

    def tick(self, seconds: float) -> None:
        self.now[0] += int(seconds * 1000)

    def texts(self) -> list[tuple[str, str]]:
        """(number, whole text) of every SMS the SMSC received, parts joined."""
        return sms_texts(self.smsc.submissions())

    def sms_to(self, i: int) -> list[str]:
        return [text for to, text in self.texts() if to == phone(i).lstrip("+")]

    def drain(self, until: Callable[[], bool] | None = None, timeout_s: float = 30) -> None:
        """Send, deliver answers, and step the service until ``until`` holds (or idle)."""

        def done() -> bool:
            self.service.run_once()
            return until() if until is not None else False

        self.dispatcher.drain(timeout_s=timeout_s, until=done if until else None)
        self.service.run_once()
        if until is None:
            self.dispatcher.drain(timeout_s=timeout_s)

    def answer(self, i: int, text: str) -> None:
        self.smsc.inject_mo([{"from": phone(i), "text": text}])


@pytest.fixture
def smsc(tmp_path: Path) -> Iterator[SmscHandle]:
    with run_smsc(tmp_path / "smsc") as handle:
        yield handle


def build_rig(
    platform: Platform,
    smsc: SmscHandle,
    senders: dict[Channel, Any] | None = None,
    **overrides: Any,
) -> Rig:
    from hygie.channels.worker import build_senders

    settings = channel_settings(
        platform.settings, smpp_port=smsc.smpp_port, **{**FAST, **overrides}
    )
    channels = Channels(platform, settings)
    platform.parts["channels"] = channels
    service = MobilizationService(platform, Options(worker=False, failure_check_s=0))
    rig_now = [1_700_000_000_000]
    service.clock = lambda: rig_now[0]
    platform.parts["mobilization"] = service
    service.register_answers()
    built = senders if senders is not None else build_senders(channels, {Channel.SMS})
    dispatcher = Dispatcher(channels, built)
    platform.closers.append(dispatcher.stop)
    return Rig(platform, channels, dispatcher, service, smsc, rig_now)


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    p = make_platform(database_url, tmp_path / "var")
    yield p
    p.close()


@pytest.fixture
def rig(platform: Platform, smsc: SmscHandle) -> Rig:
    return build_rig(platform, smsc)


def save_plan(service: MobilizationService, **kwargs: Any) -> None:
    service.save_plan(parse_plan(plan_definition(**kwargs)))
