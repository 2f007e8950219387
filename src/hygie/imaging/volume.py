"""A CT series as one volume of Hounsfield units, with its geometry.

Slices are sorted along the normal of their common orientation (PS3.3 C.7.6.2.1.1:
Image Position is the centre of the first voxel, Image Orientation the row and column
direction cosines), not by Instance Number, which scanners do not always keep in
spatial order. Index order is (slice, row, column); slice 0 is the lowest position
along the normal (the most inferior for an axial series).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hygie.imaging.errors import NotAVolume

__all__ = ["Volume", "order_slices", "volume_from_datasets"]


@dataclass
class Volume:
    """Voxels in HU (``hu``: int16, shape (n_slices, rows, columns)) and their geometry.

    ``spacing`` is (between slices, between rows, between columns) in mm; ``origin`` the
    patient position of voxel (0, 0, 0); ``row_dir``/``col_dir`` the patient directions
    in which the column and row indices grow (Image Orientation), ``normal`` the slice
    direction. ``sop_uids`` lists each slice's SOP Instance UID, in index order.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    normal: tuple[float, float, float]
    sop_uids: list[str]
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        n, r, c = self.hu.shape
        return n, r, c

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def patient_x_of_columns(self) -> np.ndarray:
        """Patient x (towards the patient's left) of each column centre, on slice 0 row 0."""
        return self.origin[0] + np.arange(self.shape[2]) * self.spacing[2] * self.row_dir[0]

    def superior_is_up(self) -> bool:
        """True when the slice index grows towards the head (patient +z)."""
        return self.normal[2] >= 0


def _position(ds: object) -> np.ndarray:
    return np.asarray([float(v) for v in ds.ImagePositionPatient], float)  # type: ignore[attr-defined]


def order_slices(datasets: Sequence[object]) -> list[object]:
    """The slices sorted along the normal of their orientation (volume order)."""
    if not datasets:
        return []
    try:
        orientation = np.asarray([float(v) for v in datasets[0].ImageOrientationPatient])  # type: ignore[attr-defined]
        normal = np.cross(orientation[:3], orientation[3:])
        return sorted(datasets, key=lambda ds: float(_position(ds) @ normal))
    except (AttributeError, ValueError, TypeError) as exc:
        raise NotAVolume(f"the images lack geometry ({exc})") from exc


def volume_from_datasets(datasets: Sequence[object]) -> Volume:
    """Assemble the slices of one single-frame CT/MR series into a ``Volume``.

    Raises ``NotAVolume`` when the slices are not a regular stack: different
    orientations or sizes, missing geometry, or unequal gaps between slices.
    """
    if not datasets:
        raise NotAVolume("the series has no image")
    try:
        first = datasets[0]
        orientation = np.asarray([float(v) for v in first.ImageOrientationPatient], float)  # type: ignore[attr-defined]
        rows, cols = int(first.Rows), int(first.Columns)  # type: ignore[attr-defined]
        pixel = [float(v) for v in first.PixelSpacing]  # type: ignore[attr-defined]
    except (AttributeError, ValueError, TypeError) as exc:
        raise NotAVolume(f"the images lack geometry ({exc})") from exc
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    items = []
    for ds in datasets:
        if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
            raise NotAVolume("multi-frame images are not assembled into a volume here")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):  # type: ignore[attr-defined]
            raise NotAVolume("the images do not all have the same size")
        o = np.asarray([float(v) for v in ds.ImageOrientationPatient], float)  # type: ignore[attr-defined]
        if not np.allclose(o, orientation, atol=1e-3):
            raise NotAVolume("the images do not all have the same orientation")
        items.append((float(_position(ds) @ normal), ds))
    items.sort(key=lambda item: item[0])
    positions = np.asarray([p for p, _ in items])
    if len(items) > 1:
        gaps = np.diff(positions)
        if np.any(gaps <= 1e-3):
            raise NotAVolume("two images share the same position")
        if np.ptp(gaps) > 0.05 * float(np.median(gaps)) + 1e-3:
            raise NotAVolume("the gaps between slices are not regular")
        step = float(np.median(gaps))
    else:
        step = float(getattr(first, "SliceThickness", 1.0) or 1.0)
    hu = np.empty((len(items), rows, cols), np.int16)
    for k, (_, ds) in enumerate(items):
        hu[k] = _hounsfield(ds)
    origin = _position(items[0][1])
    return Volume(
        hu=hu,
        spacing=(step, pixel[0], pixel[1]),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        row_dir=tuple(float(v) for v in row_dir),  # type: ignore[arg-type]
        col_dir=tuple(float(v) for v in col_dir),  # type: ignore[arg-type]
        normal=tuple(float(v) for v in normal),  # type: ignore[arg-type]
        sop_uids=[str(ds.SOPInstanceUID) for _, ds in items],  # type: ignore[attr-defined]
        study_uid=str(getattr(first, "StudyInstanceUID", "")),
        series_uid=str(getattr(first, "SeriesInstanceUID", "")),
        frame_of_reference_uid=str(getattr(first, "FrameOfReferenceUID", "")),
    )


def _hounsfield(ds: object) -> np.ndarray:
    """Stored values to HU with the Modality LUT (Rescale Slope and Intercept)."""
    pixels = ds.pixel_array  # type: ignore[attr-defined]  # decodes compressed syntaxes
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    if slope == 1.0 and float(intercept).is_integer():
        out = pixels.astype(np.int32) + int(intercept)
    else:
        out = np.rint(pixels * slope + intercept)
    return np.clip(out, -32768, 32767).astype(np.int16)
