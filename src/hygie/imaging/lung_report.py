"""Quantify one stored chest CT series, end to end.

Read the series from the archive, assemble the volume, segment (user weights when
configured, else ``lungs.py``), classify lesions, then write the results where a
clinician and other software find them: a DICOM SEG in the same study (stored like any
instance) and a FHIR DiagnosticReport with its Observations, linked to the study's
ImagingStudy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hygie.imaging import fhir_records
from hygie.imaging.archive import Archive
from hygie.imaging.lungs import LungMasks
from hygie.imaging.model import Quantification
from hygie.imaging.quantify import LesionMasks, classify, label_map, measure, quantify
from hygie.imaging.segmentation import QUANT_SEGMENTS, create_seg, seg_bytes
from hygie.imaging.volume import Volume, volume_from_datasets
from hygie.store.interactions import StoreContext

__all__ = ["QuantifiedSeries", "load_volume", "quantification_labels", "quantify_series",
           "quantify_volume"]

#: Series Number given to the SEG objects written by the quantification.
QUANT_SERIES_NUMBER = 9001


@dataclass
class QuantifiedSeries:
    """What one run produced, and how long each part took (seconds)."""

    figures: Quantification
    seg_uid: str
    report_id: str
    timings: dict[str, float]

    def as_result(self) -> dict[str, Any]:
        return {"figures": self.figures.as_dict(), "seg_uid": self.seg_uid,
                "report_id": self.report_id}


def load_volume(archive: Archive, series_uid: str) -> tuple[Volume, list[Any]]:
    """The series as a volume, with the slices' datasets in volume order."""
    rows = archive.series_instances(series_uid)
    datasets = [archive.dataset(r) for r in rows]
    volume = volume_from_datasets(datasets)
    by_uid = {str(d.SOPInstanceUID): d for d in datasets}
    return volume, [by_uid[u] for u in volume.sop_uids]


def quantify_volume(volume: Volume, lung_weights: str | None = None
                    ) -> tuple[Quantification, LesionMasks]:
    """Quantify a volume, with the user's lung model when one is configured."""
    from hygie.imaging import lungmodels

    if not lungmodels.is_available(lung_weights):
        return quantify(volume)
    assert lung_weights is not None
    from hygie.imaging.lungs import Grid

    right, left = lungmodels.segment_with_weights(volume.hu, volume.spacing, lung_weights)
    work = Grid.for_spacing(volume.shape, volume.spacing,
                            (max(volume.spacing[0], 1.0), 1.4, 1.4))
    w = work.mean(volume.hu)
    lungs = LungMasks(work, work.mean(right) >= 0.5, work.mean(left) >= 0.5,
                      np.zeros(work.shape, bool), w)
    masks = classify(w, lungs)
    return measure(w, masks, superior_last=volume.superior_is_up()), masks


def quantify_series(archive: Archive, store: StoreContext, series_uid: str, *,
                    lung_weights: str | None = None) -> QuantifiedSeries:
    """Quantify a stored series and write its SEG and DiagnosticReport."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    volume, sources = load_volume(archive, series_uid)
    timings["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    figures, masks = quantify_volume(volume, lung_weights)
    timings["quantify"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg = create_seg(sources, label_map(masks, volume.shape), list(QUANT_SEGMENTS.values()),
                     series_number=QUANT_SERIES_NUMBER,
                     description="Quantification des lésions pulmonaires",
                     algorithm="Hygie lung-lesion quantification")
    archive.store([seg_bytes(seg)], sync=True)
    timings["seg"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    study = archive.study_row(volume.study_uid)
    if study.fhir_id is None:
        archive.sync(volume.study_uid)
        study = archive.study_row(volume.study_uid)
    imaging_study = store.repository.read("ImagingStudy", study.fhir_id).resource
    report_id = fhir_records.write_report(
        store, study.fhir_id, imaging_study["subject"]["reference"], figures,
        series_uid=series_uid, seg_uid=str(seg.SOPInstanceUID))
    timings["report"] = time.perf_counter() - t0
    return QuantifiedSeries(figures, str(seg.SOPInstanceUID), report_id, timings)


def quantification_labels(archive: Archive, series_uid: str, seg_uid: str) -> bytes:
    """The quantification SEG of a series as a label map over its slices (uint8 bytes,
    volume order): 1 right lung, 2 left lung, 3 ground glass, 4 consolidation."""
    from hygie.imaging.segmentation import read_labelmap

    headers = archive.headers(series_uid)
    shape = (len(headers), int(headers[0].Rows), int(headers[0].Columns))
    seg_row = archive.instances(str(headers[0].StudyInstanceUID), sop_uid=seg_uid)[0]
    labels = read_labelmap(archive.read(seg_row), [str(h.SOPInstanceUID) for h in headers],
                           shape)
    return labels.tobytes()
