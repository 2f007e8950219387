"""Disease parameters: published defaults, derived arrays, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hygie.epidemic import DiseaseParameters, InvalidInput
from hygie.epidemic.model import TRANSITION_COLUMNS


def test_class_shares_follow_the_published_split():
    shares = DiseaseParameters().class_shares()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(shares[:, 0], 0.4)
    # adults: 60 % symptomatic, of whom 20 % pauci, 4 % severe, 76 % mild
    np.testing.assert_allclose(shares[2], [0.4, 0.12, 0.456, 0.024])
    np.testing.assert_allclose(shares[3], [0.4, 0.12, 0.318, 0.162])
    # children and teens: symptomatic cases are all paucisymptomatic
    np.testing.assert_allclose(shares[0], [0.4, 0.6, 0.0, 0.0])


def test_transition_table_rebuilds_the_multinomial_probabilities():
    p = DiseaseParameters()
    t = p.transition_table()
    assert t.shape == (4, len(TRANSITION_COLUMNS))
    np.testing.assert_allclose(t[:, 0], 1 / 3.7)
    np.testing.assert_allclose(t[:, 1], 1 / 1.5)
    # successive conditional splits give back the unconditional shares
    a = 3
    p_ps = (1 - t[a, 3]) * t[a, 4]
    p_ms = (1 - t[a, 3]) * (1 - t[a, 4]) * t[a, 5]
    np.testing.assert_allclose([p_ps, p_ms], p.class_shares()[a, 1:3])
    # ICU: recovery 0.54 of exits at 1/20.689 per day for 65+
    np.testing.assert_allclose(t[a, 9], 0.54 / 20.689)
    np.testing.assert_allclose((1 - t[a, 9]) * t[a, 10], 0.46 / 20.689)


def test_contact_factors_apply_detection_as_published():
    p = DiseaseParameters()
    np.testing.assert_allclose(p.contact_factors(0.0), [1, 1, 1, 1, 0.25])
    np.testing.assert_allclose(p.contact_factors(0.5), [1, 0.55, 0.55, 0.55, 0.175])


def test_children_infectiousness_changes_only_young_children():
    inf = DiseaseParameters(children_infectiousness=0.1).infectiousness()
    np.testing.assert_allclose(inf[:, 0], [0.1, 0.1, 0.1, 1, 1])
    np.testing.assert_allclose(inf[:, 2], [0.55, 0.55, 0.55, 1, 1])


@pytest.mark.parametrize("change", [
    {"beta": -1.0}, {"asymptomatic": 1.5}, {"latent_days": 0.5},
    {"severe": (0.0, 0.0, 0.9, 0.9)}, {"susceptibility": (1.0, 1.0, 1.0)},
])
def test_invalid_parameters_are_refused(change):
    with pytest.raises(InvalidInput):
        dataclasses.replace(DiseaseParameters(), **change).validate()


def test_public_names_resolve():
    import hygie.epidemic as epidemic

    assert epidemic.__all__ == sorted(epidemic.__all__)
    for name in epidemic.__all__:
        assert getattr(epidemic, name) is not None
    with pytest.raises(AttributeError):
        epidemic.not_a_name  # noqa: B018
