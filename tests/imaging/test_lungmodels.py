"""User-supplied lung weights: used only when present with their package, never fetched."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hygie.imaging import lungmodels
from hygie.imaging.errors import MissingExtra
from hygie.imaging.lung_report import quantify_volume
from hygie.imaging.phantom import Phantom, phantom_series
from hygie.imaging.quantify import quantify
from hygie.imaging.volume import volume_from_datasets


def test_backend_follows_the_kind_of_path(tmp_path: Path) -> None:
    weights = tmp_path / "R231.pth"
    weights.write_bytes(b"\x80\x02}q\x00.")
    assert lungmodels.detect_backend(weights) == "lungmask"
    assert lungmodels.detect_backend(tmp_path) == "totalsegmentator"
    assert not lungmodels.is_available(None)
    assert not lungmodels.is_available(str(tmp_path / "absent.pth"))


@pytest.mark.skipif(importlib.util.find_spec("lungmask") is not None,
                    reason="lungmask is installed: the fallback is not what runs")
def test_without_the_package_the_builtin_segmentation_runs(tmp_path: Path,
                                                           phantom: Phantom) -> None:
    weights = tmp_path / "R231.pth"
    weights.write_bytes(b"not used")
    assert not lungmodels.is_available(str(weights))
    volume = volume_from_datasets(phantom_series(phantom))
    figures, _ = quantify_volume(volume, str(weights))
    assert figures == quantify(volume)[0]
    with pytest.raises(MissingExtra, match="lungmask"):
        lungmodels.segment_with_weights(volume.hu, volume.spacing, str(weights))
