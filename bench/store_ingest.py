"""Ingest throughput of the FHIR store: transaction Bundles over HTTP, and NDJSON import.

For each engine (SQLite file, PostgreSQL on 127.0.0.1:5432 database ``test``), this
starts ``hygie serve`` on a loopback port, posts synthetic patient transaction Bundles
(about 50 validated resources each) from several client threads, and reports the
resources written per second; then it imports the same kind of data from an NDJSON
file through the bulk path (``hygie import``). No peer server runs here (HAPI, Aidbox
and Medplum need a JVM or Node images this machine cannot fetch), so the ratios are
against their published figures, measured on 8 vCPU: Aidbox 2,678, HAPI 2,214 and
Medplum 764 resources/s.

    python bench/store_ingest.py [--patients 400] [--engines sqlite,postgresql] [--no-import]
                                 [--new-connections]

The machine is shared, so each line also gives the CPU time spent per resource
(microseconds; the processes that did the work, the database server's included):
unlike the rate, it barely moves with other load, and it is what to compare before
and after a change. It also gives each server process's part of that CPU: the four
kept-alive client connections stay with the worker that accepted them, and a worker
with three or four of them bounds the rate by what one process does alone;
``--new-connections`` sends each Bundle on a connection of its own. A Bundle that is
not acknowledged is printed with its status and the start of its answer.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.security.installation import install as install_security
from hygie.security.tokens import issue_service_token
from hygie.store.bulk import import_ndjson
from hygie.store.migrations import upgrade
from hygie.store.seeding import seed_store
from hygie.store.server import open_store
from hygie.store.synthetic import (
    generate_patient_bundles,
    generate_patient_resources,
    generate_territory,
)

PUBLISHED = {"Aidbox": 2678, "HAPI": 2214, "Medplum": 764}
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
APP_NAME = "hygie-bench-ingest"


class CpuMeter:
    """CPU seconds used by a changing set of processes (Linux ``/proc``).

    Processes come and go (import workers, pooled database backends), so a thread
    samples them every 0.2 s and keeps each one's last figure.
    """

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def cpu(pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        for pid in self.pids():
            used = self.cpu(pid)
            if used is not None:
                self.first.setdefault(pid, used)
                self.last[pid] = used

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def __enter__(self) -> CpuMeter:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last)

    def shares(self, pids: list[int]) -> list[float]:
        """Each of ``pids``' part of their CPU seconds together, largest first."""
        used = [self.last[p] - self.first[p] for p in pids if p in self.last]
        total = sum(used) or 1.0
        return sorted((u / total for u in used), reverse=True)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def database_backends(engine_name: str) -> list[int]:
    """PostgreSQL backends serving this benchmark (by application name)."""
    if engine_name == "sqlite":
        return []
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,)
        ).fetchall()
    return [r[0] for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(engine_name: str, folder: Path) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{folder / 'ingest.db'}"
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_ingest CASCADE")
        conn.execute("CREATE SCHEMA bench_ingest")
    return PG_URL + f"?options=-csearch_path%3Dbench_ingest&application_name={APP_NAME}"


def drop_database(engine_name: str) -> None:
    """Remove what ``fresh_database`` made on PostgreSQL (the SQLite file goes with its
    folder)."""
    if engine_name == "sqlite":
        return
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_ingest CASCADE")


def wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def post_all(port: int, token: str, bodies: list[bytes],
             clients: int, new_connections: bool = False) -> tuple[float, int, int]:
    """POST every body to /fhir from ``clients`` threads; returns (seconds, failures,
    resources of the Bundles acknowledged).

    With ``new_connections`` each Bundle goes on a connection of its own, as from many
    senders: the server's workers then share the Bundles by who accepts first, where a
    few kept-alive connections stay with the worker that accepted them (one worker can
    end up with three of the four clients, or all of them).
    """
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures = [0]
    written = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/fhir+json",
            "Prefer": "return=minimal",
        }
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            try:
                if new_connections:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("POST", "/fhir", body=body, headers=headers)
                resp = conn.getresponse()
                answer = resp.read()
                ok = resp.status == 200
                if not ok:
                    print(f"  bundle refused: {resp.status} {answer[:300]!r}",
                          file=sys.stderr, flush=True)
            except OSError as exc:  # counted, and the next Bundle goes on a new connection
                print(f"  bundle not acknowledged: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                ok = False
            with lock:
                if ok:
                    written[0] += len(orjson.loads(body)["entry"])
                else:
                    failures[0] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, failures[0], written[0]


def bench_engine(engine_name: str, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"hygie-ingest-{engine_name}-"))
    url = fresh_database(engine_name, folder)
    settings = load_settings(database_url=url, var_dir=folder / "var")
    platform = open_platform(settings)
    upgrade(platform.engine)
    install_security(platform)  # the import seals bodies, as ``hygie import`` does
    repository = open_store(platform).repository
    territory = generate_territory(1)
    seed_store(repository, patients=0, seed=1)  # the territory, so references resolve
    token = issue_service_token(platform, subject="bench", scope="system/*.cruds")
    bundles = [
        orjson.dumps(b)
        for b in generate_patient_bundles(args.patients, territory=territory, seed=7)
    ]
    port = free_port()
    env = {**os.environ, "HYGIE_DATABASE_URL": url, "HYGIE_VAR_DIR": str(folder / "var")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hygie",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port)
        post_all(port, token, bundles[:5], 1)  # warm up workers
        workers = [p for p in descendants(server.pid) if p != server.pid]
        with CpuMeter(
            lambda: descendants(server.pid) + database_backends(engine_name)
        ) as meter:
            seconds, failures, written = post_all(
                port, token, bundles[5:], args.clients, args.new_connections
            )
    finally:
        server.terminate()
        server.wait(30)
    rate = written / seconds
    ratios = ", ".join(f"{rate / v:.2f}x vs {k} published" for k, v in PUBLISHED.items())
    print(
        f"ingest_transaction_{engine_name}: {rate:,.0f} resources/s ({ratios}; "
        f"{len(bundles) - 5} bundles, {failures} failed, {args.workers} workers, "
        f"{args.clients} clients{', a connection per bundle' if args.new_connections else ''}; "
        f"cpu {meter.seconds / written * 1e6:.0f} us/resource; server processes' cpu "
        f"{'/'.join(f'{s:.0%}' for s in meter.shares(workers) if s >= 0.01)})",
        flush=True,
    )
    if args.no_import:
        platform.close()
        drop_database(engine_name)
        shutil.rmtree(folder, ignore_errors=True)
        return

    ndjson = folder / "import.ndjson"
    with ndjson.open("wb") as fh:
        for resource in generate_patient_resources(
            args.import_patients, territory=territory, seed=11
        ):
            fh.write(orjson.dumps(resource) + b"\n")
    lines = ndjson.read_bytes().splitlines()
    started = time.perf_counter()
    with CpuMeter(lambda: descendants(os.getpid()) + database_backends(engine_name)) as meter:
        report = import_ndjson(repository, lines, workers=args.import_workers)
    seconds = time.perf_counter() - started
    print(
        f"import_ndjson_{engine_name}: {report.written / seconds:,.0f} resources/s "
        f"({report.written} resources, {len(report.errors)} refused, "
        f"{args.import_workers or os.cpu_count()} workers; goal 15,000; "
        f"cpu {meter.seconds / max(report.written, 1) * 1e6:.0f} us/resource)",
        flush=True,
    )
    platform.close()
    drop_database(engine_name)
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--import-patients", type=int, default=2000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--import-workers", type=int, default=None)
    parser.add_argument("--new-connections", action="store_true",
                        help="send each Bundle on a new connection (see post_all)")
    parser.add_argument("--no-import", action="store_true",
                        help="measure only the transaction Bundles, not the NDJSON import")
    args = parser.parse_args()
    for engine_name in args.engines.split(","):
        bench_engine(engine_name, args)


if __name__ == "__main__":
    main()
