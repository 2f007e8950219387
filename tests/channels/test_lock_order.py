"""Concurrent writers of the outbox lock messages in one order, so none deadlocks.

The dispatcher applies delivery receipts in one thread while the SMPP session stores
replies in another, and both move the same messages (a receipt and an answer for one
SMS often arrive within a second). Each transaction used to update its messages in
groups (by outcome, by answer text) and so took their row locks in different orders;
PostgreSQL then saw a cycle and killed one of them. On SQLite writers queue on the
write lock, so the same test only checks the outcome there.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select

from hygie.channels import Channel, OutboundMessage, Receipt, Status
from hygie.channels import tables as t
from hygie.channels.model import PartOutcome
from hygie.channels.service import Channels
from hygie.channels.transactions import now_ms
from hygie.platform import Platform

#: Each round deadlocks about one time in two without a lock order.
ROUNDS = 8
MESSAGES = 100


def _in_thread(step: Callable[[], Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            step()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _race(
    platform: Platform, held: str, first: Callable[[], Any], second: Callable[[], Any]
) -> list[BaseException]:
    """Run ``first`` then ``second`` while another transaction holds message ``held``.

    The holder stands for any slow writer of one message (the FHIR mirror, a claim):
    ``first`` stops on that message after having locked some others, ``second`` runs
    into ``first``, then the holder lets go. Without one lock order the two are left
    waiting for each other. On SQLite writers queue on the database lock instead.
    """
    errors: list[BaseException] = []
    holder = None
    if platform.engine.dialect.name != "sqlite":
        holder = platform.engine.connect()
        holder.begin()
        holder.execute(select(t.message.c.id).where(t.message.c.id == held).with_for_update())
    try:
        threads = [_in_thread(first, errors)]
        time.sleep(0.2)
        threads.append(_in_thread(second, errors))
        time.sleep(0.5)
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def _sent_wave(ch: Channels, wave: int) -> list[tuple[str, str]]:
    """Messages awaiting OUI/NON, sent and accepted by the SMSC: (id, recipient)."""
    ids = ch.enqueue_many(
        [
            OutboundMessage(
                idempotency_key=f"w{wave}:{i}",
                owner=f"followup:{wave}:{i}",
                channel=Channel.SMS,
                recipient=f"+336{wave:02d}{i:06d}",
                text="Avez-vous de la fièvre ?",
                expected_answers=["OUI", "NON"],
            )
            for i in range(MESSAGES)
        ]
    )
    claimed = ch.outbox.claim(Channel.SMS, "w", MESSAGES)
    assert len(claimed) == MESSAGES
    ch.outbox.record(
        [
            (
                env,
                Receipt(
                    Status.SUBMITTED, parts=(PartOutcome(1, "accepted", f"s{env.message_id}"),)
                ),
            )
            for env in claimed
        ]
    )
    by_id = {env.message_id: env.message.recipient for env in claimed}
    return [(mid, by_id[mid]) for mid in ids]


def test_receipts_and_answers_on_the_same_messages_do_not_deadlock(
    platform: Platform, make_channels: Callable[..., Channels]
) -> None:
    ch = make_channels(platform)
    rng = random.Random(7)
    for wave in range(ROUNDS):
        sent = _sent_wave(ch, wave)
        # Receipts: most delivered, some not (two groups of outcome); answers: OUI or
        # NON at random (two groups of text), arriving in no particular order.
        states = {mid: rng.choice(["DELIVRD", "DELIVRD", "UNDELIV"]) for mid, _to in sent}
        with platform.engine.begin() as conn:
            conn.execute(
                insert(t.receipt),
                [
                    {
                        "smsc_id": f"s{mid}",
                        "state": states[mid],
                        "error": None,
                        "user_ref": None,
                        "recipient": to,
                        "received_ms": now_ms(),
                        "applied": False,
                    }
                    for mid, to in sent
                ],
            )
        replies = [(to, rng.choice(["oui", "non"])) for _mid, to in sent]
        rng.shuffle(replies)
        held = sorted(states)[MESSAGES // 2]
        errors = _race(
            platform,
            held,
            lambda r=replies: ch.inbox.receive_sms(r),
            lambda: ch.outbox.apply_receipts(),
        )
        assert errors == [], f"wave {wave}: {errors[0]!r}"
        ch.outbox.apply_receipts()  # nothing left pending
        statuses = ch.outbox.statuses([mid for mid, _to in sent])
        # Delivered then answered, or answered: answered. A failure receipt is final
        # when it came first, and an answer is final when it did.
        assert all(
            statuses[mid][0] is Status.ANSWERED for mid in states if states[mid] == "DELIVRD"
        ), f"wave {wave}"
        assert {s for s, _e in statuses.values()} <= {Status.ANSWERED, Status.FAILED}
        assert all(
            r.answer in ("OUI", "NON")
            for r in ch.find(owner_prefix=f"followup:{wave}:", limit=MESSAGES)
        )


def test_a_batch_recorded_in_any_order_and_its_answers_do_not_deadlock(
    platform: Platform, make_channels: Callable[..., Channels]
) -> None:
    """A transport reports its batch in its own order (here the reverse of the ids)
    while the replies to the same messages are stored: both finish, every message is
    answered, and a late record does not take an answer back."""
    ch = make_channels(platform)
    for wave in range(ROUNDS):
        ids = ch.enqueue_many(
            [
                OutboundMessage(
                    idempotency_key=f"r{wave}:{i}",
                    owner=f"followup:{wave}:{i}",
                    channel=Channel.SMS,
                    recipient=f"+337{wave:02d}{i:06d}",
                    text="Avez-vous mal ?",
                    expected_answers=["OUI", "NON"],
                )
                for i in range(MESSAGES)
            ]
        )
        claimed = sorted(
            ch.outbox.claim(Channel.SMS, "w", MESSAGES),
            key=lambda env: env.message_id,
            reverse=True,
        )
        assert len(claimed) == MESSAGES
        results = [
            (env, Receipt(Status.SUBMITTED, provider_ref=f"p{env.message_id}")) for env in claimed
        ]
        replies = [(env.message.recipient, "oui") for env in claimed]
        held = sorted(ids)[MESSAGES // 2]
        errors = _race(
            platform,
            held,
            lambda r=results: ch.outbox.record(r),
            lambda r=replies: ch.inbox.receive_sms(r),
        )
        assert errors == [], f"wave {wave}: {errors[0]!r}"
        statuses = ch.outbox.statuses(ids)
        assert {s for s, _e in statuses.values()} == {Status.ANSWERED}, f"wave {wave}"
