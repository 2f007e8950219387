"""The dispatcher: takes messages from the outbox, hands them to transports, writes
back what happened, and keeps the rest moving (receipts, answers, FHIR mirror).

One thread per channel sends (a call that lasts a minute never holds SMS back) and
one thread does the housekeeping: settling messages left in doubt, applying delivery
receipts, handing answers to their owners, mirroring to FHIR. Everything it knows
is in the database, so a dispatcher that is killed and started again carries on
where the other stopped (``outbox.py`` says how nothing is sent twice).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from hygie.channels.model import BatchSender, Channel, Sender
from hygie.channels.service import Channels

log = logging.getLogger("hygie.channels.worker")

#: A housekeeping pass that did this much work runs again at once.
HOUSEKEEPING_FULL = 500


class Dispatcher:
    """Runs the outbox against a set of transports, one per channel."""

    def __init__(self, channels: Channels, senders: dict[Channel, Sender], *,
                 repository: Any = None, worker_id: str | None = None) -> None:
        self.channels = channels
        self.senders = senders
        self.repository = repository
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._receipt_cursor = 0
        self._last_rescan = 0.0
        self._last_settle = 0.0
        self.sent = dict.fromkeys(senders, 0)

    # --- one pass of each kind -------------------------------------------------
    def send_once(self, channel: Channel) -> int:
        """Claim a batch of one channel, send it, record the receipts."""
        sender = self.senders[channel]
        if getattr(sender, "bound", True) is False:
            return 0  # the SMPP link is down: leave the messages queued, spend no try
        outbox = self.channels.outbox
        limit = self.channels.settings.batch_size
        if channel is Channel.VOICE:
            limit = max(1, self.channels.settings.sip_max_calls)
        links = self.channels.links.url if channel is Channel.EMAIL else None
        envelopes = outbox.claim(channel, self.worker_id, limit, answer_url=links)
        if not envelopes:
            return 0
        if isinstance(sender, BatchSender):
            receipts = sender.send_many(envelopes)
        else:
            receipts = [sender.send(env) for env in envelopes]
        outbox.record(list(zip(envelopes, receipts, strict=True)))
        self.sent[channel] += len(envelopes)
        return len(envelopes)

    def housekeeping_once(self) -> int:
        """Settle, apply receipts, deliver answers, mirror; return the work done."""
        outbox, inbox = self.channels.outbox, self.channels.inbox
        work = 0
        now = time.monotonic()
        if now - self._last_settle >= 1.0:
            self._last_settle = now
            sms = self.senders.get(Channel.SMS)
            since = getattr(sms, "bound_since_ms", None) if sms is not None else 0
            work += outbox.settle_in_doubt(receipts_since_ms=since)
        if now - self._last_rescan >= 5.0:
            self._last_rescan = now
            self._receipt_cursor = 0  # look again at receipts that overtook their part
        applied, self._receipt_cursor = outbox.apply_receipts(since_id=self._receipt_cursor)
        work += applied
        work += inbox.deliver_pending(self.channels.settings.answers_batch)
        if self.repository is not None:
            from hygie.channels.mirror import mirror_pass

            work += mirror_pass(self.channels.platform.engine, self.repository)
        return work

    def drain(self, timeout_s: float = 30.0, until: Callable[[], bool] | None = None) -> None:
        """Run passes in this thread until nothing is left to do (tests, CLI)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            work = sum(self.send_once(ch) for ch in self.senders) + self.housekeeping_once()
            if until is not None and until():
                return
            if work == 0 and until is None:
                return
            if work == 0:
                time.sleep(0.05)

    # --- threads -----------------------------------------------------------------
    def _loop(self, name: str, step: Callable[[], int], idle: float | None = None,
              full: int = 1, paced: bool = False) -> None:
        """Run ``step`` until stopped. After a pass that did less than ``full`` units of
        work, wait ``idle``; ``paced``: wait only what is left of ``idle`` since the
        pass started (passes start at most every ``idle`` unless one is full)."""
        idle = self.channels.settings.poll_s if idle is None else idle
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                work = step()
            except Exception:
                log.exception("dispatcher pass %s failed; trying again", name)
                work = 0
                self._stop.wait(1.0)
            if work < full:
                self._stop.wait(max(0.0, idle - (time.monotonic() - started)) if paced
                                else idle)

    def start(self) -> Dispatcher:
        for channel in self.senders:
            # Two SMS threads: one claims and records while the other's batch is on
            # the wire, so the SMSC's window never sits empty.
            for n in range(2 if channel is Channel.SMS else 1):
                self._threads.append(threading.Thread(
                    target=self._loop, args=(str(channel), lambda c=channel: self.send_once(c)),
                    name=f"channels-{channel}-{n}", daemon=True))
        # Receipts and answers arrive one by one while a wave is sent: housekeeping
        # passes start at most every housekeeping_s so that they gather, unless a
        # pass had a batch's worth.
        settings = self.channels.settings
        self._threads.append(threading.Thread(
            target=self._loop, args=("housekeeping", self.housekeeping_once,
                                     max(settings.poll_s, settings.housekeeping_s),
                                     HOUSEKEEPING_FULL, True),
            name="channels-housekeeping", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("channels dispatcher started (%s)", ", ".join(str(c) for c in self.senders))
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for sender in self.senders.values():
            close = getattr(sender, "close", None)
            if close is not None:
                close()


def build_senders(channels: Channels, only: set[Channel] | None = None) -> dict[Channel, Sender]:
    """The transports the settings describe (SMS, e-mail, and voice when pjsua2 is there)."""
    from hygie.channels.smpp import SmppSender, smpp_sink
    from hygie.channels.smtp import SmtpSender

    s = channels.settings
    senders: dict[Channel, Sender] = {}
    wanted = only or set(Channel)
    if Channel.SMS in wanted:
        sink = smpp_sink(channels.platform.engine, channels.inbox, s.phone_region)
        senders[Channel.SMS] = SmppSender(s, sink).start()
    if Channel.EMAIL in wanted:
        senders[Channel.EMAIL] = SmtpSender(s)
    if Channel.VOICE in wanted:
        try:
            from hygie.channels.sip import SipSender

            senders[Channel.VOICE] = SipSender(s).start()
        except ImportError:
            log.warning("voice calls need the hygie[voice] extra (pjsua2); calls stay queued")
    return senders


def start_dispatcher(channels: Channels, *, only: set[Channel] | None = None,
                     mirror: bool = True) -> Dispatcher:
    """Build the transports and start the dispatcher's threads."""
    repository = None
    if mirror:
        store = channels.platform.parts.get("store")
        if store is None:
            from hygie.store.server import open_store

            store = open_store(channels.platform)
        repository = store.repository
    dispatcher = Dispatcher(channels, build_senders(channels, only), repository=repository)
    return dispatcher.start()
