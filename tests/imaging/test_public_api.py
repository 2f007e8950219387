"""The package's public names: sorted, and each one resolves."""

from __future__ import annotations

import subprocess
import sys

import hygie.imaging


def test_all_names_resolve() -> None:
    import importlib
    import pkgutil

    # Every submodule imported first: none may shadow a public name.
    for module in pkgutil.iter_modules(hygie.imaging.__path__):
        importlib.import_module(f"hygie.imaging.{module.name}")
    assert hygie.imaging.__all__ == sorted(hygie.imaging.__all__)
    for name in hygie.imaging.__all__:
        assert getattr(hygie.imaging, name).__name__ == name


def test_mounting_the_routes_imports_no_extra() -> None:
    code = ("import sys, hygie.imaging.api; "
            "print(sorted(m for m in ('pydicom', 'numpy', 'scipy', 'highdicom', 'pynetdicom') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
