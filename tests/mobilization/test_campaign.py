"""A campaign end to end over the loopback SMSC: the first wave, answers by SMS with
their delays, a refusal replaced, a silence timed out and replaced, the quota met and
the stand-down of those still pending, the board, and a close that stands everyone
down."""

from __future__ import annotations

from sqlalchemy import select

from hygie.mobilization import tables as t
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
