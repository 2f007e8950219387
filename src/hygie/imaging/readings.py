"""Remote reading: the worklist, each reader's status, and their annotations as DICOM SEG.

Several readers may read the same study; each has one ``imaging_reading`` row (the
assignment, their status) and their own annotations. An annotation is a label map
over one series (``segmentation.ANNOTATION_LABELS``), saved as a new DICOM SEG in the
study, created by that reader; the row points at their latest one, so saving never
touches another reader's work and earlier versions stay in the archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, update

from hygie.imaging import tables
from hygie.imaging.archive import Archive, now_us
from hygie.imaging.errors import InvalidRequest, NotFound
from hygie.imaging.model import ReadingStatus
from hygie.imaging.segmentation import ANNOTATION_LABELS, create_seg, read_labelmap, seg_bytes

__all__ = ["Readings", "WorklistItem"]

#: Series Number given to annotation SEG objects.
ANNOTATION_SERIES_NUMBER = 9101


@dataclass(frozen=True)
class WorklistItem:
    """One study on a worklist, with the readings the caller may see."""

    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    description: str
    modalities: str
    readings: list[dict[str, Any]]


class Readings:
    """Worklist and annotations over one archive."""

    def __init__(self, engine: Engine, archive: Archive) -> None:
        self.engine = engine
        self.archive = archive

    def assign(self, study_uid: str, reader: str, by: str) -> None:
        """Put the study on ``reader``'s worklist (again: status back to assigned)."""
        if not reader or len(reader) > 128:
            raise InvalidRequest("reader must be an account name of 1 to 128 characters")
        self.archive.study_row(study_uid)
        now = now_us()
        t = tables.reading
        statement = tables.insert_for(self.engine, t).values(
            study_uid=study_uid, reader=reader, status=ReadingStatus.ASSIGNED.value,
            assigned_by=by, assigned_at=now, updated_at=now)
        with self.engine.begin() as conn:
            conn.execute(statement.on_conflict_do_update(
                index_elements=["study_uid", "reader"],
                set_={"assigned_by": by, "assigned_at": now, "updated_at": now}))

    def set_status(self, study_uid: str, reader: str, status: str) -> None:
        """The reader's own status for a study assigned to them."""
        try:
            value = ReadingStatus(status)
        except ValueError as exc:
            allowed = ", ".join(s.value for s in ReadingStatus)
            raise InvalidRequest(f"status must be one of {allowed}") from exc
        t = tables.reading
        with self.engine.begin() as conn:
            done = conn.execute(update(t).where(t.c.study_uid == study_uid, t.c.reader == reader)
                                .values(status=value.value, updated_at=now_us()))
        if done.rowcount == 0:
            raise NotFound("this study is not on your worklist")

    def reading(self, study_uid: str, reader: str) -> Any | None:
        t = tables.reading
        with self.engine.connect() as conn:
            return conn.execute(select(t).where(t.c.study_uid == study_uid,
                                                t.c.reader == reader)).first()

    def worklist(self, reader: str | None) -> list[WorklistItem]:
        """Studies assigned to ``reader``; every study (with all readings) when None."""
        s, r = tables.study, tables.reading
        with self.engine.connect() as conn:
            if reader is None:
                studies = list(conn.execute(select(s).order_by(s.c.study_date.desc(),
                                                              s.c.study_uid)))
                rows = list(conn.execute(select(r)))
            else:
                rows = list(conn.execute(select(r).where(r.c.reader == reader)))
                uids = [row.study_uid for row in rows]
                studies = list(conn.execute(select(s).where(s.c.study_uid.in_(uids))
                                            .order_by(s.c.study_date.desc(), s.c.study_uid)))
        by_study: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_study.setdefault(row.study_uid, []).append({
                "reader": row.reader, "status": row.status, "assignedBy": row.assigned_by,
                "assignedAt": row.assigned_at, "updatedAt": row.updated_at,
                "annotation": row.seg_instance_uid})
        return [WorklistItem(st.study_uid, st.patient_name, st.patient_id, st.study_date,
                             st.study_description, st.modalities,
                             sorted(by_study.get(st.study_uid, []), key=lambda x: x["reader"]))
                for st in studies]

    # --- annotations -----------------------------------------------------------------

    def save_annotation(self, series_uid: str, reader: str, display: str,
                        labels: bytes) -> str:
        """Store the reader's label map over a series as a SEG; returns its UID."""
        headers = self.archive.headers(series_uid)
        shape = (len(headers), int(headers[0].Rows), int(headers[0].Columns))
        if len(labels) != shape[0] * shape[1] * shape[2]:
            raise InvalidRequest(f"the label map must hold {shape[0]}x{shape[1]}x{shape[2]} "
                                 f"bytes, one per voxel; got {len(labels)}")
        labelmap = np.frombuffer(labels, np.uint8).reshape(shape)
        if int(labelmap.max(initial=0)) > max(ANNOTATION_LABELS):
            raise InvalidRequest(f"labels are 0 (none) to {max(ANNOTATION_LABELS)}")
        study_uid = str(headers[0].StudyInstanceUID)
        if self.reading(study_uid, reader) is None:
            raise NotFound("this study is not on your worklist")
        seg = create_seg(headers, labelmap,
                         [kind for _, kind in sorted(ANNOTATION_LABELS.items())],
                         series_number=ANNOTATION_SERIES_NUMBER,
                         description=f"Annotations {reader}"[:64],
                         creator=_person_name(display or reader))
        outcome = self.archive.store([seg_bytes(seg)], sync=True)
        if not outcome.stored:
            raise InvalidRequest(f"the annotation could not be stored: {outcome.failed}")
        uid = str(seg.SOPInstanceUID)
        t = tables.reading
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.study_uid == study_uid, t.c.reader == reader)
                         .values(seg_instance_uid=uid, updated_at=now_us(),
                                 status=ReadingStatus.IN_PROGRESS.value)
                         .where(t.c.status == ReadingStatus.ASSIGNED.value))
            conn.execute(update(t).where(t.c.study_uid == study_uid, t.c.reader == reader)
                         .values(seg_instance_uid=uid, updated_at=now_us()))
        return uid

    def load_annotation(self, series_uid: str, reader: str) -> bytes:
        """The reader's latest label map over a series (zeros when none)."""
        headers = self.archive.headers(series_uid)
        shape = (len(headers), int(headers[0].Rows), int(headers[0].Columns))
        row = self.reading(str(headers[0].StudyInstanceUID), reader)
        if row is None or not row.seg_instance_uid:
            return bytes(shape[0] * shape[1] * shape[2])
        seg_row = self.archive.instances(str(headers[0].StudyInstanceUID),
                                         sop_uid=row.seg_instance_uid)[0]
        labelmap = read_labelmap(self.archive.read(seg_row),
                                 [str(h.SOPInstanceUID) for h in headers], shape)
        return labelmap.tobytes()


def _person_name(text: str) -> str:
    """A DICOM PN from a display name ("Jeanne Martin" -> "Martin^Jeanne")."""
    words = text.replace("^", " ").split()
    if len(words) >= 2:
        return f"{words[-1]}^{' '.join(words[:-1])}"[:64]
    return (words[0] if words else "Lecteur")[:63] + "^"
