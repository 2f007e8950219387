"""The archive on both databases: index, ImagingStudy and Patient, sealing, refusals."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread
from sqlalchemy import select

from hygie.imaging import tables
from hygie.imaging.archive import CANNOT_UNDERSTAND, DATASET_MISMATCH
from hygie.imaging.errors import NotFound, StoredFileUnreadable
from hygie.imaging.fhir_records import PATIENT_ID_SYSTEM, dicom_datetime
from hygie.imaging.phantom import Phantom, phantom_series
from hygie.imaging.service import ImagingService
from tests.imaging.conftest import part10


def test_store_indexes_and_writes_imaging_study(service: ImagingService,
                                                tiny_files: list[bytes]) -> None:
    outcome = service.archive.store(tiny_files)
    assert len(outcome.stored) == 20 and not outcome.failed
    (study_uid,) = outcome.studies
    row = service.archive.study_row(study_uid)
    assert row.patient_id == "TINY-1" and row.modalities == "CT" and not row.fhir_dirty
    repo = service.store.repository
    found = repo.search("ImagingStudy", [("identifier", f"urn:dicom:uid|urn:oid:{study_uid}")])
    (study,) = [m.resource for m in found.matches]
    assert study["status"] == "available"
    assert study["numberOfSeries"] == 1 and study["numberOfInstances"] == 20
    assert study["series"][0]["modality"]["code"] == "CT"
    assert study["series"][0]["bodySite"]["code"] == "51185008"
    assert study["started"] == "2020-03-28T08:30:00Z"  # 09:30 in Paris, winter time
    numbers = [i["number"] for i in study["series"][0]["instance"]]
    assert numbers == list(range(1, 21))
    patient = repo.read(*study["subject"]["reference"].split("/")).resource
    assert patient["identifier"] == [{"system": PATIENT_ID_SYSTEM, "value": "TINY-1"}]
    assert patient["name"] == [{"family": "Petit", "given": ["Fantome"]}]
    assert patient["gender"] == "other" and patient["birthDate"] == "1958-02-14"
    endpoint = repo.read(*study["endpoint"][0]["reference"].split("/")).resource
    assert endpoint["address"].endswith("/imaging/dicomweb")


def test_a_study_joins_the_record_of_the_patient_it_names(service: ImagingService,
                                                           tiny_files: list[bytes]) -> None:
    """The DICOM Patient ID is the IPP: the study's subject is the patient's record, not
    a second Patient made from the DICOM patient module."""
    repo = service.store.repository
    ipp = "https://hygie.example/fhir/sid/ipp"  # the record's IPP, as the territory writes it
    repo.create({"resourceType": "Patient", "name": [{"family": "Record"}],
                 "identifier": [{"system": ipp, "value": "TINY-1"}]}, res_id="known")
    (study_uid,) = service.archive.store(tiny_files).studies
    found = repo.search("ImagingStudy", [("identifier", f"urn:dicom:uid|urn:oid:{study_uid}")])
    assert found.matches[0].resource["subject"]["reference"] == "Patient/known"
    assert len(repo.search("Patient", []).matches) == 1


def test_storing_again_is_idempotent(service: ImagingService, tiny_files: list[bytes]) -> None:
    service.archive.store(tiny_files[:10])
    outcome = service.archive.store(tiny_files)
    assert len(outcome.stored) == 20
    with service.archive.engine.connect() as conn:
        assert len(list(conn.execute(select(tables.instance.c.sop_instance_uid)))) == 20
    repo = service.store.repository
    (study,) = repo.search("ImagingStudy", []).matches
    assert study.resource["numberOfInstances"] == 20
    assert len(repo.search("Patient", []).matches) == 1


def test_bad_instances_are_refused_one_by_one(service: ImagingService,
                                             tiny_files: list[bytes], phantom: Phantom) -> None:
    ds = dcmread(io.BytesIO(tiny_files[0]))
    del ds.SOPInstanceUID
    no_uid = part10_raw(ds)
    other_study = part10(phantom_series(phantom)[0])
    outcome = service.archive.store([b"not dicom at all", no_uid, tiny_files[1], other_study],
                                    study_uid=str(ds.StudyInstanceUID))
    reasons = [f[2] for f in outcome.failed]
    assert reasons == [CANNOT_UNDERSTAND, DATASET_MISMATCH, DATASET_MISMATCH]
    assert [r.sop_instance_uid for r in outcome.stored] == [
        str(dcmread(io.BytesIO(tiny_files[1])).SOPInstanceUID)]


def part10_raw(ds: object) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)  # type: ignore[attr-defined]
    return buffer.getvalue()


def test_files_are_sealed_at_rest(service: ImagingService, tiny_files: list[bytes]) -> None:
    service.archive.store(tiny_files[:2])
    root = service.platform.settings.var_dir / "imaging" / "files"
    stored = sorted(p for p in root.rglob("*.dcm"))
    assert len(stored) == 2
    for path in stored:
        raw = path.read_bytes()
        assert b"Petit^Fantome" not in raw and b"DICM" not in raw[:200]
    rows = service.archive.series_instances(
        str(dcmread(io.BytesIO(tiny_files[0])).SeriesInstanceUID))
    assert service.archive.read(rows[0]) in tiny_files[:2]
    # A file put in another's place does not open.
    stored[0].write_bytes(stored[1].read_bytes())
    with pytest.raises(StoredFileUnreadable):
        [service.archive.read(r) for r in rows]


def test_unknown_study_is_not_found(service: ImagingService) -> None:
    with pytest.raises(NotFound):
        service.archive.instances("1.2.3.4")


def test_dicom_datetime() -> None:
    assert dicom_datetime("20200701", "101500.123") == "2020-07-01T08:15:00Z"
    assert dicom_datetime("2020", "") is None
    assert dicom_datetime("20201345", "") is None


def test_concurrent_stores_of_one_new_study(service: ImagingService,
                                            tiny_files: list[bytes]) -> None:
    """Two archives (as two processes would be) store halves of a new study at once."""
    from concurrent.futures import ThreadPoolExecutor

    from hygie.imaging.archive import Archive

    archives = [Archive(service.archive.engine, service.files) for _ in range(2)]
    halves = [tiny_files[0::2], tiny_files[1::2]]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda a, f: a.store(f, sync=False), archives, halves))
    assert [len(o.stored) for o in outcomes] == [10, 10]
    assert not any(o.failed for o in outcomes)
    (study_uid,) = outcomes[0].studies
    assert len(service.archive.instances(study_uid)) == 20
    with service.archive.engine.connect() as conn:
        assert len(list(conn.execute(select(tables.series)))) == 1
