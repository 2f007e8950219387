"""Bulk Data: asynchronous ``$export`` to NDJSON, and NDJSON import.

Export follows the FHIR Bulk Data Access IG (https://hl7.org/fhir/uv/bulkdata/export.html):
a kick-off request answers 202 with a status URL in ``Content-Location``; polling it
answers 202 with ``X-Progress`` while the job runs and 200 with the manifest when
it is done; the files are then downloaded with the same bearer token. Jobs are rows
of ``bulk_job``, so a restart resumes the ones it had not finished.

Import reads NDJSON (one resource per line): each line is validated and indexed,
then written in batches with ``put_many``. Lines that fail are reported with their
number and reason and the rest goes on, so one bad record never loses a file.
Validation and indexing, the costly part, run in worker processes; the importing
process is the only writer.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import shutil
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select, update

from hygie.store import export_files, outcomes
from hygie.store.access import BodyCodec
from hygie.store.definitions import patient_compartment
from hygie.store.export_files import SEALED_SUFFIX, SealedWriter
from hygie.store.interactions import (
    FhirRequest,
    FhirResponse,
    StoreContext,
    _allow,
    _guard_wide,
)
from hygie.store.model import format_instant, now_us, parse_instant
from hygie.store.schema import bulk_job
from hygie.store.sql_repository import PreparedResource, SqlRepository, prepare_resource

log = logging.getLogger("hygie.store.bulk")

_NDJSON_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}

#: How long a finished export's files are kept (the manifest's ``Expires``): exported
#: records are copies of health data outside the store, kept no longer than a client
#: needs to download them.
EXPIRES_US = 24 * 3600 * 1_000_000


# --- export ------------------------------------------------------------------------


@dataclass
class ExportRequest:
    level: str  # system, patient or group
    types: list[str] | None
    since: int | None
    group_id: str | None = None
    request_url: str = ""


class BulkExports:
    """Runs export jobs in a background thread and keeps their state in ``bulk_job``."""

    def __init__(
        self, engine: Engine, repository: SqlRepository, folder: Path, base_url: str
    ) -> None:
        self.engine = engine
        self.repository = repository
        self.folder = folder
        self.base_url = base_url
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._queue: list[str] = []
        self._stopping = False

    # -- job rows
    def _set(self, job_id: str, *, only_if: tuple[str, ...] = (), **values: Any) -> bool:
        """Update a job row; with ``only_if``, only from those states (a cancel wins)."""
        query = update(bulk_job).where(bulk_job.c.id == job_id)
        if only_if:
            query = query.where(bulk_job.c.status.in_(only_if))
        with self.engine.begin() as conn:
            return conn.execute(query.values(updated=now_us(), **values)).rowcount == 1

    def _get(self, job_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(bulk_job).where(bulk_job.c.id == job_id)).first()

    def _finished(self, job_id: str) -> Any:
        """A job's row as a client sees it: past its expiry, its files are deleted now."""
        row = self._get(job_id)
        if (row is not None and row.status in ("complete", "failed")
                and row.updated + EXPIRES_US < now_us()):
            self.purge_expired()
            row = self._get(job_id)
        return row

    def purge_expired(self, now: int | None = None) -> int:
        """Delete the files of exports finished more than ``EXPIRES_US`` ago; how many.

        Their jobs are kept, as ``expired``: polling one answers 404, as the Bulk Data
        IG allows once a manifest's ``Expires`` has passed.
        """
        before = (now_us() if now is None else now) - EXPIRES_US
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(bulk_job.c.id).where(
                    bulk_job.c.kind == "export",
                    bulk_job.c.status.in_(["complete", "failed", "cancelled"]),
                    bulk_job.c.updated < before,
                )
            ).all()
        for row in rows:
            shutil.rmtree(self.folder / row.id, ignore_errors=True)
            self._set(row.id, status="expired")
        return len(rows)

    def start(self, request: ExportRequest, owner: str | None) -> str:
        self.purge_expired()
        job_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                insert(bulk_job).values(
                    id=job_id,
                    kind="export",
                    status="accepted",
                    request=orjson.dumps(request.__dict__).decode(),
                    owner=owner,
                    created=now_us(),
                    updated=now_us(),
                    result=None,
                )
            )
        self._enqueue(job_id)
        return job_id

    def resume(self) -> None:
        """Queue again the jobs a previous process accepted but did not finish."""
        self.purge_expired()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(bulk_job.c.id).where(
                    bulk_job.c.kind == "export", bulk_job.c.status.in_(["accepted", "in-progress"])
                )
            ).all()
        for row in rows:
            self._enqueue(row.id)

    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            self._queue.append(job_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="hygie-bulk-export", daemon=True
                )
                self._thread.start()

    def wait(self, timeout: float = 60) -> None:
        """Wait for queued jobs to finish (tests and the CLI use it)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def close(self) -> None:
        """Stop taking queued jobs and let the running one end (it resumes on restart)."""
        with self._lock:
            self._queue.clear()
            self._stopping = True
        self.wait()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                job_id = self._queue.pop(0)
            try:
                self._run(job_id)
            except Exception as exc:  # a failed job is reported, never kills the worker
                log.exception("bulk export %s failed", job_id)
                self._set(
                    job_id,
                    only_if=("accepted", "in-progress"),
                    status="failed",
                    result=orjson.dumps({"error": f"{type(exc).__name__}: export failed"}).decode(),
                )

    def _resources(self, request: ExportRequest) -> Iterator[Any]:
        repo = self.repository
        if request.level == "system":
            yield from repo.iter_resources(request.types, since=request.since)
            return
        if request.level == "group":
            group = repo.read("Group", request.group_id or "").resource
            patients = [
                m["entity"]["reference"].split("/", 1)[1]
                for m in group.get("member", [])
                if m.get("entity", {}).get("reference", "").startswith("Patient/")
            ]
        else:
            patients = [s.res_id for s in repo.iter_resources(["Patient"])]
        members = set(patient_compartment()) | {"Patient"}
        types = [t for t in (request.types or sorted(members)) if t in members]
        seen: set[tuple[str, str]] = set()
        for pid in patients:
            if "Patient" in types:
                try:
                    stored = repo.read("Patient", pid)
                except outcomes.FhirError:
                    continue
                if request.since is None or stored.last_updated >= request.since:
                    seen.add(("Patient", pid))
                    yield stored
            for stored in repo.compartment("Patient", pid, types, since=request.since):
                key = (stored.res_type, stored.res_id)
                if key not in seen:
                    seen.add(key)
                    yield stored

    @staticmethod
    def _new_file(out_dir: Path, res_type: str, codec: BodyCodec | None) -> Any:
        name = f"{res_type}.ndjson"
        if codec is None:
            return open(out_dir / name, "wb")
        sealed = open(out_dir / (name + SEALED_SUFFIX), "wb")  # noqa: SIM115 - closed by _run
        return SealedWriter(sealed, codec, f"{out_dir.name}/{name}")

    def _run(self, job_id: str) -> None:
        row = self._get(job_id)
        if row is None or row.status in ("complete", "cancelled", "failed"):
            return
        request = ExportRequest(**orjson.loads(row.request))
        if not self._set(job_id, only_if=("accepted", "in-progress"), status="in-progress"):
            return
        transaction_time = now_us()
        out_dir = self.folder / job_id
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        files: dict[str, Any] = {}
        counts: dict[str, int] = {}
        codec = self.repository.codec
        try:
            for n, stored in enumerate(self._resources(request)):
                fh = files.get(stored.res_type)
                if fh is None:
                    fh = files[stored.res_type] = self._new_file(out_dir, stored.res_type, codec)
                fh.write(stored.body or b"")
                fh.write(b"\n")
                counts[stored.res_type] = counts.get(stored.res_type, 0) + 1
                if n % 5000 == 0:
                    if self._stopping:
                        return  # left in progress: the next start resumes it
                    current = self._get(job_id)
                    if current is None or current.status == "cancelled":
                        return
                    self._set(
                        job_id,
                        only_if=("in-progress",),
                        result=orjson.dumps({"progress": n}).decode(),
                    )
        finally:
            for fh in files.values():
                fh.close()
        manifest = {
            "transactionTime": format_instant(transaction_time),
            "request": request.request_url,
            "requiresAccessToken": True,
            "output": [
                {"type": t, "url": f"{self.base_url}/$export-file/{job_id}/{t}.ndjson", "count": c}
                for t, c in sorted(counts.items())
            ],
            "error": [],
        }
        if not self._set(
            job_id,
            only_if=("in-progress",),
            status="complete",
            result=orjson.dumps(manifest).decode(),
        ):
            shutil.rmtree(out_dir, ignore_errors=True)  # cancelled meanwhile

    # -- HTTP-facing operations (registered in server.py)

    def kick_off(self, req: FhirRequest, ctx: StoreContext) -> FhirResponse:
        """``$export`` at system, Patient or Group/[id] level."""
        if req.method != "GET":
            raise outcomes.FhirError(outcomes.Issue("not-supported", "$export is GET"), status=405)
        if req.prefer("respond-async") is None:
            raise outcomes.invalid("$export needs the header Prefer: respond-async")
        fmt = req.param("_outputFormat")
        if fmt and fmt not in _NDJSON_FORMATS:
            raise outcomes.invalid(
                f"_outputFormat {fmt!r} is not supported; use application/fhir+ndjson",
                expression="_outputFormat",
            )
        types = None
        if req.param("_type"):
            types = [t for t in (req.param("_type") or "").split(",") if t]
            for t in types:
                if t not in ctx.resource_types:
                    raise outcomes.invalid(
                        f"unknown resource type {t!r} in _type", expression="_type"
                    )
        since = None
        if req.param("_since"):
            try:
                since = parse_instant(req.param("_since") or "")
            except ValueError as exc:
                raise outcomes.invalid("_since must be an instant", expression="_since") from exc
        if not req.path:
            level, group_id = "system", None
        elif req.path == ("Patient",):
            level, group_id = "patient", None
        elif len(req.path) == 2 and req.path[0] == "Group":
            level, group_id = "group", req.path[1]
            self.repository.read("Group", group_id)
        else:
            raise outcomes.FhirError(
                outcomes.Issue(
                    "not-supported",
                    "$export is available at the base, on Patient and on Group/[id]",
                ),
                status=404,
            )
        for t in types or ["*"]:
            _allow(req, t, "r")
        _guard_wide(ctx, req, "bulk export")
        path = "/".join(req.path)
        query = "&".join(f"{k}={v}" for k, v in req.query)
        url = f"{ctx.base_url}/{path + '/' if path else ''}$export" + (f"?{query}" if query else "")
        job_id = self.start(ExportRequest(level, types, since, group_id, url), _owner(req))
        return FhirResponse(
            202,
            resource=outcomes.ok("export accepted"),
            headers={"Content-Location": f"{ctx.base_url}/$export-status/{job_id}"},
        )

    def status(self, req: FhirRequest, ctx: StoreContext) -> FhirResponse:
        """Poll (GET) or cancel (DELETE) an export job."""
        if len(req.path) != 1:
            raise outcomes.FhirError(outcomes.Issue("not-found", "no such export job"), status=404)
        job_id = req.path[0]
        row = self._finished(job_id)
        if (
            row is None
            or row.kind != "export"
            or row.status in ("cancelled", "expired")
            or (row.owner and row.owner != _owner(req))
        ):
            raise outcomes.FhirError(
                outcomes.Issue("not-found", f"no export job {job_id}"), status=404
            )
        if req.method == "DELETE":
            self._set(job_id, status="cancelled")
            shutil.rmtree(self.folder / job_id, ignore_errors=True)
            return FhirResponse(202, resource=outcomes.ok("export cancelled"))
        if row.status == "complete":
            return FhirResponse(
                200,
                resource=orjson.loads(row.result),
                headers={"Expires": format_instant(row.updated + EXPIRES_US)},
            )
        if row.status == "failed":
            return FhirResponse(
                500,
                resource=outcomes.outcome(
                    [
                        outcomes.Issue(
                            "exception",
                            orjson.loads(row.result or "{}").get("error", "export failed"),
                        )
                    ]
                ),
            )
        progress = orjson.loads(row.result).get("progress", 0) if row.result else 0
        return FhirResponse(
            202, headers={"X-Progress": f"{row.status}: {progress} resources", "Retry-After": "2"}
        )

    def open_file(self, job_id: str, name: str, owner: str | None) -> Iterator[bytes]:
        """The content of one file of a completed export, in chunks (404 if none)."""
        row = self._finished(job_id)
        if row is None or row.status != "complete" or (row.owner and row.owner != owner):
            raise outcomes.FhirError(outcomes.Issue("not-found", "no such export file"), status=404)
        folder = (self.folder / job_id).resolve()
        # the name a manifest gives, never the sealed file's own (it would not open)
        candidates = () if name.endswith(SEALED_SUFFIX) else (name, name + SEALED_SUFFIX)
        for path in ((folder / c).resolve() for c in candidates):
            if path.parent == folder and path.is_file():
                try:
                    return export_files.open_file(path, self.repository.codec, f"{job_id}/{name}")
                except export_files.ExportFileError as exc:
                    log.error("%s", exc)
                    raise outcomes.FhirError(
                        outcomes.Issue("exception", "the export file does not open"), status=500
                    ) from None
        raise outcomes.FhirError(outcomes.Issue("not-found", "no such export file"), status=404)


def _owner(req: FhirRequest) -> str | None:
    return getattr(req.principal, "subject", None)


# --- import ------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did: counts and the lines it refused, with why."""

    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.created + self.updated

    def outcome(self) -> dict[str, Any]:
        issues = [
            outcomes.Issue(
                "informational",
                f"{self.created} created, {self.updated} updated, {len(self.errors)} refused",
                severity="information",
            )
        ]
        issues += [outcomes.Issue("invalid", f"line {n}: {why}") for n, why in self.errors[:1000]]
        return outcomes.outcome(issues)


#: An import that writes this many resources refreshes the planner's statistics after.
ANALYZE_AFTER = 10_000


def _worker_init() -> None:
    """Load the validator and the indexer once per import worker.

    What they load (structure definitions, compiled FHIRPath) lives as long as the
    worker: frozen, the garbage collector stops walking it at every full collection.
    """
    with contextlib.suppress(outcomes.FhirError):
        prepare_resource({"resourceType": "Basic", "code": {"text": "warm-up"}})
    gc.freeze()


def _prepare_chunk(
    lines: list[tuple[int, bytes]],
    prepare: Callable[[dict[str, Any]], PreparedResource] = prepare_resource,
) -> tuple[list[PreparedResource], list[tuple[int, str]]]:
    """Parse, validate and index a chunk of NDJSON lines (in a worker process).

    Returns the resources ready for ``put_many`` and the refused lines with why;
    needs no database, so any number of workers can run it beside the one writer.
    """
    good: list[PreparedResource] = []
    bad: list[tuple[int, str]] = []
    for number, line in lines:
        try:
            data = orjson.loads(line)
            if not isinstance(data, dict):
                raise outcomes.invalid("a line must hold one JSON object (a FHIR resource)")
            good.append(prepare(data))
        except orjson.JSONDecodeError as exc:
            bad.append((number, f"not valid JSON: {exc}"))
        except outcomes.FhirError as exc:
            bad.append((number, str(exc)))
    return good, bad


def _write_chunk(repository: SqlRepository, good: list[PreparedResource]) -> tuple[int, int]:
    """Write prepared resources in one transaction; returns (created, updated).

    A batch that loses a race with another writer of the same resource (the store
    is in use meanwhile: a version conflict) is written again.
    """
    for attempt in range(5):
        try:
            results = repository.put_many(good)
            break
        except outcomes.VersionConflict:
            if attempt == 4:
                raise
    else:  # pragma: no cover - the loop always breaks or raises
        results = []
    created = sum(1 for r in results if r.created)
    return created, len(results) - created


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        chunk.append((number, line))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_ndjson(
    repository: SqlRepository,
    lines: Iterable[bytes],
    *,
    workers: int | None = None,
    chunk_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import NDJSON lines: resources keep their ids (created or updated), bad lines are reported.

    With ``workers`` > 1 (default: one per CPU), worker processes parse, validate and
    index chunks of lines, the costly part, and this process alone writes them, in
    file order, one transaction per chunk, with ``repository`` (its body codec
    included). One writer fed by several preparers never waits on the database's
    write lock, as writers competing for it do (SQLite's busy wait sleeps up to
    100 ms at a time). Each chunk is committed before it is counted.
    """
    report = ImportReport()
    workers = workers if workers is not None else (os.cpu_count() or 1)

    def write(good: list[PreparedResource], bad: list[tuple[int, str]], n_lines: int) -> None:
        created, updated = _write_chunk(repository, good)
        report.created += created
        report.updated += updated
        report.errors.extend(bad)
        if progress is not None:
            progress(n_lines)

    chunks = _chunks(lines, chunk_size)
    head = list(itertools.islice(chunks, 2))
    chunks = itertools.chain(head, chunks)
    if workers <= 1 or len(head) < 2:  # one chunk does not pay for starting workers
        for chunk in chunks:
            write(*_prepare_chunk(chunk, repository.prepare), len(chunk))
    else:
        import multiprocessing

        context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        collecting = gc.isenabled()
        # Decoding the workers' results makes a few hundred objects per resource, none
        # in a cycle; the collections they set off took a third of the writer's time.
        gc.disable()
        try:
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_worker_init
            ) as pool:
                pending: deque[tuple[Any, int]] = deque()
                for chunk in chunks:
                    pending.append((pool.submit(_prepare_chunk, chunk), len(chunk)))
                    while len(pending) > workers * 2:
                        future, n = pending.popleft()
                        write(*future.result(), n)
                while pending:
                    future, n = pending.popleft()
                    write(*future.result(), n)
        finally:
            if collecting:
                gc.enable()
    report.errors.sort()
    if report.written >= ANALYZE_AFTER:
        repository.optimize(full=True)
    return report


def import_operation(req: FhirRequest, ctx: StoreContext) -> FhirResponse:
    """``POST [base]/$import`` with an NDJSON body: imports and reports, synchronously."""
    if req.method != "POST" or req.path:
        raise outcomes.FhirError(
            outcomes.Issue("not-supported", "$import is POST [base]/$import"), status=405
        )
    ctype = (req.header("content-type") or "").split(";")[0].strip()
    if ctype not in _NDJSON_FORMATS:
        raise outcomes.FhirError(
            outcomes.Issue(
                "not-supported", f"$import takes application/fhir+ndjson, not {ctype or 'nothing'}"
            ),
            status=415,
        )
    _allow(req, "*", "c")
    _allow(req, "*", "u")
    _guard_wide(ctx, req, "bulk import")
    repo = ctx.repository
    assert isinstance(repo, SqlRepository)
    report = import_ndjson(repo, req.body.splitlines(), workers=1)
    status = 200 if report.written or not report.errors else 422
    return FhirResponse(status, resource=report.outcome())
