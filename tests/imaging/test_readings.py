"""Worklist and annotations at the engine and API level: readers stay independent."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from pydicom import dcmread
from starlette.testclient import TestClient

from hygie.imaging.errors import InvalidRequest, NotFound
from hygie.imaging.readings import Readings
from hygie.imaging.service import ImagingService
from hygie.platform import Platform
from tests.imaging.conftest import token


def _series(tiny_files: list[bytes]) -> tuple[str, str]:
    ds = dcmread(io.BytesIO(tiny_files[0]))
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def test_readers_keep_their_own_annotations(service: ImagingService,
                                            tiny_files: list[bytes]) -> None:
    service.archive.store(tiny_files)
    study, series = _series(tiny_files)
    readings = Readings(service.archive.engine, service.archive)
    readings.assign(study, "alice", "chef")
    readings.assign(study, "bob", "chef")
    shape = (20, 64, 64)
    a = np.zeros(shape, np.uint8)
    a[8:12, 20:30, 10:20] = 1
    b = np.zeros(shape, np.uint8)
    b[5, 40:50, 40:50] = 2
    b[6, 40:44, 40:44] = 3
    seg_a = readings.save_annotation(series, "alice", "Alice Martin", a.tobytes())
    seg_b = readings.save_annotation(series, "bob", "", b.tobytes())
    assert seg_a != seg_b
    assert readings.load_annotation(series, "alice") == a.tobytes()
    assert readings.load_annotation(series, "bob") == b.tobytes()
    a[9, 0, 0] = 2
    readings.save_annotation(series, "alice", "Alice Martin", a.tobytes())
    assert readings.load_annotation(series, "alice") == a.tobytes()
    assert readings.load_annotation(series, "bob") == b.tobytes()
    readings.set_status(study, "bob", "done")
    (item,) = readings.worklist(None)
    assert {r["reader"]: r["status"] for r in item.readings} == {"alice": "in-progress",
                                                                "bob": "done"}
    assert [i.study_uid for i in readings.worklist("alice")] == [study]
    assert readings.worklist("carol") == []
    # The annotations are SEG instances of the study, made by their reader.
    seg = dcmread(io.BytesIO(service.archive.read(
        service.archive.instances(study, sop_uid=seg_a)[0])))
    assert seg.Modality == "SEG" and str(seg.ContentCreatorName) == "Martin^Alice"


def test_reading_refusals(service: ImagingService, tiny_files: list[bytes]) -> None:
    service.archive.store(tiny_files)
    study, series = _series(tiny_files)
    readings = Readings(service.archive.engine, service.archive)
    with pytest.raises(NotFound):
        readings.assign("1.2.3", "alice", "chef")
    with pytest.raises(NotFound):
        readings.save_annotation(series, "alice", "", bytes(20 * 64 * 64))
    readings.assign(study, "alice", "chef")
    with pytest.raises(InvalidRequest):
        readings.save_annotation(series, "alice", "", bytes(10))
    with pytest.raises(InvalidRequest):
        readings.save_annotation(series, "alice", "", bytes([9]) * (20 * 64 * 64))
    with pytest.raises(InvalidRequest):
        readings.set_status(study, "alice", "lost")
    with pytest.raises(NotFound):
        readings.set_status(study, "bob", "done")
    assert readings.load_annotation(series, "alice") == bytes(20 * 64 * 64)


def test_reading_api(client: TestClient, platform: Platform, service: ImagingService,
                     tiny_files: list[bytes]) -> None:
    service.archive.store(tiny_files)
    study, series = _series(tiny_files)
    assert client.post(f"/imaging/api/studies/{study}/assignments",
                       json={"reader": "alice"}).status_code == 204
    assert client.post(f"/imaging/api/studies/{study}/assignments",
                       content=b"{").status_code == 400
    alice = {"Authorization": f"Bearer {token(platform, 'system/*.cruds', 'alice')}"}
    listed = client.get("/imaging/api/worklist", headers=alice).json()
    assert listed["admin"] is False and [s["studyUid"] for s in listed["studies"]] == [study]
    labels = np.zeros((20, 64, 64), np.uint8)
    labels[3, 3, 3] = 1
    r = client.put(f"/imaging/api/series/{series}/annotations",
                   content=gzip.compress(labels.tobytes()),
                   headers={**alice, "Content-Encoding": "gzip"})
    assert r.status_code == 201
    r = client.get(f"/imaging/api/series/{series}/annotations", headers=alice)
    assert r.content == labels.tobytes()
    r = client.put(f"/imaging/api/series/{series}/annotations", content=b"\x1f\x8bnope",
                   headers={**alice, "Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert client.put(f"/imaging/api/studies/{study}/reading", json={"status": "done"},
                      headers=alice).status_code == 204
    r = client.get(f"/imaging/api/series/{series}/volume", headers=alice)
    header = __import__("json").loads(r.headers["x-volume"])
    assert header["shape"] == [20, 64, 64]
    assert len(r.content) == 20 * 64 * 64 * 2
    assert client.get(f"/imaging/api/series/{series}/quantification").status_code == 404
    assert client.post(f"/imaging/api/series/{series}/quantification").status_code == 202
    assert client.get(f"/imaging/api/series/{series}/quantification").json()["state"] == \
        "pending"
    assert client.get(f"/imaging/api/studies/{study}/series").json()[0]["instances"] == 20
    assert client.get("/imaging/worklist").status_code == 200
    assert client.get(f"/imaging/viewer/{study}").status_code == 200
