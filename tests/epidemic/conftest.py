"""Fixtures of the epidemic tests: the reference data, the published Île-de-France set-up."""

from __future__ import annotations

import pytest

from hygie.epidemic.engine import EpidemicModel
from hygie.epidemic.reference_data import ReferenceData
from hygie.epidemic.runner import published_scenario
from tests.conftest import shared_data


@pytest.fixture(scope="session")
def ref() -> ReferenceData:
    return ReferenceData(shared_data())


@pytest.fixture(scope="session")
def matrices(ref: ReferenceData) -> dict:
    return {name: ref.matrix(name) for name in ref.matrix_names()}


@pytest.fixture(scope="session")
def idf_model(ref: ReferenceData, matrices: dict) -> EpidemicModel:
    return EpidemicModel(population=ref.idf(), matrices=matrices)


@pytest.fixture()
def published():
    return published_scenario()
