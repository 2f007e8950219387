"""A loopback SMSC: an SMPP v3.4 server that records what it is sent, for tests, the
benchmark and the demo. It delivers nothing to any phone.

It runs as its own process (``hygie channels smsc`` or ``python -m
hygie.channels.smsc``) and behaves as an operator's SMSC does where it matters to a
client: ``bind_*`` with a password check, ``submit_sm`` answered with a message id,
a delivery receipt per part when asked (both the TLVs and the Appendix B text, with
the ``user_message_reference`` echoed), receipts kept for a client that is not bound
and delivered when it binds again, ``enquire_link``, throttling (``ESME_RTHROTTLED``
past a rate), and mobile-originated replies injected by tests. A small HTTP control
API (JSON) on a second port programs it: receipt delay and state per number, a rate,
refused numbers, and "drop the link after N submit_sm" to test a broken link.

No maintained Python package serves SMPP; smpplib encodes and decodes the PDUs, and
the server loop is asyncio.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smpplib import consts
from smpplib.smpp import make_pdu, parse_pdu

from hygie.channels.receipts import format_receipt_text
from hygie.channels.segments import ESM_UDHI, decode_user_data, plan_sms

log = logging.getLogger("hygie.channels.smsc")

_STATE_CODES = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6,
                "UNKNOWN": 7, "REJECTD": 8, "ENROUTE": 1}


class _Seq:
    def __init__(self) -> None:
        self._it = itertools.count(1)
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence = next(self._it) % 0x7FFFFFFF or 1
        return self.sequence


@dataclass
class SmscConfig:
    """What the control API can change while the SMSC runs."""

    system_id: str = "hygie"
    password: str = "hygie"
    dlr_delay_ms: int = 0
    dlr_state: str = "DELIVRD"
    #: Receipt state per destination number (E.164 digits without +).
    dlr_rules: dict[str, str] = field(default_factory=dict)
    #: Destinations refused at submit (ESME_RINVDSTADR).
    reject: set[str] = field(default_factory=set)
    #: Most submit_sm accepted per second (0: any); beyond, ESME_RTHROTTLED.
    max_rate: float = 0.0
    #: Close the link abruptly on the N-th submit_sm from now, before answering it.
    drop_after: int = 0
    #: Echo user_message_reference in receipts (most SMSCs do; some do not).
    echo_user_ref: bool = True


class Smsc:
    """The server: sessions, recorded submissions, receipts and replies to deliver."""

    def __init__(self, config: SmscConfig | None = None, record: Path | None = None) -> None:
        self.config = config or SmscConfig()
        self.record_path = record
        self.submissions: list[dict[str, Any]] = []
        self.sessions: list[_Session] = []
        self.queue: deque[dict[str, Any]] = deque()  # deliver_sm waiting for a receiver
        self.ids = itertools.count(0x10000000)
        self.stats = {"binds": 0, "submit_sm": 0, "throttled": 0, "receipts_sent": 0,
                      "receipts_acked": 0, "mo_sent": 0, "mo_acked": 0, "drops": 0,
                      "deliver_retry": 0, "enquire_link": 0, "unbinds": 0}
        self._window_start = time.monotonic()
        self._window_count = 0
        self._record_fh: Any = None
        self._wake = asyncio.Event()

    # --- submissions -------------------------------------------------------------
    def _throttled(self) -> bool:
        rate = self.config.max_rate
        if rate <= 0:
            return False
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._window_count > rate

    def accept(self, pdu: Any) -> tuple[int, str]:
        """Record a submit_sm; return (command status, message id)."""
        dest = _s(pdu.destination_addr)
        if dest in self.config.reject:
            return consts.SMPP_ESME_RINVDSTADR, ""
        if self._throttled():
            self.stats["throttled"] += 1
            return consts.SMPP_ESME_RTHROTTLED, ""
        message_id = format(next(self.ids), "x")
        data = decode_user_data(pdu.short_message or b"", int(pdu.data_coding or 0),
                                bool(int(pdu.esm_class or 0) & ESM_UDHI))
        entry = {"id": message_id, "at": time.time(), "to": dest, "from": _s(pdu.source_addr),
                 "text": data.text, "ref": data.ref, "seq": data.seq, "total": data.total,
                 "user_ref": getattr(pdu, "user_message_reference", None),
                 "coding": int(pdu.data_coding or 0)}
        self.submissions.append(entry)
        self.stats["submit_sm"] += 1
        if self.record_path is not None:
            if self._record_fh is None:
                self.record_path.parent.mkdir(parents=True, exist_ok=True)
                self._record_fh = self.record_path.open("a", encoding="utf-8")
            self._record_fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if int(pdu.registered_delivery or 0) & 0x03:
            state = self.config.dlr_rules.get(dest, self.config.dlr_state)
            due = time.monotonic() + self.config.dlr_delay_ms / 1000
            # A receipt comes from the handset's number, to the original sender.
            self.queue.append({"kind": "receipt", "due": due, "id": message_id,
                               "to": entry["from"], "from": dest, "state": state, "text": data.text,
                               "user_ref": entry["user_ref"], "submitted": time.time()})
            self._wake.set()
        return consts.SMPP_ESME_ROK, message_id

    def inject_mo(self, sender: str, text: str, to: str = "HYGIE") -> int:
        """Queue a reply from a phone (split with a UDH when long); return its parts."""
        plan = plan_sms(text, concat_ref=next(self.ids) & 0xFF)
        for payload in plan.parts:
            self.queue.append({"kind": "mo", "due": 0.0, "from": sender.lstrip("+"), "to": to,
                               "payload": payload, "coding": plan.data_coding,
                               "esm": plan.esm_class})
        self._wake.set()
        return len(plan.parts)

    def flush_record(self) -> None:
        if self._record_fh is not None:
            self._record_fh.flush()

    # --- delivery to bound receivers ---------------------------------------------
    def receivers(self) -> list[_Session]:
        return [s for s in self.sessions if s.receiver and not s.closing]

    async def pump(self) -> None:
        """Deliver queued receipts and replies to bound receivers, oldest first."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                receivers = self.receivers()
                if not receivers:
                    break
                now = time.monotonic()
                item = self.queue[0]
                if item["due"] > now:
                    self.loop_call_later(item["due"] - now)
                    break
                self.queue.popleft()
                session = min(receivers, key=lambda s: len(s.outstanding))
                if len(session.outstanding) >= 512:
                    self.queue.appendleft(item)
                    await asyncio.sleep(0.001)
                    continue
                session.deliver(item)
            self.flush_record()

    def loop_call_later(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    def requeue(self, items: list[dict[str, Any]]) -> None:
        self.queue.extendleft(reversed(items))
        self._wake.set()


class _Session(asyncio.Protocol):
    """One client connection."""

    def __init__(self, smsc: Smsc) -> None:
        self.smsc = smsc
        self.seq = _Seq()
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.bound = False
        self.receiver = False
        self.closing = False
        self.outstanding: dict[int, dict[str, Any]] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.smsc.sessions.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self in self.smsc.sessions:
            self.smsc.sessions.remove(self)
        if self.outstanding:  # never acknowledged: deliver again on the next bind
            self.smsc.stats["deliver_retry"] += len(self.outstanding)
            self.smsc.requeue(list(self.outstanding.values()))
            self.outstanding.clear()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 16:
            length = int.from_bytes(self.buffer[:4], "big")
            if length < 16 or length > 65536:
                self._drop()
                return
            if len(self.buffer) < length:
                return
            raw = bytes(self.buffer[:length])
            del self.buffer[:length]
            try:
                pdu = parse_pdu(raw, client=self.seq, allow_unknown_opt_params=True)
            except Exception:
                nack = make_pdu("generic_nack", client=self.seq,
                                status=consts.SMPP_ESME_RINVCMDID)
                nack.sequence = int.from_bytes(raw[12:16], "big")
                self._write(nack)
                continue
            self.handle(pdu)
            if self.closing:
                return

    def _write(self, pdu: Any) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(pdu.generate())

    def _reply(self, request: Any, command: str, status: int = 0, **fields: Any) -> None:
        resp = make_pdu(command, client=self.seq, status=status, **fields)
        resp.sequence = request.sequence
        self._write(resp)

    def _drop(self) -> None:
        self.closing = True
        self.smsc.stats["drops"] += 1
        if self.transport is not None:
            self.transport.abort()

    def handle(self, pdu: Any) -> None:
        smsc, cmd = self.smsc, pdu.command
        if cmd in ("bind_transceiver", "bind_transmitter", "bind_receiver"):
            ok = (_s(pdu.system_id) == smsc.config.system_id
                  and _s(pdu.password) == smsc.config.password)
            status = consts.SMPP_ESME_ROK if ok else consts.SMPP_ESME_RINVPASWD
            self._reply(pdu, cmd + "_resp", status, system_id="HYGIE-SIM")
            if ok:
                self.bound = True
                self.receiver = cmd != "bind_transmitter"
                smsc.stats["binds"] += 1
                smsc._wake.set()
        elif not self.bound:
            self._reply(pdu, "generic_nack", consts.SMPP_ESME_RINVBNDSTS)
        elif cmd == "submit_sm":
            if smsc.config.drop_after > 0:
                smsc.config.drop_after -= 1
                if smsc.config.drop_after == 0:
                    smsc.accept(pdu)  # taken, but the response never leaves
                    self._drop()
                    return
            status, message_id = smsc.accept(pdu)
            self._reply(pdu, "submit_sm_resp", status, message_id=message_id)
        elif cmd == "deliver_sm_resp":
            item = self.outstanding.pop(pdu.sequence, None)
            if item is not None:
                if int(pdu.status) == consts.SMPP_ESME_ROK:
                    smsc.stats["receipts_acked" if item["kind"] == "receipt" else "mo_acked"] += 1
                else:
                    item["due"] = time.monotonic() + 0.5
                    smsc.requeue([item])
        elif cmd == "enquire_link":
            smsc.stats["enquire_link"] += 1
            self._reply(pdu, "enquire_link_resp")
        elif cmd == "unbind":
            smsc.stats["unbinds"] += 1
            self._reply(pdu, "unbind_resp")
            self.closing = True
            if self.transport is not None:
                self.transport.close()
        elif cmd in ("enquire_link_resp", "generic_nack"):
            pass
        else:
            self._reply(pdu, "generic_nack", consts.SMPP_ESME_RINVCMDID)

    def deliver(self, item: dict[str, Any]) -> None:
        if item["kind"] == "receipt":
            stamp = time.strftime("%y%m%d%H%M", time.gmtime(item["submitted"]))
            done = time.strftime("%y%m%d%H%M", time.gmtime())
            text = format_receipt_text(item["id"], item["state"], stamp, done, item["text"])
            fields: dict[str, Any] = {
                "esm_class": 0x04, "short_message": text.encode("ascii", "replace"),
                "receipted_message_id": item["id"],
                "message_state": _STATE_CODES.get(item["state"], 7)}
            if self.smsc.config.echo_user_ref and item.get("user_ref") is not None:
                fields["user_message_reference"] = item["user_ref"]
            self.smsc.stats["receipts_sent"] += 1
        else:
            fields = {"esm_class": item["esm"], "short_message": item["payload"],
                      "data_coding": item["coding"]}
            self.smsc.stats["mo_sent"] += 1
        pdu = make_pdu("deliver_sm", client=self.seq, source_addr_ton=1, source_addr_npi=1,
                       source_addr=item["from"], dest_addr_ton=5, dest_addr_npi=0,
                       destination_addr=item["to"][:21], **fields)
        self.outstanding[pdu.sequence] = item
        self._write(pdu)


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _control_app(smsc: Smsc) -> Any:
    """The control API: JSON over HTTP on loopback (tests, benchmark, demo page)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def state(_request: Request) -> JSONResponse:
        return JSONResponse({**smsc.stats, "queued": len(smsc.queue),
                             "sessions": len(smsc.sessions),
                             "bound": sum(1 for s in smsc.sessions if s.bound),
                             "submissions": len(smsc.submissions)})

    async def submissions(request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        return JSONResponse(smsc.submissions[since:since + 10000])

    async def configure(request: Request) -> JSONResponse:
        body = await request.json()
        for key, value in body.items():
            if key == "reject":
                smsc.config.reject = set(value)
            elif hasattr(smsc.config, key):
                setattr(smsc.config, key, value)
        return JSONResponse({"ok": True})

    async def mo(request: Request) -> JSONResponse:
        body = await request.json()
        items = body if isinstance(body, list) else [body]
        parts = sum(smsc.inject_mo(i["from"], i["text"], i.get("to", "HYGIE")) for i in items)
        return JSONResponse({"queued": len(items), "parts": parts})

    async def drop(_request: Request) -> JSONResponse:
        for session in list(smsc.sessions):
            session._drop()
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/state", state), Route("/submissions", submissions),
        Route("/config", configure, methods=["POST"]), Route("/mo", mo, methods=["POST"]),
        Route("/drop", drop, methods=["POST"]),
    ])


async def serve(host: str = "127.0.0.1", port: int = 2775, control_port: int = 0,
                config: SmscConfig | None = None, record: Path | None = None) -> None:
    """Run the SMSC and its control API until cancelled; print the ports as JSON."""
    import socket

    import uvicorn

    smsc = Smsc(config, record)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Session(smsc), host, port)
    smpp_port = server.sockets[0].getsockname()[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, control_port))
    sock.listen(128)  # connections wait in the backlog until uvicorn serves them
    ctl = uvicorn.Server(uvicorn.Config(_control_app(smsc), log_level="warning",
                                        access_log=False, lifespan="off"))
    pump = asyncio.create_task(smsc.pump())
    print(json.dumps({"smpp_port": smpp_port, "control_port": sock.getsockname()[1]}),
          flush=True)
    try:
        await ctl.serve(sockets=[sock])
    finally:
        pump.cancel()
        server.close()
        smsc.flush_record()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Loopback SMSC (simulator)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--system-id", default="hygie")
    parser.add_argument("--password", default="hygie")
    parser.add_argument("--dlr-delay-ms", type=int, default=0)
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args(argv)
    config = SmscConfig(system_id=args.system_id, password=args.password,
                        dlr_delay_ms=args.dlr_delay_ms)
    try:
        asyncio.run(serve(args.host, args.port, args.control_port, config, args.record))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
