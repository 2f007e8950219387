"""SMS over SMPP v3.4: one transceiver session, pipelined within the SMSC's window.

smpplib owns the connection, the bind and the PDUs other than the four of the hot path
(``pdus.py``); this module adds what a
gateway needs around it:

- ``bind_transceiver`` (§4.1.5), then one reader thread that answers ``enquire_link``,
  sends one after ``smpp_enquire_link_s`` of silence (§4.11) and takes the link as dead
  when nothing answers within ``smpp_response_timeout_s``;
- reconnection with exponential backoff and jitter, up to ``smpp_reconnect_max_s``;
- ``submit_sm`` (§4.4) with ``registered_delivery`` 1 for every part, at most
  ``smpp_window`` awaiting their ``submit_sm_resp`` and at most ``smpp_max_rate`` per
  second; ``ESME_RTHROTTLED`` and ``ESME_RMSGQFUL`` mean "later", not "failed";
- ``deliver_sm`` (§4.6): receipts (esm_class type 0x04) and replies are handed in
  batches to a sink that commits them, and only then is each ``deliver_sm_resp`` sent
  (a sink failure answers ``ESME_RX_T_APPN`` so the SMSC delivers again).

Each part carries a ``user_message_reference`` derived from the message id, which lets
the outbox settle parts left in doubt by a broken link (see ``outbox.py``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from smpplib import consts
from smpplib import exceptions as smpp_errors
from smpplib.client import Client
from smpplib.smpp import make_pdu, parse_pdu

from hygie.channels.addresses import smpp_address, smpp_source
from hygie.channels.errors import InvalidMessage
from hygie.channels.model import Envelope, PartOutcome, Receipt, Status
from hygie.channels.pdus import (
    DELIVER_SM,
    HEADER,
    SUBMIT_SM_RESP,
    IncomingPdu,
    decode_deliver_sm,
    encode_deliver_sm_resp,
    encode_submit_sm,
    incoming_from_smpplib,
    text_of,
)
from hygie.channels.references import concat_ref, user_ref
from hygie.channels.segments import plan_sms
from hygie.channels.settings import ChannelSettings

log = logging.getLogger("hygie.channels.smpp")

#: Command status codes meaning "try again later" (SMPP v3.4 §5.1.3).
RETRY_STATUSES = {consts.SMPP_ESME_RTHROTTLED, consts.SMPP_ESME_RMSGQFUL,
                  consts.SMPP_ESME_RSYSERR, consts.SMPP_ESME_RX_T_APPN}
_LINK_DOWN = "SMSC link down"
_MAX_DRAIN = 1024
#: No batch held back by the delivery thread (None is its stop signal).
_NOTHING: Any = object()
_WRITE_BATCH = 64


class _Sequences:
    """Thread-safe PDU sequence numbers (1 .. 0x7FFFFFFF, §5.1.4)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0

    @property
    def sequence(self) -> int:
        return self._n

    def next_sequence(self) -> int:
        with self._lock:
            self._n = self._n % 0x7FFFFFFF + 1
            return self._n


class _Batch:
    """The submit_sm of one ``send_many``: one event set when the last one is done."""

    __slots__ = ("event", "lock", "remaining")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.remaining = 1  # the writer's own hold, released when it has written all

    def release(self) -> None:
        with self.lock:
            self.remaining -= 1
            if self.remaining == 0:
                self.event.set()


class _Slot:
    """A submit_sm awaiting its response."""

    __slots__ = ("batch", "finished", "lost", "message_id", "sequence", "status", "unsent")

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch
        self.sequence = 0
        self.unsent = False
        self.finished = False
        self.status: int | None = None
        self.message_id: str | None = None
        self.lost = False
        with batch.lock:
            batch.remaining += 1

    def finish(self) -> None:
        batch = self.batch
        with batch.lock:
            if self.finished:
                return
            self.finished = True
        batch.release()


class _RateLimiter:
    """At most ``rate`` acquisitions per second (token bucket of one second)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._tokens = rate
        self._stamp = time.monotonic()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


#: Commits a batch of deliver_sm and returns one command status per PDU.
DeliverSink = Callable[[Sequence[IncomingPdu]], Sequence[int]]


class SmppSender:
    """The SMS transport: ``send`` / ``send_many`` over one SMPP transceiver session."""

    def __init__(self, settings: ChannelSettings, sink: DeliverSink | None = None) -> None:
        self.settings = settings
        self.sink = sink
        self._seq = _Sequences()
        self._client: Client | None = None
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Slot] = {}
        self._pending_lock = threading.Lock()
        self._window = threading.BoundedSemaphore(max(1, settings.smpp_window))
        self._rate = _RateLimiter(settings.smpp_max_rate)
        self._bound = threading.Event()
        self._closed = threading.Event()
        #: Set when the SMSC has answered our unbind: the session ended cleanly.
        self._unbound = threading.Event()
        self._thread: threading.Thread | None = None
        #: deliver_sm batches read off the link, committed and acknowledged by their
        #: own thread, so that a slow commit never holds up the submit_sm_resp behind.
        self._deliveries: queue.SimpleQueue[tuple[Client, list[tuple[int, IncomingPdu]]] | None]
        self._deliveries = queue.SimpleQueue()
        self._delivery_thread: threading.Thread | None = None
        self.binds = 0
        #: UTC milliseconds of the current session's bind (None while unbound): from
        #: then on the SMSC delivers the receipts it kept (see Outbox.settle_in_doubt).
        self.bound_since_ms: int | None = None

    # --- session -----------------------------------------------------------------
    def start(self) -> SmppSender:
        if self._thread is None:
            self._delivery_thread = threading.Thread(
                target=self._delivery_loop, name="smpp-deliveries", daemon=True)
            self._delivery_thread.start()
            self._thread = threading.Thread(target=self._run, name="smpp-session", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        client = self._client
        if client is not None and self._bound.is_set():
            with contextlib.suppress(Exception), self._send_lock:  # the link may be gone
                client.send_pdu(make_pdu("unbind", client=client))
            # The SMSC answers unbind_resp before either side closes (SMPP 3.4 §4.2.2):
            # the reader waits for it, briefly, so that the link ends unbound.
            self._unbound.wait(min(2.0, self.settings.smpp_response_timeout_s))
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._deliveries.put(None)
        if self._delivery_thread is not None:
            self._delivery_thread.join(timeout=5)
        self._drop()

    def wait_bound(self, timeout: float) -> bool:
        return self._bound.wait(timeout)

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def _run(self) -> None:
        delay = 0.5
        while not self._closed.is_set():
            try:
                self._connect()
                delay = 0.5
                self._read_loop()
            except Exception as exc:  # any failure of the link: reconnect
                if not self._closed.is_set():
                    log.warning("SMPP link down: %s", type(exc).__name__)
            finally:
                self._drop()
            if self._closed.wait(delay * (0.5 + random.random())):
                break
            delay = min(self.settings.smpp_reconnect_max_s, delay * 2)

    def _connect(self) -> None:
        s = self.settings
        client = Client(s.smpp_host, s.smpp_port, timeout=s.smpp_response_timeout_s,
                        sequence_generator=self._seq, logger_name="hygie.channels.smpp.pdu",
                        allow_unknown_opt_params=True)
        self._client = client  # so that _drop closes it even if connect fails
        client.connect()
        resp = client.bind_transceiver(system_id=s.smpp_system_id, password=s.smpp_password,
                                       system_type=s.smpp_system_type,
                                       interface_version=0x34)
        if resp.is_error():
            raise smpp_errors.PDUError(f"bind refused: {resp.status}")
        self.binds += 1
        self.bound_since_ms = int(time.time() * 1000)
        self._bound.set()
        log.info("SMPP bound (transceiver) to %s:%s", s.smpp_host, s.smpp_port)

    def _drop(self) -> None:
        self._bound.clear()
        self.bound_since_ms = None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # the socket is being thrown away
                client.disconnect()
        with self._pending_lock:
            lost, self._pending = list(self._pending.values()), {}
        for slot in lost:
            slot.lost = True
            slot.finish()
            self._window.release()

    def _read_loop(self) -> None:
        client = self._client
        assert client is not None
        sock = client._socket
        keepalive = self.settings.smpp_enquire_link_s
        deadline = self.settings.smpp_response_timeout_s
        last_rx = time.monotonic()
        probe_sent: float | None = None
        buffer = bytearray()
        while not self._closed.is_set():
            ready, _, _ = select.select([sock], [], [], min(0.5, keepalive))
            now = time.monotonic()
            if not ready:
                if probe_sent is not None and now - probe_sent > deadline:
                    raise smpp_errors.ConnectionError("no answer to enquire_link")
                if probe_sent is None and now - last_rx > keepalive:
                    with self._send_lock:
                        client.send_pdu(make_pdu("enquire_link", client=client))
                    probe_sent = now
                continue
            data = sock.recv(1 << 16)
            if not data:
                raise smpp_errors.ConnectionError("the SMSC closed the link")
            buffer += data
            last_rx = time.monotonic()
            probe_sent = None
            batch: list[Any] = []
            while len(buffer) >= 16:
                length = int.from_bytes(buffer[:4], "big")
                if length < 16 or length > 65536:
                    raise smpp_errors.PDUError("malformed PDU length")
                if len(buffer) < length:
                    break
                raw = bytes(buffer[:length])
                del buffer[:length]
                self._dispatch_raw(client, raw, batch)
                if len(batch) >= _MAX_DRAIN:
                    self._deliveries.put((client, batch))
                    batch = []
            if batch:
                self._deliveries.put((client, batch))

    def _dispatch_raw(self, client: Client, raw: bytes, batch: list[Any]) -> None:
        """Route one PDU. submit_sm_resp, most of the traffic, is read here from its
        fixed layout (header, then message_id as a C string, §4.4.2); every other PDU
        is decoded by smpplib."""
        command_id, status, sequence = HEADER.unpack_from(raw)[1:]
        if command_id == SUBMIT_SM_RESP:
            with self._pending_lock:
                slot = self._pending.pop(sequence, None)
            if slot is not None:
                slot.status = status
                slot.message_id = raw[16:].split(b"\0", 1)[0].decode("latin-1") or None
                slot.finish()
                self._window.release()
            return
        if command_id == DELIVER_SM:
            item = decode_deliver_sm(raw)
            if item is not None:
                batch.append((sequence, item))
                return
        pdu = parse_pdu(raw, client=client, allow_unknown_opt_params=True)
        if pdu is not None:
            self._dispatch(client, pdu, batch)

    def _dispatch(self, client: Client, pdu: Any, batch: list[Any]) -> None:
        command = pdu.command
        if command == "submit_sm_resp":
            with self._pending_lock:
                slot = self._pending.pop(pdu.sequence, None)
            if slot is not None:
                slot.status = int(pdu.status)
                slot.message_id = text_of(getattr(pdu, "message_id", None)) or None
                slot.finish()
                self._window.release()
        elif command == "deliver_sm":
            batch.append((pdu.sequence, incoming_from_smpplib(pdu)))
        elif command == "enquire_link":
            resp = make_pdu("enquire_link_resp", client=client)
            resp.sequence = pdu.sequence
            with self._send_lock:
                client.send_pdu(resp)
        elif command == "unbind_resp":  # ours, from close(): the session is over
            client.state = consts.SMPP_CLIENT_STATE_OPEN
            self._unbound.set()
        elif command == "unbind":
            resp = make_pdu("unbind_resp", client=client)
            resp.sequence = pdu.sequence
            with self._send_lock:
                client.send_pdu(resp)
            client.state = consts.SMPP_CLIENT_STATE_OPEN  # unbound: only the socket is left
            raise smpp_errors.ConnectionError("the SMSC unbound")
        elif command == "generic_nack":
            with self._pending_lock:
                slot = self._pending.pop(pdu.sequence, None)
            if slot is not None:
                slot.status = int(pdu.status) or consts.SMPP_ESME_RSYSERR
                slot.finish()
                self._window.release()

    def _delivery_loop(self) -> None:
        """Commit and acknowledge the deliver_sm batches the reader queued, joining
        those of one link that wait together into one transaction; None stops it."""
        queued = self._deliveries
        item = queued.get()
        while item is not None:
            client, batch = item
            item = _NOTHING
            while len(batch) < _MAX_DRAIN:
                try:
                    following = queued.get_nowait()
                except queue.Empty:
                    break
                if following is None or following[0] is not client:
                    item = following  # another link's, or the end: after this batch
                    break
                batch = batch + following[1]
            try:
                self._deliver(client, batch)
            except Exception as exc:  # the link went down: the SMSC delivers them again
                log.log(logging.DEBUG if self._closed.is_set() else logging.WARNING,
                        "could not acknowledge %d inbound PDUs: %s", len(batch),
                        type(exc).__name__)
            if item is _NOTHING:
                item = queued.get()

    def _deliver(self, client: Client, batch: list[tuple[int, IncomingPdu]]) -> None:
        """Commit a batch of deliver_sm through the sink, then acknowledge each."""
        items = [item for _seq, item in batch]
        try:
            statuses = list(self.sink(items)) if self.sink else [consts.SMPP_ESME_ROK] * len(items)
        except Exception:
            log.exception("could not store %d inbound PDUs; the SMSC will deliver again",
                          len(items))
            statuses = [consts.SMPP_ESME_RX_T_APPN] * len(items)
        out = [encode_deliver_sm_resp(seq, status)
               for (seq, _item), status in zip(batch, statuses, strict=True)]
        with self._send_lock:
            client._socket.sendall(b"".join(out))

    # --- sending -----------------------------------------------------------------
    def send(self, envelope: Envelope) -> Receipt:
        return self.send_many([envelope])[0]

    def send_many(self, envelopes: Sequence[Envelope]) -> list[Receipt]:
        """Submit every missing part of each message; wait for the responses."""
        s = self.settings
        if not self._bound.wait(min(2.0, s.smpp_response_timeout_s)):
            return [Receipt(Status.QUEUED, error="SMSC unreachable", peer_down=True)
                    for _ in envelopes]
        plans: list[tuple[Envelope, list[tuple[int, bytes, int, Any]], int, str | None]] = []
        for env in envelopes:
            try:
                plan = plan_sms(env.message.text, concat_ref(env.message_id), s.max_sms_parts)
            except InvalidMessage as exc:
                plans.append((env, [], 0, str(exc)))
                continue
            parts = [(n, payload, plan.data_coding, plan.esm_class)
                     for n, payload in enumerate(plan.parts, start=1) if n not in env.done_parts]
            plans.append((env, parts, len(plan.parts), None))
        src_ton, src_npi, src = smpp_source(s.smpp_source_addr)
        slots: dict[tuple[int, int], _Slot | None] = {}
        writer = _BatchWriter(self)
        for i, (env, parts, _total, _err) in enumerate(plans):
            ton, npi, dest = smpp_address(env.message.recipient)
            for n, payload, coding, esm in parts:
                if writer.broken:
                    slots[(i, n)] = None
                    continue
                slots[(i, n)] = writer.submit(
                    src_ton=src_ton, src_npi=src_npi, src=src, ton=ton, npi=npi, dest=dest,
                    payload=payload, coding=coding, esm=esm, ref=user_ref(env.message_id, n))
        writer.flush()
        for key, slot in slots.items():
            if slot is not None and slot.unsent:
                slots[key] = None
        writer.batch.release()
        writer.batch.event.wait(s.smpp_response_timeout_s)
        for slot in slots.values():
            if slot is not None and not slot.finished:
                slot.lost = True  # no response in time: in doubt
        receipts = []
        for i, (env, parts, total, err) in enumerate(plans):
            if err:
                receipts.append(Receipt(Status.FAILED, error=err))
                continue
            outcomes = []
            for n, _payload, _coding, _esm in parts:
                outcomes.append(self._outcome(env, n, slots[(i, n)]))
            retry = any(o.outcome == "retry" for o in outcomes)
            link_down = retry and all(o.outcome == "accepted" or (
                o.outcome == "retry" and o.error == _LINK_DOWN) for o in outcomes)
            receipts.append(Receipt(
                Status.SUBMITTED, provider_ref=next((o.smsc_id for o in outcomes if o.smsc_id),
                                                   None),
                parts=tuple(outcomes), total_parts=total,
                retry_after_s=1.0 if retry else None, peer_down=link_down,
                error=next((o.error for o in outcomes if o.error), None)))
        return receipts

    def _outcome(self, env: Envelope, n: int, slot: _Slot | None) -> PartOutcome:
        ref = user_ref(env.message_id, n)
        if slot is None:
            return PartOutcome(n, "retry", user_ref=ref, error=_LINK_DOWN)
        if slot.lost or slot.status is None:
            return PartOutcome(n, "in_doubt", user_ref=ref, error="link lost before response")
        if slot.status == consts.SMPP_ESME_ROK:
            return PartOutcome(n, "accepted", smsc_id=slot.message_id, user_ref=ref)
        desc = consts.DESCRIPTIONS.get(slot.status, "unknown")
        error = f"SMSC status 0x{slot.status:08X} ({desc})"
        if slot.status in RETRY_STATUSES:
            return PartOutcome(n, "retry", user_ref=ref, error=error)
        return PartOutcome(n, "rejected", user_ref=ref, error=error)



class _BatchWriter:
    """Writes submit_sm PDUs in batches (one system call for many), within the window.

    A PDU takes a window slot before it is buffered; the buffer is written when the
    window is full, when it holds ``_WRITE_BATCH`` PDUs, and at the end.
    """

    def __init__(self, sender: SmppSender) -> None:
        self.sender = sender
        self.buffer: list[bytes] = []
        self.slots: list[_Slot] = []
        self.batch = _Batch()
        self.broken = False

    def submit(self, *, src_ton: int, src_npi: int, src: str, ton: int, npi: int, dest: str,
               payload: bytes, coding: int, esm: int, ref: int) -> _Slot | None:
        sender = self.sender
        if not sender._window.acquire(blocking=False):
            self.flush()
            if not sender._window.acquire(timeout=sender.settings.smpp_response_timeout_s):
                self.broken = True
                return None
        sender._rate.acquire()
        client = sender._client
        if client is None or not sender._bound.is_set():
            sender._window.release()
            self.broken = True
            return None
        slot = _Slot(self.batch)
        slot.sequence = sender._seq.next_sequence()
        slot.unsent = True
        self.buffer.append(encode_submit_sm(
            slot.sequence, src_ton=src_ton, src_npi=src_npi, src=src, ton=ton, npi=npi,
            dest=dest, esm=esm, coding=coding, payload=payload, user_ref=ref))
        self.slots.append(slot)
        with sender._pending_lock:
            sender._pending[slot.sequence] = slot
        if len(self.buffer) >= _WRITE_BATCH:
            self.flush()
        return slot

    def flush(self) -> None:
        if not self.buffer:
            return
        sender, data, slots = self.sender, b"".join(self.buffer), self.slots
        self.buffer, self.slots = [], []
        client = sender._client
        try:
            if client is None:
                raise OSError("link down")
            with sender._send_lock:
                client._socket.sendall(data)
            for slot in slots:
                slot.unsent = False
        except (OSError, AttributeError):
            # Maybe written in part: those parts are in doubt; the link is going down.
            self.broken = True
            for slot in slots:
                slot.unsent = False
                with sender._pending_lock:
                    registered = sender._pending.pop(slot.sequence, None) is not None
                if registered:
                    sender._window.release()
                slot.lost = True
                slot.finish()


def smpp_sink(engine: Any, inbox: Any, region: str = "FR") -> DeliverSink:
    """A sink that commits receipts and replies in one transaction per batch."""
    from hygie.channels.inbound_sms import store_deliveries

    def sink(items: Sequence[IncomingPdu]) -> Sequence[int]:
        store_deliveries(engine, inbox, items, region)
        return [consts.SMPP_ESME_ROK] * len(items)

    return sink

