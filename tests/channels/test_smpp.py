"""SMS against the loopback SMSC, a real SMPP v3.4 server in its own process."""

from __future__ import annotations

import collections
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hygie.channels import Channel, OutboundMessage, Status
from hygie.channels.model import Answer
from hygie.channels.peers import SmscHandle, run_smsc
from hygie.channels.service import Channels
from hygie.channels.worker import Dispatcher, build_senders
from hygie.platform import Platform


def sms(i: int, text: str | None = None, to: str | None = None, **kw: object) -> OutboundMessage:
    return OutboundMessage(idempotency_key=f"sms-{i}", owner=f"followup:{i % 3}",
                           channel=Channel.SMS, recipient=to or f"+336{10000000 + i}",
                           text=text or f"Message {i}", **kw)  # type: ignore[arg-type]


@contextmanager
def running(ch: Channels) -> Iterator[Dispatcher]:
    dispatcher = Dispatcher(ch, build_senders(ch, {Channel.SMS}))
    assert dispatcher.senders[Channel.SMS].wait_bound(10)  # type: ignore[attr-defined]
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop()


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def no_duplicates(smsc: SmscHandle) -> collections.Counter[tuple[str, str, int]]:
    seen = collections.Counter((s["to"], s["text"], s["seq"]) for s in smsc.submissions())
    assert [k for k, n in seen.items() if n > 1] == []
    return seen


def test_send_receipts_replies_and_stop(platform: Platform, smsc: SmscHandle,
                                        make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform, smpp_port=smsc.smpp_port)
    smsc.configure(dlr_rules={"33610000005": "UNDELIV"}, reject=["33610000006"])
    long_text = "Bonjour, votre suivi à domicile commence demain. " * 7  # 350 septets
    messages = [sms(i) for i in range(10)]
    messages[1] = sms(1, text=long_text)
    messages[2] = sms(2, text="Êtes-vous disponible ? Répondez OUI ou NON",
                      expected_answers=["OUI", "NON"], to="+33612345678")
    ids = ch.enqueue_many(messages)
    answers: list[Answer] = []
    ch.register_handler("followup:", answers.append)
    with running(ch):
        wait_for(lambda: sum(ch.outbox.counts().get(s, 0)
                             for s in ("delivered", "failed")) == 10)
        statuses = {i: ch.get(mid).status for i, mid in enumerate(ids)}
        assert statuses[5] is Status.FAILED and "UNDELIV" in (ch.get(ids[5]).error or "")
        assert statuses[6] is Status.FAILED and "0x0000000B" in (ch.get(ids[6]).error or "")
        assert [i for i, s in statuses.items() if s is not Status.DELIVERED] == [5, 6]
        assert ch.get(ids[1]).parts == 3
        assert [e.status for e in ch.get(ids[0]).timeline] == ["queued", "submitted",
                                                               "delivered"]
        subs = smsc.submissions()
        assert len(subs) == 9 + 2  # 8 one-part, one of 3 parts; the refused one is not kept
        assert "".join(s["text"] for s in subs if s["to"] == "33610000001") == long_text
        accents = next(s for s in subs if s["to"] == "33612345678")
        assert accents["coding"] == 8 and accents["text"].startswith("Êtes-vous")
        smsc.inject_mo([{"from": "33612345678", "text": "oui"}])
        wait_for(lambda: ch.get(ids[2]).status is Status.ANSWERED)
        wait_for(lambda: len(answers) == 1)
        assert (answers[0].value, answers[0].owner, answers[0].message_id) == (
            "OUI", "followup:2", ids[2])
        smsc.inject_mo([{"from": "+33612345678", "text": "STOP"}])
        wait_for(lambda: ch.inbox.is_opted_out("+33612345678"))
        again = ch.enqueue(sms(99, to="06 12 34 56 78"))
        assert again.status is Status.FAILED
        # A long reply comes in three parts and reaches its owner as one text.
        ch.enqueue(sms(100, to="+33699999999", expected_answers=[]))
        wait_for(lambda: ch.get_by_key("sms-100").status is Status.DELIVERED)
        reply = "Je me sens mieux depuis hier, la fièvre est tombée. " * 7
        smsc.inject_mo([{"from": "33699999999", "text": reply}])
        wait_for(lambda: ch.get_by_key("sms-100").status is Status.ANSWERED)
        assert ch.get_by_key("sms-100").answer == reply
    state = smsc.state()
    assert state["receipts_acked"] == state["receipts_sent"]
    no_duplicates(smsc)
    # On a healthy link every response is awaited: nothing went through "in doubt".
    details = {e.detail for mid in ids for e in ch.get(mid).timeline if e.status == "submitted"}
    assert details == {None}


def test_link_dropped_mid_batch_loses_and_duplicates_nothing(
        sqlite_platform: Platform, smsc: SmscHandle,
        make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(sqlite_platform, smpp_port=smsc.smpp_port, smpp_window=16,
                       batch_size=50)
    smsc.configure(drop_after=37)  # takes the 37th submit_sm, then cuts the link unanswered
    n = 150
    ch.enqueue_many([sms(i) for i in range(n)])
    with running(ch):
        wait_for(lambda: ch.outbox.counts().get("delivered", 0) == n, timeout_s=60)
    state = smsc.state()
    assert state["drops"] == 1 and state["binds"] >= 2
    seen = no_duplicates(smsc)
    assert len(seen) == n


def test_throttling_and_keepalive(sqlite_platform: Platform, smsc: SmscHandle,
                                  make_channels: Callable[..., Channels],
                                  caplog: pytest.LogCaptureFixture) -> None:
    ch = make_channels(sqlite_platform, smpp_port=smsc.smpp_port, smpp_enquire_link_s=0.3)
    smsc.configure(max_rate=40)
    n = 80
    ch.enqueue_many([sms(i) for i in range(n)])
    with running(ch) as dispatcher:
        wait_for(lambda: ch.outbox.counts().get("delivered", 0) == n, timeout_s=60)
        time.sleep(2.5)  # silence: the client probes the link every 0.3 s or so
        assert dispatcher.senders[Channel.SMS].bound  # type: ignore[attr-defined]
    state = smsc.state()
    assert state["throttled"] > 0 and state["enquire_link"] >= 2 and state["binds"] == 1
    assert len(no_duplicates(smsc)) == n
    # Stopping unbinds (SMPP 3.4 §4.2) and closes the link once the SMSC has answered.
    assert state["unbinds"] == 1
    assert not [r for r in caplog.records if "bound state" in r.getMessage()]


def test_own_rate_limit_keeps_under_the_smsc_rate(
        sqlite_platform: Platform, smsc: SmscHandle,
        make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(sqlite_platform, smpp_port=smsc.smpp_port, smpp_max_rate=30)
    smsc.configure(max_rate=40)
    ch.enqueue_many([sms(i) for i in range(60)])
    with running(ch):
        wait_for(lambda: ch.outbox.counts().get("delivered", 0) == 60, timeout_s=30)
    assert smsc.state()["throttled"] == 0


def test_smsc_outage_spends_no_try(sqlite_platform: Platform, tmp_path: Path,
                                   make_channels: Callable[..., Channels]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there yet
    ch = make_channels(sqlite_platform, smpp_port=port, max_attempts=1)
    ids = ch.enqueue_many([sms(i) for i in range(5)])
    dispatcher = Dispatcher(ch, build_senders(ch, {Channel.SMS}))
    try:
        dispatcher.drain(timeout_s=1.5, until=lambda: False)
        assert {(ch.get(i).status, ch.get(i).attempts) for i in ids} == {(Status.QUEUED, 0)}
        with run_smsc(tmp_path / "late", port=port) as smsc:
            dispatcher.start()
            wait_for(lambda: ch.outbox.counts().get("delivered", 0) == 5, timeout_s=30)
            assert len(no_duplicates(smsc)) == 5
    finally:
        dispatcher.stop()
