"""A dispatcher process killed mid-batch: its successor resends nothing twice and
drops nothing."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hygie.channels import Channel, OutboundMessage
from hygie.channels.peers import SmscHandle
from hygie.channels.service import Channels
from hygie.platform import Platform


def start_worker(platform: Platform, smsc: SmscHandle, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HYGIE_DATABASE_URL": platform.settings.database_url,
           "HYGIE_VAR_DIR": str(platform.settings.var_dir),
           "HYGIE_CHANNELS_SMPP_PORT": str(smsc.smpp_port), "HYGIE_CHANNELS_LEASE_S": "2",
           "HYGIE_CHANNELS_IN_DOUBT_GRACE_S": "3", "HYGIE_CHANNELS_POLL_S": "0.05",
           "HYGIE_CHANNELS_BATCH_SIZE": "100", "HYGIE_CHANNELS_RETRY_BASE_S": "0.2"}
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "hygie", "channels", "worker",
                                 "--only", "sms", "--no-mirror"], env=env, stdout=fh, stderr=fh)


def test_killed_sender_process(platform: Platform, smsc: SmscHandle, tmp_path: Path,
                               make_channels: Callable[..., Channels]) -> None:
    ch = make_channels(platform)
    n = 400
    ch.enqueue_many([OutboundMessage(f"k{i}", "mobilization:wave-1", Channel.SMS,
                                     f"+336{20000000 + i}", f"Plan blanc, rappel {i}")
                     for i in range(n)])
    smsc.configure(max_rate=150)  # so that the kill lands mid-batch
    first = start_worker(platform, smsc, tmp_path / "worker.log")
    deadline = time.monotonic() + 30
    while smsc.state()["submit_sm"] < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    sent_before = smsc.state()["submit_sm"]
    assert 0 < sent_before < n, "the kill must land mid-batch"
    smsc.configure(max_rate=0)
    second = start_worker(platform, smsc, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while ch.outbox.counts().get("delivered", 0) < n and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    assert ch.outbox.counts() == {"delivered": n}, (tmp_path / "worker.log").read_text()[-2000:]
    seen = collections.Counter(s["text"] for s in smsc.submissions())
    assert len(seen) == n
    assert [t for t, k in seen.items() if k > 1] == []
