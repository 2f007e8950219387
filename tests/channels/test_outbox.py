"""The durable outbox on both engines: idempotency, claims, retries, timelines, opt-out."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from hygie.channels import (
    Answer,
    Channel,
    IdempotencyConflict,
    InvalidAddress,
    InvalidMessage,
    MessageNotFound,
    OutboundMessage,
    Receipt,
    Status,
)
from hygie.channels.model import PartOutcome
from hygie.channels.service import Channels
from hygie.platform import Platform


def sms(key: str, to: str = "06 12 34 56 78", text: str = "Bonjour", **kw: object
        ) -> OutboundMessage:
    return OutboundMessage(idempotency_key=key, owner="followup:42", channel=Channel.SMS,
                           recipient=to, text=text, **kw)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


def test_enqueue_is_idempotent_and_normalizes(platform: Platform,
                                              make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform)
    first = ch.enqueue(sms("k1"))
    again = ch.enqueue(sms("k1"))
    assert first.id == again.id
    assert first.recipient == "+33612345678"
    assert first.status is Status.QUEUED
    assert [e.status for e in first.timeline] == ["queued"]
    with pytest.raises(IdempotencyConflict):
        ch.enqueue(sms("k1", text="Autre texte"))
    with pytest.raises(IdempotencyConflict):
        ch.enqueue_many([sms("k2"), sms("k2")])
    assert ch.get_by_key("k1").id == first.id
    with pytest.raises(MessageNotFound):
        ch.get("0" * 32)


def test_enqueue_in_the_callers_transaction(platform: Platform,
                                           make_channels: Callable[..., Channels]) -> None:
    """Messages queued inside a caller's transaction exist exactly when it commits."""
    from hygie.platform import write_transaction

    ch = make_channels(platform)
    ch.inbox.receive_sms([("+33612000001", "STOP")])
    with pytest.raises(RuntimeError), write_transaction(platform.engine) as conn:
        ch.enqueue_in(conn, [sms("in-1")])
        raise RuntimeError("the caller's own change fails")
    with pytest.raises(MessageNotFound):
        ch.get_by_key("in-1")
    with write_transaction(platform.engine) as conn:
        out = ch.enqueue_in(conn, [sms("in-1"), sms("in-2", to="+33612000001")])
    assert out[0][1] is None and ch.get(out[0][0]).status is Status.QUEUED
    assert out[1][1] == "opted out (STOP)" and ch.get(out[1][0]).status is Status.FAILED
    with write_transaction(platform.engine) as conn:  # the same keys again: the same answer
        assert ch.enqueue_in(conn, [sms("in-1"), sms("in-2", to="+33612000001")]) == out
    # A bad message among others: nothing of the call is written, the caller goes on.
    with write_transaction(platform.engine) as conn:
        with pytest.raises(InvalidMessage):
            ch.enqueue_in(conn, [sms("in-3"), sms("in-4", to="pas un numéro")])
        ch.enqueue_in(conn, [sms("in-5")])
    assert ch.get_by_key("in-5").status is Status.QUEUED
    with pytest.raises(MessageNotFound):
        ch.get_by_key("in-3")


@pytest.mark.parametrize("bad", [
    sms("", text="x"), sms("k", text=""), sms("k", to="pas un numéro"),
    OutboundMessage("k", "o", Channel.EMAIL, "nobody", "x", subject="s"),
    OutboundMessage("k", "o", Channel.EMAIL, "a@b.fr", "x"),
    sms("k", text="x" * 5000),
])
def test_bad_messages_are_refused(sqlite_platform: Platform,
                                  make_channels: Callable[..., Channels],
                                  bad: OutboundMessage) -> None:
    ch = make_channels(sqlite_platform)
    with pytest.raises(InvalidMessage):
        ch.enqueue(bad)
    assert ch.outbox.counts() == {}


def test_invalid_address_is_an_invalid_message() -> None:
    assert issubclass(InvalidAddress, InvalidMessage)


def test_claim_lease_and_record(platform: Platform,
                                make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform, max_attempts=2)
    clock = Clock()
    ch.outbox.clock = clock
    ids = ch.enqueue_many([sms(f"k{i}", to=f"+3361234567{i}") for i in range(3)])
    claimed = ch.outbox.claim(Channel.SMS, "w1", 10)
    assert sorted(e.message_id for e in claimed) == sorted(ids)
    assert ch.outbox.claim(Channel.SMS, "w2", 10) == []  # held under lease
    ok, retry, bad = claimed
    ch.outbox.record([
        (ok, Receipt(Status.SUBMITTED, parts=(PartOutcome(1, "accepted", "s1"),))),
        (retry, Receipt(Status.SUBMITTED, parts=(PartOutcome(1, "retry", error="throttled"),),
                        retry_after_s=5)),
        (bad, Receipt(Status.SUBMITTED, parts=(PartOutcome(1, "rejected", error="0x0B"),))),
    ])
    assert ch.get(ok.message_id).status is Status.SUBMITTED
    assert ch.get(bad.message_id).status is Status.FAILED
    assert ch.get(bad.message_id).error == "0x0B"
    assert ch.get(retry.message_id).status is Status.QUEUED
    assert ch.outbox.claim(Channel.SMS, "w1", 10) == []  # not due yet
    clock.now += 5_000
    again = ch.outbox.claim(Channel.SMS, "w1", 10)
    assert [e.message_id for e in again] == [retry.message_id] and again[0].attempt == 2
    ch.outbox.record([(again[0], Receipt(Status.QUEUED, error="SMSC unreachable"))])
    failed = ch.get(retry.message_id)
    assert failed.status is Status.FAILED and "gave up after 2 tries" in (failed.error or "")
    assert [e.status for e in ch.get(ok.message_id).timeline] == ["queued", "submitted"]


def test_a_late_record_after_the_lease_changes_nothing(
        platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform, lease_s=1.0)
    clock = Clock()
    ch.outbox.clock = clock
    ch.enqueue(OutboundMessage("m", "mobilization:1", Channel.EMAIL, "a@hopital.fr", "x",
                               subject="s"))
    [env] = ch.outbox.claim(Channel.EMAIL, "w1", 5)
    clock.now += 2_000
    assert ch.outbox.settle_in_doubt() == 1  # the worker vanished: back to the queue
    [env2] = ch.outbox.claim(Channel.EMAIL, "w2", 5)
    ch.outbox.record([(env, Receipt(Status.FAILED, error="late"))])  # stale worker
    assert ch.get(env.message_id).status is Status.SENDING
    ch.outbox.record([(env2, Receipt(Status.SUBMITTED))])
    assert ch.get(env.message_id).status is Status.SUBMITTED


def test_expiry_and_opt_out(platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform)
    clock = Clock()
    ch.outbox.clock = clock
    ch.inbox.clock = clock
    ch.enqueue(sms("exp", ttl_s=60))
    clock.now += 61_000
    assert ch.outbox.claim(Channel.SMS, "w", 10) == []
    assert ch.get_by_key("exp").status is Status.FAILED
    ch.inbox.receive_sms([("+33612345678", "stop")])
    assert ch.inbox.is_opted_out("+33612345678")
    refused = ch.enqueue(sms("after-stop"))
    assert refused.status is Status.FAILED and "STOP" in (refused.error or "")
    mail = ch.enqueue(OutboundMessage("mail", "o:1", Channel.EMAIL, "a@b.fr", "x", subject="s"))
    assert mail.status is Status.QUEUED  # STOP by SMS stops SMS only
    ch.inbox.receive_sms([("+33612345678", "START")])
    assert not ch.inbox.is_opted_out("+33612345678")
    assert ch.enqueue(sms("after-start")).status is Status.QUEUED


def test_multipart_retry_sends_only_missing_parts(
        platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform)
    clock = Clock()
    ch.outbox.clock = clock
    record = ch.enqueue(sms("long", text="x" * 400))
    assert record.parts == 3
    [env] = ch.outbox.claim(Channel.SMS, "w", 1)
    ch.outbox.record([(env, Receipt(Status.SUBMITTED, total_parts=3, retry_after_s=1, parts=(
        PartOutcome(1, "accepted", "a"), PartOutcome(2, "accepted", "b"),
        PartOutcome(3, "retry")),))])
    clock.now += 1_000
    [env] = ch.outbox.claim(Channel.SMS, "w", 1)
    assert env.done_parts == {1, 2}
    ch.outbox.record([(env, Receipt(Status.SUBMITTED, total_parts=3,
                                    parts=(PartOutcome(3, "accepted", "c"),)))])
    assert ch.get(record.id).status is Status.SUBMITTED


def test_answers_route_to_the_owner_and_survive_a_missing_handler(
        platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform)
    asked = ch.enqueue(sms("q", expected_answers=["OUI", "NON"]))
    [env] = ch.outbox.claim(Channel.SMS, "w", 1)
    ch.outbox.record([(env, Receipt(Status.SUBMITTED, parts=(PartOutcome(1, "accepted", "i"),)))])
    ch.inbox.receive_sms([("0612345678", "oui merci"), ("+33700000000", "qui est-ce ?")])
    got = []
    assert ch.inbox.deliver_pending() == 0  # no handler yet: kept
    ch.register_handler("followup:", got.append)
    assert ch.inbox.deliver_pending() == 1
    [answer] = got
    assert (answer.owner, answer.value, answer.text, answer.message_id) == (
        "followup:42", "OUI", "oui merci", asked.id)
    record = ch.get(asked.id)
    assert record.status is Status.ANSWERED and record.answer == "OUI"
    kinds = {i.sender: i.kind for i in ch.recent_inbound()}
    assert kinds == {"+33612345678": "reply", "+33700000000": "unrouted"}
    assert ch.inbox.deliver_pending() == 0  # handled once


def test_a_failing_handler_leaves_the_answer_pending(
        sqlite_platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(sqlite_platform)
    ch.enqueue(sms("q", expected_answers=[]))
    ch.inbox.receive_sms([("+33612345678", "J'ai de la fièvre")])

    def broken(_answer: object) -> None:
        raise RuntimeError("service down")

    ch.register_handler("followup:", broken)
    assert ch.inbox.deliver_pending() == 0
    got = []
    ch.register_handler("followup:4", got.append)  # the longest prefix wins
    assert ch.inbox.deliver_pending() == 1 and got[0].value is None


def test_answers_of_owners_without_handler_do_not_crowd_out_others(
        sqlite_platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(sqlite_platform)
    for i, owner in enumerate(["legacy:1", "followup:9"]):
        ch.enqueue(OutboundMessage(f"q{i}", owner, Channel.SMS, f"+3361234567{i}", "Question ?",
                                   expected_answers=[]))
    for env in ch.outbox.claim(Channel.SMS, "w", 5):
        ch.outbox.record([(env, Receipt(Status.SUBMITTED,
                                        parts=(PartOutcome(1, "accepted", env.message_id),)))])
    ch.inbox.receive_sms([("+33612345670", f"réponse {i}") for i in range(5)])
    ch.inbox.receive_sms([("+33612345671", "la mienne")])
    got = []
    ch.register_handler("followup:", got.append)
    assert ch.inbox.deliver_pending(limit=3) == 1
    assert [a.text for a in got] == ["la mienne"]


def test_a_batch_handler_takes_every_pending_answer_at_once(
        sqlite_platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(sqlite_platform)
    for i in range(3):
        ch.enqueue(OutboundMessage(f"b{i}", f"followup:{i}", Channel.SMS, f"+3361234560{i}",
                                   "Température ?", expected_answers=[]))
    for env in ch.outbox.claim(Channel.SMS, "w", 5):
        ch.outbox.record([(env, Receipt(Status.SUBMITTED,
                                        parts=(PartOutcome(1, "accepted", env.message_id),)))])
    ch.inbox.receive_sms([(f"+3361234560{i}", f"38,{i}") for i in range(3)])
    calls: list[list[str]] = []

    def broken(answers: Sequence[Answer]) -> None:
        calls.append(sorted(a.text for a in answers))
        raise RuntimeError("database down")

    ch.register_batch_handler("followup:", broken)
    assert ch.deliver_answers() == 0  # the whole batch stays pending
    ch.register_batch_handler("followup:", lambda answers: calls.append(
        sorted(a.owner for a in answers)))
    assert ch.deliver_answers() == 3
    assert calls == [["38,0", "38,1", "38,2"], ["followup:0", "followup:1", "followup:2"]]
    assert ch.deliver_answers() == 0


def test_a_batch_handler_may_mark_its_answers_in_its_own_transaction(
        sqlite_platform: Platform, make_channels: Callable[..., Channels]) -> None:
    """True from the handler: it marked them handled with its own change; an answer
    it took without marking (False) is marked by the inbox, once."""
    from hygie.platform import write_transaction

    ch = make_channels(sqlite_platform)
    for i in range(2):
        ch.enqueue(OutboundMessage(f"m{i}", f"followup:{i}", Channel.SMS, f"+3361234570{i}",
                                   "Température ?", expected_answers=[]))
    for env in ch.outbox.claim(Channel.SMS, "w", 5):
        ch.outbox.record([(env, Receipt(Status.SUBMITTED,
                                        parts=(PartOutcome(1, "accepted", env.message_id),)))])
    ch.inbox.receive_sms([("+33612345700", "37,0")])
    seen: list[str] = []

    def marks(answers: Sequence[Answer]) -> bool:
        seen.extend(a.text for a in answers)
        with write_transaction(sqlite_platform.engine) as conn:
            ch.mark_handled(conn, answers)
        return True

    ch.register_batch_handler("followup:", marks)
    assert ch.deliver_answers() == 1
    assert ch.deliver_answers() == 0 and seen == ["37,0"]

    def forgets(answers: Sequence[Answer]) -> bool:
        seen.extend(a.text for a in answers)
        return False

    ch.register_batch_handler("followup:", forgets)
    ch.inbox.receive_sms([("+33612345701", "37,1")])
    assert ch.deliver_answers() == 1
    assert ch.deliver_answers() == 0 and seen == ["37,0", "37,1"]
    assert all(r.handled for r in ch.inbox.recent())


def test_cancel_fails_only_the_owners_queued_messages(
        sqlite_platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(sqlite_platform)
    def ask(key: str, owner: str, to: str) -> OutboundMessage:
        return OutboundMessage(key, owner, Channel.SMS, to, "Question ?", expected_answers=[])

    sent = ch.enqueue(ask("c1", "followup:7", "+33612345601"))
    [env] = ch.outbox.claim(Channel.SMS, "w", 1)
    ch.outbox.record([(env, Receipt(Status.SUBMITTED, parts=(PartOutcome(1, "accepted", "x"),)))])
    waiting = ch.enqueue(ask("c2", "followup:7", "+33612345601"))
    other = ch.enqueue(ask("c3", "followup:70", "+33612345602"))
    assert ch.cancel("followup:7", "follow-up ended") == [waiting.id]
    assert ch.get(waiting.id).status is Status.FAILED
    assert ch.get(waiting.id).error == "follow-up ended"
    assert ch.get(sent.id).status is Status.SUBMITTED
    assert ch.get(other.id).status is Status.QUEUED
    assert ch.cancel("followup:7", "again") == []
    assert [e.message_id for e in ch.outbox.claim(Channel.SMS, "w", 5)] == [other.id]


def test_is_opted_out_reads_national_numbers(
        sqlite_platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(sqlite_platform)
    assert not ch.is_opted_out("06 12 34 56 78")
    ch.inbox.receive_sms([("+33612345678", "STOP")])
    assert ch.is_opted_out("06 12 34 56 78")


def test_cancel_messages_and_statuses_in_bulk(
        platform: Platform, make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform)
    ids = ch.enqueue_many([OutboundMessage(f"b{i}", f"mobilization:c:{i}", Channel.SMS,
                                           f"+3361234570{i}", "Venez ?", expected_answers=[])
                           for i in range(4)])
    [env] = ch.outbox.claim(Channel.SMS, "w", 1)  # held by a dispatcher: on its way
    held = env.message_id
    assert sorted(ch.cancel_messages([*ids, "unknown"], "need covered")) == sorted(
        i for i in ids if i != held)
    states = ch.statuses([*ids, "unknown"])
    assert "unknown" not in states
    assert states[held] == (Status.SENDING, None)
    assert {states[i] for i in ids if i != held} == {(Status.FAILED, "need covered")}
    assert ch.cancel_messages(ids, "again") == []
