"""Start the loopback peers as processes: the SMSC, the mail sink, a SIP phone.

For tests (of this package and of the services built on it), the benchmark and the
demo. Each ``run_*`` is a context manager that starts the peer as its own process,
waits until it listens, yields a handle with its port(s), and stops it::

    with run_smsc(tmp_path) as smsc, run_mail_sink(tmp_path / "mail") as sink:
        settings = {"smpp_port": smsc.smpp_port, "smtp_port": sink.port}
        ...
        smsc.inject_mo([{"from": "+33612345678", "text": "OUI"}])
        assert smsc.submissions()[0]["text"] == "..."

Nothing here is needed in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx


def _read_ports(proc: subprocess.Popen[str], timeout_s: float = 20.0) -> dict[str, int]:
    """The JSON line a peer prints once it listens (pjsua may print log lines before)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"peer exited with status {proc.returncode}")
            continue
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise TimeoutError("peer did not start in time")


def _spawn(module: str, args: list[str], log: IO[str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                            stderr=log or subprocess.DEVNULL, text=True, env=env)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@dataclass
class SmscHandle:
    """A running loopback SMSC and its control API."""

    process: subprocess.Popen[str]
    smpp_port: int
    control_port: int
    record: Path | None = None
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def state(self) -> dict[str, Any]:
        return self._http.get(self.control + "/state").json()  # type: ignore[no-any-return]

    def submissions(self, since: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self._http.get(self.control + "/submissions",
                                  params={"since": since + len(out)}).json()
            out += page
            if len(page) < 10000:
                return out

    def configure(self, **values: Any) -> None:
        self._http.post(self.control + "/config", json=values).raise_for_status()

    def inject_mo(self, messages: list[dict[str, str]]) -> None:
        """Queue replies from phones: ``[{"from": "+336...", "text": "OUI"}]``."""
        self._http.post(self.control + "/mo", json=messages).raise_for_status()

    def drop_links(self) -> None:
        """Cut every SMPP connection at once (the client must reconnect)."""
        self._http.post(self.control + "/drop").raise_for_status()


@contextlib.contextmanager
def run_smsc(record_dir: Path | None = None, port: int = 0, control_port: int = 0,
             dlr_delay_ms: int = 0) -> Iterator[SmscHandle]:
    args = ["--port", str(port), "--control-port", str(control_port),
            "--dlr-delay-ms", str(dlr_delay_ms)]
    record = record_dir / "sms.jsonl" if record_dir is not None else None
    if record is not None:
        args += ["--record", str(record)]
    proc = _spawn("hygie.channels.smsc", args)
    try:
        ports = _read_ports(proc)
        handle = SmscHandle(proc, ports["smpp_port"], ports["control_port"], record)
        yield handle
        handle._http.close()
    finally:
        _stop(proc)


@dataclass
class MailSinkHandle:
    process: subprocess.Popen[str]
    port: int
    directory: Path

    def messages(self) -> list[dict[str, Any]]:
        from hygie.channels.mailsink import read_index

        return read_index(self.directory)


@contextlib.contextmanager
def run_mail_sink(directory: Path, port: int = 0, tls: tuple[Path, Path] | None = None,
                  refuse_domain: str | None = None) -> Iterator[MailSinkHandle]:
    args = ["--port", str(port), "--dir", str(directory)]
    if tls is not None:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    if refuse_domain:
        args += ["--refuse-domain", refuse_domain]
    proc = _spawn("hygie.channels.mailsink", args)
    try:
        yield MailSinkHandle(proc, _read_ports(proc)["smtp_port"], directory)
    finally:
        _stop(proc)


@dataclass
class PhoneHandle:
    process: subprocess.Popen[str]
    port: int
    record: Path

    @property
    def trunk(self) -> str:
        return f"127.0.0.1:{self.port}"

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]


@contextlib.contextmanager
def run_phone(record: Path, digits: str = "1", method: str = "rfc4733", mode: str = "answer",
              delay_s: float = 0.5, port: int = 0) -> Iterator[PhoneHandle]:
    """A SIP user agent that answers and presses ``digits`` (see ``sipua.py``)."""
    proc = _spawn("hygie.channels.sipua", ["--port", str(port), "--digits", digits,
                                           "--method", method, "--mode", mode,
                                           "--delay", str(delay_s), "--record", str(record)])
    try:
        yield PhoneHandle(proc, _read_ports(proc)["sip_port"], record)
    finally:
        _stop(proc)


def self_signed_certificate(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A certificate and key for a loopback TLS server (tests): returns (cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
