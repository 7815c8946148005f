"""SLIC superpixels over all image channels jointly (SPEC section 1, step 2).

Two implementations behind one call: scikit-image's ``slic`` (CPU only; the reference) and
ours, ``native`` (``worker.engine.superpixels.native_slic``: a compiled CPU version and a CuPy kernel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import backend_of, to_host
from .native_slic import native_slic


def compute_superpixels(
    image: Any,
    *,
    n_segments: int,
    compactness: float,
    spacing: Sequence[float] | None,
    slic: str = "native",
    max_num_iter: int = 10,
) -> Any:
    """SLIC superpixels of a multi-channel image rescaled to [0, 1].

    image: float32 (X, Y[, Z], C), channels last, each channel in [0, 1] (see
    ``worker.engine.intensity``); NumPy or CuPy. spacing: voxel size per spatial axis (mm), so
    superpixels are compact in physical space. Returns int32 (X, Y[, Z]) labels 0..M-1 on the
    device the chosen implementation ran on: scikit-image always runs on the CPU, ``native``
    runs on the image's device.
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"image: expected (X, Y[, Z], C) with 2 or 3 spatial axes, got shape {image.shape}")
    if slic == "skimage":
        return _skimage_slic(
            to_host(image), n_segments=n_segments, compactness=compactness, spacing=spacing, max_num_iter=max_num_iter
        )
    if slic == "native":
        return native_slic(
            image,
            n_segments=n_segments,
            compactness=compactness,
            spacing=tuple(spacing) if spacing is not None else None,
            max_num_iter=max_num_iter,
            backend=backend_of(image),
        )
    raise ValueError(f"slic: expected 'skimage' or 'native', got {slic!r}")


def _skimage_slic(
    image: np.ndarray, *, n_segments: int, compactness: float, spacing: Sequence[float] | None, max_num_iter: int
) -> np.ndarray:
    """scikit-image's SLIC with ``convert2lab=False``: with exactly 3 channels it would
    otherwise treat MRI sequences as RGB and convert them to Lab colour."""
    from skimage.segmentation import slic

    labels = slic(
        image,
        n_segments=n_segments,
        compactness=compactness,
        max_num_iter=max_num_iter,
        spacing=None if spacing is None else np.asarray(spacing, dtype=np.float64),
        channel_axis=-1,
        convert2lab=False,
        enforce_connectivity=True,
        start_label=0,
    )
    return labels.astype(np.int32, copy=False)
