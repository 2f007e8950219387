"""Phone calls to a SIP user agent on loopback (pjsua2 in a second process): digits as
RFC 4733 events or SIP INFO become answers; voicemail and busy are not answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hygie.channels import Channel, OutboundMessage, Status
from hygie.channels.peers import run_phone
from hygie.channels.service import Channels
from hygie.channels.worker import Dispatcher
from hygie.platform import Platform

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (make test installs it; apt-get install espeak-ng)")


@pytest.fixture
def voice(sqlite_platform: Platform, make_channels: Callable[..., Channels]
          ) -> Iterator[Callable[[str], tuple[Channels, Dispatcher]]]:
    from hygie.channels.sip import SipSender

    made: list[Dispatcher] = []

    def make(trunk: str) -> tuple[Channels, Dispatcher]:
        ch = make_channels(sqlite_platform, sip_trunk=trunk, sip_digit_timeout_s=1.5,
                           sip_prompt_repeats=1, sip_ring_timeout_s=5)
        d = Dispatcher(ch, {Channel.VOICE: SipSender(ch.settings).start()})
        made.append(d)
        return ch, d

    yield make
    for d in made:
        d.stop()


def call(i: int) -> OutboundMessage:
    return OutboundMessage(f"call-{i}", "mobilization:plan-blanc", Channel.VOICE,
                           "+33612345678", "Plan blanc déclenché. Tapez 1 si vous venez, "
                           "2 si vous ne pouvez pas.", expected_answers=["1", "2"])


@pytest.mark.parametrize("method", ["rfc4733", "info"])
def test_key_press_is_the_answer(voice: Callable[[str], tuple[Channels, Dispatcher]],
                                 tmp_path: Path, method: str) -> None:
    with run_phone(tmp_path / "calls.jsonl", digits="2", method=method) as phone:
        ch, d = voice(phone.trunk)
        record = ch.enqueue(call(1))
        answers = []
        ch.register_handler("mobilization:", answers.append)
        d.drain(timeout_s=30, until=lambda: ch.get(record.id).status is Status.ANSWERED)
        d.housekeeping_once()
        done = ch.get(record.id)
        assert done.status is Status.ANSWERED and done.answer == "2"
        assert [e.status for e in done.timeline] == ["queued", "delivered", "answered"]
        assert [(a.value, a.channel) for a in answers] == [("2", Channel.VOICE)]
        [logged] = phone.calls()
        assert logged["answered"] and logged["digits"] == "2" and logged["method"] == method


@pytest.mark.parametrize(("mode", "error"), [("voicemail", "no key press"), ("busy", "486")])
def test_no_key_press_is_no_answer(voice: Callable[[str], tuple[Channels, Dispatcher]],
                                   tmp_path: Path, mode: str, error: str) -> None:
    with run_phone(tmp_path / "calls.jsonl", mode=mode) as phone:
        ch, d = voice(phone.trunk)
        record = ch.enqueue(call(2))
        d.drain(timeout_s=30, until=lambda: ch.get(record.id).status is Status.FAILED)
        done = ch.get(record.id)
        assert done.status is Status.FAILED and error in (done.error or "")
        assert done.answer is None


def test_the_endpoint_prints_nothing_on_standard_output() -> None:
    """pjlib's start-up lines would land in the console of ``hygie serve``."""
    code = ("from hygie.channels.sip import start_endpoint\n"
            "ep, port = start_endpoint(0, 'test', '127.0.0.1')\n"
            "print('port', port)\n"
            "ep.libDestroy()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.startswith("port ") and "pjlib" not in out, out
