"""Lung segmentation on chest CT by thresholds and morphology, without learned weights.

The steps follow the classic non-learned pipeline (Hu, Hoffman and Reinhardt, IEEE TMI
2001; the airway step after Mori et al.):

1. *Air inside the body*: voxels below -400 HU that are not connected to the air
   around the patient.
2. *Airways*: seeded in the trachea (the small medial air region of the most superior
   slice) and grown through voxels below -950 HU; a growth past a plausible airway
   volume is a leak into emphysematous lung and is retried with a lower threshold.
3. *Lungs*: what is left, its two largest parts labelled right and left from their
   patient x; a single fused part is split at the midline.
4. *Morphology*: vessels, airway walls and lesions are holes or notches in the
   thresholded lung; holes are filled slice by slice, and a closing with a ball of
   ``closing_mm`` takes in dense lesions that lie against the pleura.

The work runs on two grids: a *work* grid (about 1.4 mm) carries the final masks, and
a *coarse* grid (twice coarser) the connected components and the closing, which costs
the most. Both are block averages of the original voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Grid", "LungMasks", "segment_lungs"]

#: Air threshold (HU): lung parenchyma and airways are below it, tissue above.
AIR_HU = -400.0
#: Airway lumen threshold (HU) for the region growing, and its retries after a leak.
AIRWAY_HU = (-950.0, -975.0, -990.0)
#: Largest plausible volume of trachea and bronchi reached by the growing (mL).
AIRWAY_MAX_ML = 250.0
_CROSS_2D = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool)
#: In-plane 8-connectivity as a 3x3x3 structure (no link between slices).
_PLANE = np.zeros((3, 3, 3), bool)
_PLANE[1] = True


@dataclass(frozen=True)
class Grid:
    """A block-averaged grid: ``factors`` original voxels per cell along each axis."""

    factors: tuple[int, int, int]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @classmethod
    def for_spacing(cls, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                    target_mm: tuple[float, float, float]) -> Grid:
        factors = tuple(max(1, round(t / s)) for t, s in zip(target_mm, spacing,
                                                                  strict=True))
        out_shape = tuple(n // f for n, f in zip(shape, factors, strict=True))
        out_spacing = tuple(s * f for s, f in zip(spacing, factors, strict=True))
        return cls(factors, out_shape, out_spacing)  # type: ignore[arg-type]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Block means of ``values`` (float32), cropping what does not fill a block."""
        fz, fy, fx = self.factors
        nz, ny, nx = self.shape
        if self.factors == (1, 1, 1):
            return values[:nz, :ny, :nx].astype(np.float32)
        out = np.zeros(self.shape, np.float32)
        for dz in range(fz):
            for dy in range(fy):
                for dx in range(fx):
                    out += values[dz:nz * fz:fz, dy:ny * fy:fy, dx:nx * fx:fx]
        out *= np.float32(1.0 / (fz * fy * fx))
        return out

    def any(self, mask: np.ndarray) -> np.ndarray:
        """Cells where any of the block's voxels is set."""
        fz, fy, fx = self.factors
        nz, ny, nx = self.shape
        out = np.zeros(self.shape, bool)
        for dz in range(fz):
            for dy in range(fy):
                for dx in range(fx):
                    out |= mask[dz:nz * fz:fz, dy:ny * fy:fy, dx:nx * fx:fx]
        return out

    def expand(self, cells: np.ndarray, full_shape: tuple[int, int, int]) -> np.ndarray:
        """Cells back to the finer grid (nearest), padding the cropped margin with zeros."""
        out = cells
        for axis, f in enumerate(self.factors):
            if f > 1:
                out = np.repeat(out, f, axis=axis)
        if out.shape != full_shape:
            out = out[:full_shape[0], :full_shape[1], :full_shape[2]]
            padded = np.zeros(full_shape, out.dtype)
            padded[:out.shape[0], :out.shape[1], :out.shape[2]] = out
            out = padded
        return out


@dataclass
class LungMasks:
    """Masks on the work grid: each lung (parenchyma with what it contains), airways;
    ``values`` holds the work grid's mean HU, which lesion classification reuses."""

    work: Grid
    right: np.ndarray
    left: np.ndarray
    airways: np.ndarray
    values: np.ndarray | None = None

    @property
    def lungs(self) -> np.ndarray:
        return self.right | self.left


def closing(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]
            ) -> np.ndarray:
    """Morphological closing by a ball of ``radius_mm``, through two distance maps.

    A dilation is "within r of the mask" and an erosion "farther than r from the
    background": two Euclidean distance transforms, whose cost does not grow with the
    radius as a structuring element's does.
    """
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in spacing]
    padded = np.pad(mask, [(p, p) for p in pad])
    dilated = ndi.distance_transform_edt(~padded, sampling=spacing) <= radius_mm
    closed = ndi.distance_transform_edt(dilated, sampling=spacing) > radius_mm
    return closed[tuple(slice(p, -p) for p in pad)]


def _bbox(mask: np.ndarray, margin: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    found = np.nonzero(mask)
    return tuple(slice(max(0, int(a.min()) - margin), min(n, int(a.max()) + margin + 1))
                 for a, n in zip(found, shape, strict=True))


def fill_holes_by_slice(mask: np.ndarray) -> np.ndarray:
    """Fill each axial slice's holes: background not connected to the slice border.

    A labelling with in-plane connectivity does it in one pass over the volume, where
    ``binary_fill_holes`` would iterate dilations.
    """
    background = ~mask
    labels, _ = ndi.label(background, structure=_PLANE)
    border = np.unique(np.concatenate([labels[:, 0, :].ravel(), labels[:, -1, :].ravel(),
                                       labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    outside = np.isin(labels, border[border > 0])
    return ~outside


def _largest(mask: np.ndarray, count: int) -> list[np.ndarray]:
    labels, n = ndi.label(mask)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1][:count]
    return [labels == (i + 1) for i in order]


def _airways(coarse: np.ndarray, inside_air: np.ndarray, grid: Grid,
             superior_last: bool) -> np.ndarray:
    """Trachea and bronchi on the coarse grid; empty when no trachea is found."""
    slices = np.nonzero(inside_air.any(axis=(1, 2)))[0]
    if slices.size == 0:
        return np.zeros_like(inside_air)
    top = int(slices.max() if superior_last else slices.min())
    labels, n = ndi.label(inside_air[top])
    if n == 0:
        return np.zeros_like(inside_air)
    area_mm2 = grid.spacing[1] * grid.spacing[2]
    sizes = np.bincount(labels.ravel())[1:] * area_mm2
    centre = np.asarray(inside_air.shape[1:]) / 2.0
    best, best_d = None, np.inf
    for i in range(n):
        if sizes[i] > 800.0:  # wider than any trachea (mm²): a lung apex
            continue
        cy, cx = ndi.center_of_mass(labels == i + 1)
        d = abs(cx - centre[1]) * grid.spacing[2] + abs(cy - centre[0]) * grid.spacing[1]
        if d < best_d:
            best, best_d = i + 1, d
    if best is None:
        return np.zeros_like(inside_air)
    seed = np.zeros_like(inside_air)
    seed[top] = labels == best
    for threshold in AIRWAY_HU:
        lumen = (coarse < threshold) & inside_air
        grown = ndi.binary_propagation(seed & lumen, mask=lumen)
        if grown.sum() * grid.voxel_ml <= AIRWAY_MAX_ML:
            return grown
    return seed


def segment_lungs(hu: np.ndarray, spacing: tuple[float, float, float], *,
                  superior_last: bool = True, patient_x_sign: float = 1.0,
                  closing_mm: float = 25.0, work_mm: float = 1.4) -> LungMasks:
    """Segment the lungs of a chest CT (HU, shape (slices, rows, columns)).

    ``superior_last`` says whether the slice index grows towards the head;
    ``patient_x_sign`` is +1 when the column index grows towards the patient's left
    (the usual orientation). Returns masks on the work grid.
    """
    shape = hu.shape
    work = Grid.for_spacing(shape, spacing, (max(spacing[0], 1.0), work_mm, work_mm))  # type: ignore[arg-type]
    w = work.mean(hu)
    coarse_grid = Grid.for_spacing(work.shape, work.spacing, tuple(2.0 * s for s in work.spacing))  # type: ignore[arg-type]
    c = coarse_grid.mean(w)

    # 1. Air inside the body: not connected (in the slice) to the field's border.
    air = c < AIR_HU
    inside_air = fill_holes_by_slice(~air) & air
    # 2. Airways.
    airway_c = _airways(c, inside_air, coarse_grid, superior_last)
    airway_wall_c = ndi.binary_dilation(airway_c, _CROSS_2D) if airway_c.any() else airway_c
    # 3. The two lungs.
    candidate = inside_air & ~airway_wall_c
    parts = _largest(candidate, 2)
    min_ml = 50.0
    parts = [p for p in parts if p.sum() * coarse_grid.voxel_ml >= min_ml]
    if len(parts) == 2 and parts[1].sum() < 0.15 * parts[0].sum():
        parts = parts[:1]
    if len(parts) == 1:
        parts = _split_at_midline(parts[0])
    if not parts:
        empty = np.zeros(work.shape, bool)
        return LungMasks(work, empty, empty.copy(), empty.copy(), w)
    cx = [ndi.center_of_mass(p)[2] for p in parts]
    # Patient x grows with the column when patient_x_sign > 0: larger x is the left.
    order = np.argsort(np.asarray(cx) * patient_x_sign)
    right_c, left_c = (parts[order[0]], parts[order[1]]) if len(parts) == 2 else \
        (parts[0], np.zeros_like(parts[0]))

    airway_w = coarse_grid.expand(airway_c, work.shape)
    masks = []
    for lung_c in (right_c, left_c):
        if not lung_c.any():
            masks.append(np.zeros(work.shape, bool))
            continue
        masks.append(_refine(w, lung_c, airway_w, coarse_grid, work, closing_mm))
    right, left = masks
    left &= ~right
    return LungMasks(work, right, left, airway_w, w)


def _split_at_midline(mask: np.ndarray) -> list[np.ndarray]:
    """Split fused lungs at the column with the fewest lung voxels near the middle."""
    profile = mask.sum(axis=(0, 1))
    cols = np.nonzero(profile)[0]
    if cols.size < 4:
        return [mask]
    lo, hi = int(cols.min()), int(cols.max())
    third = (hi - lo) // 3
    middle = lo + third + int(np.argmin(profile[lo + third: hi - third + 1]))
    right, left = mask.copy(), mask.copy()
    right[:, :, middle:] = False
    left[:, :, :middle] = False
    return [p for p in (right, left) if p.any()]


def _refine(w: np.ndarray, lung_c: np.ndarray, airway_w: np.ndarray, coarse: Grid,
            work: Grid, closing_mm: float) -> np.ndarray:
    """One lung on the work grid: threshold boundary, filled holes, pleural closing."""
    box_c = _bbox(lung_c, 2 + int(np.ceil(closing_mm / min(coarse.spacing))), lung_c.shape)
    sub_c = lung_c[box_c]
    closed_c = closing(sub_c, closing_mm, coarse.spacing)
    added_c = closed_c & ~ndi.binary_dilation(sub_c)
    f = coarse.factors
    box_w = tuple(slice(s.start * k, s.stop * k) for s, k in zip(box_c, f, strict=True))
    w_box = w[box_w]
    shape_w = w_box.shape
    near = Grid(coarse.factors, sub_c.shape, coarse.spacing).expand(
        ndi.binary_dilation(sub_c), shape_w)
    lung = near & (w_box < AIR_HU) & ~airway_w[box_w]
    # Keep the parenchyma connected to this lung's core (drop bits of the other lung).
    core = Grid(coarse.factors, sub_c.shape, coarse.spacing).expand(
        ndi.binary_erosion(sub_c), shape_w) & lung
    if core.any():
        lung = ndi.binary_propagation(core, mask=lung)
    lung |= Grid(coarse.factors, sub_c.shape, coarse.spacing).expand(added_c, shape_w) \
        & ~airway_w[box_w]
    lung = fill_holes_by_slice(lung) & ~airway_w[box_w]
    out = np.zeros(work.shape, bool)
    out[box_w] = lung
    return out
