"""Gateway fixtures: a migrated platform on each engine, a real gateway process, an
MLLP client.

The gateway runs as ``hygie devices listen`` in a child process (as in production),
on a free loopback port, against the test's database; tests talk to it over TCP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security.installation import install as install_security
from hygie.store.interactions import StoreContext
from hygie.store.migrations import upgrade
from hygie.store.server import open_store

START, END = b"\x0b", b"\x1c\r"


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    settings = load_settings(
        database_url=database_url, var_dir=tmp_path / "var", base_url="http://testserver"
    )
    platform = open_platform(settings)
    upgrade(platform.engine)
    # as deployed: ``hygie devices listen`` (the gateway the tests start) writes through
    # the security layer, so this side reads through it too
    install_security(platform)
    yield platform
    platform.close()


@pytest.fixture
def store(platform: Platform) -> StoreContext:
    return open_store(platform)


@dataclass
class Ack:
    """An acknowledgment as received: MSA-1, MSA-2, and the ERR fields."""

    raw: bytes
    segments: list[list[str]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: bytes, encoding: str = "utf-8") -> Ack:
        text = raw.decode(encoding)
        return cls(raw, [s.split("|") for s in text.split("\r") if s])

    def segment(self, name: str) -> list[str]:
        return next(s for s in self.segments if s[0] == name)

    @property
    def code(self) -> str:
        return self.segment("MSA")[1]

    @property
    def control_id(self) -> str:
        return self.segment("MSA")[2]

    @property
    def err(self) -> list[str] | None:
        return next((s for s in self.segments if s[0] == "ERR"), None)


class MllpClient:
    """A blocking MLLP sender, as a simple device would be."""

    def __init__(self, port: int, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, message: str | bytes, encoding: str = "utf-8") -> None:
        data = message.encode(encoding) if isinstance(message, str) else message
        self.sock.sendall(START + data + END)

    def receive(self, encoding: str = "utf-8") -> Ack:
        while END not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the gateway closed the connection")
            self.buffer += chunk
        frame, self.buffer = self.buffer.split(END, 1)
        assert frame.startswith(START)
        return Ack.parse(frame[1:], encoding)

    def exchange(self, message: str | bytes, encoding: str = "utf-8") -> Ack:
        self.send(message, encoding)
        return self.receive(encoding)

    def close(self) -> None:
        self.sock.close()


class Gateway:
    """A ``hygie devices listen`` process on the test's database."""

    def __init__(self, platform: Platform, mqtt: dict[str, str] | None = None) -> None:
        self.settings = platform.settings
        self.mqtt = mqtt
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = Path(self.settings.var_dir) / "gateway.log"

    def start(self, port: int = 0) -> None:
        env = dict(os.environ)
        env.update(
            {
                "HYGIE_DATABASE_URL": self.settings.database_url,
                "HYGIE_VAR_DIR": str(self.settings.var_dir),
            }
        )
        port_file = Path(self.settings.var_dir) / "devices" / "mllp.port"
        port_file.unlink(missing_ok=True)
        args = [sys.executable, "-m", "hygie", "devices", "listen", "--port", str(port)]
        if self.mqtt is None:
            args.append("--no-mqtt")
        else:
            config = Path(self.settings.var_dir) / "devices.toml"
            config.write_text(
                "[hygie]\n" + "".join(f'devices_{k} = "{v}"\n' for k, v in self.mqtt.items())
            )
            env["HYGIE_CONFIG"] = str(config)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start: " + self.log.read_text())
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def client(self) -> MllpClient:
        return MllpClient(self.port)

    def kill(self) -> None:
        """kill -9 the gateway process (its mapper notices and ends by itself)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture
def gateway(platform: Platform) -> Iterator[Gateway]:
    gw = Gateway(platform)
    gw.start()
    yield gw
    gw.stop()
