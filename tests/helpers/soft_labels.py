"""Comparisons of soft-label arrays shared by the softening tests."""

from __future__ import annotations

import numpy as np


def assert_same_soft_labels(fast: np.ndarray, naive: np.ndarray, spacing: tuple | None) -> None:
    """Voxel for voxel. In voxel units every squared distance is an exact integer, so the
    restricted (compiled, ``softening.soften_cpu``) and naive (SciPy) transforms agree bit for bit; with mm spacing the two
    may round an exactly tied distance differently in the last bit, so allow 1 float32 ulp."""
    if spacing is None or all(float(s).is_integer() for s in spacing):
        np.testing.assert_array_equal(fast, naive)
    else:
        np.testing.assert_array_max_ulp(fast, naive, maxulp=1)
