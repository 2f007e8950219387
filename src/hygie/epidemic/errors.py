"""Errors raised by the epidemic service; ``api.py`` turns them into problem+json.

::

    EpidemicError                 base: anything the caller did or asked that cannot be done
    ├── InvalidInput              a parameter, scenario or matrix is malformed (HTTP 422)
    │   └── ScenarioError         a scenario file is wrong; the message names the key
    ├── ReferenceDataMissing      the contact matrices / ICU data cannot be found (HTTP 503)
    ├── MobilityUnavailable       the mobility service has no output for the asked days (409)
    └── LimitExceeded             runs x days x patches past the configured limit (HTTP 413)
"""

from __future__ import annotations


class EpidemicError(Exception):
    """Base class: the request cannot be served; the message says why."""


class InvalidInput(EpidemicError, ValueError):
    """A parameter, array or scenario value is out of its documented domain."""


class ScenarioError(InvalidInput):
    """A scenario (TOML or JSON) is malformed; the message names the faulty key."""


class ReferenceDataMissing(EpidemicError, FileNotFoundError):
    """The reference data folder is not found: set ``HYGIE_SHARED_DATA`` (the folder
    holding ``epidemic/`` and ``geo/``) or ``epidemic_data_dir`` in the settings file."""


class MobilityUnavailable(EpidemicError):
    """The mobility service is absent or has no origin-destination matrix for these days;
    pass an origin-destination array yourself (see ``coupling.Coupling``)."""


class LimitExceeded(EpidemicError):
    """The asked computation is larger than ``epidemic_max_cells`` allows."""
