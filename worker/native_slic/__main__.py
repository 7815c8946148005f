"""Compile (or load) the engine's Numba kernels once: ``python -m worker.native_slic``.

The native SLIC kernels and the softener's CPU kernels (``worker.soften_cpu``), for the
label dtypes the readers produce (uint8 up to 256 classes, uint16 beyond).

Numba compiles the CPU kernels on their first call and caches them on disk
(next to the sources, or in ``NUMBA_CACHE_DIR``; a user-wide cache when the
package folder is read-only). Run this after installing, e.g. in the Docker
image build, so that no study pays the compile; it prints how long it took.
"""

from __future__ import annotations

import time

import numpy as np

from worker.nifti_io import quantize_soft_labels
from worker.superpixel_soft import superpixel_soft_labels

from .driver import native_slic


def main() -> None:
    start = time.perf_counter()
    image = np.random.default_rng(0).random((12, 10, 8, 2), dtype=np.float32)
    native_slic(image, n_segments=10, compactness=0.1)
    native_slic(image, n_segments=10, compactness=0.1, enforce_connectivity=False)
    superpixels = native_slic(image, n_segments=10, compactness=0.1)
    for label_dtype in (np.uint8, np.uint16):
        label = (image[..., 1] * 3).astype(label_dtype)
        soft = superpixel_soft_labels(label, superpixels, num_classes=3, spacing=(1.0, 2.0, 0.5))
    quantize_soft_labels(soft, "uint8")
    print(f"native SLIC and softening CPU kernels ready in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
