"""Reading the mobility service's matrices into the coupling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hygie.cli import main
from hygie.epidemic import MobilityUnavailable
from hygie.epidemic.coupling import aggregate_od
from hygie.epidemic.mobility_link import coupling_from_od, fetch_mobility_od
from hygie.epidemic.reference_data import departement_regions
from hygie.epidemic.runner import build_model, run_study
from hygie.epidemic.scenarios import parse_study


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


def test_missing_release_is_a_clear_error(tmp_path):
    with pytest.raises(MobilityUnavailable):
        fetch_mobility_od(date(2020, 3, 1), date(2020, 3, 31), root=tmp_path)


@pytest.fixture(scope="module")
def mobility_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real release of the mobility service: 20,000 synthetic devices over two days,
    the second under lockdown, aggregated and protected by its own pipeline."""
    root = tmp_path_factory.mktemp("mobility")
    env = {"HYGIE_VAR_DIR": str(root)}
    runner = CliRunner()
    r = runner.invoke(main, ["mobility", "generate", "--devices", "20000", "--days", "2",
                             "--start", "2020-03-16", "--scenario", "lockdown",
                             "--root", str(root)], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["mobility", "run", "--root", str(root), "--threads", "1"], env=env)
    assert r.exit_code == 0, r.output
    return root


def test_mobility_release_feeds_the_coupling(mobility_release: Path, ref) -> None:
    import hygie.mobility as mobility

    study = parse_study({
        "population": "regions", "start": "2020-02-11", "days": 60, "runs": 4,
        "random_seed": 1, "mobility": {"source": "mobility", "root": str(mobility_release)},
    })
    model = build_model(study, ref)
    coupling = model.coupling
    assert coupling is not None
    assert coupling.dates == (date(2020, 3, 16), date(2020, 3, 17))
    published = mobility.od_matrices(kind="home_day", level="region", root=mobility_release)
    order = [published.zones.index(c) for c in model.population.codes]
    np.testing.assert_allclose(coupling.matrices(),
                               published.people[:, order][:, :, order])
    # the lockdown day (with its exodus to second homes) changes where residents spend
    # the day, from that date on in the model
    off = coupling.matrices() * (1 - np.eye(13))
    assert off[1].sum() != off[0].sum()
    assert list(coupling.day_index(date(2020, 3, 15), 4)) == [0, 0, 1, 1]
    # seeded in Île-de-France only: another region is reached through the coupling
    mf = model.mean_field(study.scenario, channels=("infections",))
    alone = build_model(parse_study({"population": "regions", "start": "2020-02-11",
                                     "days": 60}), ref).mean_field(
        study.scenario, channels=("infections",))
    reached = [c for c in model.population.codes if c != "11"
               and mf.total("infections", [c]).sum() > 0]
    assert reached and all(alone.total("infections", [c]).sum() == 0 for c in reached)
    result = run_study(study, ref)
    assert result.ensemble.series["icu_beds"].shape == (4, 60, 13)
