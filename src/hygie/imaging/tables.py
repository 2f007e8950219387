"""Tables of the imaging service (SQLAlchemy Core, in the platform's shared metadata).

The DICOM index, operational data that FHIR does not model (the files themselves live
behind ``files.py``; each study is also an ImagingStudy in the FHIR store):

- ``imaging_study``, ``imaging_series``, ``imaging_instance``: the QIDO-RS / C-FIND
  index. Matching keys are columns; the instance's DICOM JSON metadata (PS3.18 F.2,
  bulk data replaced by URIs) is kept so that WADO-RS metadata needs no file read. It
  is computed just after the store is acknowledged (or at first use), since the
  conversion costs more than the rest of storing an instance.
  ``fhir_dirty`` marks a study whose ImagingStudy must be rewritten (a DIMSE
  association writes it when it ends; a restart finds what was left).
- ``imaging_reading``: who reads which study (worklist assignment), where they are,
  and the DICOM SEG holding their latest annotations.
- ``imaging_job``: the durable queue of quantifications run on arriving chest CTs.

Times are microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from hygie.store.schema import metadata

_pk_int = BigInteger().with_variant(Integer, "sqlite")
_UID = 64

study = Table(
    "imaging_study",
    metadata,
    Column("study_uid", String(_UID), primary_key=True),
    Column("patient_id", String(64), nullable=False, default=""),
    Column("patient_name", String(324), nullable=False, default=""),
    Column("patient_birth_date", String(8), nullable=False, default=""),
    Column("patient_sex", String(16), nullable=False, default=""),
    Column("study_date", String(8), nullable=False, default=""),
    Column("study_time", String(16), nullable=False, default=""),
    Column("accession_number", String(16), nullable=False, default=""),
    Column("study_id", String(16), nullable=False, default=""),
    Column("study_description", String(64), nullable=False, default=""),
    Column("referring_physician", String(324), nullable=False, default=""),
    #: Modalities of the study's series, backslash-separated (ModalitiesInStudy).
    Column("modalities", String(256), nullable=False, default=""),
    #: Study-level attributes as DICOM JSON (from the first instance received).
    Column("attributes", LargeBinary, nullable=False),
    Column("fhir_id", String(64), nullable=True),
    Column("fhir_dirty", Boolean, nullable=False, default=True),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_imaging_study_patient_id", study.c.patient_id)
Index("ix_imaging_study_study_date", study.c.study_date)
Index("ix_imaging_study_fhir_dirty", study.c.fhir_dirty)

series = Table(
    "imaging_series",
    metadata,
    Column("series_uid", String(_UID), primary_key=True),
    Column("study_uid", String(_UID), nullable=False),
    Column("modality", String(16), nullable=False, default=""),
    Column("series_number", Integer, nullable=True),
    Column("series_description", String(64), nullable=False, default=""),
    Column("body_part", String(16), nullable=False, default=""),
    #: Series-level attributes as DICOM JSON (from the first instance received).
    Column("attributes", LargeBinary, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_imaging_series_study_uid", series.c.study_uid)

instance = Table(
    "imaging_instance",
    metadata,
    Column("sop_instance_uid", String(_UID), primary_key=True),
    Column("series_uid", String(_UID), nullable=False),
    Column("study_uid", String(_UID), nullable=False),
    Column("sop_class_uid", String(_UID), nullable=False),
    Column("instance_number", Integer, nullable=True),
    Column("transfer_syntax_uid", String(_UID), nullable=False),
    Column("number_of_frames", Integer, nullable=False, default=1),
    Column("rows", Integer, nullable=True),
    Column("columns", Integer, nullable=True),
    #: Where ``files.py`` keeps the Part 10 file, and its size in bytes.
    Column("file_key", String(256), nullable=False),
    Column("size", BigInteger, nullable=False),
    #: The instance's DICOM JSON metadata, pixel data and bulk data as BulkDataURIs
    #: (NULL until computed).
    Column("metadata", LargeBinary, nullable=True),
    Column("stored_at", BigInteger, nullable=False),
)
Index("ix_imaging_instance_series_uid", instance.c.series_uid, instance.c.instance_number)
Index("ix_imaging_instance_study_uid", instance.c.study_uid)

reading = Table(
    "imaging_reading",
    metadata,
    Column("study_uid", String(_UID), primary_key=True),
    #: The reader's subject (account name), as in the access token.
    Column("reader", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("assigned_by", String(128), nullable=False, default=""),
    Column("assigned_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    #: SOP Instance UID of the reader's latest annotation SEG, if any.
    Column("seg_instance_uid", String(_UID), nullable=True),
)
Index("ix_imaging_reading_reader", reading.c.reader)

job = Table(
    "imaging_job",
    metadata,
    Column("pk", _pk_int, primary_key=True, autoincrement=True),
    Column("series_uid", String(_UID), nullable=False, unique=True),
    Column("study_uid", String(_UID), nullable=False),
    #: pending, running, done or failed.
    Column("state", String(16), nullable=False),
    #: Not before (the series is "stable": no instance arrived for a while).
    Column("due_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    #: The Quantification as JSON, and what it wrote (SEG instance, DiagnosticReport).
    Column("result", Text, nullable=True),
    Column("seg_instance_uid", String(_UID), nullable=True),
    Column("report_id", String(64), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_imaging_job_state_due", job.c.state, job.c.due_at)


def insert_for(engine: Engine, table: Table) -> Any:
    """An INSERT that takes ``on_conflict_do_nothing`` / ``on_conflict_do_update``.

    Both engines speak ``INSERT ... ON CONFLICT``: rows keyed by a UID arrive from
    several processes at once (uvicorn workers, the DIMSE service), and a plain
    read-then-insert would fail on PostgreSQL when two of them meet.
    """
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
