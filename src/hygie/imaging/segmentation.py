"""DICOM Segmentation objects (PS3.3 A.51) for annotations and quantification results.

highdicom writes and reads them; this module only fixes *what* is segmented, with
coded concepts (PS3.16 CID 7150/7151 categories, SNOMED CT and DCM types), and maps
between a SEG and a volume's slices by their SOP Instance UIDs.

* Reader annotations are a label map (one label per voxel): segment 1 ground glass,
  2 consolidation, 3 other lesion. Every annotation SEG describes the three segments,
  so a segment number always means the same label.
* The quantification writes four segments: right lung, left lung, ground glass and
  consolidation. They do not overlap (a label map is both smaller and much faster to
  encode than overlapping binary stacks): the lung segments hold the lung outside the
  opacities, so a lung is its segment plus the opacities on its side.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ANNOTATION_LABELS", "QUANT_SEGMENTS", "create_seg", "read_labelmap", "seg_bytes"]


@dataclass(frozen=True)
class SegmentKind:
    """One segment: label, category and type codes (value, scheme, meaning), colour."""

    label: str
    category: tuple[str, str, str]
    type: tuple[str, str, str]
    rgb: tuple[int, int, int]


_ABNORMAL = ("49755003", "SCT", "Morphologically abnormal structure")
_ANATOMY = ("123037004", "SCT", "Anatomical structure")

#: Annotation labels of the viewer, by segment number.
ANNOTATION_LABELS: dict[int, SegmentKind] = {
    1: SegmentKind("ground-glass", _ABNORMAL, ("112120", "DCM", "Ground glass opacity"),
                   (255, 214, 0)),
    2: SegmentKind("consolidation", _ABNORMAL, ("95436008", "SCT", "Lung consolidation"),
                   (230, 50, 50)),
    3: SegmentKind("other", _ABNORMAL, ("52988006", "SCT", "Lesion"), (60, 140, 255)),
}

#: Segments written by the quantification, in order.
QUANT_SEGMENTS: dict[str, SegmentKind] = {
    "right lung": SegmentKind("right lung", _ANATOMY, ("3341006", "SCT", "Right lung"),
                              (80, 160, 255)),
    "left lung": SegmentKind("left lung", _ANATOMY, ("44029006", "SCT", "Left lung"),
                             (80, 220, 160)),
    "ground-glass": ANNOTATION_LABELS[1],
    "consolidation": ANNOTATION_LABELS[2],
}


def _description(number: int, kind: SegmentKind, algorithm: str | None) -> Any:
    import highdicom as hd

    def code(c: tuple[str, str, str]) -> Any:
        return hd.sr.CodedConcept(value=c[0], scheme_designator=c[1], meaning=c[2])

    if algorithm:
        algo_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        ident = hd.AlgorithmIdentificationSequence(
            name=algorithm, version="1.0",
            family=hd.sr.CodedConcept("123109", "DCM", "Image Processing"))
    else:
        algo_type, ident = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=kind.label,
        segmented_property_category=code(kind.category),
        segmented_property_type=code(kind.type), algorithm_type=algo_type,
        algorithm_identification=ident, tracking_uid=None, tracking_id=None,
        display_color=hd.color.CIELabColor.from_rgb(*kind.rgb))


def create_seg(sources: Sequence[Any], labelmap: np.ndarray, kinds: Sequence[SegmentKind],
               *, series_number: int, description: str, creator: str | None = None,
               algorithm: str | None = None) -> Any:
    """A binary SEG over ``sources`` (headers of the slices, in the volume's order).

    ``labelmap`` (uint8, the volume's shape (slices, rows, columns)) holds segment
    numbers: ``kinds[0]`` is segment 1, and so on. Empty frames are left out.
    ``algorithm`` names the automatic method; without it the segments are manual and
    ``creator`` is the reader.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    descriptions = [_description(i + 1, kind, algorithm) for i, kind in enumerate(kinds)]
    return hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=np.ascontiguousarray(labelmap, dtype=np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="Hygie",
        manufacturer_model_name="Hygie imaging",
        software_versions="0.1",
        device_serial_number="hygie",
        content_description=description[:64],
        content_creator_name=creator,
        content_label="ANNOTATION" if algorithm is None else "QUANTIFICATION",
        omit_empty_frames=True,
    )


def seg_bytes(seg: Any) -> bytes:
    """The SEG as a Part 10 file."""
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def read_labelmap(data: bytes, sop_uids: Sequence[str], shape: tuple[int, int, int]
                  ) -> np.ndarray:
    """A label map (uint8, ``shape``) from an annotation SEG over these slices.

    Segment numbers are labels (``ANNOTATION_LABELS``); where segments overlap the
    highest number wins. Slices the SEG does not cover stay 0.
    """
    import highdicom as hd

    seg = hd.seg.segread(io.BytesIO(data))
    out = np.zeros(shape, np.uint8)
    referenced = {str(uid) for _, _, uid in seg.get_source_image_uids()}
    present = [(k, uid) for k, uid in enumerate(sop_uids) if uid in referenced]
    if not present:
        return out
    numbers = [int(n) for n in seg.segment_numbers]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[uid for _, uid in present], segment_numbers=numbers,
        assert_missing_frames_are_empty=True)
    for i, number in enumerate(numbers):
        mask = pixels[..., i] > 0
        for j, (k, _) in enumerate(present):
            out[k][mask[j]] = number
    return out
