"""Read and search latency of the FHIR store over HTTP, on a store of ~1,000,000 resources.

For each engine, this fills a database with synthetic patients through the bulk
import path (about 55 resources each; 18,500 patients give ~1,000,000 resources),
starts ``hygie serve`` on loopback, then measures:

- ``read_by_id``: GET /fhir/[type]/[id] of random resources, driven by ``wrk`` (Debian
  package ``wrk``) with 32 connections; without wrk, by 8 Python client threads;
- ``search_token``, ``search_date``: p50/p95 latency of token searches
  (``Patient?identifier=``, ``Observation?code=&subject=``) and date searches
  (``Encounter?date=``, ``Observation?date=ge..&date=lt..&subject=``), one at a time;
- ``search_chain``: one-level chained searches (``Observation?subject.identifier=``).

Goals: read >= 2,000 requests/s; token and date p95 <= 20 ms; chained p95 <= 100 ms.
There is no peer server on this machine (see store_ingest.py).

    python bench/store_search.py [--patients 18500] [--engines sqlite,postgresql]
        [--keep /path]   # keep (and reuse) the filled databases between runs
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import orjson

from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.security.tokens import issue_service_token
from hygie.store.bulk import import_ndjson
from hygie.store.migrations import upgrade
from hygie.store.seeding import seed_store
from hygie.store.server import open_store
from hygie.store.synthetic import INS_SYSTEM, generate_patient_resources, generate_territory

sys.path.insert(0, str(Path(__file__).parent))
from store_ingest import PG_URL, free_port, wait_for


def database_url(engine_name: str, folder: Path, keep: bool) -> tuple[str, bool]:
    """The URL, and whether it already holds a filled store (reused with --keep)."""
    if engine_name == "sqlite":
        path = folder / "search.db"
        return f"sqlite:///{path}", keep and path.exists()
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'bench_search' "
            "AND table_name = 'resource'").fetchone() is not None
        if not (keep and exists):
            conn.execute("DROP SCHEMA IF EXISTS bench_search CASCADE")
            conn.execute("CREATE SCHEMA bench_search")
            exists = False
    return PG_URL + "?options=-csearch_path%3Dbench_search", exists


def fill(repository, patients: int) -> None:  # type: ignore[no-untyped-def]
    seed_store(repository, patients=0, seed=1)
    territory = generate_territory(1)
    started = time.perf_counter()
    batch = 2000
    written = 0
    for first in range(0, patients, batch):
        lines = [orjson.dumps(r) for r in generate_patient_resources(
            min(batch, patients - first), territory=territory, seed=5, first=first)]
        written += import_ndjson(repository, lines).written
        rate = written / (time.perf_counter() - started)
        print(f"  filled {written:,} resources ({rate:,.0f}/s)", file=sys.stderr, flush=True)


def sample_ids(url: str) -> dict[str, list[str]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql+psycopg", "postgresql+psycopg"))
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for res_type in ("Patient", "Observation", "Encounter", "Condition"):
            rows = conn.execute(text(
                "SELECT res_id FROM resource WHERE res_type = :t ORDER BY pk LIMIT 20000"),
                {"t": res_type}).all()
            out[res_type] = [r[0] for r in rows]
        out["_count"] = [str(conn.execute(text("SELECT count(*) FROM resource")).scalar_one())]
    engine.dispose()
    return out


def latencies(port: int, token: str, paths: list[str]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    times = []
    for path in paths:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        times.append((time.perf_counter() - started) * 1000)
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status}")
    conn.close()
    return times


def report(name: str, times: list[float], goal_ms: float) -> None:
    times = sorted(times)
    p95 = times[int(len(times) * 0.95) - 1]
    print(f"{name}: p95 {p95:.1f} ms (p50 {statistics.median(times):.1f} ms, "
          f"{len(times)} requests; {goal_ms / p95:.2f} x the goal of {goal_ms:g} ms)", flush=True)


def wrk_gets(port: int, token: str, paths: list[str], seconds: int) -> str:
    """wrk's report (with ``--latency``) of GETs of random ``paths`` by 32 connections;
    an error or a non-2xx answer raises."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    listing = "\n".join(f'"{p}",' for p in paths)
    script.write_text(
        f"paths = {{\n{listing}\n}}\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\nend\n")
    try:
        out = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script),
             "-H", f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True).stdout
    finally:
        script.unlink()
    errors = [line for line in out.splitlines() if "Non-2xx" in line or "errors" in line]
    if errors:
        raise RuntimeError("read errors: " + "; ".join(errors))
    return out


def read_rate(port: int, token: str, paths: list[str], seconds: int) -> tuple[float, str]:
    if shutil.which("wrk"):
        out = wrk_gets(port, token, paths, seconds)
        rate = next(float(line.split()[1]) for line in out.splitlines()
                    if line.startswith("Requests/sec"))
        return rate, "wrk, 32 connections"
    done = [0]
    stop = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Authorization": f"Bearer {token}"}
        rng = random.Random()
        while time.perf_counter() < stop:
            conn.request("GET", rng.choice(paths), headers=headers)
            conn.getresponse().read()
            done[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / seconds, "8 Python client threads"


def bench_engine(engine_name: str, args: argparse.Namespace) -> None:
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hygie-search-"))
    folder.mkdir(parents=True, exist_ok=True)
    url, filled = database_url(engine_name, folder, bool(args.keep))
    settings = load_settings(database_url=url, var_dir=folder / f"var-{engine_name}")
    platform = open_platform(settings)
    upgrade(platform.engine)
    if not filled:
        fill(open_store(platform).repository, args.patients)
    token = issue_service_token(platform, subject="bench", scope="system/*.rs")
    platform.close()
    ids = sample_ids(url)
    rng = random.Random(3)
    port = free_port()
    # One load generator on one address: the per-address and per-client limits, made
    # for many callers, would answer 429 past their burst; what is measured is the server.
    env = {**os.environ, "HYGIE_DATABASE_URL": url, "HYGIE_VAR_DIR": str(settings.var_dir),
           "HYGIE_RATE_PER_ADDRESS": "1000000", "HYGIE_BURST_PER_ADDRESS": "1000000",
           "HYGIE_RATE_PER_CLIENT": "1000000", "HYGIE_BURST_PER_CLIENT": "1000000"}
    server = subprocess.Popen(
        [sys.executable, "-m", "hygie", "serve", "--port", str(port),
         "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        total = int(ids["_count"][0])
        print(f"# {engine_name}: {total:,} resources stored", flush=True)
        reads = [f"/fhir/{t}/{i}" for t in ("Patient", "Observation", "Encounter", "Condition")
                 for i in ids[t]]
        latencies(port, token, reads[:200])  # warm up
        rate, how = read_rate(port, token, reads, args.seconds)
        print(f"read_by_id_{engine_name}: {rate:,.0f} requests/s ({rate / 2000:.2f} x the goal "
              f"of 2,000; {how}, {args.workers} server workers)", flush=True)
        n = args.queries
        patients = [rng.choice(ids["Patient"]) for _ in range(n)]
        registry = sample_identifiers(url, patients)
        _run = make_runner(port, token)
        _run("search_token_identifier", [
            f"/fhir/Patient?identifier={quote(INS_SYSTEM)}|{registry[p]}" for p in patients], 20)
        _run("search_token_code", [
            f"/fhir/Observation?code=http://loinc.org|8867-4&subject=Patient/{p}"
            for p in patients], 20)
        _run("search_token_code_page", [
            "/fhir/Observation?code=http://loinc.org|"
            f"{rng.choice(['8867-4', '8310-5', '9279-1', '59408-5'])}&_count=20&_total=none"
            for _ in range(n)], 20)
        days = [f"2021-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" for _ in range(n)]
        _run("search_date_day", [f"/fhir/Encounter?date={d}" for d in days], 20)
        _run("search_date_range", [
            f"/fhir/Observation?date=ge2020-01-01&date=lt2023-01-01&subject=Patient/{p}"
            for p in patients], 20)
        _run("search_chain", [
            f"/fhir/Observation?subject.identifier={quote(INS_SYSTEM)}|{registry[p]}"
            "&code=http://loinc.org|8310-5" for p in patients], 100)
    finally:
        server.terminate()
        server.wait(30)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def make_runner(port: int, token: str) -> Callable[[str, list[str], float], None]:
    def run(name: str, paths: list[str], goal: float) -> None:
        latencies(port, token, paths[:20])
        report(name, latencies(port, token, paths), goal)

    return run


def sample_identifiers(url: str, patient_ids: list[str]) -> dict[str, str]:
    from sqlalchemy import create_engine, select

    from hygie.store.schema import resource

    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        rows = conn.execute(select(resource.c.res_id, resource.c.body).where(
            resource.c.res_type == "Patient", resource.c.res_id.in_(set(patient_ids)))).all()
    engine.dispose()
    for res_id, body in rows:
        patient = orjson.loads(body)
        out[res_id] = next(i["value"] for i in patient["identifier"]
                           if i.get("system") == INS_SYSTEM)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=18500)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--seconds", type=int, default=10, help="duration of the read test")
    parser.add_argument("--queries", type=int, default=300, help="requests per search figure")
    parser.add_argument("--keep", default=None, help="folder to keep the filled databases in")
    args = parser.parse_args()
    for engine_name in args.engines.split(","):
        bench_engine(engine_name, args)


if __name__ == "__main__":
    main()
