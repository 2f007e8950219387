"""``hygie devices listen``: the MLLP server, the MQTT subscriber and the mapper process.

The mapper runs in its own process, at a lower priority: the receipt path (frame,
header check, group commit, commit acknowledgment) keeps the CPU under a burst, and
the journal absorbs what the mapper has not written to the store yet. The two talk
over two pipes: the server wakes the mapper when it commits new messages; the mapper
sends back each message's outcome, which the server records in the journal with its
next commit and then turns into application acknowledgments (the server is thus the
journal's only regular writer). The journal stays the source of truth: a mapper started
afresh (after a crash, or a kill of the whole gateway) takes the pending rows where
they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import orjson
from sqlalchemy import event

from hygie.config import Settings
from hygie.devices.journal import Outcome, open_journal
from hygie.devices.model import DevicesSettings, journal_dir
from hygie.platform import adopt_open_hooks, open_hook_names, open_platform
from hygie.store.model import now_us

log = logging.getLogger("hygie.devices")


def run_mapper(
    settings: Settings,
    dsettings: DevicesSettings,
    wakes: Connection,
    results: Connection,
    open_hooks: Sequence[str] = (),
) -> None:
    """Body of the mapper process: map pending messages until the gateway goes away.

    ``open_hooks`` are the gateway's (``platform.open_hook_names``): the store is
    opened here as the gateway would open it, through the security layer when the
    ``hygie`` command installed it (bodies sealed, accesses audited).
    """
    from hygie.devices.ingest import Mapper
    from hygie.store.server import open_store

    with contextlib.suppress(OSError):
        os.nice(dsettings.mapper_nice)
    parent = os.getppid()
    # One mapper at a time: a mapper left by a killed gateway finishes its batch and
    # exits (its parent is gone) before the new gateway's mapper starts writing.
    folder = journal_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / "mapper.lock").open("wb")
    fcntl.flock(lock, fcntl.LOCK_EX)
    adopt_open_hooks(open_hooks)
    platform = open_platform(settings)
    mapper = Mapper(
        platform.engine,
        open_store(platform).repository,
        dsettings,
        open_journal(platform),
        record=False,
    )
    next_purge = next_checkpoint = 0.0
    receipt = [0, 0.0]  # the gateway's last reported receipt rate, and when

    def read_wakes(timeout: float) -> None:
        """Wait up to ``timeout`` for wakes; keep the receipt rate they carry."""
        if not wakes.poll(timeout):
            return
        while True:
            data = wakes.recv_bytes()
            receipt[:] = [int(data or b"0"), time.monotonic()]
            if not wakes.poll():
                return

    try:
        while os.getppid() == parent:
            if time.monotonic() >= next_purge:
                keep_us = int(dsettings.journal_retention_days * 86400e6)
                with contextlib.suppress(Exception):
                    mapper.journal.purge(now_us() - keep_us)
                next_purge = time.monotonic() + 600
            if time.monotonic() >= next_checkpoint:
                with contextlib.suppress(Exception):
                    mapper.journal.checkpoint()
                next_checkpoint = time.monotonic() + 1.0
            started = time.monotonic()
            try:
                outcomes = mapper.run_once()
            except Exception:
                log.exception("mapping failed; the messages stay pending")
                time.sleep(1.0)
                continue
            if outcomes:
                results.send_bytes(
                    orjson.dumps(
                        [[o.journal_id, o.status, o.error, o.observations] for o in outcomes]
                    )
                )
                read_wakes(0)
                busy = (
                    receipt[0] > dsettings.mapper_throttle_rate
                    and time.monotonic() - receipt[1] < 1.5
                )
                if busy:
                    # a burst: the journal absorbs it, the mapper steps aside for the
                    # receipt path (its store writes would hold the acks back)
                    read_wakes((time.monotonic() - started) * dsettings.mapper_busy_ratio)
                continue
            read_wakes(0.5)
    except (EOFError, BrokenPipeError, OSError):
        pass
    finally:
        platform.close()
        lock.close()


class MapperProcess:
    """Starts, wakes and restarts the mapper process."""

    def __init__(
        self,
        settings: Settings,
        dsettings: DevicesSettings,
        on_outcomes: Callable[[list[Outcome]], None],
    ) -> None:
        self.settings = settings
        self.dsettings = dsettings
        self.on_outcomes = on_outcomes
        self._ctx = multiprocessing.get_context("spawn")
        self.process: Any = None
        self._wake: Connection | None = None
        self._results: Connection | None = None

    def start(self) -> None:
        wake_read, wake_write = self._ctx.Pipe(duplex=False)
        result_read, result_write = self._ctx.Pipe(duplex=False)
        self.process = self._ctx.Process(
            target=run_mapper,
            name="hygie-devices-mapper",
            daemon=True,
            args=(self.settings, self.dsettings, wake_read, result_write, open_hook_names()),
        )
        self.process.start()
        wake_read.close()
        result_write.close()
        os.set_blocking(wake_write.fileno(), False)
        self._wake, self._results = wake_write, result_read
        asyncio.get_running_loop().add_reader(result_read.fileno(), self._readable)

    def wake(self, receipt_rate: int = 0) -> None:
        """Tell the mapper there is work, and how many messages a second arrive."""
        if self._wake is None:
            return
        # a full pipe already holds wakes the mapper has not read: nothing is lost
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            self._wake.send_bytes(str(receipt_rate).encode())

    def _readable(self) -> None:
        assert self._results is not None
        try:
            data = self._results.recv_bytes()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self._results.fileno())
            return
        self.on_outcomes([Outcome(i, s, e, n) for i, s, e, n in orjson.loads(data)])

    async def supervise(self) -> None:
        """Restart the mapper if it dies (its pending rows wait in the journal)."""
        while True:
            await asyncio.sleep(1.0)
            if self.process is not None and not self.process.is_alive():
                log.warning(
                    "mapper process ended (exit %s); starting a new one", self.process.exitcode
                )
                self.stop()
                self.start()

    def stop(self) -> None:
        if self._results is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._results.fileno())
            self._results.close()
        if self._wake is not None:
            self._wake.close()
        self._wake = self._results = None
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


async def serve(
    settings: Settings,
    dsettings: DevicesSettings,
    *,
    mqtt: bool = True,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the gateway until SIGTERM or SIGINT."""
    from hygie.devices.mllp import MllpServer
    from hygie.devices.mqtt import MqttIngest

    platform = open_platform(settings)
    journal = open_journal(platform)
    if journal.is_sqlite:
        # Leave WAL checkpoints to the mapper (``Journal.checkpoint``): a checkpoint
        # (with its fsync) inside a journal commit would hold the acknowledgments of a
        # whole batch. And do not sleep in SQLite's busy handler (it backs off by up to
        # 100 ms): the journal retries every millisecond itself (``Journal.append``).
        @event.listens_for(journal.engine, "connect")
        def _receipt_connection(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")
            dbapi_conn.execute("PRAGMA busy_timeout=0")

        journal.engine.dispose()  # the connection that created the table had neither
    server_ref: list[MllpServer] = []
    mapper = MapperProcess(settings, dsettings, lambda o: server_ref[0].resolve(o))
    server = MllpServer(journal, dsettings, mapper.wake)
    server_ref.append(server)
    mapper.start()
    supervisor = asyncio.get_running_loop().create_task(mapper.supervise())
    listener = await server.start(dsettings.mllp_host, dsettings.mllp_port)
    port = listener.sockets[0].getsockname()[1]
    folder = journal_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / "mqtt.subscribed"
    ready.unlink(missing_ok=True)
    ingest = None
    if mqtt:
        loop = asyncio.get_running_loop()
        ingest = MqttIngest(
            journal,
            dsettings,
            lambda: loop.call_soon_threadsafe(mapper.wake),
            on_subscribed=lambda: ready.write_text(dsettings.mqtt_topic),
        )
        ingest.start()
    # What exists now (modules, SQLAlchemy's and the platform's objects: over 100,000)
    # lives as long as the process: out of the collector's sight, a full collection
    # takes well under a millisecond instead of about 40 ms, which it spent inside a
    # journal commit and so in the acknowledgments of a whole batch.
    gc.collect()
    gc.freeze()
    # written whole, then renamed: whoever waits for the file never reads it half-written
    (folder / "mllp.port.tmp").write_text(str(port))
    os.replace(folder / "mllp.port.tmp", folder / "mllp.port")
    announce(
        f"MLLP listening on {dsettings.mllp_host}:{port}"
        + (
            f"; MQTT {dsettings.mqtt_host}:{dsettings.mqtt_port} {dsettings.mqtt_topic}"
            if mqtt
            else ""
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        listener.close()
        await listener.wait_closed()
        supervisor.cancel()
        if ingest is not None:
            ingest.stop()
        server.close()
        mapper.stop()
        platform.close()
