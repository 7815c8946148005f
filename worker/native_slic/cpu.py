"""Compiled CPU SLIC steps (Numba, multi-threaded), bit-identical to the twin.

Same layouts, arithmetic and tie rule as :mod:`.reference`. The assignment is
cell-major: each thread takes one grid cell, whose voxels share the same 27
candidate centres, and keeps a running best per voxel while it visits the
candidates in increasing index order (branch-free selects, so the loops over
a cell's planes vectorise). Centre sums are accumulated per fixed
row block (:func:`.grid.reduction_blocks`) and the blocks are added in order,
so the float64 sums do not depend on the thread count.

Kernels are compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .connectivity import enforce_connectivity
from .grid import SlicGrid, reduction_blocks

__all__ = ["assign", "update_centres", "enforce_connectivity"]

_NO_MASK = np.ones((1, 1, 1), dtype=np.bool_)


@njit(parallel=True, cache=True, fastmath=False)
def _assign_kernel(image, mask, has_mask, centres, cell_centre, step, spacing, weight, labels):
    """Nearest-centre labels, one grid cell per task; returns the number of changed voxels.

    The cell's voxels are copied channel-first with each (axis 1, axis 2)
    plane flattened, so the loops over a plane vectorise; the arithmetic is
    the reference's, term for term.
    """
    n0, n1, n2, n_channels = image.shape
    g0, g1, g2 = cell_centre.shape
    changed = np.zeros(g0 * g1 * g2, dtype=np.int64)
    for cell in prange(g0 * g1 * g2):
        c0 = cell // (g1 * g2)
        c1 = (cell // g2) % g1
        c2 = cell % g2
        lo0, lo1, lo2 = c0 * step[0], c1 * step[1], c2 * step[2]
        m0 = (n0 if c0 == g0 - 1 else lo0 + step[0]) - lo0
        m1 = (n1 if c1 == g1 - 1 else lo1 + step[1]) - lo1
        m2 = (n2 if c2 == g2 - 1 else lo2 + step[2]) - lo2
        plane = m1 * m2
        pixels = np.empty((n_channels, m0, plane), dtype=np.float32)
        for c in range(n_channels):
            for i0 in range(m0):
                for i1 in range(m1):
                    for i2 in range(m2):
                        pixels[c, i0, i1 * m2 + i2] = image[lo0 + i0, lo1 + i1, lo2 + i2, c]
        best = np.full((m0, plane), np.inf, dtype=np.float32)
        best_k = np.full((m0, plane), -1, dtype=np.int32)
        colour = np.empty(plane, dtype=np.float32)
        sq12 = np.empty(plane, dtype=np.float32)
        for o0 in range(-1, 2):
            q0 = c0 + o0
            if q0 < 0 or q0 >= g0:
                continue
            for o1 in range(-1, 2):
                q1 = c1 + o1
                if q1 < 0 or q1 >= g1:
                    continue
                for o2 in range(-1, 2):
                    q2 = c2 + o2
                    if q2 < 0 or q2 >= g2:
                        continue
                    k = cell_centre[q0, q1, q2]
                    if k < 0:
                        continue
                    for i1 in range(m1):
                        d1 = (np.float32(lo1 + i1) - centres[k, 1]) * spacing[1]
                        sq1 = d1 * d1
                        for i2 in range(m2):
                            d2 = (np.float32(lo2 + i2) - centres[k, 2]) * spacing[2]
                            sq12[i1 * m2 + i2] = sq1 + d2 * d2
                    for i0 in range(m0):
                        d0 = (np.float32(lo0 + i0) - centres[k, 0]) * spacing[0]
                        sq0 = d0 * d0
                        mu = centres[k, 3]
                        for j in range(plane):
                            t = pixels[0, i0, j] - mu
                            colour[j] = t * t  # == 0 + t * t
                        for c in range(1, n_channels):
                            mu = centres[k, 3 + c]
                            for j in range(plane):
                                t = pixels[c, i0, j] - mu
                                colour[j] = colour[j] + t * t
                        for j in range(plane):
                            dist = colour[j] + weight * (sq0 + sq12[j])
                            old = best[i0, j]
                            better = dist < old
                            best[i0, j] = dist if better else old
                            best_k[i0, j] = k if better else best_k[i0, j]
        n_changed = 0
        for i0 in range(m0):
            for i1 in range(m1):
                for i2 in range(m2):
                    if has_mask and not mask[lo0 + i0, lo1 + i1, lo2 + i2]:
                        continue
                    k = best_k[i0, i1 * m2 + i2]
                    if labels[lo0 + i0, lo1 + i1, lo2 + i2] != k:
                        labels[lo0 + i0, lo1 + i1, lo2 + i2] = k
                        n_changed += 1
        changed[cell] = n_changed
    return changed.sum()


@njit(parallel=True, cache=True, fastmath=False)
def _sums_kernel(image, labels, n_centres, bounds):
    """Per-centre float64 sums ``(K, 4 + C)``, block by block then in block order."""
    n0, n1, n2, n_channels = image.shape
    n_blocks = len(bounds) - 1
    n_feat = 4 + n_channels
    partial = np.zeros((n_blocks, n_centres, n_feat), dtype=np.float64)
    for b in prange(n_blocks):
        for row in range(bounds[b], bounds[b + 1]):
            i0 = row // n1
            i1 = row % n1
            for i2 in range(n2):
                k = labels[i0, i1, i2]
                if k < 0:
                    continue
                partial[b, k, 0] += 1.0
                partial[b, k, 1] += np.float64(i0)
                partial[b, k, 2] += np.float64(i1)
                partial[b, k, 3] += np.float64(i2)
                for c in range(n_channels):
                    partial[b, k, 4 + c] += np.float64(image[i0, i1, i2, c])
    total = np.zeros((n_centres, n_feat), dtype=np.float64)
    for b in range(n_blocks):
        for k in range(n_centres):
            for f in range(n_feat):
                total[k, f] += partial[b, k, f]
    return total


@njit(cache=True, fastmath=False)
def _means_kernel(sums, centres):
    """float64 means rounded to float32; empty centres keep their value."""
    out = centres.copy()
    for k in range(sums.shape[0]):
        count = sums[k, 0]
        if count > 0:
            for f in range(centres.shape[1]):
                out[k, f] = np.float32(sums[k, 1 + f] / count)
    return out


def assign(image: np.ndarray, mask: np.ndarray | None, centres: np.ndarray,
           grid: SlicGrid, weight: np.float32, labels: np.ndarray) -> bool:
    """Label each voxel with its nearest candidate centre, in place (see reference.assign)."""
    n_changed = _assign_kernel(
        image, _NO_MASK if mask is None else mask, mask is not None, centres,
        grid.cell_centre, np.asarray(grid.step, dtype=np.int64),
        np.asarray(grid.spacing_mm, dtype=np.float32), np.float32(weight), labels)
    return bool(n_changed)


def centre_sums(image: np.ndarray, labels: np.ndarray, n_centres: int) -> np.ndarray:
    """Per-centre sums ``(K, 4 + C)`` float64, same order as reference.centre_sums."""
    n0, n1 = labels.shape[:2]
    return _sums_kernel(image, labels, n_centres, reduction_blocks(n0 * n1))


def update_centres(image: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """New centres (see reference.update_centres)."""
    return _means_kernel(centre_sums(image, labels, len(centres)), centres)
