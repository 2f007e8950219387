"""DICOMweb over HTTP (PS3.18): STOW-RS, QIDO-RS, WADO-RS, and every refusal."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from starlette.testclient import TestClient

from hygie.imaging.multipart import parse_multipart
from hygie.imaging.phantom import Phantom, phantom_series
from hygie.platform import Platform
from tests.imaging.conftest import multipart, part10, token

DW = "/imaging/dicomweb"


def _stow(client: TestClient, files: list[bytes], study: str | None = None) -> object:
    body, ctype = multipart(files)
    url = f"{DW}/studies" + (f"/{study}" if study else "")
    return client.post(url, content=body, headers={"Content-Type": ctype})


def _uids(tiny_files: list[bytes]) -> tuple[str, str, list[str]]:
    first = dcmread(io.BytesIO(tiny_files[0]))
    sops = [str(dcmread(io.BytesIO(f)).SOPInstanceUID) for f in tiny_files]
    return str(first.StudyInstanceUID), str(first.SeriesInstanceUID), sops


def test_stow_then_qido_then_wado(client: TestClient, tiny_files: list[bytes]) -> None:
    study, series, sops = _uids(tiny_files)
    r = _stow(client, tiny_files)
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom+json"
    body = r.json()
    assert body["00081190"]["Value"] == [f"http://testserver{DW}/studies/{study}"]
    assert len(body["00081199"]["Value"]) == 20 and "00081198" not in body

    # QIDO-RS: studies, series, instances, with matching.
    r = client.get(f"{DW}/studies", params={"PatientID": "TINY-1"})
    (item,) = r.json()
    assert item["0020000D"]["Value"] == [study]
    assert item["00201208"]["Value"] == [20] and item["00080061"]["Value"] == ["CT"]
    for params in ({"PatientName": "petit*"}, {"00100010": "Petit^Fantome"},
                   {"StudyDate": "20200101-20201231"}, {"StudyDate": "-20200328"},
                   {"ModalitiesInStudy": "CT"}, {"StudyInstanceUID": f"1.2.3,{study}"},
                   {"Modality": "CT"}, {"AccessionNumber": "PH000011"}):
        assert client.get(f"{DW}/studies", params=params).status_code == 200, params
    for params in ({"PatientID": "OTHER"}, {"StudyDate": "20210101-"},
                   {"ModalitiesInStudy": "MR"}, {"PatientName": "Dupont*"}):
        assert client.get(f"{DW}/studies", params=params).status_code == 204, params
    r = client.get(f"{DW}/studies", params={"PatientID": "TINY-1", "PatientWeight": "70"})
    assert "PatientWeight" in r.headers["warning"]
    (s,) = client.get(f"{DW}/studies/{study}/series").json()
    assert s["0020000E"]["Value"] == [series] and s["00201209"]["Value"] == [20]
    assert client.get(f"{DW}/series", params={"Modality": "CT"}).json()[0]["00100020"]
    page = client.get(f"{DW}/studies/{study}/series/{series}/instances",
                      params={"limit": "5", "offset": "5"}).json()
    assert [i["00080018"]["Value"][0] for i in page] == sops[5:10]
    one = client.get(f"{DW}/instances", params={"SOPInstanceUID": sops[3],
                                                "includefield": "all"}).json()
    assert one[0]["00280030"]["Value"]  # PixelSpacing comes with includefield=all

    # WADO-RS: the series as multipart/related of the very bytes stored.
    r = client.get(f"{DW}/studies/{study}/series/{series}")
    assert r.status_code == 200
    part_type, parts = parse_multipart(r.content, r.headers["content-type"])
    assert part_type == "application/dicom"
    assert sorted(p.content for p in parts) == sorted(tiny_files)
    r = client.get(f"{DW}/studies/{study}/series/{series}/instances/{sops[0]}",
                   headers={"Accept": 'multipart/related; type="application/dicom"; '
                                      "transfer-syntax=*"})
    assert parse_multipart(r.content, r.headers["content-type"])[1][0].content == tiny_files[0]

    # Metadata, frames, rendered, bulk data.
    meta = client.get(f"{DW}/studies/{study}/series/{series}/metadata").json()
    assert len(meta) == 20
    uri = meta[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith(f"http://testserver{DW}/studies/{study}/")
    pixels = client.get(uri.removeprefix("http://testserver"))
    ds = dcmread(io.BytesIO(tiny_files[0]))
    assert pixels.content == ds.PixelData
    r = client.get(f"{DW}/studies/{study}/series/{series}/instances/{sops[0]}/frames/1")
    _, (frame,) = parse_multipart(r.content, r.headers["content-type"])
    assert frame.content == ds.PixelData
    r = client.get(f"{DW}/studies/{study}/series/{series}/instances/{sops[10]}/rendered",
                   params={"window": "-600,1500", "viewport": "32,32"})
    assert r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (32, 32) and image.mode == "L"
    assert 0 < np.asarray(image).mean() < 255
    r = client.get(f"{DW}/studies/{study}/series/{series}/instances/{sops[10]}/frames/1/"
                   "rendered", headers={"Accept": "image/jpeg"})
    assert r.content[:2] == b"\xff\xd8"


def test_stow_partial_and_total_failures(client: TestClient, tiny_files: list[bytes],
                                         phantom: Phantom) -> None:
    study, _, _ = _uids(tiny_files)
    other = part10(phantom_series(phantom)[0])
    r = _stow(client, [tiny_files[0], other, b"garbage"], study=study)
    assert r.status_code == 202
    body = r.json()
    assert len(body["00081199"]["Value"]) == 1
    assert [f["00081197"]["Value"][0] for f in body["00081198"]["Value"]] == [0xA900, 0xC000]
    r = _stow(client, [b"garbage"])
    assert r.status_code == 409


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({"Content-Type": "application/json"}, b"{}", 415),
    ({"Content-Type": "multipart/related; type=\"application/dicom\""}, b"--x--", 400),
    ({"Content-Type": "multipart/related; boundary=b"}, b"--b\r\nContent-Type: a\r\n", 400),
    ({"Content-Type": 'multipart/related; type="application/dicom+json"; boundary=b'},
     b"--b\r\n\r\n{}\r\n--b--", 415),
    ({"Content-Type": "multipart/related; boundary=b"}, b"--b--\r\n", 400),
])
def test_stow_malformed_bodies(client: TestClient, headers: dict[str, str], body: bytes,
                               status: int) -> None:
    r = client.post(f"{DW}/studies", content=body, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status


def test_wado_refusals(client: TestClient, tiny_files: list[bytes]) -> None:
    study, series, sops = _uids(tiny_files)
    _stow(client, tiny_files)
    inst = f"{DW}/studies/{study}/series/{series}/instances/{sops[0]}"
    assert client.get(f"{DW}/studies/1.2.3").status_code == 404
    assert client.get(f"{inst}/frames/2").status_code == 404
    assert client.get(f"{inst}/frames/a,b").status_code == 400
    assert client.get(inst, headers={"Accept": "application/pdf"}).status_code == 406
    assert client.get(inst, headers={"Accept": 'multipart/related; type="application/dicom";'
                                               " transfer-syntax=1.2.840.10008.1.2.4.50"}
                      ).status_code == 406
    assert client.get(f"{inst}/rendered", headers={"Accept": "image/gif"}).status_code == 406
    assert client.get(f"{inst}/rendered", params={"window": "0,-1"}).status_code == 400
    assert client.get(f"{inst}/rendered", params={"viewport": "0,99999"}).status_code == 400
    assert client.get(f"{inst}/bulkdata/zz").status_code == 400
    assert client.get(f"{inst}/bulkdata/00100010").status_code == 404
    assert client.get(f"{DW}/studies", params={"limit": "-1"}).status_code == 400
    assert client.get(f"{DW}/studies", params={"NoSuchKeyword": "1"}).status_code == 400
    assert client.get(f"{DW}/studies", params={"fuzzymatching": "maybe"}).status_code == 400


def test_upload_limit(platform: Platform, tiny_files: list[bytes]) -> None:
    from tests.imaging.conftest import imaging_app, make_service

    make_service(platform, max_upload_bytes=1000)
    with TestClient(imaging_app(platform), base_url="http://testserver") as c:
        c.headers["Authorization"] = f"Bearer {token(platform)}"
        r = _stow(c, tiny_files[:1])
    assert r.status_code == 413


def test_scopes_are_enforced(client: TestClient, platform: Platform,
                             tiny_files: list[bytes]) -> None:
    study, _, _ = _uids(tiny_files)
    body, ctype = multipart(tiny_files[:1])
    anonymous = TestClient(client.app, base_url="http://testserver")
    assert anonymous.get(f"{DW}/studies").status_code == 401
    reader = {"Authorization": f"Bearer {token(platform, 'system/ImagingStudy.rs')}"}
    r = client.post(f"{DW}/studies", content=body,
                    headers={**reader, "Content-Type": ctype})
    assert r.status_code == 403 and "ImagingStudy.c" in r.json()["detail"]
    assert client.get(f"{DW}/studies", headers=reader).status_code == 204
    other = {"Authorization": f"Bearer {token(platform, 'system/Patient.rs')}"}
    assert client.get(f"{DW}/studies", headers=other).status_code == 403
    r = client.post(f"/imaging/api/studies/{study}/assignments", json={"reader": "x"},
                    headers=reader)
    assert r.status_code == 403


def test_stow_writes_the_imaging_study(client: TestClient, service: object,
                                       tiny_files: list[bytes]) -> None:
    study, _, _ = _uids(tiny_files)
    assert _stow(client, tiny_files[:12]).status_code == 200
    assert _stow(client, tiny_files[12:]).status_code == 200
    assert service.archive.drain(30)  # type: ignore[attr-defined]
    repo = service.store.repository  # type: ignore[attr-defined]
    (found,) = repo.search("ImagingStudy", [("identifier", f"urn:dicom:uid|urn:oid:{study}")]
                           ).matches
    assert found.resource["numberOfInstances"] == 20
    assert not service.archive.study_row(study).fhir_dirty  # type: ignore[attr-defined]
