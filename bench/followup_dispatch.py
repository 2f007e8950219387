"""Remote follow-up at scale: a morning wave to 100,000 patients, then their answers.

Figures (one line each, ``name: value unit``):

- ``first_sms_submitted``: seconds from the moment the morning sessions fall due to the
  first question accepted by the loopback SMSC (goal: at most 60 s);
- ``wave_submitted``: seconds until every patient's first question was accepted by the
  SMSC (sessions started, messages handed to the channels outbox and sent over SMPP by
  the dispatcher running beside, as in ``hygie serve``);
- ``wave_prepared``: sessions started and handed to the outbox per second;
- ``answers_processed``: replies per second from their injection into the SMSC (as the
  patients' phones send them) to the follow-up handler having read them, run the
  alert rules, raised the alerts (with the on-duty team's notifications) and queued
  the next questions, all committed (goal: at least 1,000/s); the replies are sent
  once the wave's delivery receipts are in (``wave_delivered``), as on a real morning;
- ``answers_handler``: the same replies per second of time spent in the handler alone;
- ``answers_cpu``: CPU time of the platform's process per reply while they flow.

Answers are a mix: 70 % normal ("37,2"), 20 % fever ("38,9°": a warning alert and a
notification), 10 % not understood ("bof": asked again). Enrollments are written
straight into the follow-up tables before the clock starts (enrolling goes through
the store and is not what is measured). The SMSC runs as its own process. Run:
``.venv/bin/python bench/followup_dispatch.py [--patients 100000] [--answers 20000]
[--database-url postgresql://...]``
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from hygie.channels import Channel
from hygie.channels.peers import run_smsc
from hygie.channels.service import Channels
from hygie.channels.settings import channel_settings
from hygie.channels.worker import Dispatcher, build_senders
from hygie.config import load_settings
from hygie.followup import tables as t
from hygie.followup.engine import FollowupService, Options
from hygie.followup.schedule import end_of_followup_ms, local_instant_ms
from hygie.platform import create_engine, open_platform
from hygie.store.migrations import upgrade
from hygie.store.server import open_store

GOAL_FIRST_S = 60.0
GOAL_ANSWERS = 1000.0
DAY = date(2026, 3, 2)


def phone(i: int) -> str:
    return f"+336{20000000 + i}"


def seed(platform: Any, n: int, due: int) -> None:
    repo = platform.parts["store"].repository
    for k in (1, 2):
        repo.update(
            "PractitionerRole",
            f"bench-nurse-{k}",
            {
                "resourceType": "PractitionerRole",
                "id": f"bench-nurse-{k}",
                "telecom": [{"system": "phone", "use": "mobile", "value": f"+3361100000{k}"}],
                "availableTime": [{"allDay": True}],
            },
        )
    repo.update(
        "CareTeam",
        "bench-team",
        {
            "resourceType": "CareTeam",
            "id": "bench-team",
            "participant": [
                {"member": {"reference": f"PractitionerRole/bench-nurse-{k}"}} for k in (1, 2)
            ],
        },
    )
    end_ms = end_of_followup_ms(date(2026, 3, 15))
    rows = [
        {
            "id": f"b{i:07d}",
            "patient_id": f"bench-{i}",
            "patient_name": f"Patient {i}",
            "phone": phone(i),
            "language": "fr",
            "protocol_id": "covid19",
            "start_date": DAY.isoformat(),
            "end_date": "2026-03-15",
            "status": "active",
            "consent_id": f"fupc-b{i:07d}",
            "team_id": "bench-team",
            "hospital": None,
            "overrides": None,
            "next_due_ms": due,
            "end_ms": end_ms,
            "current_session": None,
            "created_ms": due - 86_400_000,
            "created_by": "bench",
        }
        for i in range(n)
    ]
    with platform.engine.begin() as conn:
        for i in range(0, n, 10_000):
            conn.execute(insert(t.enrollment), rows[i : i + 10_000])


def count(platform: Any, table: Any, *where: Any) -> int:
    with platform.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=2000, help="sessions per transaction")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hygie-bench-followup-"))
    url = args.database_url or f"sqlite:///{work / 'hygie.db'}"
    schema = None
    if url.startswith("postgresql"):  # a schema of its own, dropped at the end
        schema = "bench_followup_" + uuid.uuid4().hex[:8]
        with create_engine(url).begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    settings = load_settings(database_url=url, var_dir=work / "var")
    platform = open_platform(settings)
    upgrade(platform.engine)
    open_store(platform)
    due = local_instant_ms(DAY, "08:00")
    print(f"database: {platform.engine.dialect.name}")
    with run_smsc() as smsc:
        channels = Channels(
            platform,
            channel_settings(
                settings, smpp_port=smsc.smpp_port, smpp_window=128, batch_size=1000, poll_s=0.02
            ),
        )
        platform.parts["channels"] = channels
        service = FollowupService(
            platform, Options(worker=False, dispatch_chunk=args.chunk, device_readings=False)
        )
        service.clock = lambda: due
        platform.parts["followup"] = service
        service.install_protocols()
        handler_s = [0.0]
        handled = [0, 0]  # answers handled (committed), answers awaited
        all_handled = threading.Event()

        def timed(answers: Any) -> bool:
            t0 = time.perf_counter()
            marked = service.on_answers(answers)
            handler_s[0] += time.perf_counter() - t0
            handled[0] += len(answers)
            if handled[1] and handled[0] >= handled[1]:
                all_handled.set()
            return marked

        channels.register_batch_handler("followup:", timed)
        seed(platform, args.patients, due)
        dispatcher = Dispatcher(channels, build_senders(channels, {Channel.SMS})).start()
        first: list[float] = []
        start = time.perf_counter()
        cpu_start = time.process_time()

        def watch() -> None:
            while not first and time.perf_counter() - start < 300:
                if smsc.submissions():
                    first.append(time.perf_counter() - start)
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = service.dispatch_due()
        prepared_s = time.perf_counter() - start
        watcher.join()
        print(
            f"first_sms_submitted: {first[0]:.2f} s "
            f"({GOAL_FIRST_S / first[0]:.1f} x vs goal {GOAL_FIRST_S:.0f} s)"
        )
        print(
            f"wave_prepared: {started / prepared_s:,.0f} sessions/s "
            f"({started:,} started and handed to the outbox in {prepared_s:.1f} s)"
        )
        from hygie.channels.tables import message

        while count(platform, message, message.c.status.in_(("queued", "sending"))) > 0:
            time.sleep(0.2)
        wave_s = time.perf_counter() - start
        wave_cpu = time.process_time() - cpu_start
        sent = len({s["to"] for s in smsc.submissions()})
        print(
            f"wave_submitted: {wave_s:.1f} s ({GOAL_FIRST_S / wave_s:.2f} x vs goal "
            f"{GOAL_FIRST_S:.0f} s; {sent:,} patients reached, "
            f"{sent / wave_s:,.0f} SMS/s)"
        )
        print(f"wave_cpu: {wave_cpu:.1f} s (CPU of the platform's process, every thread)")
        # The SMSC hands receipts and replies over in one queue, oldest first: replies
        # sent now would wait behind the wave's receipts, which a real morning has
        # received long before its patients answer. Measure the answers from there.
        while count(platform, message, message.c.status == "submitted") > 0:
            time.sleep(0.2)
        print(
            f"wave_delivered: {time.perf_counter() - start:.1f} s "
            f"(every delivery receipt of the wave applied)"
        )

        n = min(args.answers, args.patients)
        texts = ["37,2"] * 7 + ["38,9°"] * 2 + ["bof"]
        replies = [{"from": phone(i), "text": texts[i % 10]} for i in range(n)]
        before = count(platform, t.answer)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        from hygie.channels.tables import inbound

        received_before = count(platform, inbound)
        handled[1] = handled[0] + n  # told by the handler: no polling in this process
        for i in range(0, n, 2000):
            smsc.inject_mo(replies[i : i + 2000])
        received_s = None
        while not all_handled.wait(0.25):
            if time.perf_counter() - t0 > 600:
                raise SystemExit("answers not processed within 10 minutes")
            if received_s is None and count(platform, inbound) - received_before >= n:
                received_s = time.perf_counter() - t0
        answers_s = time.perf_counter() - t0
        answers_cpu = time.process_time() - cpu0
        if count(platform, t.answer) - before != n:
            raise SystemExit("the handler was called, but the answers are not all stored")
        alerts = count(platform, t.alert)
        print(
            f"answers_processed: {n / answers_s:,.0f} answers/s "
            f"({n / answers_s / GOAL_ANSWERS:.2f} x vs goal {GOAL_ANSWERS:,.0f}/s; "
            f"{n:,} in {answers_s:.1f} s, {alerts:,} alerts raised)"
        )
        if received_s is not None:
            print(
                f"answers_received: {n / received_s:,.0f} answers/s (all {n:,} replies "
                f"stored by the SMPP session in {received_s:.1f} s)"
            )
        print(
            f"answers_handler: {n / handler_s[0]:,.0f} answers/s "
            f"({handler_s[0]:.1f} s in the handler)"
        )
        print(
            f"answers_cpu: {answers_cpu / n * 1e6:,.0f} us/answer (CPU of the platform's "
            f"process, every thread: SMPP, handler, next questions sent, their receipts)"
        )
        dispatcher.stop()
    platform.close()
    if schema is not None:
        with create_engine(args.database_url).begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
