"""Epidemic modelling: the EPIcx lab's age-structured COVID-19 model, made an ensemble
engine, coupled between regions by mobility, calibrated on ICU admissions, and run on
scenarios (lockdown, school reopening, curfew, regional differences).

Public names are loaded on first use (PEP 562), so that mounting the HTTP routes does
not import numba, scipy and emcee (the ``hygie[epidemic]`` extra) before they are needed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Calibration": "calibration",
    "Coupling": "coupling",
    "DiseaseParameters": "model",
    "Ensemble": "engine",
    "EpidemicError": "errors",
    "EpidemicModel": "engine",
    "InvalidInput": "errors",
    "LimitExceeded": "errors",
    "MobilityUnavailable": "errors",
    "Phase": "model",
    "Population": "model",
    "ReferenceDataMissing": "errors",
    "Scenario": "model",
    "ScenarioError": "errors",
    "Seed": "model",
    "basic_reproduction_number": "reproduction",
    "effective_reproduction_numbers": "reproduction",
    "fit_scale_published": "calibration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hygie.epidemic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hygie.epidemic.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
