"""Optional lung segmentation by a weights file the user supplies; never downloaded.

The built-in segmentation (``lungs.py``) needs no weights. When the operator sets
``[imaging] lung_weights`` to a file or folder they obtained themselves, and the
matching package is installed, that model segments the lungs instead; lesion
classification stays the same. Backends are registered by name with the module and
function that run them, as pydicom registers its decoders, so their heavy imports
(torch) happen only when used:

* ``lungmask``: a ``.pth`` state dict of the lungmask U-Net (R231 family), run with
  ``lungmask.LMInferer(modelpath=...)``; labels 1 right lung, 2 left lung.
* ``totalsegmentator``: a TotalSegmentator weights folder (``nnUNet_results`` layout);
  ``TOTALSEG_WEIGHTS_PATH`` is pointed at it and only the lung lobes are asked for.
  The folder must hold the lobes task already: TotalSegmentator would otherwise fetch
  it, so a folder without it is refused before the package is called.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from hygie.imaging.errors import MissingExtra

__all__ = ["detect_backend", "is_available", "segment_with_weights"]

_BACKENDS = {
    "lungmask": ("hygie.imaging.lungmodels", "_run_lungmask", "lungmask"),
    "totalsegmentator": ("hygie.imaging.lungmodels", "_run_totalsegmentator",
                         "totalsegmentator"),
}
_LOBES = {
    "right": ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"),
    "left": ("lung_upper_lobe_left", "lung_lower_lobe_left"),
}


def detect_backend(path: Path) -> str:
    """The backend a weights path is for: a file is lungmask's, a folder TotalSegmentator's."""
    return "totalsegmentator" if path.is_dir() else "lungmask"


def is_available(path: str | None) -> bool:
    """True when the weights exist and their package is installed."""
    if not path or not Path(path).exists():
        return False
    _, _, package = _BACKENDS[detect_backend(Path(path))]
    return importlib.util.find_spec(package) is not None


def segment_with_weights(hu: np.ndarray, spacing: tuple[float, float, float],
                         path: str) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) lung masks at the volume's resolution, from the user's model."""
    weights = Path(path)
    name = detect_backend(weights)
    module, function, package = _BACKENDS[name]
    if importlib.util.find_spec(package) is None:
        raise MissingExtra(f"lung weights {weights.name} need the {package} package")
    run = getattr(importlib.import_module(module), function)
    right, left = run(hu, spacing, weights)
    return right.astype(bool), left.astype(bool)


def _run_lungmask(hu: np.ndarray, spacing: tuple[float, float, float],
                  weights: Path) -> tuple[np.ndarray, np.ndarray]:
    """lungmask on a (slices, rows, columns) HU array, as SimpleITK would hand it over."""
    from lungmask import LMInferer

    inferer = LMInferer(modelpath=str(weights), force_cpu=True, tqdm_disable=True)
    labels = np.asarray(inferer.apply(hu.astype(np.int16)))
    return labels == 1, labels == 2


def _run_totalsegmentator(hu: np.ndarray, spacing: tuple[float, float, float],
                          weights: Path) -> tuple[np.ndarray, np.ndarray]:
    """TotalSegmentator's lung lobes, merged per side; refuses a folder it would complete."""
    if not any(weights.rglob("*lung*")) and not any(weights.rglob("Dataset*")):
        raise MissingExtra(f"{weights} holds no TotalSegmentator task; nothing is downloaded")
    os.environ["TOTALSEG_WEIGHTS_PATH"] = str(weights)
    import nibabel as nib
    from totalsegmentator.python_api import totalsegmentator

    # NIfTI wants (x, y, z); the affine carries the spacing (LPS -> RAS flip of x, y).
    data = np.ascontiguousarray(hu.transpose(2, 1, 0)).astype(np.int16)
    affine = np.diag([-spacing[2], -spacing[1], spacing[0], 1.0])
    image = nib.Nifti1Image(data, affine)
    out = totalsegmentator(image, None, roi_subset=[*_LOBES["right"], *_LOBES["left"]],
                           ml=True, quiet=True, device="cpu")
    labels = np.asarray(out.get_fdata()).astype(np.uint8).transpose(2, 1, 0)
    from totalsegmentator.map_to_binary import class_map

    names = {v: k for k, v in class_map["total"].items()}
    right = np.isin(labels, [names[n] for n in _LOBES["right"] if n in names])
    left = np.isin(labels, [names[n] for n in _LOBES["left"] if n in names])
    return right, left
