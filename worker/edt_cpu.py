"""Exact Euclidean distance transform on the CPU, compiled with Numba.

Felzenszwalb & Huttenlocher's separable algorithm (Theory of Computing 8, 2012): one pass
per axis, each computing the lower envelope of parabolas along every 1D line. It releases
the GIL, so callers run one transform per thread (the softener runs classes in threads);
it does not start threads itself. It returns the same numbers as
``scipy.ndimage.distance_transform_edt`` given the same nearest feature: squared terms
``(spacing_a * offset_a) ** 2`` are summed in axis order and then square-rooted, as SciPy
does (the two can pick different features only between exactly equidistant ones).
SciPy's version also builds the full feature-index array and is about 3x slower.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _envelope_1d(f: np.ndarray, step: float, out: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    """out[p] = min_q (step * (p - q))**2 + f[q]; f may hold inf (no feature reached yet)."""
    n = f.shape[0]
    k = -1
    for q in range(n):
        fq = f[q]
        if fq == np.inf:
            continue
        while k >= 0:
            r = v[k]
            s = ((fq + (step * q) ** 2) - (f[r] + (step * r) ** 2)) / (2.0 * step * step * (q - r))
            if s <= z[k]:
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        if k == 0:
            z[0] = -np.inf
        else:
            r = v[k - 1]
            z[k] = ((fq + (step * q) ** 2) - (f[r] + (step * r) ** 2)) / (2.0 * step * step * (q - r))
        z[k + 1] = np.inf
    if k < 0:
        for p in range(n):
            out[p] = np.inf
        return
    j = 0
    for p in range(n):
        while z[j + 1] < p:
            j += 1
        d = step * (p - v[j])
        out[p] = d * d + f[v[j]]


@numba.njit(cache=True, nogil=True)
def _pass_last_axis(sq: np.ndarray, step: float) -> None:
    """Run the 1D envelope along the last axis of a 2D (lines, n) array, in place."""
    lines, n = sq.shape
    f = np.empty(n, dtype=np.float64)
    v = np.empty(n, dtype=np.int64)
    z = np.empty(n + 1, dtype=np.float64)
    for i in range(lines):
        f[:] = sq[i]
        _envelope_1d(f, step, sq[i], v, z)


def distance_transform_edt(features_absent: np.ndarray, sampling: Sequence[float] | None = None) -> np.ndarray:
    """Distance from every voxel to the nearest False voxel (like SciPy's), float64, same shape.

    features_absent: bool (X, Y[, Z]); sampling: voxel size per axis or None for 1. With no
    False voxel at all the result is inf everywhere (SciPy's is undefined there).
    """
    mask = np.asarray(features_absent, dtype=bool)
    steps = [1.0] * mask.ndim if sampling is None else [float(s) for s in sampling]
    if len(steps) != mask.ndim:
        raise ValueError(f"sampling: expected {mask.ndim} values, got {len(steps)}")
    sq = np.where(mask, np.inf, 0.0)
    for axis in range(mask.ndim):
        moved = np.ascontiguousarray(np.moveaxis(sq, axis, -1))
        _pass_last_axis(moved.reshape(-1, moved.shape[-1]), steps[axis])
        sq = np.moveaxis(moved, -1, axis)
    return np.sqrt(sq)
