"""Imaging: DICOM archive (DICOMweb, DIMSE), remote reading, lung-lesion quantification.

What other packages may use. Names resolve on first use (PEP 562), so that importing
the package (app.py does, to mount its routes) needs none of the ``imaging`` extra.
No name here is also a submodule's name: importing the submodule would shadow it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "Archive": "hygie.imaging.archive",
    "DimseServer": "hygie.imaging.dimse",
    "ImagingError": "hygie.imaging.errors",
    "ImagingService": "hygie.imaging.service",
    "ImagingSettings": "hygie.imaging.model",
    "PhantomSpec": "hygie.imaging.phantom",
    "Quantification": "hygie.imaging.model",
    "generate_phantom": "hygie.imaging.phantom",
    "phantom_series": "hygie.imaging.phantom",
    "quantify_volume": "hygie.imaging.lung_report",
    "volume_from_datasets": "hygie.imaging.volume",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'hygie.imaging' has no attribute {name!r}")
