"""MLLP gateway throughput and latency: ORU^R01 of 10 OBX from 8 concurrent connections.

Starts ``hygie devices listen`` (with its mapper process, as in production) on a fresh
database and drives it from this process with asyncio MLLP senders (one message in
flight per connection, as devices do):

* ``hl7_parse``: the plain parse rate of the ``hl7`` library on the same message, on one
  core: the ceiling of a gateway that parses every message before acknowledging it;
* ``receipt_check``: the gateway's MSH check, what it does before committing;
* ``mllp_commit_ack``: messages persisted (committed to the journal) and acknowledged
  (CA, enhanced mode MSH-15 AL / MSH-16 NE) per second; goal >= 5,000/s;
* ``ack_latency_at_1000``: p50 / p99 from the intended send time, senders paced at
  1,000 messages/s in total; goal p99 <= 50 ms;
* ``mapper_drain``: how fast the mapper then writes the backlog into the FHIR store;
* ``mllp_application_ack``: IHE PCD-01's own mode (MSH-15 NE / MSH-16 AL), where each
  AA waits until the Observations are in the FHIR store.

    python bench/devices_mllp.py [--seconds 10] [--engine sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hl7

from hygie.config import load_settings
from hygie.devices.journal import Journal, open_journal
from hygie.devices.receipt import read_header
from hygie.devices.simulator import hl7_now, make_devices, monitor_message
from hygie.platform import open_platform
from hygie.store.migrations import upgrade

START, END = b"\x0b", b"\x1c\r"
GOAL_RATE = 5000
GOAL_P99_MS = 50
CONNECTIONS = 8
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def fresh_database(engine: str, folder: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{folder / 'devices.db'}"
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_devices CASCADE")
        conn.execute("CREATE SCHEMA bench_devices")
    return f"{PG_URL}?options=-csearch_path%3Dbench_devices"


class Messages:
    """Distinct 10-OBX messages for each connection (a device each)."""

    def __init__(self, connections: int) -> None:
        self.devices = [d for d in make_devices(connections, 0) if d.kind == "monitor"]
        self.when = hl7_now()

    def next(self, index: int, accept: str, app: str) -> bytes:
        device = self.devices[index]
        device.patient.step()
        control = device.next_control_id()
        return (
            START + monitor_message(device, control, self.when, accept, app, hierarchy=False) + END
        )


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(END)


async def closed_loop(
    port: int, messages: Messages, seconds: float, accept: str, app: str
) -> tuple[int, float]:
    """Each connection sends, waits for the ack, sends again; returns (acked, seconds)."""
    stop = time.perf_counter() + seconds
    counts = [0] * CONNECTIONS

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            writer.write(messages.next(index, accept, app))
            frame = await read_frame(reader)
            if b"MSA|CA|" not in frame and b"MSA|AA|" not in frame:
                raise RuntimeError(f"negative ack: {frame[:200]!r}")
            counts[index] += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(CONNECTIONS)))
    return sum(counts), time.perf_counter() - started


async def paced(port: int, messages: Messages, seconds: float, rate: float) -> list[float]:
    """Senders paced at ``rate`` messages/s in total; latency from the intended send time."""
    latencies: list[float] = []
    per_connection = rate / CONNECTIONS

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = time.perf_counter() + index / rate
        n = int(seconds * per_connection)
        for k in range(n):
            due = start + k / per_connection
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(messages.next(index, "AL", "NE"))
            await read_frame(reader)
            latencies.append(time.perf_counter() - due)
        writer.close()

    await asyncio.gather(*(one(i) for i in range(CONNECTIONS)))
    return latencies


def parse_rate(sample: bytes, seconds: float) -> tuple[float, float]:
    text = sample[1:-2].decode()
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        hl7.parse(text)
        n += 1
    library = n / (time.perf_counter() - started)
    raw = sample[1:-2]
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        read_header(raw)
        n += 1
    return library, n / (time.perf_counter() - started)


def start_gateway(env: dict[str, str], var: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = var / "devices" / "mllp.port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "hygie", "devices", "listen", "--port", "0", "--no-mqtt"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    return process, int(port_file.read_text())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def wait_drained(journal: Journal, timeout: float) -> tuple[int, float]:
    started = time.perf_counter()
    pending = journal.counts().get("pending", 0)
    first = pending
    while pending and time.perf_counter() - started < timeout:
        time.sleep(0.5)
        pending = journal.counts().get("pending", 0)
    return first - pending, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a gateway setting (devices_NAME), e.g. mapper_nice=19",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="how long to time the mapper on the backlog",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hygie-devices-bench-"))
    try:
        url = fresh_database(args.engine, folder)
        settings = load_settings(database_url=url, var_dir=folder / "var")
        platform = open_platform(settings)
        upgrade(platform.engine)
        journal = open_journal(platform)
        env = {**os.environ, "HYGIE_DATABASE_URL": url, "HYGIE_VAR_DIR": str(folder / "var")}
        if args.setting:
            config = folder / "hygie.toml"
            config.write_text(
                "[hygie]\n"
                + "".join(
                    f"devices_{item.split('=', 1)[0]} = {item.split('=', 1)[1]}\n"
                    for item in args.setting
                )
            )
            env["HYGIE_CONFIG"] = str(config)
        messages = Messages(CONNECTIONS)

        library, receipt = parse_rate(messages.next(0, "AL", "NE"), min(args.seconds, 3))
        print(
            f"hl7_parse: {library:,.0f} msg/s (hl7 {hl7.__version__}, one core, "
            f"10-OBX ORU^R01: library ceiling)"
        )
        print(f"receipt_check: {receipt:,.0f} msg/s ({receipt / library:.0f} x vs hl7_parse)")

        gateway, port = start_gateway(env, folder / "var")
        try:
            # IHE PCD-01's mode first, on an empty journal: each AA waits for the store
            acked, took = asyncio.run(closed_loop(port, messages, args.seconds, "NE", "AL"))
            print(
                f"mllp_application_ack: {acked / took:,.0f} msg/s "
                f"({acked * 10 / took:,.0f} Observations/s; AA after the store commit)"
            )
            asyncio.run(closed_loop(port, messages, 1.0, "AL", "NE"))  # warm up
            mapper = children(gateway.pid)
            before = (
                cpu_seconds(gateway.pid),
                time.process_time(),
                sum(cpu_seconds(c) for c in mapper),
            )
            acked, took = asyncio.run(closed_loop(port, messages, args.seconds, "AL", "NE"))
            after = (
                cpu_seconds(gateway.pid),
                time.process_time(),
                sum(cpu_seconds(c) for c in mapper),
            )
            rate = acked / took
            print(
                f"mllp_commit_ack: {rate:,.0f} msg/s ({rate / GOAL_RATE:.2f} x vs goal "
                f"{GOAL_RATE:,}/s; {rate / library:.1f} x vs hl7_parse; {acked} messages, "
                f"{CONNECTIONS} connections, {args.engine})"
            )
            gw_us = (after[0] - before[0]) / acked * 1e6
            client_us = (after[1] - before[1]) / acked * 1e6
            print(
                f"cpu_per_message: gateway {gw_us:.0f} us, load generator {client_us:.0f} us"
                f" (mapper used {after[2] - before[2]:.1f} CPU s meanwhile, niced)"
            )
            latencies = sorted(asyncio.run(paced(port, messages, args.seconds, 1000.0)))
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
            print(
                f"ack_latency_at_1000: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max "
                f"{latencies[-1] * 1000:.1f} ms ({GOAL_P99_MS / p99:.1f} x under goal p99 "
                f"{GOAL_P99_MS} ms; {len(latencies)} messages)"
            )
            drained, drain_took = wait_drained(journal, args.drain_seconds)
            print(
                f"mapper_drain: {drained / drain_took:,.0f} msg/s "
                f"({drained * 10 / drain_took:,.0f} Observations/s into the FHIR store, "
                f"backlog alone; {drained} messages in {drain_took:.0f} s)"
            )
            left = journal.counts()
            print(f"journal: {left}")
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
            platform.close()
        load = os.getloadavg()[0]
        print(f"load_average_1min: {load:.2f} ({os.cpu_count()} cores)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
