"""Benchmarks of the imaging service.

Prints one line per figure, ``name: value unit (ratio x vs peer)``:

- ``quantification_512x512x300``: seconds to quantify a 512 x 512 x 300 chest CT
  phantom (lungs, airways, vessels, lesions, zones and scores) from its HU volume,
  best of ``--repeat`` runs; the accuracy against the phantom's truth follows
  (``lung_volume_error``, ``opacity_error``).
- ``quantification_end_to_end``: the same series read from the archive (sealed files,
  decoding), quantified, written back as DICOM SEG and FHIR DiagnosticReport.
- ``stow_rs``: instances per second storing the 300 slices (157 MB) with STOW-RS, in
  requests of ``BATCH`` instances (13 MB: the platform refuses bodies over its
  ``max_body_bytes``, 16 MiB by default), and ``stow_rs_throughput`` in MB/s;
  ``wado_rs`` / ``wado_rs_throughput``: retrieving the whole series with one WADO-RS
  request. Rounds alternate between the peers (best of ``--repeat`` each), and each STOW
  round sends a copy of the series under new UIDs.
  Both run against Hygie (``hygie serve``, one uvicorn worker, SQLite, files sealed at
  rest and synced) and Orthanc (Debian packages ``orthanc`` and ``orthanc-dicomweb``,
  SQLite index, storage synced), each started on loopback by this script with a fresh
  storage, and receive the same bytes.

Usage: ``.venv/bin/python bench/imaging.py [--repeat N] [--no-orthanc]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pydicom.uid import generate_uid

from hygie.imaging.phantom import PhantomSpec, generate_phantom, phantom_series
from hygie.imaging.quantify import quantify
from hygie.imaging.volume import volume_from_datasets

ORTHANC = Path("/usr/sbin/Orthanc")
ORTHANC_DICOMWEB = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
#: Instances per STOW-RS request.
BATCH = 25
SPEC = PhantomSpec(shape=(300, 512, 512), field_of_view_mm=360.0, slice_thickness_mm=1.0,
                   seed=7, patient_id="BENCH-1", patient_name="Banc^Essai")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, headers: dict[str, str] | None = None, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def part10(ds: Any) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def multipart(files: list[bytes]) -> tuple[bytes, str]:
    boundary = "bench-boundary-7b1f"
    chunks = []
    for f in files:
        chunks += [b"--", boundary.encode(), b"\r\nContent-Type: application/dicom\r\n\r\n", f,
                   b"\r\n"]
    chunks += [b"--", boundary.encode(), b"--\r\n"]
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


class Peer:
    """A running DICOMweb server: its base URL, headers, and the process to stop."""

    def __init__(self, name: str, base: str, headers: dict[str, str],
                 process: subprocess.Popen[bytes], log: Any) -> None:
        self.name, self.base, self.headers = name, base, headers
        self.process, self.log = process, log
        self.stow: list[float] = []
        self.wado: list[float] = []
        self.size = 0

    def store(self, bodies: list[tuple[bytes, str]]) -> None:
        t0 = time.perf_counter()
        with httpx.Client(timeout=900) as client:
            for body, ctype in bodies:
                r = client.post(f"{self.base}/studies", content=body,
                                headers={**self.headers, "Content-Type": ctype,
                                         "Accept": "application/dicom+json"})
                if r.status_code != 200:
                    raise RuntimeError(f"STOW-RS to {self.name} answered {r.status_code}: "
                                       f"{r.text[:300]}")
        self.stow.append(time.perf_counter() - t0)

    def retrieve(self, study: str, series: str) -> None:
        t0 = time.perf_counter()
        size = 0
        with httpx.stream("GET", f"{self.base}/studies/{study}/series/{series}", timeout=900,
                          headers={**self.headers,
                                   "Accept": 'multipart/related; type="application/dicom"'}
                          ) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"WADO-RS from {self.name} answered {resp.status_code}")
            for chunk in resp.iter_bytes(1 << 20):
                size += len(chunk)
        self.wado.append(time.perf_counter() - t0)
        self.size = size

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def start_hygie(tmp: Path) -> Peer:
    port = free_port()
    env = {**os.environ, "HYGIE_DATABASE_URL": f"sqlite:///{tmp / 'hygie.db'}",
           "HYGIE_VAR_DIR": str(tmp / "var"), "HYGIE_PORT": str(port),
           "HYGIE_BASE_URL": f"http://127.0.0.1:{port}", "HYGIE_CONFIG": str(tmp / "h.toml")}
    (tmp / "h.toml").write_text("[hygie]\n[imaging]\nquantify_on_arrival = false\n")
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from hygie.config import load_settings
        from hygie.platform import open_platform
        from hygie.security.tokens import issue_service_token
        from hygie.store.migrations import upgrade

        platform = open_platform(load_settings())
        upgrade(platform.engine)
        token = issue_service_token(platform, subject="bench", scope="system/*.cruds")
        platform.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    log = open(tmp / "hygie.log", "wb")  # noqa: SIM115 - closed by Peer.stop
    process = subprocess.Popen([sys.executable, "-m", "hygie", "serve"], env=env, cwd=tmp,
                               stdout=log, stderr=subprocess.STDOUT)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/imaging/dicomweb"
    wait_http(f"{base}/studies", headers)
    return Peer("Hygie", base, headers, process, log)


def start_orthanc(tmp: Path) -> Peer:
    port = free_port()
    config = {
        "Name": "bench", "StorageDirectory": str(tmp / "storage"),
        "IndexDirectory": str(tmp / "index"), "HttpPort": port, "DicomServerEnabled": False,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "StorageCompression": False, "HttpCompressionEnabled": False,
        "SyncStorageArea": True, "Plugins": [str(ORTHANC_DICOMWEB)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (tmp / "orthanc.json").write_text(json.dumps(config))
    log = open(tmp / "orthanc.log", "wb")  # noqa: SIM115 - closed by Peer.stop
    process = subprocess.Popen([str(ORTHANC), str(tmp / "orthanc.json")], stdout=log,
                               stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/system")
    return Peer("Orthanc", f"http://127.0.0.1:{port}/dicom-web", {}, process, log)


def end_to_end(tmp: Path, files: list[bytes], series_uid: str) -> float:
    from hygie.config import load_settings
    from hygie.imaging.lung_report import quantify_series
    from hygie.imaging.model import ImagingSettings
    from hygie.imaging.service import ImagingService
    from hygie.platform import open_platform
    from hygie.store.migrations import upgrade

    platform = open_platform(load_settings(database_url=f"sqlite:///{tmp / 'e2e.db'}",
                                           var_dir=tmp / "e2e"))
    upgrade(platform.engine)
    svc = ImagingService.for_platform(platform, ImagingSettings(quantify_on_arrival=False))
    svc.archive.store(files)
    t0 = time.perf_counter()
    done = quantify_series(svc.archive, svc.store, series_uid)
    elapsed = time.perf_counter() - t0
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in done.timings.items())
    print(f"quantification_end_to_end: {elapsed:.2f} s ({parts})")
    platform.close()
    return elapsed


def ratio(ours: float, theirs: float) -> str:
    return f"({ours / theirs:.2f} x vs Orthanc)" if theirs > 0 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-orthanc", action="store_true")
    args = parser.parse_args()

    phantom = generate_phantom(SPEC)
    datasets = phantom_series(phantom)
    volume = volume_from_datasets(datasets)
    best, q = float("inf"), None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        q, _masks = quantify(volume)
        best = min(best, time.perf_counter() - t0)
    assert q is not None
    print(f"quantification_512x512x300: {best:.2f} s (goal <= 10 s)")
    print(f"lung_volume_error: {100 * (q.lung_volume_ml / phantom.lung_volume_ml - 1):+.2f} % "
          f"({q.lung_volume_ml:.0f} mL vs {phantom.lung_volume_ml:.0f} mL true)")
    print(f"opacity_error: {q.percent_opacity - phantom.percent_opacity:+.2f} points "
          f"({q.percent_opacity:.2f} % vs {phantom.percent_opacity:.2f} % true)")

    files = [part10(ds) for ds in datasets]
    del volume
    total_mb = sum(len(f) for f in files) / 1e6
    study = phantom_series_uid(files, "StudyInstanceUID")
    series = phantom_series_uid(files, "SeriesInstanceUID")
    with tempfile.TemporaryDirectory(prefix="hygie-bench-imaging-") as tmp:
        end_to_end(Path(tmp), files, series)
        peers = []
        try:
            (Path(tmp) / "hygie").mkdir()
            peers.append(start_hygie(Path(tmp) / "hygie"))
            if not args.no_orthanc and ORTHANC.exists() and ORTHANC_DICOMWEB.exists():
                (Path(tmp) / "orthanc").mkdir()
                peers.append(start_orthanc(Path(tmp) / "orthanc"))
            elif not args.no_orthanc:
                print("orthanc: not installed (apt-get install orthanc orthanc-dicomweb)")
            # Rounds alternate between the peers, so that both see the same machine
            # load; each STOW round sends a copy of the series under new UIDs.
            for round_ in range(args.repeat):
                copy = files if round_ == 0 else [part10(ds) for ds in phantom_series(
                    phantom, study_uid=generate_uid(entropy_srcs=[study, str(round_)]),
                    series_uid=generate_uid(entropy_srcs=[series, str(round_)]))]
                bodies = [multipart(copy[i:i + BATCH]) for i in range(0, len(copy), BATCH)]
                for peer in peers:
                    peer.store(bodies)
            for _ in range(args.repeat):
                for peer in peers:
                    peer.retrieve(study, series)
        finally:
            for peer in peers:
                peer.stop()
    n = len(files)
    ours = peers[0]
    theirs = peers[1] if len(peers) > 1 else None
    stow, wado = min(ours.stow), min(ours.wado)
    o_stow = min(theirs.stow) if theirs else 0.0
    o_wado = min(theirs.wado) if theirs else 0.0
    if theirs:
        assert theirs.size > 0.95 * ours.size, (theirs.size, ours.size)
    print(f"stow_rs: {n / stow:.0f} instances/s "
          + (ratio(n / stow, n / o_stow) if o_stow else ""))
    print(f"stow_rs_throughput: {total_mb / stow:.0f} MB/s "
          + (ratio(total_mb / stow, total_mb / o_stow) if o_stow else ""))
    print(f"wado_rs: {n / wado:.0f} instances/s "
          + (ratio(n / wado, n / o_wado) if o_wado else ""))
    print(f"wado_rs_throughput: {ours.size / 1e6 / wado:.0f} MB/s "
          + (ratio(ours.size / wado, ours.size / o_wado) if o_wado else ""))
    if theirs:
        print(f"orthanc_stow_rs: {n / o_stow:.0f} instances/s")
        print(f"orthanc_wado_rs: {n / o_wado:.0f} instances/s")


def phantom_series_uid(files: list[bytes], keyword: str) -> str:
    from pydicom import dcmread

    return str(getattr(dcmread(io.BytesIO(files[0]), stop_before_pixels=True), keyword))


if __name__ == "__main__":
    main()
