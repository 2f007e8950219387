"""Launching a campaign to 15,000 staff, and the board's latency under 200 answers/s.

Figures (one line each, ``name: value unit``):

- ``launch_decided``: seconds from the launch call to its commit (15,000 people sought,
  the first wave's 15,000 alerts written as outgoing rows);
- ``launch_all_first_sms_submitted``: seconds from the launch call until the loopback
  SMSC accepted every part of every first SMS (target <= 30 s); the peer is the same
  15,000 SMS put straight into the channels outbox with ``enqueue_many`` and sent by the
  same dispatcher (no campaign, no directory): the ratio is what the campaign costs;
- ``answer_to_board_p50`` / ``_p99``: from an SMS reply injected at the SMSC (200 per
  second, "oui <minutes>") to the browser's event stream (``/api/campaigns/<id>/events``
  read by an HTTP client from a real uvicorn server) carrying that answer (target
  p99 <= 1 s): SMPP deliver_sm, committed inbox, dispatcher, the service's batch
  handler, its transaction, the stream's poll and the board's queries.

The directory is written straight into its table (15,000 entries): importing them
through the store is the CSV import's business, not the launch's. The SMSC runs as its
own process. Run:
``.venv/bin/python bench/mobilization_launch.py [--staff 15000] [--answers 2000]
[--rate 200] [--database-url ...]``
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from sqlalchemy import select

from hygie.channels import Channel, OutboundMessage, count_parts
from hygie.channels.peers import SmscHandle, run_smsc
from hygie.channels.service import Channels
from hygie.channels.settings import channel_settings
from hygie.channels.worker import Dispatcher, build_senders
from hygie.config import load_settings
from hygie.mobilization import MobilizationService, Options, Staff, parse_plan
from hygie.mobilization import tables as t
from hygie.mobilization.directory import put_staff
from hygie.mobilization.messages import OWNER_PREFIX
from hygie.mobilization.transactions import now_ms, writing
from hygie.platform import Platform, open_platform
from hygie.store.migrations import upgrade
from hygie.store.server import open_store


def number(i: int) -> str:
    return f"+3361{i:07d}"


def open_bench_platform(work: Path, url: str | None, name: str) -> Platform:
    settings = load_settings(
        database_url=url or f"sqlite:///{work / (name + '.db')}",
        var_dir=work / name,
        base_url="http://127.0.0.1",
    )
    platform = open_platform(settings)
    upgrade(platform.engine)
    open_store(platform)
    return platform


def start_channels(platform: Platform, smsc: SmscHandle) -> tuple[Channels, Dispatcher]:
    settings = channel_settings(
        platform.settings, smpp_port=smsc.smpp_port, smpp_window=128, batch_size=1000, poll_s=0.02
    )
    channels = Channels(platform, settings)
    platform.parts["channels"] = channels
    dispatcher = Dispatcher(channels, build_senders(channels, {Channel.SMS}))
    assert dispatcher.senders[Channel.SMS].wait_bound(10)  # type: ignore[attr-defined]
    return channels, dispatcher.start()


def wait_submissions(smsc: SmscHandle, parts: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while smsc.state()["submissions"] < parts:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{smsc.state()['submissions']} of {parts} parts")
        time.sleep(0.05)


def peer_run(work: Path, url: str | None, n: int, text: str) -> float:
    """The same SMS straight into the outbox; seconds until all submitted."""
    platform = open_bench_platform(work, url, "peer")
    with run_smsc() as smsc:
        channels, dispatcher = start_channels(platform, smsc)
        messages = [
            OutboundMessage(
                f"peer-{i}",
                f"bench:{i}",
                Channel.SMS,
                number(i),
                text,
                expected_answers=["1", "2", "OUI", "NON"],
            )
            for i in range(n)
        ]
        t0 = time.perf_counter()
        for i in range(0, n, 2000):
            channels.enqueue_many(messages[i : i + 2000])
        wait_submissions(smsc, n * count_parts(text))
        elapsed = time.perf_counter() - t0
        dispatcher.stop()
    platform.close()
    return elapsed


def serve(platform: Platform) -> tuple[str, uvicorn.Server, str]:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount

    from hygie.mobilization import api
    from hygie.security.middleware import AuthMiddleware
    from hygie.security.tokens import issue_service_token

    app = Starlette(
        routes=[Mount("/mobilization", routes=api.routes())],
        middleware=[Middleware(AuthMiddleware, platform=platform, public_paths=[])],
    )
    app.state.platform = platform
    app.state.nav = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    token = issue_service_token(platform, subject="bench", scope="system/*.cruds")
    return f"http://127.0.0.1:{port}", server, token


def listen(url: str, token: str, seen: dict[str, float], stop: threading.Event) -> None:
    """Read the board's event stream; note when each answer's journal entry arrives."""
    with (
        httpx.Client(timeout=None) as client,
        client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        data = b""
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("data: "):
                data = line[6:].encode()
            elif line == "" and data:
                board = orjson.loads(data)
                at = time.perf_counter()
                for event in board["events"]:
                    if event["kind"] == "answer" and event["contact_id"] not in seen:
                        seen[event["contact_id"]] = at
                data = b""


def start_profile(path: str | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling this process (its threads, on CPU) until sent SIGINT."""
    if path is None:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(os.getpid()), "--threads", "--format", "raw"]
    profiler = subprocess.Popen([*command, "--rate", "200", "-o", path])
    time.sleep(1.0)  # attached
    return profiler


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def breakdown(
    platform: Platform,
    sent: dict[str, float],
    seen: dict[str, float],
    handled: dict[str, tuple[float, float]],
    wall_offset: float,
) -> dict[str, list[float]]:
    """Where each answer's time went, from the rows' own timestamps (wall clock):
    SMSC to committed inbox row, inbox row to the handler's start, the handler (its
    transaction and the hand-over of the replies), the handler's end to the stream."""
    from hygie.channels import tables as ct

    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(ct.inbound.c.id, ct.inbound.c.owner, ct.inbound.c.received_ms).where(
                ct.inbound.c.owner.startswith(OWNER_PREFIX)
            )
        ).all()
    stages: dict[str, list[float]] = {
        "inject_to_inbox": [],
        "inbox_to_handler": [],
        "handler": [],
        "handler_to_board": [],
    }
    for row in rows:
        contact_id = row.owner.rsplit(":", 1)[1]
        if contact_id not in sent or contact_id not in seen or row.id not in handled:
            continue
        injected = sent[contact_id] + wall_offset
        stored = row.received_ms / 1000
        start, end = handled[row.id]
        stages["inject_to_inbox"].append(stored - injected)
        stages["inbox_to_handler"].append(start - stored)
        stages["handler"].append(end - start)
        stages["handler_to_board"].append(seen[contact_id] + wall_offset - end)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--staff", type=int, default=15000)
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="answers per second")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument(
        "--profile",
        default=None,
        help="write py-spy samples (raw, per thread, CPU only) of the answer phase here",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hygie-bench-mobilization-"))
    platform = open_bench_platform(work, args.database_url, "campaign")
    n = args.staff
    people = [
        Staff(
            id=f"role-{i}",
            practitioner_id=f"p-{i}",
            name=f"Agent {i:05d}",
            role_code="224535009",
            role_label="Infirmier",
            unit_id=f"u-{i % 40}",
            unit_label=f"Unité {i % 40}",
            hospital_id="ch-bench",
            hospital_label="CH Bench",
            phone=number(i),
            email=f"a{i}@hygie.test",
        )
        for i in range(n)
    ]
    with writing(platform.engine) as conn:
        put_staff(conn, people, now_ms())
    plan = parse_plan(
        {
            "id": "plan-bench",
            "name": "Plan blanc bench",
            "hospital": "ch-bench",
            "channels": ["sms"],
            "wait_minutes": 30,
            "levels": [
                {
                    "level": 1,
                    "name": "Rappel général",
                    "requests": [{"role": "*", "quota": n, "deadline_minutes": 60}],
                }
            ],
        }
    )
    with run_smsc() as smsc:
        channels, dispatcher = start_channels(platform, smsc)
        service = MobilizationService(platform, Options(worker=True))
        platform.parts["mobilization"] = service
        handled: dict[str, tuple[float, float]] = {}

        def timed_answers(answers: list[Any]) -> None:
            start = time.time()
            service.on_answers(answers)
            end = time.time()
            for answer in answers:
                handled[answer.id] = (start, end)

        channels.register_batch_handler(OWNER_PREFIX, timed_answers)
        service.start_worker()
        service.save_plan(plan)
        t0 = time.perf_counter()
        campaign = service.launch(
            "plan-bench", 1, exercise=True, launched_by="bench", confirm="EXERCICE"
        )
        decided = time.perf_counter() - t0
        text = service.board(campaign.id)  # the alert's text, for its parts
        with platform.engine.connect() as conn:
            alert = conn.execute(select(t.outgoing.c.text).limit(1)).scalar_one()
            contacts = dict(conn.execute(select(t.contact.c.phone, t.contact.c.id)).all())
        parts = count_parts(alert)
        wait_submissions(smsc, n * parts)
        launched = time.perf_counter() - t0
        assert text["totals"]["pending"] == n

        # Answers come once the wave is out and its receipts applied (people answer
        # minutes later): the steady state the board must hold.
        with platform.engine.connect() as conn:
            ids = list(conn.scalars(select(t.outgoing.c.message_id)))
        while True:
            states = channels.statuses(ids)
            if all(str(status) == "delivered" for status, _e in states.values()):
                break
            time.sleep(0.5)
        base, server, token = serve(platform)
        seen: dict[str, float] = {}
        stop = threading.Event()
        listener = threading.Thread(
            target=listen,
            args=(f"{base}/mobilization/api/campaigns/{campaign.id}/events", token, seen, stop),
            daemon=True,
        )
        listener.start()
        time.sleep(1.0)
        profiler = start_profile(args.profile)
        sent: dict[str, float] = {}
        wall_offset = time.time() - time.perf_counter()
        batch = max(1, int(args.rate / 10))
        t_start = time.perf_counter()
        for k in range(0, args.answers, batch):
            due = t_start + k / args.rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            chunk = [
                {"from": number(i), "text": f"oui {10 + i % 30}"}
                for i in range(k, min(k + batch, args.answers))
            ]
            at = time.perf_counter()
            smsc.inject_mo(chunk)
            for item in chunk:
                sent[contacts[item["from"]]] = at
        deadline = time.perf_counter() + 30
        while len(seen) < len(sent) and time.perf_counter() < deadline:
            time.sleep(0.1)
        rate = args.answers / (time.perf_counter() - t_start)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        stop.set()
        server.should_exit = True
        latencies = sorted(seen[c] - s for c, s in sent.items() if c in seen)
        dispatcher.stop()
        service.stop_worker()
        stages = breakdown(platform, sent, seen, handled, wall_offset)
    platform.close()
    peer = None if args.no_peer else peer_run(work, args.database_url, n, alert)
    engine = "postgresql" if (args.database_url or "").startswith("postgresql") else "sqlite"
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"database: {engine}; staff: {n}; SMS parts per alert: {parts}")
    print(f"launch_decided: {decided:.2f} s")
    ratio = f" ({launched / peer:.2f}x vs bare outbox {peer:.1f} s)" if peer else ""
    print(f"launch_all_first_sms_submitted: {launched:.1f} s{ratio}")
    print(f"answers: {len(sent)} injected at {rate:,.0f}/s, {len(latencies)} seen on the board")
    print(f"answer_to_board_p50: {p50 * 1000:,.0f} ms")
    print(f"answer_to_board_p99: {p99 * 1000:,.0f} ms")
    if len(latencies) < len(sent):
        print(f"missing on the board after 30 s: {len(sent) - len(latencies)}")
    for name, values in stages.items():
        p50, p99 = percentiles(values)
        print(f"stage {name}: p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms")


if __name__ == "__main__":
    main()
