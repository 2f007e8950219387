"""A loopback SIP user agent standing for a phone: tests, benchmark and demo call it.

It answers every call (or rings busy), waits a moment, then presses keys, as RFC 4733
telephone-events or as SIP INFO, or plays voicemail (answers and presses nothing). It
runs as its own process (``hygie channels sip-peer`` or ``python -m
hygie.channels.sipua``), prints its SIP port as JSON, and appends one JSON line per
call to ``--record``. Built on pjsua2, like the sender.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from typing import Any

import pjsua2 as pj

from hygie.channels.sip import account_config, start_endpoint


class _Answering(pj.Call):  # type: ignore[misc]
    def __init__(self, account: Any, call_id: int, peer: Peer) -> None:
        super().__init__(account, call_id)
        self.peer = peer
        self.answered_at: float | None = None
        self.sent = False
        self.ended = False
        info = self.getInfo()
        self.record = {"to": info.localUri, "from": info.remoteUri, "at": time.time(),
                       "mode": peer.mode, "digits": "", "method": peer.method}

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.answered_at = time.monotonic()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended = True

    def press(self) -> None:
        if self.peer.method == "info":
            param = pj.CallSendDtmfParam()
            param.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            for digit in self.peer.digits:
                param.digits = digit
                self.sendDtmf(param)
        else:
            self.dialDtmf(self.peer.digits)
        self.sent = True
        self.record["digits"] = self.peer.digits


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, peer: Peer) -> None:
        super().__init__()
        self.peer = peer

    def onIncomingCall(self, prm: Any) -> None:
        call = _Answering(self, prm.callId, self.peer)
        op = pj.CallOpParam()
        op.statusCode = 486 if self.peer.mode == "busy" else 200
        if self.peer.mode == "busy":
            call.hangup(op)
            call.record["answered"] = False
            self.peer.log(call.record)
            return
        call.answer(op)
        call.record["answered"] = True
        self.peer.calls.append(call)


class Peer:
    """The user agent's behaviour and its record of calls."""

    def __init__(self, digits: str, method: str, mode: str, delay_s: float,
                 record: Path | None) -> None:
        self.digits, self.method, self.mode, self.delay_s = digits, method, mode, delay_s
        self.record_path = record
        self.calls: list[_Answering] = []

    def log(self, entry: dict[str, Any]) -> None:
        if self.record_path is not None:
            with self.record_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    def tick(self) -> None:
        now = time.monotonic()
        for call in list(self.calls):
            if call.ended:
                self.log(call.record)
                self.calls.remove(call)
            elif (self.mode == "answer" and not call.sent and call.answered_at is not None
                  and now - call.answered_at >= self.delay_s):
                try:
                    call.press()
                except Exception:  # the media may not be up yet: try on the next tick
                    continue


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback SIP user agent (simulator)")
    parser.add_argument("--port", type=int, default=5070)
    parser.add_argument("--digits", default="1")
    parser.add_argument("--method", choices=["rfc4733", "info"], default="rfc4733")
    parser.add_argument("--mode", choices=["answer", "voicemail", "busy"], default="answer")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds before pressing")
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args(argv)
    ep, port = start_endpoint(args.port, "Hygie-SIP-peer", bind="127.0.0.1")
    peer = Peer(args.digits, args.method, args.mode, args.delay, args.record)
    account = _Account(peer)
    account.create(account_config("phone", f"127.0.0.1:{port}", bind="127.0.0.1"))
    print(json.dumps({"sip_port": port}), flush=True)
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop["now"]:
        ep.libHandleEvents(20)
        peer.tick()
    ep.hangupAllCalls()
    ep.libHandleEvents(100)
    account.shutdown()
    ep.libDestroy()


if __name__ == "__main__":
    main()
