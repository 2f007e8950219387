"""The DIMSE side of the archive (PS3.7, PS3.4): C-ECHO, C-STORE, C-FIND and C-MOVE.

pynetdicom speaks the protocol; this module only answers its events with the same
archive and index as DICOMweb:

* C-STORE (PS3.4 B.2.3): the instance is stored as received (``encoded_dataset``:
  no decode, no re-encode) before the success status leaves; the ImagingStudy of the
  studies an association touched is written when it ends (release, abort or close).
* C-FIND (PS3.4 C.4.1): Patient Root and Study Root, levels PATIENT, STUDY, SERIES
  and IMAGE, through ``qido.py``'s matching; each response carries the keys asked for.
* C-MOVE (PS3.4 C.4.2): to the AE titles configured in ``move_destinations`` only;
  an unknown destination is refused with 0xA801.

Logs never carry identifiers: pynetdicom's own logger is kept at WARNING.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from hygie.imaging import qido

__all__ = ["DimseServer"]

log = logging.getLogger("hygie.imaging.dimse")
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

_LEVEL_KEYS = {
    "PATIENT": ("PatientID",),
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
_STORAGE_SYNTAXES = [
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5",
]


class DimseServer:
    """A DICOM application entity serving the archive on one TCP port."""

    def __init__(self, service: Any, *, ae_title: str | None = None,
                 host: str | None = None, port: int | None = None) -> None:
        self.service = service
        settings = service.settings
        self.ae_title = ae_title or settings.ae_title
        self.host = host or settings.dimse_host
        self.port = settings.dimse_port if port is None else port
        self.destinations: dict[str, tuple[str, int]] = dict(settings.move_destinations)
        self._server: Any = None
        self._touched: dict[int, set[str]] = {}
        self._lock = threading.Lock()

    def _ae(self) -> Any:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts
        from pynetdicom.sop_class import (
            CTImageStorage,
            MRImageStorage,
            PatientRootQueryRetrieveInformationModelFind,
            PatientRootQueryRetrieveInformationModelMove,
            SecondaryCaptureImageStorage,
            SegmentationStorage,
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelMove,
            Verification,
        )

        ae = AE(ae_title=self.ae_title)
        ae.maximum_associations = 16
        ae.network_timeout = 60
        ae.add_supported_context(Verification)
        for context in StoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        for model in (PatientRootQueryRetrieveInformationModelFind,
                      StudyRootQueryRetrieveInformationModelFind,
                      PatientRootQueryRetrieveInformationModelMove,
                      StudyRootQueryRetrieveInformationModelMove):
            ae.add_supported_context(model)
        # Contexts offered to C-MOVE destinations (sub-operations are C-STOREs).
        for sop_class in (CTImageStorage, MRImageStorage, SegmentationStorage,
                          SecondaryCaptureImageStorage):
            ae.add_requested_context(sop_class, _STORAGE_SYNTAXES)
        return ae

    def start(self) -> None:
        """Listen in the background (pynetdicom's threads)."""
        from pynetdicom import evt

        _ = self.service.store  # opened here, not in an association's thread
        handlers = [
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_RELEASED, self._on_end),
            (evt.EVT_ABORTED, self._on_end),
            (evt.EVT_CONN_CLOSE, self._on_end),
        ]
        self._server = self._ae().start_server((self.host, self.port), block=False,
                                               evt_handlers=handlers)
        self.port = self._server.server_address[1]

    def serve_forever(self) -> None:
        """Listen in this thread until interrupted (the CLI)."""
        self.start()
        try:
            threading.Event().wait()
        finally:
            self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # --- handlers --------------------------------------------------------------------

    def _on_echo(self, event: Any) -> int:
        return 0x0000

    def _on_store(self, event: Any) -> int:
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception:  # malformed command or dataset
            return 0xC000
        outcome = self.service.archive.store([data], sync=False)
        if not outcome.stored:
            reason = outcome.failed[0][2] if outcome.failed else 0xC000
            return 0xA900 if reason == 0xA900 else 0xC000
        with self._lock:
            self._touched.setdefault(id(event.assoc), set()).update(outcome.studies)
        return 0x0000

    def _on_end(self, event: Any) -> None:
        with self._lock:
            studies = self._touched.pop(id(event.assoc), set())
        for uid in studies:
            try:
                self.service.archive.settle(uid)
            except Exception:  # the dirty flag stays set; a later flush retries
                log.exception("ImagingStudy update after an association failed")

    def _on_find(self, event: Any) -> Iterator[tuple[int, Any]]:
        identifier = event.identifier
        level = str(getattr(identifier, "QueryRetrieveLevel", "")).upper()
        if level not in _LEVEL_KEYS:
            yield 0xA900, None
            return
        try:
            matches = self._match(identifier, level)
        except Exception:
            log.exception("C-FIND matching failed")
            yield 0xC000, None
            return
        for item in matches:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, _response(identifier, item, level)

    def _match(self, identifier: Any, level: str) -> list[dict[str, Any]]:
        params = []
        for element in identifier:
            keyword = element.keyword
            if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet") or not keyword:
                continue
            if element.VR == "SQ" or element.value in (None, "", b""):
                continue
            value = element.value
            if element.VR == "PN":
                value = str(value)
            elif _is_multi(value):
                value = "\\".join(str(v) for v in value)
            params.append((keyword, str(value)))
        engine = self.service.archive.engine
        qido_level = {"PATIENT": "study", "STUDY": "study", "SERIES": "series",
                      "IMAGE": "instance"}[level]
        q = qido.parse_qido(params, qido_level)
        q.limit = qido.MAX_LIMIT
        if level in ("PATIENT", "STUDY"):
            found = qido.search_studies(engine, q)
            if level == "PATIENT":
                unique: dict[str, dict[str, Any]] = {}
                for item in found:
                    pid = (item.get("00100020", {}).get("Value") or [""])[0]
                    unique.setdefault(pid, item)
                found = list(unique.values())
            return found
        if level == "SERIES":
            return qido.search_series(engine, q)
        q.include_all = True
        return qido.search_instances(engine, q, metadata=self.service.archive.metadata_by_uid)

    def _on_move(self, event: Any) -> Iterator[Any]:
        destination = event.move_destination.decode() if isinstance(
            event.move_destination, bytes) else str(event.move_destination)
        address = self.destinations.get(destination.strip())
        if address is None:
            yield None, None
            return
        identifier = event.identifier
        level = str(getattr(identifier, "QueryRetrieveLevel", "")).upper()
        if level not in ("PATIENT", "STUDY", "SERIES", "IMAGE"):
            yield address
            yield 0xA900, None
            return
        rows = self._move_rows(identifier, level)
        yield address
        yield len(rows)
        for row in rows:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, self.service.archive.dataset(row)

    def _move_rows(self, identifier: Any, level: str) -> list[Any]:
        from sqlalchemy import select

        from hygie.imaging import tables

        t = tables.instance
        query = select(t)
        if level == "PATIENT":
            pid = str(getattr(identifier, "PatientID", ""))
            studies = select(tables.study.c.study_uid).where(tables.study.c.patient_id == pid)
            query = query.where(t.c.study_uid.in_(studies))
        for keyword, column in (("StudyInstanceUID", t.c.study_uid),
                                ("SeriesInstanceUID", t.c.series_uid),
                                ("SOPInstanceUID", t.c.sop_instance_uid)):
            value = getattr(identifier, keyword, None)
            if value:
                uids = [str(v) for v in value] if _is_multi(value) else \
                    str(value).split("\\")
                query = query.where(column.in_(uids))
        with self.service.archive.engine.connect() as conn:
            return list(conn.execute(query.order_by(t.c.series_uid, t.c.instance_number)))


def _is_multi(value: Any) -> bool:
    from pydicom.multival import MultiValue

    return isinstance(value, MultiValue | list | tuple)


def _response(identifier: Any, item: dict[str, Any], level: str) -> Any:
    """A C-FIND response: the keys of the request, filled from the match."""
    from pydicom.dataset import Dataset

    found = Dataset.from_json({k: v for k, v in item.items()
                               if k != "00081190" and "BulkDataURI" not in v})
    out = Dataset()
    out.QueryRetrieveLevel = level
    if "SpecificCharacterSet" in found:
        out.SpecificCharacterSet = found.SpecificCharacterSet
    for element in identifier:
        keyword = element.keyword
        if not keyword or keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        if keyword in found:
            out[keyword] = found[keyword]
        else:
            out.add_new(element.tag, element.VR, None)
    for keyword in _LEVEL_KEYS[level]:
        if keyword in found:
            out[keyword] = found[keyword]
    if "RetrieveAETitle" in identifier:
        out.RetrieveAETitle = "HYGIE"
    return out
