"""What encryption at rest and the audit trail cost: FHIR reads and writes, on vs off.

Run: ``.venv/bin/python bench/security_overhead.py [--resources 2000] [--seconds 3]``.

Two platforms side by side, each on its own SQLite file with the same data: one with
``encrypt_at_rest`` and ``audit`` on (every body sealed with AES-256-GCM, every
interaction an AuditEvent appended to the keyed hash chain), its peer with both off.
Requests go through the whole ASGI application in-process (edge protection,
authentication with a cached token, access rules, the FHIR interactions, the store),
driven without an HTTP client so that the figures are the server's own. The secured
side's timing includes writing the audit records its requests queued (``flush``), so
nothing is left out of the clock. Rounds alternate between the two sides and the best
of each is kept, since other work on the machine varies.

Figures (``name: value unit (ratio x vs peer)``):

Each kind is printed twice: requests per second (wall clock), and CPU time per request
(``*_cpu``, both threads), from which the overhead is computed.

* ``read``: ``GET /fhir/Observation/{id}`` by a service token;
* ``search``: ``GET /fhir/Observation?subject=Patient/{id}`` (a page of one patient);
* ``write``: ``POST /fhir/Observation``;
* ``read_bounded``: the read by a practitioner of a hospital, whose reach is checked in
  SQL on every read (peer: the same read by a service, both secured).

The goal of the issue is an overhead of at most 15 % for reads and writes.

``--http`` measures the same two platforms as they are deployed: each served by
``hygie serve`` (2 workers) on loopback, reads by id driven by ``wrk`` (Debian package
``wrk``) with 32 connections, the two servers in turn, ``--rounds`` times, best of each
kept (``read_http``, and the 99th percentile of latency). In a server the audit's
writer thread runs while the event loop waits on sockets; in-process nothing waits, so
the two measures differ, and both are printed by their names.

``--split`` tells the two apart: reads on four platforms (both off, encryption only,
audit only, both on), rounds alternated, and what each adds to a read in CPU time
(``read_cpu_encryption``, ``read_cpu_audit``, ``read_cpu_both``); with ``--http``, the
four served side by side (``read_http_encryption``...), which is where the two
together cost more than the sum of each alone.

On a machine shared with other work, even the CPU time moves by 10 % or more between
runs. ``--instructions N`` counts instructions instead, which do not move: run under
callgrind with instrumentation off at start,
``valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p
.venv/bin/python bench/security_overhead.py --resources 300 --instructions 600``;
each side then runs N reads (N/4 searches, N/4 writes) once to warm up and once
counted, and the overhead is computed from instructions per request (both threads).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from hygie.app import create_app
from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeSet
from hygie.security.tokens import issue_service_token, tokens_for
from hygie.store.migrations import upgrade

sys.path.insert(0, str(Path(__file__).parent))
from store_ingest import free_port, wait_for
from store_search import wrk_gets

GOAL = 0.15


class Side:
    """One platform, its app, and a token to call it with."""

    def __init__(self, folder: Path, secured: bool, n: int,
                 audit: bool | None = None) -> None:
        """``secured`` turns on encryption at rest, and the audit trail unless ``audit``
        says otherwise."""
        settings = load_settings(database_url=f"sqlite:///{folder / 'h.db'}", var_dir=folder,
                                 base_url="http://bench", encrypt_at_rest=secured,
                                 audit=secured if audit is None else audit,
                                 rate_per_address=1e9,
                                 burst_per_address=10**9, rate_per_client=1e9,
                                 burst_per_client=10**9)
        self.platform: Platform = open_platform(settings)
        upgrade(self.platform.engine)
        self.app = create_app(platform=self.platform)
        self.secured = secured
        self.audit = secured if audit is None else audit
        self.token = issue_service_token(self.platform, subject="bench", scope="system/*.cruds")
        self.bounded = tokens_for(self.platform).issue(Principal(
            "dr-bench", Kind.PRACTITIONER, ScopeSet.parse("user/*.cruds"),
            roles=frozenset({"physician"}), hospital="h1",
            fhir_user="Practitioner/dr-bench")).token
        self.ids = self._seed(n)

    def _seed(self, n: int) -> list[tuple[str, str]]:
        repo = self.platform.parts["store"].repository
        repo.create({"resourceType": "Organization", "name": "Hôpital 1"}, res_id="h1")
        prepared, ids = [], []
        for i in range(n):
            pid, oid = f"p{i}", f"o{i}"
            prepared.append(repo.prepare({
                "resourceType": "Patient", "id": pid, "gender": "female",
                "birthDate": "1950-01-01", "name": [{"family": f"Famille{i}", "given": ["Ana"]}],
                "managingOrganization": {"reference": "Organization/h1"}}))
            prepared.append(repo.prepare(observation(pid, oid)))
            ids.append((pid, oid))
        for start in range(0, len(prepared), 1000):
            repo.put_many(prepared[start:start + 1000])
        return ids

    def serve(self, folder: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
        """This side's store served by ``hygie serve`` (its platform closed first)."""
        self.platform.close()
        port = free_port()
        settings = self.platform.settings
        env = {**os.environ, "HYGIE_DATABASE_URL": settings.database_url,
               "HYGIE_VAR_DIR": str(folder), "HYGIE_ENCRYPT_AT_REST": str(self.secured).lower(),
               "HYGIE_AUDIT": str(self.audit).lower(), "HYGIE_BASE_URL": "http://bench",
               "HYGIE_RATE_PER_ADDRESS": "1000000000", "HYGIE_BURST_PER_ADDRESS": "1000000000",
               "HYGIE_RATE_PER_CLIENT": "1000000000", "HYGIE_BURST_PER_CLIENT": "1000000000"}
        server = subprocess.Popen(
            [sys.executable, "-m", "hygie", "serve", "--port", str(port), "--workers",
             str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(port)
        return server, port

    def flush(self) -> None:
        parts = self.platform.parts.get("security")
        if parts is not None:
            parts.audit_writer.flush(60)

    def close(self) -> None:
        self.platform.close()


def observation(pid: str, oid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                             "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2020-04-01T10:00:00+02:00",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org",
                          "code": "/min"}}
    if oid:
        body["id"] = oid
    return body


async def call(app: Any, method: str, path: str, token: str, body: bytes = b"",
               query: bytes = b"") -> int:
    """One request through the ASGI app; returns the status."""
    headers = [(b"host", b"bench"), (b"accept", b"application/fhir+json"),
               (b"authorization", f"Bearer {token}".encode())]
    if body:
        headers += [(b"content-type", b"application/fhir+json"),
                    (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "headers": headers, "query_string": query, "scheme": "http",
             "client": ("127.0.0.1", 40000), "server": ("bench", 80), "http_version": "1.1",
             "root_path": "", "app": app}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def rate(side: Side, kind: str, seconds: float,
               token: str | None = None) -> tuple[float, float]:
    """(requests per second, CPU microseconds per request) of one kind on one side.

    The CPU time is the whole process's, all threads (the audit writer's included): on
    a machine shared with other work it measures the cost far more steadily than the
    wall clock does.
    """
    rng = random.Random(7)
    token = token or side.token
    done, deadline = 0, time.perf_counter() + seconds
    start, cpu = time.perf_counter(), time.process_time()
    write_body = orjson.dumps(observation("p1"))
    while time.perf_counter() < deadline:
        for _ in range(50):
            pid, oid = side.ids[rng.randrange(len(side.ids))]
            if kind == "read":
                status = await call(side.app, "GET", f"/fhir/Observation/{oid}", token)
            elif kind == "search":
                status = await call(side.app, "GET", "/fhir/Observation", token,
                                    query=f"subject=Patient/{pid}".encode())
            else:
                status = await call(side.app, "POST", "/fhir/Observation", token, write_body)
            if status >= 300:
                raise RuntimeError(f"{kind} answered {status}")
            done += 1
    side.flush()  # the audit records these requests queued are part of their cost
    return (done / (time.perf_counter() - start),
            (time.process_time() - cpu) / done * 1e6)


def best(sides: list[Side], kind: str, seconds: float, rounds: int,
         tokens: list[str | None] | None = None) -> list[tuple[float, float]]:
    """Best (highest rate, lowest CPU per request) of each side over alternating rounds."""
    figures = [(0.0, float("inf"))] * len(sides)
    for _ in range(rounds):
        for i, side in enumerate(sides):
            wall, cpu = asyncio.run(rate(side, kind, seconds, (tokens or [None] * 9)[i]))
            figures[i] = (max(figures[i][0], wall), min(figures[i][1], cpu))
    return figures


def _callgrind(*args: str) -> str:
    return subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True,
                          capture_output=True, text=True).stdout


def instructions(sides: list[Side], kind: str, n: int) -> list[float]:
    """Instructions per request of ``n`` requests of one kind on each side, all threads,
    counted by callgrind (this process must run under it, instrumentation off at start)."""
    counts = []
    for side in sides:
        asyncio.run(run_n(side, kind, n))  # warm-up: statement and token caches
        gc.collect()
        _callgrind("--instr=on")
        _callgrind("--zero")
        asyncio.run(run_n(side, kind, n))
        totals = _callgrind("-e", "Ir")
        _callgrind("--instr=off")
        counts.append(sum(int(line.split()[2].replace(",", ""))
                          for line in totals.splitlines() if line.strip().startswith("Th "))
                      / n)
    return counts


async def run_n(side: Side, kind: str, n: int) -> None:
    """``n`` requests of one kind, then the audit records they queued written."""
    rng = random.Random(7)
    write_body = orjson.dumps(observation("p1"))
    for _ in range(n):
        pid, oid = side.ids[rng.randrange(len(side.ids))]
        if kind == "read":
            await call(side.app, "GET", f"/fhir/Observation/{oid}", side.token)
        elif kind == "search":
            await call(side.app, "GET", "/fhir/Observation", side.token,
                       query=f"subject=Patient/{pid}".encode())
        else:
            await call(side.app, "POST", "/fhir/Observation", side.token, write_body)
    side.flush()


#: wrk's units of latency, in milliseconds.
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_reads(side: Side, port: int, seconds: int) -> tuple[float, float]:
    """(reads per second, 99th percentile in ms) of wrk against a served side."""
    out = wrk_gets(port, side.token, [f"/fhir/Observation/{oid}" for _pid, oid in side.ids],
                   seconds)
    rate = next(float(line.split()[1]) for line in out.splitlines()
                if line.startswith("Requests/sec"))
    p99 = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("99%"))
    number = p99.rstrip("usm")
    return rate, float(number) * _WRK_UNITS[p99[len(number):]]


def http_reads(sides: list[Side], folders: list[Path], seconds: int,
               rounds: int) -> list[tuple[float, float]]:
    """Reads by id over HTTP, each side served by ``hygie serve`` in turn: the best
    (reads per second, 99th percentile in ms) of each side over the rounds."""
    servers = [side.serve(folder, workers=2) for side, folder in zip(sides, folders, strict=True)]
    try:
        for side, (_server, port) in zip(sides, servers, strict=True):
            wrk_reads(side, port, 2)  # warm-up: caches, statements, tokens
        best = [(0.0, float("inf"))] * len(sides)
        for _ in range(rounds):
            for i, (side, (_server, port)) in enumerate(zip(sides, servers, strict=True)):
                rate, p99 = wrk_reads(side, port, seconds)
                best[i] = (max(best[i][0], rate), min(best[i][1], p99))
    finally:
        for server, _port in servers:
            server.terminate()
            server.wait()
    return best


def print_http(best: list[tuple[float, float]]) -> None:
    (off, off_p99), (on, on_p99) = best
    print(f"read_http: {on:,.0f} req/s ({on / off:.2f} x vs encryption and audit off "
          f"{off:,.0f} req/s; overhead {1 - on / off:.1%}, goal <= {GOAL:.0%}; wrk, "
          f"32 connections, 2 server workers)")
    print(f"read_http_p99: {on_p99:.1f} ms (vs off {off_p99:.1f} ms)")


def split_reads(resources: int, seconds: float, rounds: int, http: bool) -> None:
    """Reads on four platforms: both off, encryption only, audit only, both on;
    in-process (CPU per read), or over HTTP (``http``: reads per second)."""
    names = ("off", "encryption", "audit", "both")
    switches = ((False, False), (True, False), (False, True), (True, True))
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / name for name in names]
        sides = [Side(folder, encrypt, resources, audit=audit)
                 for folder, (encrypt, audit) in zip(folders, switches, strict=True)]
        try:
            print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
                  f"{resources} patients + {resources} observations per side")
            if http:
                served = http_reads(sides, folders, max(1, round(seconds)), rounds)
            else:
                figures = best(sides, "read", seconds, rounds)
        finally:
            for side in sides:
                side.close()
    if http:
        base_rate, base_p99 = served[0]
        print(f"read_http_off: {base_rate:,.0f} req/s (p99 {base_p99:.1f} ms)")
        for name, (rate, p99) in zip(names[1:], served[1:], strict=True):
            print(f"read_http_{name}: {rate:,.0f} req/s ({rate / base_rate:.2f} x vs off; "
                  f"p99 {p99:.1f} ms)")
        return
    base_rate, base_cpu = figures[0]
    print(f"read_cpu_off: {base_cpu:,.0f} us/req ({base_rate:,.0f} req/s)")
    for name, (rate, cpu) in zip(names[1:], figures[1:], strict=True):
        print(f"read_cpu_{name}: {cpu:,.0f} us/req (+{cpu - base_cpu:,.0f} us, "
              f"{cpu / base_cpu - 1:.1%} vs off; {rate:,.0f} req/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=2000, help="patients (and as many "
                        "observations) on each side")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="count instructions of N reads under callgrind (see above)")
    parser.add_argument("--http", action="store_true",
                        help="reads over HTTP, each side served by hygie serve (see above)")
    parser.add_argument("--split", action="store_true",
                        help="what encryption and the audit each add to a read (see above)")
    args = parser.parse_args()
    if args.split:
        split_reads(args.resources, args.seconds, args.rounds, args.http)
        return
    with tempfile.TemporaryDirectory() as tmp:
        plain = Side(Path(tmp) / "plain", False, args.resources)
        secured = Side(Path(tmp) / "secured", True, args.resources)
        print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
              f"{args.resources} patients + {args.resources} observations per side")
        try:
            if args.http:
                print_http(http_reads([plain, secured],
                                      [Path(tmp) / "plain", Path(tmp) / "secured"],
                                      max(1, round(args.seconds)), args.rounds))
                return
            if args.instructions:
                # the audit writer's batches as the wall clock makes them, under a 50x slowdown
                secured.platform.parts["security"].audit_writer.flush_interval_s = 2.5
                for kind in ("read", "search", "write"):
                    n = args.instructions if kind == "read" else args.instructions // 4
                    off, on = instructions([plain, secured], kind, n)
                    print(f"{kind}_instructions: {on:,.0f} per request ({on / off:.2f} x vs off "
                          f"{off:,.0f}; overhead {on / off - 1:.1%}, goal <= {GOAL:.0%})")
                return
            for kind in ("read", "search", "write"):
                (off, off_cpu), (on, on_cpu) = best([plain, secured], kind, args.seconds,
                                                    args.rounds)
                print(f"{kind}: {on:,.0f} req/s ({on / off:.2f} x vs encryption and audit off "
                      f"{off:,.0f} req/s)")
                print(f"{kind}_cpu: {on_cpu:,.0f} us/req ({on_cpu / off_cpu:.2f} x vs off "
                      f"{off_cpu:,.0f} us/req; overhead {on_cpu / off_cpu - 1:.1%}, "
                      f"goal <= {GOAL:.0%})")
            (service, service_cpu), (bounded, bounded_cpu) = best(
                [secured, secured], "read", args.seconds, args.rounds, [None, secured.bounded])
            print(f"read_bounded: {bounded:,.0f} req/s ({bounded / service:.2f} x vs the same "
                  f"read by a service, both secured; {bounded_cpu:,.0f} vs "
                  f"{service_cpu:,.0f} us/req CPU)")
        finally:
            plain.close()
            secured.close()


if __name__ == "__main__":
    main()
