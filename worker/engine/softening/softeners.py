"""The softeners behind one interface (SPEC section 1): hard, smoothing, gaussian, superpixel, and SVLS."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backend import array_module, backend_of, cpu_threads, ndimage_module
from ..checkpoint import Checkpoint, for_each, no_checkpoint
from ..config import SofteningConfig
from .superpixel_soft import one_hot, stored_one_hot, superpixel_soft_labels

GAUSSIAN_TRUNCATE = 4.0  # kernel radius in standard deviations


def label_smoothing(label: Any, *, num_classes: int, eps: float) -> Any:
    """``(1 - eps) * onehot + eps / K``."""
    return one_hot(label, num_classes=num_classes) * (1 - eps) + eps / num_classes


def gaussian_soft_labels(
    label: Any, *, num_classes: int, sigma_vox: Sequence[float], checkpoint: Checkpoint = no_checkpoint
) -> Any:
    """Engelen et al.: each one-hot channel blurred by a Gaussian of per-axis std ``sigma_vox``.

    The image edge is extended by its nearest value, so the K channels still sum to 1.
    checkpoint: called before each class (:mod:`softlabel.worker.engine.checkpoint`).
    """
    ndi = ndimage_module(backend_of(label))
    return _filter_one_hot(
        label, num_classes,
        lambda channel: ndi.gaussian_filter(channel, sigma_vox, mode="nearest", truncate=GAUSSIAN_TRUNCATE), checkpoint,
    )  # fmt: skip


def _filter_one_hot(label: Any, num_classes: int, filter_channel: Callable[[Any], Any], checkpoint: Checkpoint) -> Any:
    """The one-hot label with ``filter_channel`` applied to each class channel, in place, a
    checkpoint before each: in threads on the CPU (SciPy's filters release the GIL), one after
    the other on the GPU."""
    soft = one_hot(label, num_classes=num_classes)

    def filter_class(c: int) -> None:
        soft[..., c] = filter_channel(soft[..., c])

    threads = cpu_threads() if backend_of(label) == "cpu" else 1
    for_each(filter_class, range(num_classes), threads=threads, checkpoint=checkpoint)
    return soft


def svls_kernel(ndim: int, sigma: float) -> np.ndarray:
    """The SVLS kernel (Islam and Glocker, IPMI 2021): float64 ``(3,) * ndim``.

    Gaussian weights ``exp(-|x|^2 / (2 sigma^2))`` over the offsets in {-1, 0, 1}^ndim (voxel
    units), the centre weight replaced by the sum of the others, then normalised to sum 1: the
    voxel's own class keeps half the mass, its neighbours' classes share the other half.
    """
    offsets = np.indices((3,) * ndim) - 1
    weights = np.exp(-(offsets**2).sum(axis=0) / (2.0 * sigma**2))
    centre = (1,) * ndim
    weights[centre] = 0.0
    weights[centre] = weights.sum()
    return weights / weights.sum()


def svls_soft_labels(label: Any, *, num_classes: int, sigma: float, checkpoint: Checkpoint = no_checkpoint) -> Any:
    """Spatially varying label smoothing: each one-hot channel correlated with
    :func:`svls_kernel`; the image edge is extended by its nearest value, so the K channels
    still sum to 1. float32 (X, Y[, Z], K) on the label's device. checkpoint: called before
    each class."""
    backend = backend_of(label)
    ndi, xp = ndimage_module(backend), array_module(backend)
    kernel = xp.asarray(svls_kernel(label.ndim, sigma), dtype=xp.float32)
    return _filter_one_hot(label, num_classes, lambda channel: ndi.correlate(channel, kernel, mode="nearest"), checkpoint)


def sum_to_one(soft: Any) -> Any:
    """Divide each voxel's K probabilities by their sum (in place; returns ``soft``)."""
    xp = array_module(backend_of(soft))
    total = soft.sum(axis=-1, keepdims=True)
    soft /= xp.maximum(total, xp.float32(1e-12))
    return soft


def soften_label(
    label: Any,
    *,
    config: SofteningConfig,
    num_classes: int,
    spacing_mm: Sequence[float],
    superpixels: Any | None = None,
    as_stored: bool = False,
    checkpoint: Checkpoint = no_checkpoint,
) -> Any:
    """Soft labels for ``label`` by ``config.method``; float32 (X, Y[, Z], K) on the label's device.

    spacing_mm: voxel size per axis, used when ``config.distance == 'mm'`` (superpixel
    distances, gaussian sigma). superpixels: required for the superpixel method.
    as_stored: return ``config.dtype``'s stored form where it is computed directly, with no
    float32 (X, Y[, Z], K) array: uint8 ``rint(255 q)`` for the hard and superpixel methods on
    the CPU without ``normalize`` (float32 otherwise; ``io.nifti.quantize_soft_labels`` takes
    either). checkpoint: called before each class of the gaussian, SVLS and superpixel methods
    (:mod:`softlabel.worker.engine.checkpoint`); the others take one pass over the volume.
    """
    if len(spacing_mm) != label.ndim:
        raise ValueError(f"spacing_mm: expected {label.ndim} values, got {len(spacing_mm)}")
    in_mm = config.distance == "mm"
    direct = as_stored and config.dtype == "uint8" and not config.normalize and backend_of(label) == "cpu"
    dtype = "uint8" if direct else "float32"
    if config.method == "hard":
        soft = stored_one_hot(label, num_classes=num_classes) if direct else one_hot(label, num_classes=num_classes)
    elif config.method == "smoothing":
        soft = label_smoothing(label, num_classes=num_classes, eps=config.eps)
    elif config.method == "gaussian":
        sigma_vox = [config.sigma / s for s in spacing_mm] if in_mm else [config.sigma] * label.ndim
        soft = gaussian_soft_labels(label, num_classes=num_classes, sigma_vox=sigma_vox, checkpoint=checkpoint)
    elif config.method == "svls":
        soft = svls_soft_labels(label, num_classes=num_classes, sigma=config.sigma, checkpoint=checkpoint)
    else:
        if superpixels is None:
            raise ValueError("superpixels: expected a superpixel map for method 'superpixel', got None")
        soft = superpixel_soft_labels(
            label, superpixels, num_classes=num_classes, spacing=spacing_mm if in_mm else None, dtype=dtype,
            checkpoint=checkpoint,
        )
    return sum_to_one(soft) if config.normalize else soft
