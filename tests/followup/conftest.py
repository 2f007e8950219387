"""Follow-up fixtures: a migrated platform on each engine, patients and a care team in
its store, the loopback SMSC as a process, and a harness that drives whole
conversations: the service's clock is set by the test, the channels dispatcher sends to
the SMSC and hands replies back, and the test replies as the patients' phones do."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hygie.channels import Channel
from hygie.channels.peers import SmscHandle, run_smsc
from hygie.channels.service import Channels
from hygie.channels.settings import channel_settings
from hygie.channels.worker import Dispatcher, build_senders
from hygie.config import load_settings
from hygie.followup.engine import FollowupService, Options
from hygie.followup.schedule import PARIS
from hygie.platform import Platform, open_platform
from hygie.security.installation import install as install_security
from hygie.store.migrations import upgrade
from hygie.store.server import open_store

BASE = "http://testserver"
FAST = {
    "retry_base_s": 0.2,
    "retry_max_s": 1.0,
    "poll_s": 0.05,
    "lease_s": 2.0,
    "in_doubt_grace_s": 3.0,
    "smpp_response_timeout_s": 3.0,
    "smpp_reconnect_max_s": 0.5,
}
#: Nurses of the test care team: one always on duty, one never.
ON_DUTY_PHONE = "+33611000001"
OFF_DUTY_PHONE = "+33611000002"
TEAM = "team-covid"


def paris_ms(text: str) -> int:
    """``"2026-03-02 08:00"`` in Paris time as UTC milliseconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp() * 1000)


def make_platform(database_url: str, var_dir: Path) -> Platform:
    platform = open_platform(
        load_settings(database_url=database_url, var_dir=var_dir, base_url=BASE)
    )
    upgrade(platform.engine)
    # as deployed: the store behind the security layer, as the devices gateway a test
    # starts (``hygie devices listen``) writes through it
    install_security(platform)
    open_store(platform)
    return platform


def add_patient(platform: Platform, pid: str, given: str, family: str, phone: str) -> None:
    repo = platform.parts["store"].repository
    repo.update(
        "Patient",
        pid,
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": family, "given": [given]}],
            "birthDate": "1960-01-01",
            "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
        },
    )


def add_team(platform: Platform) -> None:
    repo = platform.parts["store"].repository
    for n, (phone, times) in enumerate(
        [
            (ON_DUTY_PHONE, [{"allDay": True}]),
            (
                OFF_DUTY_PHONE,
                [
                    {
                        "daysOfWeek": ["sun"],
                        "availableStartTime": "03:00:00",
                        "availableEndTime": "03:01:00",
                    }
                ],
            ),
        ],
        start=1,
    ):
        repo.update(
            "Practitioner",
            f"nurse-{n}",
            {
                "resourceType": "Practitioner",
                "id": f"nurse-{n}",
                "name": [{"family": f"Infirmière{n}", "given": ["Claire"]}],
                "telecom": [
                    {"system": "phone", "value": phone, "use": "mobile"},
                    {"system": "email", "value": f"nurse{n}@hopital.example"},
                ],
            },
        )
        repo.update(
            "PractitionerRole",
            f"nurse-role-{n}",
            {
                "resourceType": "PractitionerRole",
                "id": f"nurse-role-{n}",
                "practitioner": {
                    "reference": f"Practitioner/nurse-{n}",
                    "display": f"Claire Infirmière{n}",
                },
                "availableTime": times,
            },
        )
    repo.update(
        "CareTeam",
        TEAM,
        {
            "resourceType": "CareTeam",
            "id": TEAM,
            "name": "Suivi COVID CH Jeanne-Sorel",
            "participant": [
                {"member": {"reference": "PractitionerRole/nurse-role-1"}},
                {"member": {"reference": "PractitionerRole/nurse-role-2"}},
            ],
        },
    )


class Harness:
    """A platform, its follow-up service with a test clock, and the real SMSC."""

    def __init__(
        self, platform: Platform, smsc: SmscHandle, now: int, options: Options | None = None
    ) -> None:
        self.platform = platform
        self.smsc = smsc
        self.now = now
        self.options = options or Options(worker=False, default_team=TEAM)
        settings = channel_settings(platform.settings, smpp_port=smsc.smpp_port, **FAST)
        self.channels = Channels(platform, settings)
        platform.parts["channels"] = self.channels
        self.dispatcher = Dispatcher(self.channels, build_senders(self.channels, {Channel.SMS}))
        self.service = self.start_service()

    def start_service(self) -> FollowupService:
        """A new service on the same database (what a restart of the server builds)."""
        service = FollowupService(self.platform, self.options)
        service.clock = lambda: self.now
        self.platform.parts["followup"] = service
        service.install_protocols()
        service._registered = False
        service.register()
        self.service = service
        return service

    def advance(self, minutes: float) -> None:
        self.now += int(minutes * 60_000)

    def pump(self, until: Callable[[], bool] | None = None, timeout_s: float = 30.0) -> None:
        """Run the service and the dispatcher until ``until`` holds (or all is quiet)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.service.run_once()
            self.dispatcher.drain(timeout_s=2.0)
            if until is None:
                if not any(self.service.run_once().values()):
                    self.dispatcher.drain(timeout_s=2.0)
                    return
            elif until():
                return
            time.sleep(0.05)
        raise AssertionError("the conversation did not reach the expected state in time")

    def texts_to(self, phone: str) -> list[str]:
        """The SMS the phone received, long ones joined from their parts, in order."""
        digits = phone.lstrip("+")
        messages: dict[Any, list[tuple[int, str]]] = {}
        for s in self.smsc.submissions():
            if str(s.get("to", "")).lstrip("+") != digits:
                continue
            key = (s.get("ref"), s.get("total")) if s.get("total", 1) > 1 else s["id"]
            messages.setdefault(key, []).append((s.get("seq", 1), s["text"]))
        return ["".join(text for _seq, text in sorted(parts)) for parts in messages.values()]

    def reply(self, phone: str, text: str) -> None:
        self.smsc.inject_mo([{"from": phone, "text": text}])

    def answer_and_wait(self, phone: str, text: str, expect_texts: int) -> list[str]:
        """Reply, then pump until the phone has received ``expect_texts`` SMS."""
        self.reply(phone, text)
        self.pump(lambda: len(self.texts_to(phone)) >= expect_texts)
        return self.texts_to(phone)

    def close(self) -> None:
        self.dispatcher.stop()


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    p = make_platform(database_url, tmp_path / "var")
    add_team(p)
    yield p
    p.close()


@pytest.fixture
def smsc(tmp_path: Path) -> Iterator[SmscHandle]:
    with run_smsc(tmp_path / "smsc") as handle:
        yield handle


@pytest.fixture
def harness(platform: Platform, smsc: SmscHandle) -> Iterator[Harness]:
    h = Harness(platform, smsc, paris_ms("2026-03-02 07:30"))
    yield h
    h.close()


@pytest.fixture
def enroll(harness: Harness) -> Callable[..., Any]:
    """Enroll a new test patient with the COVID-19 protocol from 2 March 2026."""
    from hygie.followup.model import EnrollmentRequest

    def make(pid: str, phone: str, **extra: Any) -> Any:
        add_patient(harness.platform, pid, "Jeanne", pid.upper(), phone)
        request = EnrollmentRequest(
            patient_id=pid,
            protocol_id="covid19",
            phone=phone,
            start="2026-03-02",
            consent=True,
            **{"team": TEAM, **extra},
        )
        return harness.service.enroll(request, by="test")

    return make
