"""A campaign end to end over the loopback SMSC: the first wave, answers by SMS with
their delays, a refusal replaced, a silence timed out and replaced, the quota met and
the stand-down of those still pending, the board, and a close that stands everyone
down."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from hygie.channels import Answer, Channel
from hygie.mobilization import tables as t
from hygie.mobilization.messages import owner
from tests.mobilization.conftest import ICU_NURSE, Rig, save_plan, staff_csv


def _states(rig: Rig, campaign_id: str) -> dict[str, str]:
    with rig.platform.engine.connect() as conn:
        return {
            r.name: r.state
            for r in conn.execute(
                select(t.contact.c.name, t.contact.c.state).where(
                    t.contact.c.campaign_id == campaign_id
                )
            )
        }


def test_quota_waves_replacement_and_stand_down(rig: Rig) -> None:
    report = rig.service.import_csv(staff_csv([(i, ICU_NURSE, "icu") for i in range(1, 8)]))
    assert report.errors == [] and report.written == 7
    save_plan(rig.service, quota=2, wait_s=60)
    campaign = rig.service.launch(
        "plan-test", 1, exercise=False, launched_by="Dr Régulation", confirm="ALERTE"
    )
    rig.drain(until=lambda: len(rig.texts()) >= 2)
    # Off-duty first, then by name: Agent1 and Agent2 are asked first, nobody else.
    assert [to[-2:] for to, _text in rig.texts()] == ["01", "02"]
    alert = rig.sms_to(1)[0]
    assert alert.startswith("Plan blanc test : renfort demandé, Infirmier de réanimation")
    assert "EXERCICE" not in alert

    rig.answer(1, "non")  # a refusal: Agent3 is asked at once
    rig.answer(2, "oui 20")  # a yes arriving in 20 minutes
    rig.drain(until=lambda: len(rig.sms_to(3)) == 1 and len(rig.sms_to(2)) == 2)
    assert rig.sms_to(2)[1].startswith("Merci. Vous êtes attendu(e) : ICU, arrivée prévue à ")
    board = rig.service.board(campaign.id)
    [req] = board["requests"]
    assert (req["quota"], req["confirmed"], req["declined"], req["pending"], req["needed"]) == (
        2,
        1,
        1,
        1,
        1,
    )
    [arrival] = board["arrivals"]
    assert arrival["name"] == "Test Agent2" and arrival["eta_ms"] is not None

    rig.tick(61)  # Agent3 stays silent past the wait: Agent4 is asked
    rig.drain(until=lambda: len(rig.sms_to(4)) == 1)
    assert _states(rig, campaign.id)["Test Agent3"] == "exhausted"  # one channel, one cycle

    rig.answer(4, "1")  # the quota is met
    rig.drain(until=lambda: len(rig.sms_to(4)) == 2)
    board = rig.service.board(campaign.id)
    assert board["requests"][0]["status"] == "met"
    assert board["totals"]["confirmed"] == 2 and board["totals"]["needed"] == 0
    states = _states(rig, campaign.id)
    assert states["Test Agent5"] == "released" and rig.sms_to(5) == []  # never asked
    kinds = [e["kind"] for e in board["events"]]
    assert "met" in kinds

    # A late yes is thanked and told the need is covered.
    rig.answer(3, "oui")
    rig.drain(until=lambda: len(rig.sms_to(3)) == 2)
    assert "est couvert" in rig.sms_to(3)[1]
    assert _states(rig, campaign.id)["Test Agent3"] == "exhausted"

    closed = rig.service.close(campaign.id, closed_by="Dr Régulation", confirm=True)
    assert closed.status == "closed"
    rig.drain(until=lambda: len(rig.sms_to(2)) == 3 and len(rig.sms_to(4)) == 3)
    assert "fin de la mobilisation" in rig.sms_to(2)[2]
    assert len(rig.sms_to(1)) == 1  # declined: nothing more
    assert len(rig.texts()) == len(set(rig.texts()))  # nothing sent twice


def _answer(rig: Rig, campaign_id: str, contact_id: str, text: str, n: int) -> Answer:
    return Answer(
        id=f"answer-{n}",
        owner=owner(campaign_id, contact_id, False),
        channel=Channel.SMS,
        sender="+33600000000",
        text=text,
        value=None,
        received_ms=rig.now[0],
    )


def test_one_batch_of_answers_and_the_board_counts(rig: Rig) -> None:
    """Answers handled together behave as if handled one by one (a second answer of a
    person sees the first); the board counts arrivals after the deadline as late."""
    rig.service.import_csv(staff_csv([(i, ICU_NURSE, "icu") for i in range(1, 5)]))
    save_plan(rig.service, quota=3, wait_s=600)  # deadline: 60 minutes
    campaign = rig.service.launch(
        "plan-test", 1, exercise=False, launched_by="Dr Régulation", confirm="ALERTE"
    )
    rig.drain(until=lambda: len(rig.texts()) >= 3)
    with rig.platform.engine.connect() as conn:
        ids = dict(
            conn.execute(
                select(t.contact.c.name, t.contact.c.id).where(
                    t.contact.c.campaign_id == campaign.id
                )
            ).all()
        )
    one, two, three, four = (ids[f"Test Agent{i}"] for i in range(1, 5))
    rig.service.on_answers(
        [
            _answer(rig, campaign.id, one, "oui 10", 1),
            _answer(rig, campaign.id, two, "oui dans 2h", 2),  # after the deadline
            _answer(rig, campaign.id, three, "non", 3),
            _answer(rig, campaign.id, one, "oui 45", 4),  # a new delay, not a new person
            _answer(rig, campaign.id, four, "1", 5),  # Agent4 was not asked yet
        ]
    )
    board = rig.service.board(campaign.id)
    [req] = board["requests"]
    assert (req["confirmed"], req["declined"], req["on_time"], req["late"]) == (3, 1, 2, 1)
    assert req["status"] == "met"
    with rig.platform.engine.connect() as conn:
        eta = conn.scalar(select(t.contact.c.eta_ms).where(t.contact.c.id == one))
    assert eta == rig.now[0] + 45 * 60_000
    kinds = [(e["name"], e["kind"]) for e in board["events"] if e["contact_id"]]
    assert ("Test Agent1", "eta") in kinds and ("Test Agent1", "late") not in kinds


def test_the_board_stream_is_woken_by_the_commit(rig: Rig) -> None:
    rig.service.import_csv(staff_csv([(i, ICU_NURSE, "icu") for i in range(1, 3)]))
    save_plan(rig.service, quota=2)
    campaign = rig.service.launch(
        "plan-test", 1, exercise=False, launched_by="Dr Régulation", confirm="ALERTE"
    )
    rig.drain(until=lambda: len(rig.texts()) >= 2)
    with rig.platform.engine.connect() as conn:
        contact_id = conn.scalar(select(t.contact.c.id).where(t.contact.c.name == "Test Agent1"))
    assert contact_id is not None

    async def watch() -> tuple[bool, bool]:
        with rig.service.watching(campaign.id) as news:
            before = news.is_set()
            answer = _answer(rig, campaign.id, contact_id, "oui", 1)
            await asyncio.to_thread(rig.service.on_answers, [answer])
            await asyncio.wait_for(news.wait(), 5)
            return before, news.is_set()

    assert asyncio.run(watch()) == (False, True)
    assert rig.service._watchers == {}  # the stream's watch ended with it
