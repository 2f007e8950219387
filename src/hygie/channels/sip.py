"""Phone calls over SIP that speak a message and collect the keys pressed.

The SIP and RTP stack is PJSIP (``pjsua2``, the ``hygie[voice]`` extra): it places
the call (RFC 3261), negotiates the audio and ``telephone-event`` (RFC 4733), plays
the prompt and reports each digit, whether it came as RFC 4733 events or as SIP INFO
``application/dtmf-relay`` (the fallback some trunks use). The prompt is spoken by
Debian's ``espeak-ng`` into a WAV file before dialling.

A call counts as answered only when a key was pressed: a call picked up by voicemail
hears the prompt, presses nothing, and ends ``failed`` ("no key press"). pjsua2
allows one endpoint per process, driven here from one thread that owns it; ``send``
hands a call to that thread and waits for its outcome.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj

from hygie.channels.errors import ConfigurationError
from hygie.channels.model import CALL_CONNECTED, Envelope, Receipt, Status
from hygie.channels.settings import ChannelSettings

log = logging.getLogger("hygie.channels.sip")

#: SIP final responses meaning "the trunk or network, not the person": retried.
_RETRY_CODES = {408, 500, 502, 503, 504}


def speak_to_wav(text: str, path: Path, voice: str = "fr") -> Path:
    """Render ``text`` with espeak-ng into a 16-bit mono WAV file."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigurationError("espeak-ng is needed to speak messages "
                                 "(Debian: apt-get install espeak-ng)")
    subprocess.run([exe, "-v", voice, "-s", "150", "-w", str(path), text], check=True,
                   capture_output=True, timeout=60)
    return path


@contextlib.contextmanager
def _start_up_lines_dropped() -> Iterator[None]:
    """pjlib prints its start-up lines on the process's standard output before any log
    configuration can apply (there is none before ``libCreate``): while the endpoint is
    created, the standard output goes to /dev/null, and C's buffer is flushed there."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no standard output at all
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def start_endpoint(port: int, name: str, bind: str = "") -> tuple[pj.Endpoint, int]:
    """Create the process's pjsua2 endpoint (no audio device, events polled by the
    caller's thread); return it and its SIP UDP port. ``bind`` is the address to
    listen on (empty: every interface, to reach a real trunk)."""
    ep = pj.Endpoint()
    with _start_up_lines_dropped():
        ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = name
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.hasIoqueue = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = port
    tcfg.boundAddress = bind
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    local = ep.transportGetInfo(tid).localName
    return ep, int(local.rsplit(":", 1)[1])


def account_config(user: str, domain: str, bind: str = "") -> pj.AccountConfig:
    """A local account with no registrar (calls go straight to the trunk); RTP on a
    free port of ``bind``."""
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{user}@{domain}"
    acfg.mediaConfig.transportConfig.port = 0
    acfg.mediaConfig.transportConfig.boundAddress = bind
    return acfg


@dataclass
class _Job:
    envelope: Envelope
    wav: Path
    future: Future[Receipt]
    call: Any = None
    player: Any = None
    started: float = field(default_factory=time.monotonic)
    connected: float | None = None
    prompt_end: float | None = None
    plays: int = 0
    digits: str = ""
    last_digit: float | None = None
    final_code: int | None = None
    ended: bool = False


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(self, account: Any, job: _Job) -> None:
        super().__init__(account)
        self.job = job

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.job.connected is None:
            self.job.connected = time.monotonic()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.job.final_code = info.lastStatusCode
            self.job.ended = True

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for i, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and \
                    media.status == pj.PJSUA_CALL_MEDIA_ACTIVE and self.job.player is None:
                player = pj.AudioMediaPlayer()
                player.createPlayer(str(self.job.wav), pj.PJMEDIA_FILE_NO_LOOP)
                player.startTransmit(self.getAudioMedia(i))
                self.job.player = player
                self.job.plays = 1

    def onDtmfDigit(self, prm: Any) -> None:
        self.job.digits += prm.digit
        self.job.last_digit = time.monotonic()


class SipSender:
    """The voice transport: one pjsua2 endpoint in its own thread."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="hygie-voice-"))
        self.port = 0

    def start(self) -> SipSender:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sip-endpoint", daemon=True)
            self._thread.start()
            self._ready.wait(10)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def send(self, envelope: Envelope) -> Receipt:
        if self._error is not None or not self._ready.is_set():
            return Receipt(Status.QUEUED, error="SIP endpoint not started", peer_down=True)
        wav = self._tmp / f"{envelope.message_id}.wav"
        try:
            speak_to_wav(envelope.message.text, wav, self.settings.tts_voice)
        except ConfigurationError as exc:
            return Receipt(Status.FAILED, error=str(exc))
        except (OSError, subprocess.SubprocessError):
            return Receipt(Status.QUEUED, error="the prompt could not be rendered")
        job = _Job(envelope, wav, Future())
        self._jobs.put(job)
        s = self.settings
        limit = s.sip_ring_timeout_s + (s.sip_digit_timeout_s + 60) * max(1, s.sip_prompt_repeats)
        try:
            return job.future.result(timeout=limit)
        finally:
            wav.unlink(missing_ok=True)

    # --- the endpoint's thread -------------------------------------------------
    def _run(self) -> None:
        try:
            host = self.settings.sip_trunk.rpartition(":")[0]
            loopback = host in ("127.0.0.1", "localhost")
            bind = "127.0.0.1" if loopback else ""
            ep, self.port = start_endpoint(self.settings.sip_local_port, "Hygie", bind=bind)
            account = pj.Account()
            account.create(account_config(self.settings.sip_from_user,
                                          "127.0.0.1" if loopback else host, bind))
        except Exception as exc:  # pjsua2 raises its own Error type
            self._error = exc
            log.error("SIP endpoint could not start: %s", type(exc).__name__)
            self._ready.set()
            return
        self._ready.set()
        active: list[_Job] = []
        try:
            while not self._stop.is_set() or active:
                while len(active) < self.settings.sip_max_calls and not self._stop.is_set():
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    self._dial(account, job)
                    active.append(job)
                ep.libHandleEvents(20)
                for job in list(active):
                    if self._advance(job):
                        active.remove(job)
                if self._stop.is_set():
                    for job in active:
                        self._hangup(job)
        finally:
            for job in active:
                if not job.future.done():
                    job.future.set_result(Receipt(Status.QUEUED, error="endpoint stopped"))
            ep.hangupAllCalls()
            ep.libHandleEvents(50)
            account.shutdown()
            ep.libDestroy()

    def _dial(self, account: Any, job: _Job) -> None:
        number = job.envelope.message.recipient
        uri = f"sip:{number}@{self.settings.sip_trunk}"
        job.call = _Call(account, job)
        try:
            job.call.makeCall(uri, pj.CallOpParam(True))
        except Exception:  # pjsua2.Error: the URI or the transport was refused
            job.ended, job.final_code = True, 503

    def _hangup(self, job: _Job) -> None:
        if job.call is not None and not job.ended:
            try:
                job.call.hangup(pj.CallOpParam())
            except Exception:  # already disconnected
                job.ended = True

    def _advance(self, job: _Job) -> bool:
        """Move one call on; True when its outcome is known."""
        s, now = self.settings, time.monotonic()
        expected = [str(a) for a in (job.envelope.message.expected_answers or [])]
        if job.connected is None and not job.ended and now - job.started > s.sip_ring_timeout_s:
            self._hangup(job)
            job.final_code = job.final_code or 408
        if job.connected is not None and not job.ended:
            complete = (job.digits.endswith("#") or (job.digits and (
                job.digits in expected or not expected or len(job.digits) >= max(
                    len(e) for e in expected))) or (job.last_digit and now - job.last_digit > 3))
            if complete:
                self._hangup(job)
            elif job.player is not None and job.prompt_end is None:
                duration = _wav_seconds(job.wav)
                job.prompt_end = job.connected + duration
            elif job.prompt_end is not None and now > job.prompt_end + s.sip_digit_timeout_s \
                    and not job.digits:
                if job.plays < s.sip_prompt_repeats:
                    job.player.setPos(0)
                    job.plays += 1
                    job.prompt_end = now + _wav_seconds(job.wav)
                else:
                    self._hangup(job)
        if not job.ended:
            return False
        job.future.set_result(self._receipt(job))
        job.call = None
        job.player = None
        return True

    def _receipt(self, job: _Job) -> Receipt:
        digits = job.digits.rstrip("#")
        if job.connected is None:
            code = job.final_code or 0
            status = Status.QUEUED if code in _RETRY_CODES else Status.FAILED
            return Receipt(status, error=f"call not answered (SIP {code})")
        if digits:
            return Receipt(Status.ANSWERED, digits=digits, detail=CALL_CONNECTED)
        return Receipt(Status.FAILED, error="no key press (voicemail or no answer)",
                       detail=CALL_CONNECTED)


def _wav_seconds(path: Path) -> float:
    import wave

    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, wave.Error):
        return 5.0
