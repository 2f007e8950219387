"""Quantification runs by itself on each new chest CT, durably; results go to DICOM SEG
and to a FHIR DiagnosticReport with Observations."""

from __future__ import annotations

import io
import time

import highdicom as hd
import numpy as np
from sqlalchemy import update

from hygie.imaging import tables
from hygie.imaging.archive import now_us
from hygie.imaging.fhir_records import QUANT_SYSTEM
from hygie.imaging.phantom import Phantom, phantom_series
from hygie.platform import Platform
from tests.imaging.conftest import make_service, part10


def test_new_chest_ct_is_quantified_by_itself(platform: Platform, phantom: Phantom) -> None:
    svc = make_service(platform, quantify_on_arrival=True, stable_s=0.0)
    series = phantom_series(phantom)
    series_uid = str(series[0].SeriesInstanceUID)
    svc.archive.store([part10(ds) for ds in series])
    deadline = time.monotonic() + 120
    while (job := svc.jobs.get(series_uid)) is None or job.state in ("pending", "running"):
        assert time.monotonic() < deadline, "the worker did not run the job"
        time.sleep(0.2)
    assert job.state == "done", job.error
    repo = svc.store.repository
    report = repo.read("DiagnosticReport", job.report_id).resource
    assert report["status"] == "final" and report["code"]["coding"][0]["code"] == "24627-2"
    study = repo.read(*report["imagingStudy"][0]["reference"].split("/")).resource
    assert study["subject"] == report["subject"]
    values = {}
    for ref in report["result"]:
        obs = repo.read(*ref["reference"].split("/")).resource
        assert obs["code"]["coding"][0]["system"] == QUANT_SYSTEM
        values[obs["code"]["coding"][0]["code"]] = obs["valueQuantity"]["value"]
    assert abs(values["percent-opacity"] - phantom.percent_opacity) <= 1.5
    assert abs(values["lung-volume"] - phantom.lung_volume_ml) <= 0.03 * phantom.lung_volume_ml
    assert values["total-severity-score"] == sum(
        values[f"zone-score-{s}-{z}"] for s in ("right", "left")
        for z in ("upper", "middle", "lower"))
    # The SEG is in the same study, references the CT slices, and holds four segments.
    seg_row = svc.archive.instances(str(series[0].StudyInstanceUID),
                                    sop_uid=job.seg_instance_uid)[0]
    seg = hd.seg.segread(io.BytesIO(svc.archive.read(seg_row)))
    assert [s.segment_label for s in seg.SegmentSequence] == [
        "right lung", "left lung", "ground-glass", "consolidation"]
    pixels = seg.get_pixels_by_source_instance(
        [str(ds.SOPInstanceUID) for ds in series], segment_numbers=[3])
    assert pixels.sum() * phantom.voxel_ml > 50
    # The ImagingStudy now lists the SEG series as well, and the SEG is not quantified.
    assert study["numberOfSeries"] == 2
    assert svc.jobs.get(str(seg.SeriesInstanceUID)) is None


def test_jobs_wait_for_a_stable_series_and_survive_a_restart(platform: Platform,
                                                           tiny_files: list[bytes]) -> None:
    svc = make_service(platform, quantify_on_arrival=False, stable_s=60.0)
    svc.archive.enqueue = svc.jobs.enqueue
    svc.archive.store(tiny_files[:10])
    series_uid = svc.archive.instances(svc.archive.store(tiny_files[10:]).studies[0])[0].series_uid
    assert svc.jobs.claim() is None  # not stable yet
    job = svc.jobs.claim(now=now_us() + 61_000_000)
    assert job is not None and job.series_uid == series_uid
    # The process stops while the job runs: at start it is pending again.
    assert svc.jobs.recover() == 1
    assert svc.jobs.get(series_uid).state == "pending"
    with platform.engine.begin() as conn:
        conn.execute(update(tables.job).values(due_at=0))
    assert svc.jobs.run_due() == 1
    job = svc.jobs.get(series_uid)
    # 20 slices of 15 mm: quantified all the same (small lungs, whole pipeline).
    assert job.state == "done", job.error
    figures = __import__("orjson").loads(job.result)
    assert figures["lung_volume_ml"] > 1000
    assert np.isfinite(figures["percent_opacity"])


def test_a_failing_job_is_retried_then_marked_failed(platform: Platform,
                                                    tiny_files: list[bytes]) -> None:
    svc = make_service(platform)
    svc.jobs.enqueue("1.2.3.4.5", "1.2.3.4")
    for _ in range(3):
        with platform.engine.begin() as conn:
            conn.execute(update(tables.job).values(due_at=0))
        svc.jobs.run_due()
    job = svc.jobs.get("1.2.3.4.5")
    assert job.state == "failed" and "NotFound" in job.error and job.attempts == 3
