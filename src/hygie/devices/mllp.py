"""The MLLP server: frames in, acknowledgments out, nothing acknowledged before commit.

MLLP (HL7 v2.x Implementation Guide, Transport Specification: MLLP release 2) frames
each message as ``<VT> message <FS><CR>``. For every frame the server reads the header
(``receipt.py``), hands the raw message to the group commit (``GroupCommit``: what
arrives while one commit runs goes into the next, in one transaction), and only then
answers:

* enhanced mode: CA as soon as the message is committed when MSH-15 asks for it, and
  the application acknowledgment (AA, or AE with ERR) when the mapper has written it
  to the store, when MSH-16 asks for it;
* original mode: AA or AE once the message is in the store.

A header the gateway cannot accept is answered at once (AR/CR with ERR naming the MSH
field), and a repeated MSH-10 from the same sender is answered from the journal without
being stored again. Frames larger than ``max_message_bytes`` are refused the same way
and skipped up to their end block, so the connection stays usable.

The library's own MLLP streams (``hl7.mllp``) decode every message with one fixed
character set before the header can be read, which is what MSH-18 forbids; framing
is a dozen lines, written here on ``asyncio.Protocol`` to keep the per-message cost low.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hygie.devices.acks import build_ack
from hygie.devices.errors import APPLICATION_INTERNAL_ERROR, MessageRejected
from hygie.devices.journal import (
    PENDING,
    STORED,
    Appended,
    Incoming,
    Journal,
    JournalBusy,
    Outcome,
)
from hygie.devices.model import DevicesSettings, Header
from hygie.devices.receipt import read_header

log = logging.getLogger("hygie.devices")

START, END = b"\x0b", b"\x1c\r"


class GroupCommit:
    """Appends messages to the journal in batches: one commit per turn of the event loop.

    Frames that arrive in the same turn (from every connection) are committed together
    at the end of it, with the outcomes the mapper reported meanwhile (``record``), so
    that the receipt path is the only writer of the journal and never waits for another
    process's transaction. The commit runs on the event loop's thread: a batch costs a
    fraction of a millisecond on SQLite, while handing it to a worker thread costs
    more than that in GIL hand-offs (the interpreter's switch interval is 5 ms), which
    is what limited an earlier version to about a third of this throughput.
    """

    def __init__(
        self, journal: Journal, on_recorded: Callable[[list[Outcome]], None] = lambda _o: None
    ) -> None:
        self.journal = journal
        self.on_recorded = on_recorded
        self._queue: list[tuple[Incoming, asyncio.Future[Appended]]] = []
        self._finished: list[Outcome] = []
        self._scheduled = False

    def submit(self, item: Incoming) -> asyncio.Future[Appended]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Appended] = loop.create_future()
        self._queue.append((item, future))
        self._schedule(loop)
        return future

    def record(self, outcomes: list[Outcome]) -> None:
        """Record the mapper's outcomes with the next commit, then call ``on_recorded``."""
        self._finished += outcomes
        self._schedule(asyncio.get_running_loop())

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        batch, self._queue = self._queue, []
        finished, self._finished = self._finished, []
        if not batch and not finished:
            return
        try:
            results = self.journal.append(
                [item for item, _ in batch], wait=False, finished=finished
            )
        except JournalBusy:
            # another writer (an MQTT delivery, a purge): try again in a millisecond,
            # with what arrives meanwhile
            self._queue[:0] = batch
            self._finished[:0] = finished
            self._scheduled = True
            asyncio.get_running_loop().call_later(0.001, self._drain)
            return
        except Exception as exc:
            # the outcomes are lost with the transaction: those messages stay pending
            # and the mapper takes them again later
            log.exception("journal commit failed for %d messages", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        if finished:
            self.on_recorded(finished)

    def close(self) -> None:
        batch, self._queue = self._queue, []
        finished, self._finished = self._finished, []
        if batch or finished:
            results = self.journal.append([item for item, _ in batch], finished=finished)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class MllpServer:
    """Accepts MLLP connections; see the module docstring."""

    def __init__(
        self, journal: Journal, settings: DevicesSettings, wake_mapper: Callable[[int], None]
    ) -> None:
        self.settings = settings
        self.commit = GroupCommit(journal, self._resolve)
        self.journal = journal
        self.wake_mapper = wake_mapper
        self._waiters: dict[int, list[Callable[[Outcome], None]]] = {}
        self._wake_scheduled = False
        self.received = 0
        self._second = 0
        self._this_second = 0
        self.rate = 0

    def _wake(self) -> None:
        self._wake_scheduled = False
        self.wake_mapper(self.rate)

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True)

    def resolve(self, outcomes: list[Outcome]) -> None:
        """The mapper finished these messages: record them, then send the application
        acks waiting on them (a copy received after that finds the outcome recorded)."""
        self.commit.record(outcomes)

    def _resolve(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            for callback in self._waiters.pop(outcome.journal_id, []):
                callback(outcome)

    # --- per message -------------------------------------------------------------------

    def handle(self, frame: bytes, conn: _Connection) -> None:
        self.received += 1
        second = int(time.monotonic())
        if second != self._second:
            self.rate = self._this_second if second == self._second + 1 else 0
            self._second, self._this_second = second, 0
        self._this_second += 1
        try:
            header, _text = read_header(frame, self.settings.default_charset)
        except MessageRejected as exc:
            partial: Header | None = getattr(exc, "header", None)
            code = "CR" if partial is not None and partial.enhanced else "AR"
            conn.send(build_ack(partial, code, exc))
            return
        future = self.commit.submit(
            Incoming("hl7", header.sender[:400], header.control_id, header.codec, frame)
        )
        future.add_done_callback(lambda f: self._committed(f, header, conn))

    def _committed(
        self, future: asyncio.Future[Appended], header: Header, conn: _Connection
    ) -> None:
        if future.exception() is not None:
            error = MessageRejected(
                "the message could not be stored; send it again",
                segment="MSH",
                field=10,
                code=APPLICATION_INTERNAL_ERROR,
            )
            conn.send(build_ack(header, "CE" if header.enhanced else "AE", error))
            return
        appended = future.result()
        if header.wants_commit_ack(True):
            conn.send(build_ack(header, "CA"))
        if appended.status == PENDING:
            if header.wants_application_ack(True) or header.wants_application_ack(False):
                self._waiters.setdefault(appended.journal_id, []).append(
                    lambda outcome: self._application_ack(outcome, header, conn)
                )
            if not appended.duplicate and not self._wake_scheduled:
                # one wake per batch, not per message: each wake is a syscall and a
                # context switch to the mapper
                self._wake_scheduled = True
                asyncio.get_running_loop().call_soon(self._wake)
            return
        self._application_ack(
            Outcome(appended.journal_id, appended.status, appended.error), header, conn
        )

    def _application_ack(self, outcome: Outcome, header: Header, conn: _Connection) -> None:
        accepted = outcome.status == STORED
        if not header.wants_application_ack(accepted):
            return
        if accepted:
            conn.send(build_ack(header, "AA"))
            return
        error = (
            MessageRejected.from_dict(outcome.error)
            if outcome.error and "segment" in outcome.error
            else MessageRejected("rejected", segment="MSH")
        )
        conn.send(build_ack(header, "AR" if error.reject else "AE", error))

    def close(self) -> None:
        self.commit.close()


class _Connection(asyncio.Protocol):
    """One MLLP connection: splits frames, writes acknowledgments."""

    def __init__(self, server: MllpServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.discarding = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def send(self, ack: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(START + ack + END)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        limit = self.server.settings.max_message_bytes
        while buffer:
            if self.discarding:
                end = buffer.find(END)
                if end < 0:
                    del buffer[: max(0, len(buffer) - 1)]
                    return
                del buffer[: end + 2]
                self.discarding = False
                continue
            start = buffer.find(START)
            if start < 0:
                buffer.clear()
                return
            if start:
                del buffer[:start]
            end = buffer.find(END, 1)
            if end < 0:
                if len(buffer) > limit + 1:
                    self._too_large(bytes(buffer[1:4096]))
                    buffer.clear()
                    self.discarding = True
                return
            frame = bytes(buffer[1:end])
            del buffer[: end + 2]
            if len(frame) > limit:
                self._too_large(frame[:4096])
                continue
            self.server.handle(frame, self)

    def _too_large(self, head: bytes) -> None:
        try:
            header: Header | None = read_header(
                head.split(b"\r", 1)[0], self.server.settings.default_charset
            )[0]
        except MessageRejected as exc:
            header = getattr(exc, "header", None)
        error = MessageRejected(
            f"the message is larger than {self.server.settings.max_message_bytes} bytes",
            segment="MSH",
            code=APPLICATION_INTERNAL_ERROR,
            reject=True,
        )
        code = "CR" if header is not None and header.enhanced else "AR"
        self.send(build_ack(header, code, error))
