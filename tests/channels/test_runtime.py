"""What `hygie serve` starts: the simulators and the dispatcher, and what the CLI does."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.channels import Channel, OutboundMessage, Status, channels_for
from hygie.channels.simulators import start_simulators, stop_simulators
from hygie.cli import main
from hygie.security.tokens import issue_service_token
from tests.channels.conftest import open_test_platform


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_app_built_by_a_test_starts_nothing(tmp_path: Path) -> None:
    platform = open_test_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                                  smpp_port=free_port())
    with TestClient(create_app(platform=platform)):
        assert not (tmp_path / "var" / "channels" / "simulator").exists()
    platform.close()


def test_serve_starts_simulators_and_dispatcher(tmp_path: Path) -> None:
    platform = open_test_platform(
        f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var", autostart=True,
        smpp_port=free_port(), smtp_port=free_port(),
        sip_trunk=f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", poll_s=0.05)
    voice = shutil.which("espeak-ng") is not None
    with TestClient(create_app(platform=platform), base_url="http://testserver") as client:
        ch = channels_for(platform)
        messages = [
            OutboundMessage("s", "followup:1", Channel.SMS, "0612345678", "Bonjour"),
            OutboundMessage("e", "followup:1", Channel.EMAIL, "a@b.fr", "Bonjour",
                            subject="Rappel"),
        ]
        if voice:
            messages.append(OutboundMessage("v", "mobilization:1", Channel.VOICE, "0612345679",
                                            "Tapez 1", expected_answers=["1", "2"]))
        ids = ch.enqueue_many(messages)
        wanted = [Status.DELIVERED, Status.SUBMITTED, Status.ANSWERED][:len(ids)]
        deadline = time.monotonic() + 45
        while [ch.get(i).status for i in ids] != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [ch.get(i).status for i in ids] == wanted
        token = issue_service_token(platform, subject="t", scope="system/*.rs")
        page = client.get("/channels/simulator", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200
        assert "Bonjour" in page.text and "Rappel" in page.text
    platform.close()


def test_simulators_listen_once_started(tmp_path: Path) -> None:
    """The dispatcher's first connection finds the SMSC and the mail sink there."""
    platform = open_test_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var",
                                  smpp_port=free_port(), smtp_port=free_port(),
                                  sip_trunk="203.0.113.1:5060")  # not loopback: no phone
    cs = channels_for(platform).settings
    processes = start_simulators(platform.settings, cs)
    try:
        assert len(processes) == 2
        for port in (cs.smpp_port, cs.smtp_port):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        stop_simulators(processes)
        platform.close()


def test_a_port_held_but_not_served_does_not_pass_for_a_simulator() -> None:
    """A port still held (bound, nobody accepting: like an earlier run's connections in
    TIME_WAIT) must not stop the simulator from being started."""
    from hygie.channels.simulators import _listening

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert not _listening("127.0.0.1", port)
        held.listen()
        assert _listening("127.0.0.1", port)


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_cli_send_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             channel: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    open_test_platform(url, tmp_path / "var").close()
    monkeypatch.setenv("HYGIE_DATABASE_URL", url)
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    to = "0612345678" if channel == "sms" else "a@b.fr"
    sent = runner.invoke(main, ["channels", "send", "--channel", channel, "--to", to,
                                "--text", "Bonjour", "--subject", "Objet", "--key", "k1"])
    assert sent.exit_code == 0, sent.output
    assert sent.output.strip().endswith("queued")
    bad = runner.invoke(main, ["channels", "send", "--channel", channel, "--to", "???",
                               "--text", "Bonjour", "--subject", "Objet"])
    assert bad.exit_code != 0 and "Error" in bad.output
    status = runner.invoke(main, ["channels", "status"])
    assert status.exit_code == 0 and status.output.strip() == "queued: 1"
