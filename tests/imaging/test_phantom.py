"""The phantom: deterministic, geometrically valid, with truth that adds up."""

from __future__ import annotations

import numpy as np

from hygie.imaging.phantom import Label, Phantom, PhantomSpec, generate_phantom, phantom_series
from hygie.imaging.volume import volume_from_datasets
from tests.imaging.conftest import TINY


def test_same_seed_same_phantom_and_uids(tiny: Phantom) -> None:
    again = generate_phantom(TINY)
    assert np.array_equal(again.hu, tiny.hu)
    first, second = phantom_series(tiny), phantom_series(again)
    assert [d.SOPInstanceUID for d in first] == [d.SOPInstanceUID for d in second]
    other = generate_phantom(PhantomSpec(shape=TINY.shape, seed=TINY.seed + 1))
    assert not np.array_equal(other.hu, tiny.hu)


def test_series_is_a_regular_ct_volume(phantom: Phantom) -> None:
    datasets = phantom_series(phantom)
    assert {d.Modality for d in datasets} == {"CT"}
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert len({d.FrameOfReferenceUID for d in datasets}) == 1
    # Shuffled slices come back in spatial order with the phantom's geometry.
    volume = volume_from_datasets(list(reversed(datasets)))
    assert volume.shape == phantom.hu.shape
    assert np.allclose(volume.spacing, phantom.spacing)
    assert np.allclose(volume.origin, phantom.origin, atol=1e-3)
    assert np.array_equal(volume.hu, phantom.hu)
    assert volume.superior_is_up()


def test_truth_volumes(phantom: Phantom) -> None:
    voxel = phantom.voxel_ml
    lung = phantom.lung_mask()
    assert 3000 < phantom.lung_volume_ml < 6500
    assert phantom.lung_volume_ml == lung.sum() * voxel
    lesions = phantom.volume_ml(Label.GROUND_GLASS, Label.CONSOLIDATION)
    assert lesions > 0 and 0 < phantom.percent_opacity < 20
    assert phantom.percent_high_opacity < phantom.percent_opacity
    # Lesions lie inside the lungs; airways do not count as lung.
    assert not (lung & (phantom.labels == Label.AIRWAY)).any()
    assert (phantom.labels == Label.AIRWAY).sum() > 0
    # Noise and blur: lung parenchyma is spread around its mean.
    parenchyma = phantom.hu[phantom.labels == Label.LUNG_LEFT]
    assert -900 < parenchyma.mean() < -820 and 10 < parenchyma.std() < 60


def test_lesion_free_phantom_has_no_lesion() -> None:
    clean = generate_phantom(PhantomSpec(shape=(40, 96, 96), slice_thickness_mm=7.0,
                                         lesions=()))
    assert clean.percent_opacity == 0.0
