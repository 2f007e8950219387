"""The DICOM archive: store instances, index them, and keep each study's ImagingStudy.

``Archive.store`` is what STOW-RS (PS3.18 §10.5) and C-STORE (PS3.4 B.2) both call:
each Part 10 file is parsed (header only), written through ``files.py`` byte for byte
as received, and indexed; the index rows of one call commit together, and only then
is the sender answered. The study's FHIR ImagingStudy is rewritten once per call (a
STOW request) or once per association (DIMSE), never once per instance, because a
300-slice series would otherwise write 300 versions of a growing resource; the
``fhir_dirty`` flag in the index keeps that promise across a restart.

Arriving chest CT series are queued for quantification (``jobs.py``) once they are
stable: no new instance for ``stable_s`` seconds, as DICOM has no end-of-series signal.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, delete, select, update

from hygie.imaging import tables
from hygie.imaging.errors import NotFound, StoredFileUnreadable
from hygie.imaging.files import InstanceFiles
from hygie.imaging.model import InstanceRecord, StoreOutcome

__all__ = ["BASE_PLACEHOLDER", "Archive", "parse_part10"]

log = logging.getLogger("hygie.imaging")

#: Stands for the DICOMweb base URL in stored metadata; replaced when served.
BASE_PLACEHOLDER = "@@DICOMWEB@@"

#: Failure reasons of PS3.18 Table I.2-1 / PS3.4 C.4.2.1.4 used in STOW responses.
CANNOT_UNDERSTAND = 0xC000
DATASET_MISMATCH = 0xA900
PROCESSING_FAILURE = 0x0110

_STUDY_TAGS = (
    "SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription", "PatientName", "PatientID",
    "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
)
_SERIES_TAGS = (
    "SpecificCharacterSet", "Modality", "SeriesDescription", "BodyPartExamined",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDate", "SeriesTime",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
)
#: Threads that write and read files (I/O waits, decryption releases the GIL).
IO_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="imaging-io")
_CHEST_WORDS = ("CHEST", "THORAX", "LUNG", "THORAC", "POUMON", "PULM")


class InvalidInstance(Exception):
    """One instance of a store request is refused; ``reason`` is its failure code."""

    def __init__(self, reason: int, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def now_us() -> int:
    return time.time_ns() // 1000


def parse_part10(data: bytes) -> Any:
    """The header of a DICOM Part 10 file (pixel data not read).

    Raises ``InvalidInstance`` when the bytes are not a Part 10 file or lack the UIDs
    every stored instance needs.
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except InvalidDicomError as exc:
        raise InvalidInstance(CANNOT_UNDERSTAND, f"not a DICOM Part 10 file: {exc}") from exc
    except Exception as exc:  # pydicom raises many kinds on truncated or odd input
        raise InvalidInstance(CANNOT_UNDERSTAND, f"unreadable DICOM: {exc}") from exc
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise InvalidInstance(CANNOT_UNDERSTAND, "the file has no File Meta Information")
    for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = str(getattr(ds, keyword, "") or "")
        if not value or len(value) > 64:
            raise InvalidInstance(DATASET_MISMATCH, f"{keyword} is missing or invalid")
    return ds


def _text(ds: Any, keyword: str, limit: int) -> str:
    value = getattr(ds, keyword, "")
    return str(value if value is not None else "")[:limit]


def _int(ds: Any, keyword: str) -> int | None:
    try:
        value = getattr(ds, keyword, None)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _subset_json(ds: Any, keywords: Iterable[str]) -> bytes:
    from pydicom.dataset import Dataset

    sub = Dataset()
    for keyword in keywords:
        if keyword in ds:
            sub[keyword] = ds[keyword]
    return orjson.dumps(sub.to_json_dict())


def instance_url(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{BASE_PLACEHOLDER}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def metadata_json(ds: Any, study_uid: str, series_uid: str, sop_uid: str,
                  transfer_syntax: str) -> bytes:
    """DICOM JSON (PS3.18 F.2) of the header, with bulk data as BulkDataURIs."""
    base = instance_url(study_uid, series_uid, sop_uid)

    def bulk(element: Any) -> str:
        return f"{base}/bulkdata/{element.tag:08X}"

    out = ds.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=bulk)
    if int(_int(ds, "Rows") or 0) > 0:
        out["7FE00010"] = {"vr": "OW" if int(_int(ds, "BitsAllocated") or 8) > 8 else "OB",
                           "BulkDataURI": f"{base}/bulkdata/7FE00010"}
    out["00020010"] = {"vr": "UI", "Value": [transfer_syntax]}
    return orjson.dumps(out)


def file_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Folders from a hash of study and series, then the instance's UID: an instance
    sent again under another series never lands on the stored file."""
    digest = hashlib.sha1(f"{study_uid}/{series_uid}".encode(),
                          usedforsecurity=False).hexdigest()
    return f"{digest[:2]}/{digest[2:12]}/{sop_uid}.dcm"


def is_chest_ct(ds: Any) -> bool:
    """A CT image series of the chest: modality, body part or descriptions say so."""
    if _text(ds, "Modality", 16).upper() != "CT":
        return False
    image_type = [str(v).upper() for v in (getattr(ds, "ImageType", None) or [])]
    if "LOCALIZER" in image_type:
        return False
    words = " ".join(_text(ds, k, 64).upper() for k in (
        "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName"))
    return any(w in words for w in _CHEST_WORDS)


@dataclass
class _Parsed:
    """One instance parsed and written, waiting to be indexed."""

    data: bytes
    ds: Any
    record: InstanceRecord


#: A refused instance: (SOP Class UID, SOP Instance UID, failure reason, why).
Failure = tuple[str, str, int, str]


class _Coalescer:
    """One background thread running ``run(key)`` for keys added, each once however
    often it was added while waiting: a key runs ``delay`` seconds after it was last
    added, so a burst of requests on one study costs one rewrite. Errors are logged
    (the study stays marked dirty)."""

    def __init__(self, run: Callable[[str], None], delay: float = 0.5) -> None:
        self.run = run
        self.delay = delay
        self.pending: dict[str, float] = {}
        self.busy = False
        self.cv = threading.Condition()
        self.thread: threading.Thread | None = None

    def add(self, key: str) -> None:
        with self.cv:
            self.pending[key] = time.monotonic() + self.delay
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True,
                                               name="imaging-study-sync")
                self.thread.start()
            self.cv.notify_all()

    def _next(self) -> str:
        """Wait for the earliest due key (called with the lock held)."""
        while True:
            if not self.pending:
                self.busy = False
                self.cv.notify_all()
                self.cv.wait()
                continue
            key, due = min(self.pending.items(), key=lambda item: item[1])
            wait = due - time.monotonic()
            if wait <= 0:
                del self.pending[key]
                self.busy = True
                return key
            self.cv.wait(wait)

    def _loop(self) -> None:
        while True:
            with self.cv:
                key = self._next()
            try:
                self.run(key)
            except Exception:
                log.exception("ImagingStudy rewrite failed; the study stays marked dirty")

    def drain(self, timeout: float) -> bool:
        with self.cv:
            return self.cv.wait_for(lambda: not self.pending and not self.busy, timeout)


class Archive:
    """The platform's DICOM archive; ``for_platform`` builds the shared one."""

    def __init__(self, engine: Engine, files: InstanceFiles, *,
                 sync_study: Callable[[str], None] | None = None,
                 enqueue: Callable[[str, str], None] | None = None) -> None:
        self.engine = engine
        self.files = files
        #: Rewrites one study's ImagingStudy (``fhir_records.sync_study`` when wired).
        self.sync_study = sync_study
        #: Queues one chest CT series for quantification (``jobs.JobQueue.enqueue``).
        self.enqueue = enqueue
        self._lock = threading.Lock()
        self._later = _Coalescer(self.settle)

    # --- storing ---------------------------------------------------------------------

    def store(self, items: Iterable[bytes], *, study_uid: str | None = None,
              sync: bool = True) -> StoreOutcome:
        """Store Part 10 files; refused ones are listed with their reason, not raised.

        ``study_uid``: the study named in the request URL (STOW-RS to /studies/{uid}),
        which every instance must belong to. ``sync=False`` leaves the ImagingStudy to
        ``sync_later`` or ``flush`` (a DIMSE association stores instance by instance).
        """
        ingested = list(IO_POOL.map(lambda data: self.ingest(data, study_uid), items))
        return self.commit(ingested, sync=sync)

    def ingest(self, data: bytes, study_uid: str | None = None) -> _Parsed | Failure:
        """First half of a store, for one file: parse it and write it (not indexed yet).

        Safe to run in several threads at once; ``commit`` indexes what it returns.
        """
        try:
            ds = parse_part10(data)
        except InvalidInstance as exc:
            return ("", "", exc.reason, str(exc))
        sop = str(ds.SOPInstanceUID)
        if study_uid is not None and str(ds.StudyInstanceUID) != study_uid:
            return (str(ds.SOPClassUID), sop, DATASET_MISMATCH,
                    "the instance belongs to another study")
        parsed = self._prepare(data, ds)
        error = self._write_file(parsed)
        if error is not None:
            return (parsed.record.sop_class_uid, sop, PROCESSING_FAILURE, error)
        return parsed

    def commit(self, ingested: Iterable[_Parsed | Failure], *, sync: bool = True
               ) -> StoreOutcome:
        """Second half of a store: index the written files in one transaction."""
        outcome = StoreOutcome()
        parsed: list[_Parsed] = []
        for item in ingested:
            if isinstance(item, _Parsed):
                parsed.append(item)
            else:
                outcome.failed.append(item)
        if parsed:
            accepted = self._write(parsed, outcome)
            outcome.stored.extend(p.record for p in accepted)
            studies = list(dict.fromkeys(p.record.study_uid for p in accepted))
            outcome.studies = studies
            if self.enqueue is not None:
                for series_uid, study in dict.fromkeys(
                        (p.record.series_uid, p.record.study_uid) for p in accepted
                        if is_chest_ct(p.ds)):
                    self.enqueue(series_uid, study)
            if sync:
                for uid in studies:
                    self.settle(uid)
        return outcome

    def discard(self, ingested: Iterable[_Parsed | Failure]) -> None:
        """Remove the files of ingested instances that will not be committed."""
        for item in ingested:
            if isinstance(item, _Parsed):
                self.files.delete(item.record.file_key)

    def _prepare(self, data: bytes, ds: Any) -> _Parsed:
        study, series, sop = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                              str(ds.SOPInstanceUID))
        ts = str(ds.file_meta.TransferSyntaxUID)
        record = InstanceRecord(
            sop_instance_uid=sop, sop_class_uid=str(ds.SOPClassUID), series_uid=series,
            study_uid=study, transfer_syntax_uid=ts, file_key=file_key(study, series, sop),
            size=len(data), number_of_frames=int(_int(ds, "NumberOfFrames") or 1),
            instance_number=_int(ds, "InstanceNumber"))
        return _Parsed(data, ds, record)

    def _write(self, parsed: list[_Parsed], outcome: StoreOutcome) -> list[_Parsed]:
        """The index rows of written files, the whole batch in one transaction."""
        sops = [p.record.sop_instance_uid for p in parsed]
        with self.engine.connect() as conn:
            known = {r.sop_instance_uid: r for r in conn.execute(
                select(tables.instance.c.sop_instance_uid, tables.instance.c.study_uid,
                       tables.instance.c.series_uid)
                .where(tables.instance.c.sop_instance_uid.in_(sops)))}
        accepted: list[_Parsed] = []
        seen: set[str] = set()
        for p in parsed:
            rec = p.record
            old = known.get(rec.sop_instance_uid)
            if old is not None and (old.study_uid, old.series_uid) != (rec.study_uid,
                                                                      rec.series_uid):
                self.files.delete(rec.file_key)  # written under its own key: not indexed
                outcome.failed.append((rec.sop_class_uid, rec.sop_instance_uid,
                                       DATASET_MISMATCH,
                                       "this SOP Instance UID is stored in another series"))
                continue
            if rec.sop_instance_uid in seen:
                continue
            seen.add(rec.sop_instance_uid)
            accepted.append(p)
        if not accepted:
            return accepted
        stamp = now_us()
        studies: dict[str, dict[str, Any]] = {}
        series: dict[str, dict[str, Any]] = {}
        rows = []
        for p in accepted:
            ds, rec = p.ds, p.record
            if rec.study_uid not in studies:
                studies[rec.study_uid] = {
                    "study_uid": rec.study_uid,
                    "patient_id": _text(ds, "PatientID", 64),
                    "patient_name": _text(ds, "PatientName", 324),
                    "patient_birth_date": _text(ds, "PatientBirthDate", 8),
                    "patient_sex": _text(ds, "PatientSex", 16),
                    "study_date": _text(ds, "StudyDate", 8),
                    "study_time": _text(ds, "StudyTime", 16),
                    "accession_number": _text(ds, "AccessionNumber", 16),
                    "study_id": _text(ds, "StudyID", 16),
                    "study_description": _text(ds, "StudyDescription", 64),
                    "referring_physician": _text(ds, "ReferringPhysicianName", 324),
                    "modalities": "",
                    "attributes": _subset_json(ds, _STUDY_TAGS),
                    "fhir_id": None, "fhir_dirty": True, "updated_at": stamp,
                }
            if rec.series_uid not in series:
                series[rec.series_uid] = {
                    "series_uid": rec.series_uid, "study_uid": rec.study_uid,
                    "modality": _text(ds, "Modality", 16),
                    "series_number": _int(ds, "SeriesNumber"),
                    "series_description": _text(ds, "SeriesDescription", 64),
                    "body_part": _text(ds, "BodyPartExamined", 16),
                    "attributes": _subset_json(ds, _SERIES_TAGS), "updated_at": stamp,
                }
            rows.append({
                "sop_instance_uid": rec.sop_instance_uid, "series_uid": rec.series_uid,
                "study_uid": rec.study_uid, "sop_class_uid": rec.sop_class_uid,
                "instance_number": rec.instance_number,
                "transfer_syntax_uid": rec.transfer_syntax_uid,
                "number_of_frames": rec.number_of_frames,
                "rows": _int(ds, "Rows"), "columns": _int(ds, "Columns"),
                "file_key": rec.file_key, "size": rec.size,
                "metadata": None,
                "stored_at": stamp,
            })
        with self._lock, self.engine.connect() as conn, \
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE").begin():
            # Rows keyed by UIDs: insert, or touch when another request got there first.
            for row in studies.values():
                conn.execute(tables.insert_for(self.engine, tables.study).values(**row)
                             .on_conflict_do_update(index_elements=["study_uid"], set_={
                                 "fhir_dirty": True, "updated_at": stamp}))
            for row in series.values():
                conn.execute(tables.insert_for(self.engine, tables.series).values(**row)
                             .on_conflict_do_update(index_elements=["series_uid"], set_={
                                 "updated_at": stamp}))
            replaced = [r["sop_instance_uid"] for r in rows if r["sop_instance_uid"] in known]
            if replaced:
                conn.execute(delete(tables.instance)
                             .where(tables.instance.c.sop_instance_uid.in_(replaced)))
            statement = tables.insert_for(self.engine, tables.instance)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["sop_instance_uid"],
                set_={c: statement.excluded[c] for c in (
                    "transfer_syntax_uid", "number_of_frames", "rows", "columns", "file_key",
                    "size", "metadata", "stored_at", "instance_number", "sop_class_uid")}),
                rows)
            for uid in studies:
                modalities = sorted(set(conn.execute(
                    select(tables.series.c.modality)
                    .where(tables.series.c.study_uid == uid)).scalars()) - {""})
                conn.execute(update(tables.study).where(tables.study.c.study_uid == uid)
                             .values(modalities="\\".join(modalities)))
        return accepted

    def _write_file(self, p: _Parsed) -> str | None:
        try:
            self.files.write(p.record.file_key, p.data)
        except OSError as exc:
            return f"the file could not be written: {exc.strerror}"
        return None

    def sync(self, study_uid: str) -> None:
        """Rewrite the study's ImagingStudy now (when the FHIR side is wired)."""
        if self.sync_study is not None:
            self.sync_study(study_uid)

    def settle(self, study_uid: str) -> None:
        """What follows a store: the instances' metadata, then the ImagingStudy."""
        self.fill_metadata(study_uid)
        self.sync(study_uid)

    def fill_metadata(self, study_uid: str) -> int:
        """Compute the DICOM JSON metadata of the study's instances that lack it."""
        t = tables.instance
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(t).where(t.c.study_uid == study_uid,
                                                     t.c.metadata.is_(None))))
        for row in rows:
            self.metadata_of(row)
        return len(rows)

    def metadata_of(self, row: Any) -> bytes:
        """The instance's DICOM JSON metadata, computed from its file (and kept) if new."""
        if row.metadata is not None:
            return row.metadata  # type: ignore[no-any-return]
        ds = parse_part10(self.read(row))
        value = metadata_json(ds, row.study_uid, row.series_uid, row.sop_instance_uid,
                              row.transfer_syntax_uid)
        t = tables.instance
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.sop_instance_uid == row.sop_instance_uid,
                                         t.c.metadata.is_(None)).values(metadata=value))
        return value

    def metadata_by_uid(self, sop_uid: str) -> bytes:
        t = tables.instance
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.sop_instance_uid == sop_uid)).first()
        if row is None:
            raise NotFound(f"no stored instance {sop_uid}")
        return self.metadata_of(row)

    def sync_later(self, study_uids: Iterable[str]) -> None:
        """Settle these studies soon, in the background (metadata, ImagingStudy),
        coalescing a burst of stores to the same study into as few passes as possible."""
        for uid in study_uids:
            self._later.add(uid)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no background rewrite is pending (tests, shutdown)."""
        return self._later.drain(timeout)

    def flush(self) -> int:
        """Rewrite every ImagingStudy marked dirty; returns how many."""
        with self.engine.connect() as conn:
            dirty = list(conn.execute(select(tables.study.c.study_uid)
                                      .where(tables.study.c.fhir_dirty.is_(True))).scalars())
        for uid in dirty:
            self.settle(uid)
        return len(dirty)

    # --- reading ---------------------------------------------------------------------

    def instances(self, study_uid: str, series_uid: str | None = None,
                  sop_uid: str | None = None) -> list[Any]:
        """Index rows of a study, series or instance, in series then instance order."""
        t = tables.instance
        query = select(t).where(t.c.study_uid == study_uid)
        if series_uid is not None:
            query = query.where(t.c.series_uid == series_uid)
        if sop_uid is not None:
            query = query.where(t.c.sop_instance_uid == sop_uid)
        query = query.order_by(t.c.series_uid, t.c.instance_number, t.c.sop_instance_uid)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        if not rows:
            what = sop_uid or series_uid or study_uid
            raise NotFound(f"no stored instance matches {what}")
        return rows

    def series_instances(self, series_uid: str) -> list[Any]:
        """Index rows of one series by its UID alone."""
        t = tables.instance
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(t).where(t.c.series_uid == series_uid)
                                     .order_by(t.c.instance_number, t.c.sop_instance_uid)))
        if not rows:
            raise NotFound(f"no stored series {series_uid}")
        return rows

    def headers(self, series_uid: str) -> list[Any]:
        """The series' headers (no pixel data), in volume order (along the normal)."""
        from hygie.imaging.volume import order_slices

        rows = self.series_instances(series_uid)
        return order_slices([parse_part10(data) for data in self.iter_files(rows)])

    def read(self, row: Any) -> bytes:
        """The stored Part 10 bytes of one index row."""
        try:
            return self.files.read(row.file_key)
        except FileNotFoundError as exc:
            raise NotFound(f"the file of instance {row.sop_instance_uid} is missing") from exc
        except ValueError as exc:  # SealError: altered, or not the file of this key
            raise StoredFileUnreadable(
                f"the stored file of instance {row.sop_instance_uid} does not open") from exc

    def iter_files(self, rows: Iterable[Any], window: int = 8) -> Iterator[bytes]:
        """The files of ``rows`` in order, read (and opened) ``window`` ahead in threads."""
        pending: deque[Future[bytes]] = deque()
        for row in rows:
            pending.append(IO_POOL.submit(self.read, row))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def dataset(self, row: Any) -> Any:
        """The full dataset (pixel data included) of one index row."""
        from pydicom import dcmread

        return dcmread(io.BytesIO(self.read(row)))

    def study_row(self, study_uid: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.study)
                               .where(tables.study.c.study_uid == study_uid)).first()
        if row is None:
            raise NotFound(f"no stored study {study_uid}")
        return row
