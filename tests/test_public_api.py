"""Each package's public surface: ``__all__`` is sorted, unique, and every name imports."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import hygie

PACKAGES = sorted(
    p.name for p in Path(hygie.__file__).parent.iterdir()
    if (p / "__init__.py").exists() and p.name not in ("web",)
)


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names(name: str) -> None:
    module = importlib.import_module(f"hygie.{name}")
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"hygie.{name} declares no __all__"
    assert list(exported) == sorted(exported), f"hygie.{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"hygie.{name}.__all__ names a missing {attr}"
