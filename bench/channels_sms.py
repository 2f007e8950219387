"""SMS throughput through the durable outbox against the loopback SMSC.

Figures (one line each, ``name: value unit``):

- ``sms_enqueue``: messages persisted per second by ``enqueue_many``;
- ``sms_submit_delivered``: messages per second from "queued" to "delivered": every
  submit_sm answered, its delivery receipt received, committed before its
  deliver_sm_resp, and applied to the message (sustained over the whole run);
- ``sms_inbound_replies``: replies per second from the SMSC's first deliver_sm to the
  owner's handler (stored, routed to the conversation, marked answered, handed over);
- ``fhir_mirror``: messages per second written as CommunicationRequest/Communication;
- the peer, run side by side: a bare smpplib client in a loop (same SMSC, same window,
  receipts read, nothing stored), to show what durability costs.

The SMSC runs as its own process, as in production. Run:
``.venv/bin/python bench/channels_sms.py [--messages 20000] [--replies 20000]``
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import warnings
from pathlib import Path

from hygie.channels import Channel, OutboundMessage, channels_for
from hygie.channels.model import Answer
from hygie.channels.peers import SmscHandle, run_smsc
from hygie.channels.settings import channel_settings
from hygie.channels.worker import Dispatcher, build_senders
from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.store.migrations import upgrade


def bare_smpplib(smsc: SmscHandle, n: int, window: int) -> float:
    """The peer: smpplib's Client, submit_sm within the window, receipts read and
    acknowledged, nothing stored. Returns messages per second."""
    from smpplib import consts
    from smpplib.client import Client
    from smpplib.smpp import make_pdu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = Client("127.0.0.1", smsc.smpp_port, allow_unknown_opt_params=True)
    client.connect()
    client.bind_transceiver(system_id="hygie", password="hygie")
    outstanding = 0
    resps = receipts = 0

    def on_sent(pdu: object, **_: object) -> None:
        nonlocal outstanding, resps
        outstanding -= 1
        resps += 1

    def on_received(pdu: object, **_: object) -> int:
        nonlocal receipts
        receipts += 1
        return consts.SMPP_ESME_ROK

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_received)
    start = time.perf_counter()
    sent = 0
    while receipts < n:
        while sent < n and outstanding < window:
            client.send_pdu(make_pdu("submit_sm", client=client, source_addr_ton=5,
                                     source_addr="HYGIE", dest_addr_ton=1, dest_addr_npi=1,
                                     destination_addr=f"336{30000000 + sent}",
                                     short_message=f"Rappel {sent}".encode(),
                                     registered_delivery=1))
            sent += 1
            outstanding += 1
        client.read_once()
    elapsed = time.perf_counter() - start
    client.unbind()
    client.disconnect()
    return n / elapsed


def delivered(platform: object) -> int:
    """Messages delivered so far (an index count: polling must not slow the run)."""
    from sqlalchemy import func, select

    from hygie.channels.tables import message

    with platform.engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.scalar(select(func.count()).select_from(message).where(
            message.c.status == "delivered")) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--replies", type=int, default=20000)
    parser.add_argument("--mirror", type=int, default=2000, help="messages to mirror")
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hygie-bench-channels-"))
    url = args.database_url or f"sqlite:///{work / 'hygie.db'}"
    settings = load_settings(database_url=url, var_dir=work / "var")
    platform = open_platform(settings)
    upgrade(platform.engine)
    with run_smsc() as smsc:
        ch = channels_for(platform)
        ch.settings = channel_settings(settings, smpp_port=smsc.smpp_port,
                                       smpp_window=args.window, batch_size=args.batch,
                                       poll_s=0.02)
        ch.outbox.settings = ch.inbox.settings = ch.settings
        n = args.messages
        messages = [OutboundMessage(f"bench-{i}", f"followup:{i % 500}", Channel.SMS,
                                    f"+336{10000000 + i}", f"Bonjour, rappel de suivi n°{i}",
                                    expected_answers=["OUI", "NON"]) for i in range(n)]
        t0 = time.perf_counter()
        for i in range(0, n, 5000):
            ch.enqueue_many(messages[i:i + 5000])
        enqueue_rate = n / (time.perf_counter() - t0)
        dispatcher = Dispatcher(ch, build_senders(ch, {Channel.SMS}))
        assert dispatcher.senders[Channel.SMS].wait_bound(10)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        dispatcher.start()
        while delivered(platform) < n:
            time.sleep(0.2)
        send_rate = n / (time.perf_counter() - t0)

        handled = 0
        done = threading.Event()

        def handler(_answer: Answer) -> None:
            nonlocal handled
            handled += 1
            if handled >= args.replies:
                done.set()

        ch.register_handler("followup:", handler)
        replies = [{"from": f"336{10000000 + i % n}", "text": "oui"}
                   for i in range(args.replies)]
        t0 = time.perf_counter()
        for i in range(0, len(replies), 5000):
            smsc.inject_mo(replies[i:i + 5000])
        done.wait(timeout=600)
        reply_rate = handled / (time.perf_counter() - t0)
        dispatcher.stop()

        peer_rate = bare_smpplib(smsc, n, args.window)

    from hygie.channels.mirror import mirror_pass
    from hygie.store.server import open_store

    repo = open_store(platform).repository
    t0 = time.perf_counter()
    mirrored = 0
    while mirrored < args.mirror:
        step = mirror_pass(platform.engine, repo, limit=200)
        if step == 0:
            break
        mirrored += step
    mirror_rate = mirrored / (time.perf_counter() - t0)
    platform.close()
    engine = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"database: {engine}")
    print(f"sms_enqueue: {enqueue_rate:,.0f} msg/s")
    print(f"sms_submit_delivered: {send_rate:,.0f} msg/s "
          f"({send_rate / peer_rate:.2f}x vs bare smpplib client)")
    print(f"bare_smpplib_submit_receipts: {peer_rate:,.0f} msg/s")
    print(f"sms_inbound_replies: {reply_rate:,.0f} msg/s")
    print(f"fhir_mirror: {mirror_rate:,.0f} msg/s")


if __name__ == "__main__":
    main()
