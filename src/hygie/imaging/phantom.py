"""A synthetic chest CT whose truth is known: the test data of the quantification.

The phantom is drawn voxel by voxel from simple shapes in patient coordinates (DICOM
LPS, millimetres): an elliptical body with a fat layer, spine and sternum, two lungs
carved by the mediastinum and the heart, a trachea that splits into two main bronchi,
a tree of vessels in each lung, and ground-glass and consolidation lesions. Every
structure is rasterised into a label volume first; that label volume *is* the truth
(lung and lesion volumes are counts of its voxels), and the CT values are drawn from it
with a Gaussian blur (the scanner's point spread) and Gaussian noise.

The series written out is a valid CT Image Storage series (PS3.3 A.3): one axial slice
per file, Image Position/Orientation, Pixel Spacing and a shared Frame of Reference, so
everything downstream (the store, the viewer, the quantification, DICOM SEG) sees it
as it would see a scanner's output.

No library draws anatomical CT phantoms with lesions of controlled volume, hence this
module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["Label", "Lesion", "Phantom", "PhantomSpec", "generate_phantom", "phantom_series"]

LesionKind = Literal["ground-glass", "consolidation"]


class Label:
    """Voxel labels of the truth volume (uint8)."""

    AIR = 0
    BODY = 1
    FAT = 2
    BONE = 3
    HEART = 4
    LUNG_RIGHT = 5
    LUNG_LEFT = 6
    AIRWAY = 7
    VESSEL = 8
    GROUND_GLASS = 9
    CONSOLIDATION = 10


#: Mean CT value of each label, in HU.
LABEL_HU = {
    Label.AIR: -1000.0, Label.BODY: 40.0, Label.FAT: -100.0, Label.BONE: 700.0,
    Label.HEART: 45.0, Label.LUNG_RIGHT: -860.0, Label.LUNG_LEFT: -860.0,
    Label.AIRWAY: -1000.0, Label.VESSEL: 40.0, Label.GROUND_GLASS: -560.0,
    Label.CONSOLIDATION: 25.0,
}


@dataclass(frozen=True)
class Lesion:
    """An ellipsoidal lesion, clipped to the lung it lies in.

    ``center`` is relative to the centre of that lung (mm, LPS axes: +x towards the
    patient's left, +y posterior, +z superior); ``radii`` are its semi-axes in mm.
    """

    kind: LesionKind
    lung: Literal["left", "right"]
    center: tuple[float, float, float]
    radii: tuple[float, float, float]


#: Lesions of a typical viral pneumonia: peripheral and posterior ground glass, some
#: consolidation, in both lungs and at several heights.
DEFAULT_LESIONS = (
    Lesion("ground-glass", "right", (-25.0, 40.0, -60.0), (28.0, 30.0, 32.0)),
    Lesion("ground-glass", "left", (25.0, 35.0, 40.0), (22.0, 25.0, 28.0)),
    Lesion("ground-glass", "left", (15.0, -30.0, -50.0), (20.0, 20.0, 24.0)),
    Lesion("consolidation", "right", (0.0, 62.0, -20.0), (15.0, 16.0, 16.0)),
    Lesion("consolidation", "left", (5.0, 20.0, 0.0), (12.0, 12.0, 14.0)),
)


@dataclass(frozen=True)
class PhantomSpec:
    """What to draw. ``shape`` is (n_slices, rows, columns)."""

    shape: tuple[int, int, int] = (96, 192, 192)
    field_of_view_mm: float = 380.0
    slice_thickness_mm: float = 3.0
    lesions: tuple[Lesion, ...] = DEFAULT_LESIONS
    noise_hu: float = 18.0
    blur_mm: float = 1.2
    seed: int = 0
    patient_id: str = "PHANTOM-0001"
    patient_name: str = "Fantome^Thorax"


@dataclass
class Phantom:
    """The drawn phantom: CT values, truth labels and the geometry of the grid.

    ``hu`` and ``labels`` have shape (n_slices, rows, columns); slice 0 is the most
    inferior. ``origin`` is the patient position of voxel (0, 0, 0) and ``spacing``
    (slice, row, column) in mm.
    """

    spec: PhantomSpec
    hu: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    lung_centers: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def lung_mask(self) -> np.ndarray:
        """Lung parenchyma and everything it contains (vessels, lesions), airways excluded."""
        return np.isin(self.labels, (Label.LUNG_RIGHT, Label.LUNG_LEFT, Label.VESSEL,
                                     Label.GROUND_GLASS, Label.CONSOLIDATION))

    def volume_ml(self, *labels: int) -> float:
        return float(np.isin(self.labels, labels).sum()) * self.voxel_ml

    @property
    def lung_volume_ml(self) -> float:
        return float(self.lung_mask().sum()) * self.voxel_ml

    @property
    def percent_opacity(self) -> float:
        lesions = self.volume_ml(Label.GROUND_GLASS, Label.CONSOLIDATION)
        return 100.0 * lesions / self.lung_volume_ml

    @property
    def percent_high_opacity(self) -> float:
        return 100.0 * self.volume_ml(Label.CONSOLIDATION) / self.lung_volume_ml


def _grid(spec: PhantomSpec) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    n_slices, rows, cols = spec.shape
    pixel = spec.field_of_view_mm / max(rows, cols)
    spacing = (spec.slice_thickness_mm, pixel, pixel)
    height = n_slices * spec.slice_thickness_mm
    origin = (-(cols - 1) * pixel / 2, -(rows - 1) * pixel / 2, -height / 2)
    return spacing, origin


def generate_phantom(spec: PhantomSpec | None = None) -> Phantom:
    """Draw the phantom described by ``spec`` (deterministic for a given seed)."""
    spec = spec or PhantomSpec()
    rng = np.random.default_rng(spec.seed)
    spacing, origin = _grid(spec)
    n_slices, rows, cols = spec.shape
    z = (origin[2] + np.arange(n_slices) * spacing[0]).astype(np.float32)[:, None, None]
    y = (origin[1] + np.arange(rows) * spacing[1]).astype(np.float32)[None, :, None]
    x = (origin[0] + np.arange(cols) * spacing[2]).astype(np.float32)[None, None, :]
    height = n_slices * spacing[0]
    top = origin[2] + height
    labels = np.zeros(spec.shape, np.uint8)

    # Body: an elliptical cylinder with a fat layer under the skin.
    ax, ay = 165.0, 115.0
    body_r = (x / ax) ** 2 + (y / ay) ** 2
    inner_r = (x / (ax - 12)) ** 2 + (y / (ay - 12)) ** 2
    labels[np.broadcast_to(body_r <= 1.0, spec.shape)] = Label.FAT
    labels[np.broadcast_to(inner_r <= 1.0, spec.shape)] = Label.BODY

    # Lungs: ellipsoids scaled to the field, apex near the top, base on the diaphragm.
    lung_half_height = min(125.0, 0.42 * height)
    zc = top - 12.0 - lung_half_height
    centers = {"right": (-72.0, 8.0, zc), "left": (72.0, 8.0, zc)}
    lungs = {}
    for side, (cx, cy, cz) in centers.items():
        inside = ((x - cx) / 58.0) ** 2 + ((y - cy) / 82.0) ** 2 + \
                 ((z - cz) / lung_half_height) ** 2 <= 1.0
        lungs[side] = inside & (np.abs(x) > 24.0)
    # The heart carves the anterior left lung and the lower mediastinum.
    heart = ((x - 22.0) / 62.0) ** 2 + ((y + 25.0) / 55.0) ** 2 + \
            ((z - (zc - 0.35 * lung_half_height)) / (0.45 * lung_half_height)) ** 2 <= 1.0
    labels[lungs["right"]] = Label.LUNG_RIGHT
    labels[lungs["left"]] = Label.LUNG_LEFT
    labels[heart] = Label.HEART

    # Bones: vertebral bodies and the sternum, the full height of the field.
    spine = ((x / 20.0) ** 2 + ((y - 75.0) / 18.0) ** 2 <= 1.0)
    sternum = ((x / 16.0) ** 2 + ((y + 100.0) / 6.0) ** 2 <= 1.0)
    labels[np.broadcast_to(spine | sternum, spec.shape)] = Label.BONE

    # Vessels: a branching tree from each hilum, clipped to its lung.
    lung_any = lungs["right"] | lungs["left"]
    vessels = np.zeros(spec.shape, bool)
    for side, (cx, cy, cz) in centers.items():
        hilum = np.array([cx * 0.55, cy - 5.0, cz + 0.1 * lung_half_height])
        for segment in _vessel_tree(rng, hilum, side):
            _draw_segment(vessels, segment, origin, spacing)
    labels[vessels & lung_any] = Label.VESSEL

    # Airways: trachea from the top of the field to the carina, then two main bronchi.
    carina = np.array([0.0, 20.0, zc + 0.25 * lung_half_height])
    airway = np.zeros(spec.shape, bool)
    _draw_segment(airway, (np.array([0.0, 20.0, top + 5.0]), carina, 8.5), origin, spacing)
    for cx, cy, cz in centers.values():
        end = np.array([cx * 0.62, cy + 5.0, cz + 0.05 * lung_half_height])
        _draw_segment(airway, (carina, end, 5.5), origin, spacing)
    labels[airway] = Label.AIRWAY

    # Lesions, clipped to their lung (they replace parenchyma and vessels alike).
    lung_labels = {"right": lungs["right"], "left": lungs["left"]}
    for lesion in spec.lesions:
        cx, cy, cz = centers[lesion.lung]
        dx, dy, dz = lesion.center
        rx, ry, rz = lesion.radii
        inside = ((x - cx - dx) / rx) ** 2 + ((y - cy - dy) / ry) ** 2 + \
                 ((z - cz - dz) / rz) ** 2 <= 1.0
        inside &= lung_labels[lesion.lung] & (labels != Label.AIRWAY)
        labels[inside] = (Label.GROUND_GLASS if lesion.kind == "ground-glass"
                          else Label.CONSOLIDATION)

    hu = _render(labels, spec, spacing, rng)
    return Phantom(spec, hu, labels, spacing, origin, centers)


Segment = tuple[np.ndarray, np.ndarray, float]


def _vessel_tree(rng: np.random.Generator, hilum: np.ndarray, side: str) -> Iterator[Segment]:
    """Segments (start, end, radius) of a vessel tree: four generations, thinning out."""
    lateral = 1.0 if side == "left" else -1.0
    stack = []
    for direction in ((0.5 * lateral, 0.3, 1.0), (0.7 * lateral, -0.4, 0.1),
                      (0.5 * lateral, 0.5, -1.0), (0.6 * lateral, -0.3, -0.8)):
        d = np.asarray(direction, float)
        stack.append((hilum, d / np.linalg.norm(d), 3.2, 0))
    while stack:
        start, direction, radius, generation = stack.pop()
        length = 38.0 - 7.0 * generation
        end = start + direction * length
        yield start, end, radius
        if generation < 3:
            for _ in range(2):
                turn = direction + rng.normal(0.0, 0.45, 3)
                stack.append((end, turn / np.linalg.norm(turn), radius * 0.72, generation + 1))


def _draw_segment(mask: np.ndarray, segment: Segment, origin: tuple[float, float, float],
                  spacing: tuple[float, float, float]) -> None:
    """Set the voxels within ``radius`` of the segment (a capsule), in its bounding box."""
    a, b, radius = segment
    lo = np.minimum(a, b) - radius
    hi = np.maximum(a, b) + radius
    # Patient (x, y, z) to index (k, j, i) along (slices, rows, columns).
    index_lo = [int(np.floor((lo[axis] - origin[axis]) / spacing[dim]))
                for axis, dim in ((2, 0), (1, 1), (0, 2))]
    index_hi = [int(np.ceil((hi[axis] - origin[axis]) / spacing[dim])) + 1
                for axis, dim in ((2, 0), (1, 1), (0, 2))]
    box = tuple(slice(max(0, lo_), min(n, hi_))
                for lo_, hi_, n in zip(index_lo, index_hi, mask.shape, strict=True))
    if any(s.start >= s.stop for s in box):
        return
    kz = origin[2] + np.arange(box[0].start, box[0].stop) * spacing[0]
    jy = origin[1] + np.arange(box[1].start, box[1].stop) * spacing[1]
    ix = origin[0] + np.arange(box[2].start, box[2].stop) * spacing[2]
    px = ix[None, None, :] - a[0]
    py = jy[None, :, None] - a[1]
    pz = kz[:, None, None] - a[2]
    axis = b - a
    length2 = float(axis @ axis) or 1.0
    t = np.clip((px * axis[0] + py * axis[1] + pz * axis[2]) / length2, 0.0, 1.0)
    d2 = (px - t * axis[0]) ** 2 + (py - t * axis[1]) ** 2 + (pz - t * axis[2]) ** 2
    mask[box] |= d2 <= radius * radius


def _render(labels: np.ndarray, spec: PhantomSpec, spacing: tuple[float, float, float],
            rng: np.random.Generator) -> np.ndarray:
    """CT values from labels: mean value per label, scanner blur, then noise."""
    from scipy import ndimage

    lut = np.zeros(256, np.float32)
    for label, value in LABEL_HU.items():
        lut[label] = value
    hu = lut[labels]
    if spec.blur_mm > 0:
        sigma = [spec.blur_mm / s for s in spacing]
        ndimage.gaussian_filter(hu, sigma, output=hu, truncate=3.0)
    if spec.noise_hu > 0:
        noise = rng.standard_normal(hu.shape, dtype=np.float32)
        noise *= np.float32(spec.noise_hu)
        hu += noise
    np.clip(hu, -1024, 3071, out=hu)
    return np.rint(hu).astype(np.int16)


def phantom_series(phantom: Phantom, *, study_uid: str | None = None,
                   series_uid: str | None = None,
                   acquired: dt.datetime | None = None) -> list:
    """The phantom as a CT series: one ``pydicom.Dataset`` per axial slice.

    UIDs derive from the seed unless given, so the same phantom is the same study.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    spec = phantom.spec
    seed = f"hygie-phantom-{spec.seed}-{spec.shape}-{spec.patient_id}"
    study_uid = study_uid or generate_uid(entropy_srcs=[seed, "study"])
    series_uid = series_uid or generate_uid(entropy_srcs=[seed, "series", study_uid])
    frame_uid = generate_uid(entropy_srcs=[seed, "frame", series_uid])
    when = acquired or dt.datetime(2020, 3, 28, 9, 30, tzinfo=dt.UTC)
    n_slices, rows, cols = phantom.hu.shape
    slice_mm, row_mm, col_mm = phantom.spacing
    out = []
    for k in range(n_slices):
        sop_uid = generate_uid(entropy_srcs=[series_uid, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = when.strftime("%H%M%S")
        ds.AccessionNumber = f"PH{spec.seed:06d}"
        ds.Modality = "CT"
        ds.Manufacturer = "Hygie"
        ds.ManufacturerModelName = "Chest phantom"
        ds.StudyDescription = "CT THORAX"
        ds.SeriesDescription = "Thorax 1.0 phantom"
        ds.PatientName = spec.patient_name
        ds.PatientID = spec.patient_id
        ds.PatientBirthDate = "19580214"
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = f"{slice_mm:.4g}"
        ds.SpacingBetweenSlices = f"{slice_mm:.4g}"
        ds.KVP = "120"
        ds.PatientPosition = "FFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        z = phantom.origin[2] + k * slice_mm
        ds.ImagePositionPatient = [f"{phantom.origin[0]:.4f}", f"{phantom.origin[1]:.4f}",
                                   f"{z:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{z:.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.PixelSpacing = [f"{row_mm:.6g}", f"{col_mm:.6g}"]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = "-600"
        ds.WindowWidth = "1500"
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(phantom.hu[k]).astype("<i2").tobytes()
        out.append(ds)
    return out


def write_series(datasets: list, folder: Path) -> list[Path]:
    """Write each dataset as a DICOM Part 10 file in ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
