"""A campaign over 500 simulated staff on the real loopback peers: each person is
programmed to answer yes with a delay, no, or nothing. Checks the quotas (never
exceeded), the waves (as many asked as answers are still needed), the escalation from
SMS to a phone call answered by key press, the stand-down of those still pending, and
a restart in the middle (a process that committed a wave but died before handing it
over) that sends nothing twice. A second test escalates to e-mail when calls reach a
voicemail, and takes the answer from the e-mail's link."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hygie.channels import Channel
from hygie.channels.peers import run_mail_sink, run_phone
from hygie.mobilization import tables as t
from hygie.platform import Platform
from tests.mobilization.conftest import (
    ICU_NURSE,
    NURSE,
    Rig,
    build_rig,
    make_platform,
    phone,
    save_plan,
    staff_csv,
)

needs_voice = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (make test installs it; apt-get install espeak-ng)",
)
ANAESTHETIST = "88189002"
VOICE = {
    "sip_digit_timeout_s": 6,
    "sip_prompt_repeats": 1,
    "sip_ring_timeout_s": 5,
    "sip_max_calls": 1,
}


def program(i: int) -> str | None:
    """What person ``i`` answers to an SMS alert (None: nothing)."""
    if i > 494:
        return None  # the operating-theatre staff never read their SMS
    return {0: f"oui {5 + i % 40}", 1: "non", 2: "OK dans 1h", 3: None, 4: None}[i % 5]


class Simulated:
    """Answers each alert SMS once, as the person's program says."""

    def __init__(self) -> None:
        self.seen = 0
        self.answered: set[int] = set()

    def respond(self, rig: Rig) -> int:
        texts = rig.texts()
        new, self.seen = texts[self.seen :], len(texts)
        replies = []
        for to, text in new:
            i = int(to[-7:])
            if "renfort demandé" in text and i not in self.answered:
                self.answered.add(i)
                reply = program(i)
                if reply is not None:
                    replies.append({"from": phone(i), "text": reply})
        if replies:
            rig.smsc.inject_mo(replies)
        return len(replies)


def _states(platform: Platform, request_suffix: str) -> dict[str, int]:
    c = t.contact.c
    with platform.engine.connect() as conn:
        return dict(
            conn.execute(
                select(c.state, func.count())
                .where(c.request_id.like(f"%-{request_suffix}"))
                .group_by(c.state)
            ).all()
        )


def _settle(rig: Rig, people: Simulated, rounds: int = 40) -> None:
    """Let answers come back and waves go out until nothing moves."""
    quiet = 0
    for _ in range(rounds):
        rig.dispatcher.drain(timeout_s=5)
        rig.service.run_once()
        rig.dispatcher.drain(timeout_s=5)
        if people.respond(rig) == 0 and rig.service.run_once()["handed"] == 0:
            quiet += 1
            if quiet >= 2:
                return
        else:
            quiet = 0


@needs_voice
def test_500_staff_quotas_waves_escalation_standdown_restart(
    database_url: str, tmp_path: Path, smsc: Any
) -> None:
    people = (
        [(i, ICU_NURSE, "icu") for i in range(1, 301)]
        + [(i, NURSE, "med") for i in range(301, 495)]
        + [(i, ANAESTHETIST, "bloc") for i in range(495, 501)]
    )
    platform = make_platform(database_url, tmp_path / "var")
    with run_phone(tmp_path / "calls.jsonl", digits="1", method="info") as sip:
        from hygie.channels.worker import build_senders

        rig = build_rig(platform, smsc, senders={}, sip_trunk=sip.trunk, **VOICE)
        rig.dispatcher.senders.update(build_senders(rig.channels, {Channel.SMS, Channel.VOICE}))
        rig.dispatcher.sent = dict.fromkeys(rig.dispatcher.senders, 0)
        report = rig.service.import_csv(staff_csv(people))
        assert report.written == 500 and report.errors == []
        save_plan(
            rig.service,
            channels=("sms", "voice"),
            wait_s=120,
            requests=[
                {"role": ICU_NURSE, "unit": "icu", "quota": 40, "deadline_minutes": 60},
                {"role": NURSE, "unit": "med", "quota": 20, "deadline_minutes": 45},
                {"role": ANAESTHETIST, "unit": "bloc", "quota": 3, "deadline_minutes": 30},
            ],
        )
        campaign = rig.service.launch(
            "plan-test", 1, exercise=True, launched_by="SAMU", confirm="EXERCICE"
        )
        rig.drain(until=lambda: len(rig.texts()) >= 63)
        assert len(rig.texts()) == 63  # first wave: exactly the quotas
        assert all(text.startswith("[EXERCICE] ") for _to, text in rig.texts())
        people_sim = Simulated()
        _settle(rig, people_sim)

        # The answers so far: every yes up to the quota confirmed, every no replaced.
        icu = _states(platform, "r0")
        assert icu.get("confirmed", 0) <= 40 and icu.get("pending", 0) > 0
        assert icu.get("confirmed", 0) + icu.get("pending", 0) == 40  # as many as needed

        # A crash after a step committed its wave but before it was handed over.
        def crash() -> int:
            raise RuntimeError("killed")

        rig.service.hand_over = crash  # type: ignore[method-assign]
        rig.tick(121)  # the silent people of the first waves time out
        with pytest.raises(RuntimeError):
            rig.service.run_once()
        rig.dispatcher.stop()
        platform.close()
        with platform.engine.connect() as conn:
            unsent = conn.scalar(
                select(func.count())
                .select_from(t.outgoing)
                .where(t.outgoing.c.message_id.is_(None), t.outgoing.c.cancelled.is_(False))
            )
        platform.engine.dispose()  # the look above opened a connection after close()
        assert unsent and unsent > 0  # decided, committed, not yet handed over

        platform = make_platform(database_url, tmp_path / "var")  # the restart
        clock = rig.now
        rig = build_rig(platform, smsc, senders={}, sip_trunk=sip.trunk, **VOICE)
        rig.dispatcher.senders.update(build_senders(rig.channels, {Channel.SMS, Channel.VOICE}))
        rig.dispatcher.sent = dict.fromkeys(rig.dispatcher.senders, 0)
        rig.now[0] = clock[0]
        for _ in range(12):  # waves, time-outs, escalation to calls, until the quotas
            _settle(rig, people_sim)
            board = rig.service.board(campaign.id)
            if all(r["status"] != "open" for r in board["requests"]):
                break
            rig.tick(121)
            rig.dispatcher.drain(
                timeout_s=20,
                until=lambda: not rig.channels.find(owner_prefix="mobilization:", status="queued"),
            )
        board = rig.service.board(campaign.id)
        by_unit = {r["unit"]: r for r in board["requests"]}
        assert [(r["confirmed"], r["quota"], r["status"]) for r in board["requests"]] == [
            (40, 40, "met"),
            (20, 20, "met"),
            (3, 3, "met"),
        ]
        assert by_unit["BLOC"]["needed"] == 0
        # The theatre staff never answered SMS: they were called and pressed 1.
        with platform.engine.connect() as conn:
            by_call = conn.execute(
                select(t.contact.c.name, t.contact.c.answer_channel).where(
                    t.contact.c.request_id == f"{campaign.id}-r2", t.contact.c.state == "confirmed"
                )
            ).all()
        assert [channel for _name, channel in by_call] == ["voice"] * 3
        assert len(sip.calls()) >= 3 and all(
            c["digits"] == "1" for c in sip.calls() if c.get("answered")
        )
        # ETAs parsed: "oui 20" is 20 minutes, "OK dans 1h" an hour.
        arrivals = {a["name"]: a for a in board["arrivals"]}
        assert any(a["eta_ms"] is not None for a in arrivals.values())

        # Stand-down: those still pending when a quota was met were told; never-asked
        # people heard nothing.
        texts = rig.texts()
        stood_down = {to for to, text in texts if "est couvert" in text}
        assert stood_down
        with platform.engine.connect() as conn:
            released = conn.execute(
                select(t.contact.c.phone, t.contact.c.attempts).where(
                    t.contact.c.campaign_id == campaign.id, t.contact.c.state == "released"
                )
            ).all()
        for number, attempts in released:
            assert (number.lstrip("+") in stood_down) == (attempts > 0)
        # Nothing was sent twice, through the crash and the restart.
        assert len(texts) == len(set(texts))
        alerts = [to for to, text in texts if "renfort demandé" in text]
        assert len(alerts) == len(set(alerts))
        # No quota exceeded: late yeses were thanked and told the need is covered.
        assert board["totals"]["confirmed"] == 63
        rig.dispatcher.stop()
    platform.close()


@needs_voice
def test_voicemail_escalates_to_email_answered_by_link(
    platform: Platform, tmp_path: Path, smsc: Any
) -> None:
    from hygie.channels.worker import build_senders

    with (
        run_phone(tmp_path / "calls.jsonl", mode="voicemail") as sip,
        run_mail_sink(tmp_path / "mail") as sink,
    ):
        rig = build_rig(
            platform, smsc, senders={}, sip_trunk=sip.trunk, smtp_port=sink.port, **VOICE
        )
        rig.dispatcher.senders.update(build_senders(rig.channels, set(Channel)))
        rig.dispatcher.sent = dict.fromkeys(rig.dispatcher.senders, 0)
        rig.service.import_csv(staff_csv([(1, ICU_NURSE, "icu")]))
        save_plan(rig.service, quota=1, channels=("sms", "voice", "email"), wait_s=60)
        campaign = rig.service.launch(
            "plan-test", 1, exercise=False, launched_by="SAMU", confirm="ALERTE"
        )
        rig.drain(until=lambda: len(rig.texts()) == 1)
        rig.tick(61)  # no SMS answer: a call, which reaches a voicemail (no key press)
        rig.drain(until=lambda: len(sip.calls()) == 1, timeout_s=60)
        # The failed call moves the person on at once, without waiting: an e-mail.
        rig.drain(until=lambda: len(sink.messages()) == 1, timeout_s=60)
        [mail] = sink.messages()
        assert "renfort" in mail["subject"] or "rappel" in mail["subject"]
        record = rig.channels.find(owner_prefix="mobilization:", status="submitted")
        [email] = [r for r in record if r.channel == Channel.EMAIL]
        token = rig.channels.answer_url(email.id).rsplit("/", 1)[1]
        rig.channels.answer_by_link(token, "J'arrive sous 30 min")
        rig.drain(until=lambda: rig.service.board(campaign.id)["totals"]["confirmed"] == 1)
        [arrival] = rig.service.board(campaign.id)["arrivals"]
        assert arrival["eta_ms"] is not None
        rig.drain(until=lambda: len(sink.messages()) == 2)  # the confirmation, by e-mail
        rig.dispatcher.stop()
