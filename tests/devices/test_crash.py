"""kill -9 of the gateway in the middle of a stream, then the sender resends.

Afterwards every acknowledged message is in the store, and none is stored twice: the
journal committed it before the acknowledgment, the mapper of the restarted gateway
takes what was pending, and the resent copies are recognised by (sender, MSH-10).
"""

from __future__ import annotations

import threading
import time

from hygie.devices.fhir import observation_id
from hygie.devices.journal import open_journal
from hygie.devices.receipt import read_header
from hygie.platform import Platform
from hygie.store.interactions import StoreContext
from tests.devices.conftest import Gateway, MllpClient
from tests.devices.corpus import monitor


class Sender(threading.Thread):
    """Sends numbered messages, resending the current one until acknowledged."""

    def __init__(self, gateway: Gateway, total: int) -> None:
        super().__init__(daemon=True)
        self.gateway = gateway
        self.total = total
        self.acked: list[str] = []
        self.resent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            client: MllpClient | None = None
            for i in range(self.total):
                control = f"KILL-{i:05d}"
                # half the stream asks for a commit ack only, half for an application ack
                message = (
                    monitor(control, hr=str(60 + i % 50), accept="AL", app="NE")
                    if i % 2
                    else monitor(control, hr=str(60 + i % 50))
                )
                attempts = 0
                while True:
                    try:
                        if client is None:
                            client = MllpClient(self.gateway.port, timeout=10)
                        ack = client.exchange(message)
                        if ack.code in ("AA", "CA") and ack.control_id == control:
                            self.acked.append(control)
                            break
                        raise AssertionError(f"unexpected ack {ack.code} for {control}")
                    except (OSError, ConnectionError):
                        attempts += 1
                        self.resent += 1
                        if client is not None:
                            client.close()
                        client = None
                        if attempts > 200:
                            raise
                        time.sleep(0.1)
            if client is not None:
                client.close()
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_kill_9_during_a_stream(platform: Platform, store: StoreContext) -> None:
    gateway = Gateway(platform)
    gateway.start()
    sender = Sender(gateway, total=80)
    journal = open_journal(platform)
    try:
        sender.start()
        while len(sender.acked) < 30 and sender.is_alive():
            time.sleep(0.01)
        acked_before = len(sender.acked)
        gateway.kill()
        time.sleep(0.5)
        gateway.start()  # a new port: the sender reconnects to it
        sender.join(120)
        assert not sender.is_alive() and sender.error is None, sender.error
        # the restarted gateway's mapper drains what was committed but not yet mapped
        deadline = time.monotonic() + 60
        while journal.counts().get("pending", 0) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        gateway.stop()
    assert acked_before >= 30 and sender.resent >= 1
    assert len(sender.acked) == 80
    assert journal.counts() == {"stored": 80}
    sender_id = read_header(monitor("x").encode())[0].sender
    repo = store.repository
    for control in sender.acked:
        for obx in (4, 11):
            stored = repo.read("Observation", observation_id(sender_id, control, obx))
            assert stored.version == 1
    page = repo.search("Observation", [("_count", "0"), ("_total", "accurate")])
    assert page.total == 80 * 8
