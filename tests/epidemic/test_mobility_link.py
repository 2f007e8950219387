"""Reading the mobility service's matrices into the coupling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pytest

import hygie.mobility
from hygie.epidemic import MobilityUnavailable
from hygie.epidemic.coupling import aggregate_od
from hygie.epidemic.mobility_link import PUBLIC_FUNCTIONS, coupling_from_od, fetch_mobility_od
from hygie.epidemic.reference_data import departement_regions


@dataclass
class Release:
    """The shape of the mobility service's published daily matrices."""

    dates: tuple
    zones: tuple
    people: np.ndarray


def test_departement_flows_become_region_coupling(ref):
    pop = ref.regions()
    zones = ("75", "92", "69", "13")
    people = np.zeros((2, 4, 4))
    people[:, 0, 1] = 300_000  # Paris -> Hauts-de-Seine: inside Île-de-France
    people[:, 0, 2] = 5_000  # Paris -> Rhône: Île-de-France -> Auvergne-Rhône-Alpes
    people[1] *= 0.35
    release = Release((date(2020, 3, 18), date(2020, 3, 10)), zones, people)
    coupling = coupling_from_od(release, pop, departement_regions(ref.root))
    od = coupling.matrices()
    assert coupling.dates == (date(2020, 3, 10), date(2020, 3, 18))  # sorted
    i, j = pop.codes.index("11"), pop.codes.index("84")
    assert od[1, i, j] == 5_000 and od[0, i, j] == 5_000 * 0.35
    sigma = coupling.sigma(pop)
    np.testing.assert_allclose(sigma.sum(axis=2), 1.0)


def test_aggregate_drops_unknown_zones():
    od = np.arange(9.0).reshape(3, 3)
    out = aggregate_od(od, ["a", "b", "c"], {"a": "X", "b": "X"}, ["X", "Y"])
    np.testing.assert_allclose(out, [[0 + 1 + 3 + 4, 0], [0, 0]])


def test_mismatched_release_is_refused(ref):
    with pytest.raises(ValueError, match="one date per day"):
        coupling_from_od(Release((date(2020, 3, 1),), ("11",), np.zeros((2, 1, 1))), ref.idf())


@pytest.mark.skipif(any(hasattr(hygie.mobility, n) for n in PUBLIC_FUNCTIONS),
                    reason="the mobility service publishes its matrices")
def test_missing_mobility_output_is_a_clear_error():
    with pytest.raises(MobilityUnavailable):
        fetch_mobility_od(date(2020, 3, 1), date(2020, 3, 31))
