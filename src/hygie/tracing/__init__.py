"""Contact tracing: the ROBERT server, exposure-notification crypto, test-site finder.

The public names are loaded on first use, so that importing the package (as app.py
and cli.py do) does not need the optional ``hygie[tracing]`` dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FileKeyStore": "hygie.tracing.keystore",
    "KeyStore": "hygie.tracing.keystore",
    "PhoneApp": "hygie.tracing.phone",
    "RiskParameters": "hygie.tracing.risk",
    "SiteIndex": "hygie.tracing.testsites",
    "Skinny64192": "hygie.tracing.skinny",
    "TracingError": "hygie.tracing.errors",
    "TracingService": "hygie.tracing.engine",
    "TracingSettings": "hygie.tracing.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hygie.tracing' has no attribute {name!r}")
