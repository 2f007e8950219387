"""A loopback SMTP server that keeps what it is sent: the platform's mail sink.

Tests, the benchmark and the demo send e-mail to it instead of to anyone's mailbox.
It is aiosmtpd with a handler that writes each message as an ``.eml`` file, with a
JSON line per message in ``index.jsonl``, and can offer STARTTLS (``--tls-cert``,
``--tls-key``) and refuse recipients of a domain (``--refuse-domain``) to exercise
the sender's error paths. Run it with ``hygie channels mail-sink`` or ``python -m
hygie.channels.mailsink``; it prints its port as JSON.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import signal
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class SinkHandler:
    """Stores every accepted message under ``directory``."""

    def __init__(self, directory: Path, refuse_domain: str | None = None) -> None:
        self.directory = directory
        self.refuse_domain = refuse_domain
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.refuse_domain and address.lower().endswith("@" + self.refuse_domain):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.eml"
        (self.directory / name).write_bytes(raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        entry = {"file": name, "at": time.time(), "from": envelope.mail_from,
                 "to": list(envelope.rcpt_tos), "subject": str(msg.get("Subject", "")),
                 "message_id": str(msg.get("Message-ID", "")),
                 "tls": bool(session.ssl)}
        with self._lock, (self.directory / "index.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return "250 Message accepted for delivery"


def read_index(directory: Path) -> list[dict[str, Any]]:
    """The messages the sink holds, oldest first."""
    path = directory / "index.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def start_sink(directory: Path, host: str = "127.0.0.1", port: int = 0,
               tls: tuple[Path, Path] | None = None,
               refuse_domain: str | None = None) -> Controller:
    """Start the sink in a thread of this process; ``controller.port`` is its port."""
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
    controller = Controller(SinkHandler(directory, refuse_domain), hostname=host,
                            port=port or _free_port(host), tls_context=context,
                            require_starttls=False, server_hostname="localhost")
    controller.start()
    return controller


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback SMTP sink (simulator)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--tls-cert", type=Path, default=None)
    parser.add_argument("--tls-key", type=Path, default=None)
    parser.add_argument("--refuse-domain", default=None)
    args = parser.parse_args(argv)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert and args.tls_key else None
    controller = start_sink(args.dir, args.host, args.port, tls, args.refuse_domain)
    print(json.dumps({"smtp_port": controller.port}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
