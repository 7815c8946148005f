"""Compile (or load) every compiled CPU kernel for the argument types studies bring.

Numba compiles one version of a kernel per argument type, array layout included, and caches
it on disk. Labels read from NIfTI are Fortran-ordered, uint8 (up to 256 classes) or uint16,
and labels made in memory are C-ordered; the one-hot kernel takes them as they come, the
softening kernels take C-ordered copies. :func:`load` calls each kernel once on a tiny
phantom in each of those forms, so ``python -m worker.native_slic`` at install compiles what
real runs use, and a worker's warm-up loads it before its first job.
"""

from __future__ import annotations

import numpy as np

TINY_SHAPE = (12, 10, 8)  # voxels of the phantom


def load() -> None:
    """Call native SLIC, the softening kernels and the uint8 writer on every layout above."""
    from worker.native_slic.driver import native_slic
    from worker.nifti_io import quantize_soft_labels
    from worker.superpixel_soft import superpixel_soft_labels

    image = np.random.default_rng(0).random(TINY_SHAPE + (2,), dtype=np.float32)
    native_slic(image, n_segments=10, compactness=0.1, enforce_connectivity=False)
    superpixels = native_slic(image, n_segments=10, compactness=0.1)
    label = (image[..., 1] * 3).astype(np.uint8)
    for label_in, superpixels_in in (
        (np.asfortranarray(label), superpixels),  # read from NIfTI, our SLIC
        (np.asfortranarray(label.astype(np.uint16)), superpixels),  # more than 256 classes
        (label, superpixels),  # arrays made in memory (soften_arrays callers)
    ):
        soft = superpixel_soft_labels(label_in, superpixels_in, num_classes=3, spacing=(1.0, 2.0, 0.5))
    quantize_soft_labels(soft, "uint8")
