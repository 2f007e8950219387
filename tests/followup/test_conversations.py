"""Whole conversations through the real loopback SMSC, several patients at once."""

from __future__ import annotations

from typing import Any

import pytest

from hygie.followup.model import AlertKind, AlertStatus, EnrollmentStatus, Level, SessionStatus
from tests.followup.conftest import OFF_DUTY_PHONE, ON_DUTY_PHONE, Harness, paris_ms

ALICE, BRUNO, CHLOE, DAVID = "+33612000001", "+33612000002", "+33612000003", "+33612000004"


def _session(harness: Harness, enrollment_id: str) -> Any:
    return harness.service.sessions(enrollment_id)[0]


def test_good_wrong_unclear_and_stop_answers(harness: Harness, enroll: Any) -> None:
    a = enroll("alice", ALICE)
    b = enroll("bruno", BRUNO)
    c = enroll("chloe", CHLOE)
    d = enroll("david", DAVID)
    harness.pump(lambda: all(len(harness.texts_to(p)) == 1 for p in (ALICE, BRUNO, CHLOE, DAVID)))
    assert "STOP" in harness.texts_to(ALICE)[0]  # the welcome message says how to stop
    # 08:00: the morning questionnaire goes to everyone, one question per message.
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: all(len(harness.texts_to(p)) == 2 for p in (ALICE, BRUNO, CHLOE, DAVID)))
    first = harness.texts_to(ALICE)[1]
    assert "température" in first and "(1/5)" in first and "08:00" in first

    # Alice answers in plain words, with a fever and a low saturation.
    assert "respirer" in harness.answer_and_wait(ALICE, "38,9°", 3)[-1]
    assert "saturation" in harness.answer_and_wait(ALICE, "non pas vraiment", 4)[-1]
    assert "pouls" in harness.answer_and_wait(ALICE, "93 %", 5)[-1]
    assert "toux" in harness.answer_and_wait(ALICE, "pas d'appareil", 6)[-1]
    assert "Merci" in harness.answer_and_wait(ALICE, "ok merci", 7)[-1]
    session = _session(harness, a.id)
    assert session.status is SessionStatus.COMPLETED
    assert session.answers == {
        "temp": 38.9,
        "breath": False,
        "spo2": 93.0,
        "pulse": None,
        "symptoms": False,
    }
    alerts = harness.service.alerts(enrollment_id=a.id)
    assert [(x.kind, x.level) for x in alerts] == [(AlertKind.CLINICAL, Level.REVIEW)]
    assert set(alerts[0].reasons) == {"Fièvre (≥ 38 °C)", "Saturation ≤ 94 %"}
    # The nurse on duty got an SMS with the link; the one off duty did not.
    harness.pump(lambda: len(harness.texts_to(ON_DUTY_PHONE)) >= 1)
    notice = harness.texts_to(ON_DUTY_PHONE)[-1]
    assert f"/followup/alerts/{alerts[0].id}" in notice and "alice" not in notice.lower()
    assert harness.texts_to(OFF_DUTY_PHONE) == []

    # Bruno's first answer is not understood: asked again once, then understood.
    again = harness.answer_and_wait(BRUNO, "je sais pas trop", 3)[-1]
    assert again.startswith("Je n'ai pas compris") and "37,8" in again
    assert "respirer" in harness.answer_and_wait(BRUNO, "trente-sept huit", 4)[-1]
    assert _session(harness, b.id).answers == {"temp": 37.8}

    # Chloé is not understood twice: handed over to a person, with an alert.
    harness.answer_and_wait(CHLOE, "bof", 3)
    assert "recontacter" in harness.answer_and_wait(CHLOE, "comme hier", 4)[-1]
    assert _session(harness, c.id).status is SessionStatus.HANDED_OVER
    unclear = harness.service.alerts(enrollment_id=c.id)
    assert [(x.kind, x.level) for x in unclear] == [(AlertKind.UNCLEAR, Level.REVIEW)]

    # David says STOP: no more messages, the team is told, the consent withdrawn.
    harness.reply(DAVID, "STOP")
    harness.pump(lambda: harness.service.enrollment(d.id).status is EnrollmentStatus.STOPPED)
    assert [x.kind for x in harness.service.alerts(enrollment_id=d.id)] == [AlertKind.STOPPED]
    harness.now = paris_ms("2026-03-02 15:00")
    harness.pump(lambda: len(harness.texts_to(ALICE)) == 8)
    harness.pump()
    assert len(harness.texts_to(DAVID)) == 2
    assert _session(harness, d.id).status is SessionStatus.CANCELLED

    # The store has the clinical record of it.
    repo = harness.platform.parts["store"].repository
    response = repo.read("QuestionnaireResponse", session.id).resource
    assert response["status"] == "completed" and len(response["item"]) == 5
    temp = repo.read("Observation", f"{session.id}-temp").resource
    assert temp["valueQuantity"]["value"] == 38.9 and temp["code"]["coding"][0]["code"] == "8310-5"
    flag = repo.read("Flag", alerts[0].id).resource
    assert flag["status"] == "active"
    assert repo.read("Consent", a.consent_id).resource["status"] == "active"
    assert repo.read("Consent", d.consent_id).resource["status"] == "inactive"


def test_silence_reminds_alerts_and_escalates(harness: Harness, enroll: Any) -> None:
    e = enroll("emile", "+33612000005")
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to("+33612000005")) == 2)
    harness.advance(61)  # reminder after 60 minutes
    harness.pump(lambda: len(harness.texts_to("+33612000005")) == 3)
    assert harness.texts_to("+33612000005")[-1].startswith("Rappel : ")
    harness.advance(60)  # 121 minutes: missing answer
    harness.pump(lambda: bool(harness.service.alerts(enrollment_id=e.id)))
    (alert,) = harness.service.alerts(enrollment_id=e.id)
    assert alert.kind is AlertKind.MISSING and alert.level is Level.WARNING
    harness.pump(lambda: len(harness.texts_to(ON_DUTY_PHONE)) == 1)
    # Not acknowledged in 240 minutes (level 1): escalated to the whole team.
    harness.advance(241)
    harness.pump(lambda: len(harness.texts_to(OFF_DUTY_PHONE)) == 1)
    assert "ESCALADE 1" in harness.texts_to(OFF_DUTY_PHONE)[0]
    assert harness.service.alert(alert.id).escalations == 1
    # Acknowledged: no further escalation; resolved with a comment.
    harness.service.acknowledge(alert.id, "claire")
    harness.advance(600)
    harness.pump()
    assert harness.service.alert(alert.id).escalations == 1
    done = harness.service.resolve(alert.id, "claire", "Appelée : thermomètre perdu, va bien")
    assert done.status is AlertStatus.RESOLVED
    assert [ev.kind for ev in done.events] == [
        "raised",
        "notified",
        "escalated",
        "acknowledged",
        "resolved",
    ]
    # The session was closed as missed after 6 hours.
    assert _session(harness, e.id).status is SessionStatus.MISSED


def test_a_restart_mid_conversation_resumes_without_repeating(
    harness: Harness, enroll: Any
) -> None:
    phones = ["+33612000011", "+33612000012", "+33612000013"]
    enrolled = [enroll(f"restart{n}", p) for n, p in enumerate(phones)]
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: all(len(harness.texts_to(p)) == 2 for p in phones))
    for p in phones:
        harness.answer_and_wait(p, "37,2", 3)
    # The server stops: dispatcher and service go; a reply arrives while it is down.
    harness.dispatcher.stop()
    harness.reply(phones[0], "non")
    from hygie.channels import Channel
    from hygie.channels.service import Channels
    from hygie.channels.worker import Dispatcher, build_senders

    harness.channels = Channels(harness.platform, harness.channels.settings)
    harness.platform.parts["channels"] = harness.channels
    harness.dispatcher = Dispatcher(
        harness.channels, build_senders(harness.channels, {Channel.SMS})
    )
    service = harness.start_service()
    harness.pump(lambda: len(harness.texts_to(phones[0])) == 4)
    assert "saturation" in harness.texts_to(phones[0])[-1]
    for p in phones[1:]:
        assert "saturation" in harness.answer_and_wait(p, "ouais", 4)[-1]
    harness.pump()
    for p in phones:  # nothing was asked twice
        texts = harness.texts_to(p)
        assert len(texts) == len(set(texts)) == 4, texts
    # An answer handed over twice (a crash before channels marked it handled) counts once.
    from hygie.channels import Answer

    first = service.answers(enrolled[2].id)[0]
    service.on_answers(
        [
            Answer(
                id=first["id"],
                owner=f"followup:{enrolled[2].id}",
                channel=Channel.SMS,
                sender=phones[2],
                text="ouais",
                value=None,
                received_ms=harness.now,
            )
        ]
    )
    assert len(service.answers(enrolled[2].id)) == 2
    assert service.sessions(enrolled[2].id)[0].answers == {"temp": 37.2, "breath": True}


def test_a_late_answer_takes_a_missed_session_up_again(harness: Harness, enroll: Any) -> None:
    phone = "+33612000021"
    e = enroll("late", phone)
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to(phone)) == 2)
    harness.advance(6 * 60 + 1)  # past the session's window: closed as missed
    harness.pump()
    assert _session(harness, e.id).status is SessionStatus.MISSED
    assert "respirer" in harness.answer_and_wait(phone, "39,6", 4)[-1]
    session = _session(harness, e.id)
    assert session.status is SessionStatus.IN_PROGRESS and session.late
    kinds = {(a.kind, a.level) for a in harness.service.alerts(enrollment_id=e.id)}
    assert kinds == {(AlertKind.MISSING, Level.WARNING), (AlertKind.CLINICAL, Level.REVIEW)}
    # The afternoon session supersedes it.
    harness.now = paris_ms("2026-03-02 15:00")
    harness.pump(lambda: "(1/5)" in harness.texts_to(phone)[-1])
    assert [s.status for s in harness.service.sessions(e.id)] == [
        SessionStatus.IN_PROGRESS,
        SessionStatus.MISSED,
    ]
    harness.service.flush()
    repo = harness.platform.parts["store"].repository
    missed = harness.service.sessions(e.id)[1]
    assert repo.read("QuestionnaireResponse", missed.id).resource["status"] == "stopped"


def test_home_device_readings_count(harness: Harness, enroll: Any) -> None:
    phone = "+33612000031"
    e = enroll("oxy", phone)
    harness.service.read_devices()  # the cursor starts now
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to(phone)) == 2)
    # The devices gateway stores a home pulse oximeter's reading on the patient.
    repo = harness.platform.parts["store"].repository
    repo.update(
        "Device",
        "home-OXY-1",
        {"resourceType": "Device", "id": "home-OXY-1", "patient": {"reference": "Patient/oxy"}},
    )
    repo.update(
        "Observation",
        "home-reading-1",
        {
            "resourceType": "Observation",
            "id": "home-reading-1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "59408-5"}]},
            "subject": {"reference": "Patient/oxy"},
            "device": {"reference": "Device/home-OXY-1"},
            "effectiveDateTime": "2026-03-02T07:05:00Z",
            "valueQuantity": {
                "value": 91,
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            },
        },
    )
    assert harness.service.read_devices() == 1
    assert harness.service.read_devices() == 0  # read once
    (alert,) = harness.service.alerts(enrollment_id=e.id)
    assert alert.kind is AlertKind.DEVICE and alert.level is Level.EMERGENCY
    # The oximeter answered the saturation question: the patient is not asked it.
    harness.answer_and_wait(phone, "37", 3)
    assert "pouls" in harness.answer_and_wait(phone, "non", 4)[-1]
    assert _session(harness, e.id).answers["spo2"] == 91.0


def test_english_conversation_email_notification_and_end(
    harness: Harness, enroll: Any, tmp_path: Any
) -> None:
    """A patient followed in English; a protocol that tells the team by e-mail (through
    the real SMTP sink); ending the follow-up stops its messages."""
    from hygie.channels import Channel
    from hygie.channels.peers import run_mail_sink
    from hygie.channels.settings import channel_settings
    from hygie.channels.worker import Dispatcher, build_senders
    from hygie.followup.protocols import covid19_definition

    definition = covid19_definition()
    definition["notify"] = "email"
    harness.service.save_protocol(definition, by="test")
    with run_mail_sink(tmp_path / "mail") as sink:
        harness.dispatcher.stop()
        harness.channels.settings = channel_settings(
            harness.platform.settings,
            smpp_port=harness.smsc.smpp_port,
            smtp_port=sink.port,
            poll_s=0.05,
        )
        harness.channels.outbox.settings = harness.channels.settings
        harness.dispatcher = Dispatcher(
            harness.channels, build_senders(harness.channels, {Channel.SMS, Channel.EMAIL})
        )
        phone = "+33612000061"
        e = enroll("john", phone, language="en")
        harness.pump(lambda: len(harness.texts_to(phone)) == 1)
        assert "Reply STOP" in harness.texts_to(phone)[0]
        harness.now = paris_ms("2026-03-02 08:00")
        harness.pump(lambda: len(harness.texts_to(phone)) == 2)
        assert "What is your temperature" in harness.texts_to(phone)[1]
        again = harness.answer_and_wait(phone, "pretty hot", 3)[-1]
        assert again.startswith("Sorry, I did not understand") and "37.8" in again
        harness.answer_and_wait(phone, "102 F", 4)  # 38.9 °C
        harness.pump(lambda: len(sink.messages()) == 1)
        (mail,) = sink.messages()
        assert mail["to"] == ["nurse1@hopital.example"]  # the nurse on duty
        assert "Alerte Vigilance" in mail["subject"]
        # The clinician ends the follow-up: the question waiting is not sent again.
        harness.service.end(e.id, "dr.house", "hospitalised")
        harness.advance(120)
        harness.pump()
        assert len(harness.texts_to(phone)) == 4
        assert _session(harness, e.id).status is SessionStatus.CANCELLED
        harness.now = paris_ms("2026-03-02 15:00")
        harness.pump()
        assert len(harness.texts_to(phone)) == 4


def test_stop_in_reply_to_the_welcome_message(harness: Harness, enroll: Any) -> None:
    phone = "+33612000081"
    e = enroll("stopearly", phone)
    harness.pump(lambda: len(harness.texts_to(phone)) == 1)
    harness.reply(phone, "Stop")
    harness.pump(lambda: harness.service.enrollment(e.id).status is EnrollmentStatus.STOPPED)
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump()
    assert len(harness.texts_to(phone)) == 1 and harness.service.sessions(e.id) == []
    assert harness.channels.is_opted_out(phone)


def test_a_stop_said_to_another_service_ends_the_follow_up(harness: Harness, enroll: Any) -> None:
    from hygie.channels import Channel, OutboundMessage

    phone = "+33612000091"
    e = enroll("stopelsewhere", phone)
    harness.pump(lambda: len(harness.texts_to(phone)) == 1)
    # Another service's message takes the number's conversation; STOP answers it.
    harness.channels.enqueue(
        OutboundMessage(
            "other:1",
            "other:1",
            Channel.SMS,
            phone,
            "Confirmez-vous le rendez-vous ?",
            expected_answers=["OUI", "NON"],
        )
    )
    harness.pump(lambda: len(harness.texts_to(phone)) == 2)
    harness.reply(phone, "STOP")
    harness.pump(lambda: harness.channels.is_opted_out(phone))
    assert harness.service.enrollment(e.id).status is EnrollmentStatus.ACTIVE
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: harness.service.enrollment(e.id).status is EnrollmentStatus.STOPPED)
    assert [a.kind for a in harness.service.alerts(enrollment_id=e.id)] == [AlertKind.STOPPED]
    assert len(harness.texts_to(phone)) == 2


def test_an_answer_and_stop_in_one_batch(harness: Harness, enroll: Any) -> None:
    """Replies handed over together: the answer is kept, then STOP cancels the session."""
    from hygie.channels import Answer, Channel

    phone = "+33612000095"
    e = enroll("batch", phone)
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to(phone)) == 2)
    owner = f"followup:{e.id}"
    harness.service.on_answers(
        [
            Answer("b-1", owner, Channel.SMS, phone, "37,9", None, harness.now),
            Answer("b-2", owner, Channel.SMS, phone, "STOP", "STOP", harness.now),
        ]
    )
    session = _session(harness, e.id)
    assert session.status is SessionStatus.CANCELLED and session.answers == {"temp": 37.9}
    assert harness.service.enrollment(e.id).status is EnrollmentStatus.STOPPED
    harness.advance(600)
    harness.pump()
    assert _session(harness, e.id).status is SessionStatus.CANCELLED
    # The question the first answer asked for was dropped with the STOP, unsent.
    assert len(harness.texts_to(phone)) == 2
    assert len(harness.channels.find(owner_prefix=owner)) == 2  # welcome, first question


def _outgoing_states(harness: Harness) -> dict[str, int]:
    from sqlalchemy import func, select

    from hygie.followup import tables as t

    with harness.platform.engine.connect() as conn:
        return dict(
            conn.execute(
                select(t.outgoing.c.state, func.count()).group_by(t.outgoing.c.state)
            ).all()
        )


def test_the_next_question_is_queued_by_the_answers_own_transaction(
    harness: Harness, enroll: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hand-over after the handler: its commit put the next question in the outbox."""
    from hygie.channels import Answer, Channel

    phone = "+33612000097"
    e = enroll("inline", phone)
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to(phone)) == 2)
    monkeypatch.setattr(harness.service, "hand_over_pending", lambda limit=2000: 0)
    owner = f"followup:{e.id}"
    harness.service.on_answers(
        [Answer("i-1", owner, Channel.SMS, phone, "37,2", None, harness.now)]
    )
    assert "pending" not in _outgoing_states(harness)
    (latest, *_rest) = harness.channels.find(owner_prefix=owner)
    assert latest.status.value == "queued" and latest.recipient == phone
    harness.dispatcher.drain(timeout_s=5.0, until=lambda: len(harness.texts_to(phone)) == 3)
    assert harness.texts_to(phone)[-1] == latest.text


def test_messages_the_outbox_refuses_in_the_transaction_wait_for_the_hand_over(
    harness: Harness, enroll: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal inside the answer's transaction leaves its messages pending (nothing
    lost); the hand-over then passes them one by one."""
    from hygie.channels import Answer, Channel, InvalidMessage

    phone = "+33612000098"
    e = enroll("refused", phone)
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to(phone)) == 2)

    def refuse(conn: Any, messages: Any) -> Any:
        raise InvalidMessage("refused for the test")

    with monkeypatch.context() as patch:
        patch.setattr(harness.channels, "enqueue_in", refuse)
        patch.setattr(harness.service, "hand_over_pending", lambda limit=2000: 0)
        owner = f"followup:{e.id}"
        harness.service.on_answers(
            [Answer("r-1", owner, Channel.SMS, phone, "37,2", None, harness.now)]
        )
        assert _outgoing_states(harness).get("pending") == 1
    assert harness.service.hand_over_pending() == 1
    assert "pending" not in _outgoing_states(harness)
    harness.pump(lambda: len(harness.texts_to(phone)) == 3)
