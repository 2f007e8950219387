"""Quantification accuracy on phantoms whose truth is known (the issue's criteria):
opacity within 1.5 points, lung volume within 3 %, no lesion on a lesion-free phantom."""

from __future__ import annotations

import numpy as np
import pytest

from hygie.imaging.phantom import Lesion, Phantom, PhantomSpec, generate_phantom, phantom_series
from hygie.imaging.quantify import expand_to, quantify, zone_bands, zone_score
from hygie.imaging.volume import volume_from_datasets


def _quantify(phantom: Phantom):  # type: ignore[no-untyped-def]
    return quantify(volume_from_datasets(phantom_series(phantom)))


def test_default_phantom_within_tolerances(phantom: Phantom) -> None:
    q, masks = _quantify(phantom)
    assert abs(q.lung_volume_ml - phantom.lung_volume_ml) <= 0.03 * phantom.lung_volume_ml
    assert abs(q.percent_opacity - phantom.percent_opacity) <= 1.5
    assert abs(q.percent_high_opacity - phantom.percent_high_opacity) <= 1.5
    assert q.lesion_count >= 3
    assert 0 < q.percent_well_aerated < 100 - q.percent_opacity
    # The right lung is the one at negative patient x.
    truth_right = phantom.volume_ml(5) + 0  # parenchyma only: a lower bound
    assert q.right_lung_ml > truth_right * 0.9
    assert len(q.zones) == 6 and q.total_score == sum(z.score for z in q.zones)
    full = expand_to(masks, phantom.hu.shape)
    assert full["right lung"].shape == phantom.hu.shape
    assert not (full["right lung"] & full["left lung"]).any()


def test_each_lesion_is_found_where_it_is(phantom: Phantom) -> None:
    from hygie.imaging.phantom import Label

    _, masks = _quantify(phantom)
    full = expand_to(masks, phantom.hu.shape)
    ggo_truth = phantom.labels == Label.GROUND_GLASS
    cons_truth = phantom.labels == Label.CONSOLIDATION
    assert (full["ground-glass"] & ggo_truth).sum() > 0.8 * ggo_truth.sum()
    assert (full["consolidation"] & cons_truth).sum() > 0.6 * cons_truth.sum()


@pytest.mark.parametrize("seed", [1, 2])
def test_lesion_free_phantom_reports_nothing(seed: int) -> None:
    clean = generate_phantom(PhantomSpec(lesions=(), seed=seed))
    q, _ = _quantify(clean)
    assert q.lesion_count == 0
    assert q.percent_opacity == 0.0 and q.total_score == 0
    assert abs(q.lung_volume_ml - clean.lung_volume_ml) <= 0.03 * clean.lung_volume_ml


def _truth_zones(phantom: Phantom) -> dict[tuple[str, str], float]:
    """Percentage of opacity per zone, from the truth labels and the same zone bands."""
    from hygie.imaging.phantom import Label

    lung = phantom.lung_mask()
    lesion = np.isin(phantom.labels, (Label.GROUND_GLASS, Label.CONSOLIDATION))
    x = phantom.origin[0] + np.arange(lung.shape[2]) * phantom.spacing[2]
    out = {}
    for side, columns in (("right", x < 0), ("left", x > 0)):
        one = lung.copy()
        one[:, :, ~columns] = False
        for zone, band in zip(("upper", "middle", "lower"), zone_bands(one), strict=True):
            out[(side, zone)] = 100.0 * (lesion[band] & one[band]).sum() / one[band].sum()
    return out


def test_heavy_involvement_and_zone_scores() -> None:
    lesions = (
        Lesion("ground-glass", "right", (0.0, 0.0, -70.0), (60.0, 85.0, 45.0)),
        Lesion("consolidation", "left", (0.0, 35.0, -75.0), (25.0, 30.0, 25.0)),
    )
    sick = generate_phantom(PhantomSpec(lesions=lesions, seed=5))
    q, _ = _quantify(sick)
    assert abs(q.percent_opacity - sick.percent_opacity) <= 1.5
    truth = _truth_zones(sick)
    zones = {(z.side, z.zone): z for z in q.zones}
    for key, percent in truth.items():
        assert zones[key].score == zone_score(percent), key
        assert abs(zones[key].percent_opacity - percent) <= 5.0, key
    assert zones[("right", "lower")].score == 5
    assert zones[("left", "upper")].consolidation_ml == 0
    assert q.total_score == sum(zone_score(p) for p in truth.values())


def test_orientation_flips_keep_sides_and_zones(phantom: Phantom) -> None:
    """Slices stored head first and columns towards the right give the same answer."""
    datasets = phantom_series(phantom)
    reference, _ = quantify(volume_from_datasets(datasets))
    volume = volume_from_datasets(datasets)
    volume.hu = volume.hu[::-1, :, ::-1].copy()
    volume.normal = (0.0, 0.0, -1.0)
    volume.row_dir = (-1.0, 0.0, 0.0)
    flipped, _ = quantify(volume)
    assert flipped.right_lung_ml == pytest.approx(reference.right_lung_ml, rel=0.02)
    assert flipped.percent_opacity == pytest.approx(reference.percent_opacity, abs=0.3)
    ref = {(z.side, z.zone): z.score for z in reference.zones}
    assert {(z.side, z.zone): z.score for z in flipped.zones} == ref


def test_zone_score_scale() -> None:
    assert [zone_score(p) for p in (0, 0.1, 4.99, 5, 24.9, 25, 50, 74.9, 75, 100)] == \
        [0, 1, 1, 2, 2, 3, 4, 4, 5, 5]


def test_zone_bands_split_the_height_in_thirds() -> None:
    lung = np.zeros((30, 4, 4), bool)
    lung[3:27] = True
    upper, middle, lower = zone_bands(lung, superior_last=True)
    assert (upper.start, upper.stop) == (19, 27)
    assert (lower.start, lower.stop) == (3, 11)
    assert middle == slice(11, 19)


@pytest.mark.parametrize("spec", [
    PhantomSpec(shape=(60, 192, 192), slice_thickness_mm=5.0, seed=3),
    PhantomSpec(noise_hu=40.0, seed=4),
    PhantomSpec(blur_mm=2.0, seed=5),
    PhantomSpec(noise_hu=40.0, lesions=(), seed=8),
], ids=["thick-slices", "noisy", "blurred", "noisy-lesion-free"])
def test_acquisition_variants(spec: PhantomSpec) -> None:
    drawn = generate_phantom(spec)
    q, _ = _quantify(drawn)
    assert abs(q.lung_volume_ml - drawn.lung_volume_ml) <= 0.03 * drawn.lung_volume_ml
    assert abs(q.percent_opacity - drawn.percent_opacity) <= 1.5
    if not spec.lesions:
        assert q.lesion_count == 0 and q.total_score == 0
