"""The loopback simulators a platform starts for itself (demo, first run).

With ``simulator = true`` (the default), ``hygie serve`` starts the loopback SMSC, the
mail sink and a SIP phone that presses 1, each as its own process on the ports the
settings name, and the dispatcher talks to them: nobody needs an operator to try the
platform, and nothing leaves the machine. What they received is shown on the
``/channels/simulator`` page. A simulator whose port is already taken (another
instance running) is not started again. Starting waits until each one listens (a few
tenths of a second): the dispatcher's first connection then finds its peer there,
instead of failing and retrying with a warning.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from hygie.channels.settings import ChannelSettings
from hygie.config import Settings

log = logging.getLogger("hygie.channels")

#: How long starting waits for a simulator to listen.
START_TIMEOUT_S = 15.0


def simulator_dir(settings: Settings) -> Path:
    return Path(settings.var_dir) / "channels" / "simulator"


def _listening(host: str, port: int, udp: bool = False) -> bool:
    """Whether something serves ``port``: a TCP port that accepts a connection, a UDP
    port that is bound. TCP is probed by connecting, not binding: a probe that binds
    the port would hold it for an instant, in which the simulator starting up could
    fail to bind it, and the connections of an earlier run lingering in TIME_WAIT
    would read as a server."""
    if not udp:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
        except OSError:
            return False
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def start_simulators(settings: Settings, cs: ChannelSettings) -> list[subprocess.Popen[bytes]]:
    """Start the simulators the settings point at; return the processes started."""
    folder = simulator_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started: list[subprocess.Popen[bytes]] = []
    #: (module and arguments, port it listens on, UDP or not)
    commands: list[tuple[list[str], int, bool]] = []
    if _loopback(cs.smpp_host) and not _listening("127.0.0.1", cs.smpp_port):
        smsc = ["hygie.channels.smsc", "--port", str(cs.smpp_port), "--control-port", "0",
                "--system-id", cs.smpp_system_id, "--password", cs.smpp_password,
                "--dlr-delay-ms", "1500", "--record", str(folder / "sms.jsonl")]
        commands.append((smsc, cs.smpp_port, False))
    if _loopback(cs.smtp_host) and not _listening("127.0.0.1", cs.smtp_port):
        commands.append((["hygie.channels.mailsink", "--port", str(cs.smtp_port),
                          "--dir", str(folder / "mail")], cs.smtp_port, False))
    host, _, port = cs.sip_trunk.rpartition(":")
    if _loopback(host) and port.isdigit() and not _listening("127.0.0.1", int(port), udp=True):
        try:
            import pjsua2  # noqa: F401
        except ImportError:
            log.info("no SIP phone simulator: the hygie[voice] extra is not installed")
        else:
            commands.append((["hygie.channels.sipua", "--port", port, "--digits", "1",
                              "--delay", "2", "--record", str(folder / "calls.jsonl")],
                             int(port), True))
    for args, _port, _udp in commands:
        started.append(subprocess.Popen([sys.executable, "-m", *args], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + START_TIMEOUT_S
    for proc, (args, port, udp) in zip(started, commands, strict=True):
        name = args[0].rsplit(".", 1)[1]
        if udp:  # nothing connects to the phone at start; a bind probe could race it
            log.info("started the %s simulator on port %d", name, port)
            continue
        while (not _listening("127.0.0.1", port) and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
        if _listening("127.0.0.1", port):
            log.info("started the %s simulator on port %d", name, port)
        else:
            log.warning("the %s simulator is not listening on port %d", name, port)
    return started


def stop_simulators(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop processes started for the platform: all asked to end, then each given ten
    seconds before it is killed (the demo's ICU processes are stopped the same way)."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
