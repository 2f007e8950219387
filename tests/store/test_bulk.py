"""Bulk Data: async $export (system, Patient, Group) and NDJSON import."""

from __future__ import annotations

import time

import orjson
from sqlalchemy import select, update
from starlette.testclient import TestClient

from hygie.platform import Platform
from hygie.store.bulk import EXPIRES_US, BulkExports, import_ndjson
from hygie.store.export_files import SEALED_SUFFIX
from hygie.store.interactions import StoreContext
from hygie.store.model import now_us, parse_instant
from hygie.store.schema import bulk_job, resource
from hygie.store.sql_repository import SqlRepository


def _seed(client: TestClient) -> tuple[str, str]:
    p1 = client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"}).json()["id"]
    p2 = client.put("/fhir/Patient/p2", json={"resourceType": "Patient", "id": "p2"}).json()["id"]
    for p in (p1, p1, p2):
        client.post(
            "/fhir/Observation",
            json={
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "FC"},
                "subject": {"reference": f"Patient/{p}"},
            },
        )
    client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "GHT"})
    client.put(
        "/fhir/Group/g1",
        json={
            "resourceType": "Group",
            "id": "g1",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": "Patient/p2"}}],
        },
    )
    return p1, p2


def _run_export(client: TestClient, url: str) -> dict:  # type: ignore[type-arg]
    kick = client.get(url, headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["Content-Location"].replace("http://testserver", "")
    for _ in range(200):
        status = client.get(status_url)
        if status.status_code == 200:
            return status.json()  # type: ignore[no-any-return]
        assert status.status_code == 202
        assert "X-Progress" in status.headers
        time.sleep(0.05)
    raise AssertionError("export did not finish")


def _download(client: TestClient, manifest: dict) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    out = {}
    for item in manifest["output"]:
        resp = client.get(item["url"].replace("http://testserver", ""))
        assert resp.status_code == 200
        lines = [orjson.loads(line) for line in resp.content.splitlines() if line]
        assert len(lines) == item["count"]
        out[item["type"]] = lines
    return out


def test_system_export(client: TestClient) -> None:
    _seed(client)
    manifest = _run_export(client, "/fhir/$export")
    assert manifest["requiresAccessToken"] is True
    files = _download(client, manifest)
    assert len(files["Patient"]) == 2 and len(files["Observation"]) == 3
    assert len(files["Organization"]) == 1
    only = _download(client, _run_export(client, "/fhir/$export?_type=Patient"))
    assert set(only) == {"Patient"}


def test_patient_and_group_export(client: TestClient) -> None:
    _seed(client)
    files = _download(client, _run_export(client, "/fhir/Patient/$export"))
    # Group is in the patient compartment (Group.member), so it comes along
    assert set(files) == {"Patient", "Observation", "Group"}
    group = _download(client, _run_export(client, "/fhir/Group/g1/$export"))
    assert [p["id"] for p in group["Patient"]] == ["p2"]
    assert len(group["Observation"]) == 1


def test_export_files_are_sealed_at_rest_and_expire(client: TestClient, platform: Platform) -> None:
    _seed(client)
    client.put("/fhir/Patient/p1", json={
        "resourceType": "Patient", "id": "p1", "name": [{"family": "Lumiere"}]})
    manifest = _run_export(client, "/fhir/$export?_type=Patient")
    job = manifest["output"][0]["url"].split("/")[-2]
    folder = platform.settings.var_dir / "bulk" / job
    [on_disk] = folder.iterdir()
    assert on_disk.name == "Patient.ndjson" + SEALED_SUFFIX
    assert b"Lumiere" not in on_disk.read_bytes()
    assert b"Lumiere" in client.get(manifest["output"][0]["url"]).content
    assert client.get(f"/fhir/$export-file/{job}/{on_disk.name}").status_code == 404
    status_url = f"/fhir/$export-status/{job}"
    expires = parse_instant(client.get(status_url).headers["Expires"])
    assert 0 < expires - now_us() <= EXPIRES_US
    exports: BulkExports = platform.parts["bulk_exports"]
    assert exports.purge_expired() == 0
    # a day later: polled, the job has expired and its files are gone
    with platform.engine.begin() as conn:
        conn.execute(update(bulk_job).where(bulk_job.c.id == job)
                     .values(updated=now_us() - EXPIRES_US - 1))
    assert client.get(status_url).status_code == 404
    assert not folder.exists()
    assert client.get(manifest["output"][0]["url"]).status_code == 404


def test_an_altered_export_file_is_refused(client: TestClient, platform: Platform) -> None:
    _seed(client)
    manifest = _run_export(client, "/fhir/$export?_type=Patient")
    url = manifest["output"][0]["url"]
    [on_disk] = (platform.settings.var_dir / "bulk" / url.split("/")[-2]).iterdir()
    data = bytearray(on_disk.read_bytes())
    data[-1] ^= 1
    on_disk.write_bytes(bytes(data))
    resp = client.get(url)
    assert resp.status_code == 500
    assert resp.json()["issue"][0]["diagnostics"] == "the export file does not open"


def test_export_needs_async_and_known_group(client: TestClient) -> None:
    assert client.get("/fhir/$export").status_code == 400
    assert (
        client.get("/fhir/Group/none/$export", headers={"Prefer": "respond-async"}).status_code
        == 404
    )
    assert (
        client.get("/fhir/$export?_type=Nope", headers={"Prefer": "respond-async"}).status_code
        == 400
    )
    assert client.get("/fhir/$export-status/unknown").status_code == 404


def test_export_cancel(client: TestClient) -> None:
    _seed(client)
    kick = client.get("/fhir/$export", headers={"Prefer": "respond-async"})
    status_url = kick.headers["Content-Location"].replace("http://testserver", "")
    assert client.delete(status_url).status_code == 202
    assert client.get(status_url).status_code == 404


def test_import_endpoint_reports_bad_lines(client: TestClient) -> None:
    lines = [
        orjson.dumps({"resourceType": "Patient", "id": "imp1", "gender": "male"}),
        b"{not json",
        orjson.dumps({"resourceType": "Patient", "id": "imp2", "gender": "nope"}),
        orjson.dumps(
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "Patient/imp1"},
            }
        ),
        orjson.dumps({"resourceType": "Patient", "id": "imp1", "gender": "female"}),
    ]
    resp = client.post(
        "/fhir/$import",
        content=b"\n".join(lines),
        headers={"Content-Type": "application/fhir+ndjson"},
    )
    assert resp.status_code == 200, resp.text
    text = str(resp.json())
    assert "line 2" in text and "line 3" in text
    assert client.get("/fhir/Patient/imp1").json()["gender"] == "female"
    assert client.get("/fhir/Patient/imp1").json()["meta"]["versionId"] == "2"
    assert client.get("/fhir/Patient/imp2").status_code == 404
    found = client.get("/fhir/Observation?subject=Patient/imp1").json()
    assert found["total"] == 1


class _ReversingCodec:
    """A body codec that is easy to recognise at rest."""

    def seal(self, body: bytes, context: str) -> bytes:
        return b"~" + body[::-1]

    def open(self, stored: bytes, context: str) -> bytes:
        return stored[1:][::-1] if stored.startswith(b"~") else stored


def test_import_with_workers_writes_in_order_through_the_repository(
    store: StoreContext,
) -> None:
    """Workers only prepare; the one writer keeps file order and the repository's codec."""
    repo = store.repository
    assert isinstance(repo, SqlRepository)
    repo.codec = _ReversingCodec()
    lines = [
        orjson.dumps({"resourceType": "Patient", "id": f"w{i}", "gender": "male"})
        for i in range(30)
    ]
    lines[6] = b"{not json"
    lines[11] = orjson.dumps({"resourceType": "Patient", "id": "w11", "gender": "nope"})
    lines.append(orjson.dumps({"resourceType": "Patient", "id": "w3", "gender": "female"}))
    report = import_ndjson(repo, lines, workers=2, chunk_size=4)
    assert (report.created, report.updated) == (28, 1)
    assert [number for number, _why in report.errors] == [7, 12]
    again = repo.read("Patient", "w3")
    assert again.version == 2 and orjson.loads(again.body or b"")["gender"] == "female"
    with repo.engine.connect() as conn:
        bodies = conn.execute(select(resource.c.body)).scalars().all()
    assert len(bodies) == 28 and all(bytes(b).startswith(b"~") for b in bodies)
    found = repo.search("Patient", [("gender", "male"), ("_count", "100")])
    assert len(found.matches) == 27
