"""Lung-lesion quantification on chest CT: opacities, zones and a severity score.

Inside the lungs (``lungs.py``), on the work grid:

* *vessels* are the dense voxels (>= -300 HU) that an opening with a ~3 mm ball removes
  (thin tubes); their partial-volume halo is dilated away as well;
* *consolidation* is what survives that opening in [-300, +100] HU (blobs, not tubes);
* *ground glass* is [-750, -300) HU outside vessels and halos, opened once to drop
  one-voxel rims (the pleural partial volume) and noise;
* lesions smaller than ``min_lesion_ml`` are dropped, so a lesion-free lung reports none;
* *well-aerated* lung is [-950, -750) HU.

Percentages are of the lung volume (vessels and lesions included), as in the
percentage of opacity of quantitative COVID-19 CT reports (Chaganti et al., Radiology:
AI 2020). Each lung is cut into upper, middle and lower zones (thirds of its height)
and each zone scored 0-5 by its opacity: 0 none, 1 < 5 %, 2 5-25 %, 3 25-50 %,
4 50-75 %, 5 >= 75 % (the lobar scale of Pan et al., Radiology 2020, applied to
zones); the total score is their sum (0-30).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from hygie.imaging.lungs import Grid, LungMasks, segment_lungs
from hygie.imaging.model import Quantification, ZoneResult
from hygie.imaging.volume import Volume

__all__ = ["CONSOLIDATION_HU", "GROUND_GLASS_HU", "LesionMasks", "label_map", "quantify",
           "zone_score"]

#: Attenuation ranges (HU, [low, high)) of the lesion classes.
GROUND_GLASS_HU = (-750.0, -300.0)
CONSOLIDATION_HU = (-300.0, 100.0 + 1e-3)
WELL_AERATED_HU = (-950.0, -750.0)
#: Radius of the opening that tells vessels (thin) from consolidation (blobs), in mm.
VESSEL_RADIUS_MM = 3.0

ZONES = ("upper", "middle", "lower")
SIDES = ("right", "left")


@dataclass
class LesionMasks:
    """Every mask the quantification made, on its work grid."""

    lungs: LungMasks
    vessels: np.ndarray
    ground_glass: np.ndarray
    consolidation: np.ndarray


def zone_score(percent: float) -> int:
    """Score 0-5 of one zone from its percentage of opacity."""
    if percent <= 0.0:
        return 0
    for score, upper in ((1, 5.0), (2, 25.0), (3, 50.0), (4, 75.0)):
        if percent < upper:
            return score
    return 5


def _iterations(radius_mm: float, spacing: tuple[float, float, float]) -> int:
    return max(1, round(radius_mm / min(spacing[1], spacing[2])))


def classify(w: np.ndarray, lungs: LungMasks, *, min_lesion_ml: float = 0.3
             ) -> LesionMasks:
    """Vessels, ground glass and consolidation inside ``lungs`` (work grid values ``w``)."""
    grid = lungs.work
    lung = lungs.lungs
    if not lung.any():
        empty = np.zeros(grid.shape, bool)
        return LesionMasks(lungs, empty, empty.copy(), empty.copy())
    box = tuple(slice(max(0, int(a.min()) - 2), int(a.max()) + 3) for a in np.nonzero(lung))
    wb, lb = w[box], lung[box]
    cross = ndi.generate_binary_structure(3, 1)
    dense = lb & (wb >= CONSOLIDATION_HU[0])
    k = _iterations(VESSEL_RADIUS_MM, grid.spacing)
    cores = ndi.binary_erosion(dense, cross, iterations=k)
    blobs = ndi.binary_dilation(cores, cross, iterations=k + 1) & dense
    consolidation = blobs & (wb < CONSOLIDATION_HU[1])
    vessels = dense & ~blobs
    halo = ndi.binary_dilation(vessels, cross, iterations=1)
    ggo = lb & (wb >= GROUND_GLASS_HU[0]) & (wb < GROUND_GLASS_HU[1]) & ~halo
    ggo = ndi.binary_opening(ggo, cross)
    consolidation = ndi.binary_opening(consolidation, cross)
    min_voxels = max(1, int(np.ceil(min_lesion_ml / grid.voxel_ml)))
    opacity = _drop_small(ggo | consolidation, min_voxels)
    out = []
    for part in (vessels, ggo & opacity, consolidation & opacity):
        full = np.zeros(grid.shape, bool)
        full[box] = part
        out.append(full)
    return LesionMasks(lungs, out[0], out[1], out[2])


def _drop_small(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    labels, n = ndi.label(mask, ndi.generate_binary_structure(3, 3))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def quantify(volume: Volume, *, min_lesion_ml: float = 0.3) -> tuple[Quantification,
                                                                      LesionMasks]:
    """Quantify lung lesions of a chest CT volume; returns the figures and the masks."""
    superior_last = volume.superior_is_up()
    x_sign = 1.0 if volume.row_dir[0] >= 0 else -1.0
    lungs = segment_lungs(volume.hu, volume.spacing, superior_last=superior_last,
                          patient_x_sign=x_sign)
    w = lungs.values if lungs.values is not None else lungs.work.mean(volume.hu)
    masks = classify(w, lungs, min_lesion_ml=min_lesion_ml)
    return measure(w, masks, superior_last=superior_last), masks


def measure(w: np.ndarray, masks: LesionMasks, *, superior_last: bool = True
            ) -> Quantification:
    """Volumes, percentages and zone scores from the masks (work grid values ``w``)."""
    grid = masks.lungs.work
    ml = grid.voxel_ml
    opacity = masks.ground_glass | masks.consolidation
    aerated = (w >= WELL_AERATED_HU[0]) & (w < WELL_AERATED_HU[1]) & ~opacity
    zones = []
    for side, lung in zip(SIDES, (masks.lungs.right, masks.lungs.left), strict=True):
        for zone, band in zip(ZONES, zone_bands(lung, superior_last), strict=True):
            lung_z = lung[band]
            lung_n = int(lung_z.sum())
            ggo_n = int((masks.ground_glass[band] & lung_z).sum())
            cons_n = int((masks.consolidation[band] & lung_z).sum())
            pct = 100.0 * (ggo_n + cons_n) / lung_n if lung_n else 0.0
            zones.append(ZoneResult(side, zone, lung_n * ml, ggo_n * ml, cons_n * ml, pct,
                                    zone_score(pct)))
    lung_all = masks.lungs.lungs
    lung_ml = float(lung_all.sum()) * ml
    ggo_ml = float((masks.ground_glass & lung_all).sum()) * ml
    cons_ml = float((masks.consolidation & lung_all).sum()) * ml
    aerated_ml = float((aerated & lung_all).sum()) * ml
    _, n_lesions = ndi.label(opacity & lung_all, ndi.generate_binary_structure(3, 3))

    def pct(v: float) -> float:
        return 100.0 * v / lung_ml if lung_ml else 0.0

    return Quantification(
        lung_volume_ml=lung_ml,
        right_lung_ml=float(masks.lungs.right.sum()) * ml,
        left_lung_ml=float(masks.lungs.left.sum()) * ml,
        ground_glass_ml=ggo_ml,
        consolidation_ml=cons_ml,
        percent_opacity=pct(ggo_ml + cons_ml),
        percent_high_opacity=pct(cons_ml),
        percent_well_aerated=pct(aerated_ml),
        lesion_count=int(n_lesions),
        zones=tuple(zones),
        total_score=sum(z.score for z in zones),
    )


def zone_bands(lung: np.ndarray, superior_last: bool = True) -> list[slice]:
    """Slice ranges of the upper, middle and lower thirds of one lung's height."""
    slices = np.nonzero(lung.any(axis=(1, 2)))[0]
    if slices.size == 0:
        return [slice(0, 0)] * 3
    lo, hi = int(slices.min()), int(slices.max()) + 1
    cuts = np.linspace(lo, hi, 4).round().astype(int)
    bands = [slice(int(cuts[i]), int(cuts[i + 1])) for i in range(3)]
    # Bands run from inferior to superior when the index grows towards the head.
    return bands[::-1] if superior_last else bands


def expand_to(masks: LesionMasks, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The masks on the original grid (nearest neighbour)."""
    grid: Grid = masks.lungs.work
    return {
        "right lung": grid.expand(masks.lungs.right, shape),
        "left lung": grid.expand(masks.lungs.left, shape),
        "ground-glass": grid.expand(masks.ground_glass, shape),
        "consolidation": grid.expand(masks.consolidation, shape),
    }


def label_map(masks: LesionMasks, shape: tuple[int, int, int]) -> np.ndarray:
    """One label per voxel on the original grid: 1 right lung, 2 left lung (outside
    opacities), 3 ground glass, 4 consolidation; the order of ``QUANT_SEGMENTS``."""
    grid: Grid = masks.lungs.work
    work = np.zeros(grid.shape, np.uint8)
    work[masks.lungs.right] = 1
    work[masks.lungs.left] = 2
    work[masks.ground_glass] = 3
    work[masks.consolidation] = 4
    return grid.expand(work, shape)
