"""The restricted superpixel softening's CPU kernels, compiled with Numba (3D arrays only).

``worker.superpixel_soft`` states the method with array operations that run on NumPy and
CuPy alike; on the CPU those spend most of their time making full-size temporaries (masks,
int64 copies, moved axes, gathers), and MNI152's four classes each span the whole head. These
kernels compute the same numbers in place, bit for bit (tests/worker/test_soften_cpu.py):

* :func:`study_tables`: one pass over the study gives the class counts per superpixel and the
  bounding boxes of every superpixel and of every class's boundary voxels;
* :func:`soften_class_in_box`: one class in its box: face boundary, exact Euclidean distance
  transform, signed distance and SPEC eq. 1, written straight into the soft labels;
* :func:`one_hot_into` and :func:`quantize_uint8`: the one-hot start and the uint8 output.

The distance transform is Felzenszwalb & Huttenlocher's (Theory of Computing 8, 2012): one
pass per axis, each the lower envelope of parabolas along every 1D line. It gives SciPy's
``distance_transform_edt`` numbers: squared terms ``(spacing_a * offset_a) ** 2`` are summed in
axis order and square-rooted, as SciPy does (the two can pick different features only between
exactly equidistant ones, so in mm they may differ in the last bit), and it is about 3x faster.

All release the GIL; only :func:`quantize_uint8` starts threads (the softener runs classes in
a thread pool). 2D studies go through as (X, Y, 1) volumes; a unit axis changes no distance.
"""

from __future__ import annotations

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
def _differs_from_a_face_neighbour(label: np.ndarray, i: int, j: int, k: int) -> bool:
    """Whether voxel (i, j, k) has a face neighbour inside the array with another label."""
    value = label[i, j, k]
    nx, ny, nz = label.shape
    return (
        (i > 0 and label[i - 1, j, k] != value) or (i + 1 < nx and label[i + 1, j, k] != value)
        or (j > 0 and label[i, j - 1, k] != value) or (j + 1 < ny and label[i, j + 1, k] != value)
        or (k > 0 and label[i, j, k - 1] != value) or (k + 1 < nz and label[i, j, k + 1] != value)
    )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def study_tables(
    label: np.ndarray, superpixels: np.ndarray, num_classes: int, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-superpixel class counts and bounding boxes, in one pass over a 3D study.

    label: uint (X, Y, Z) in [0, num_classes); superpixels: int (X, Y, Z), -1 outside every
    superpixel; rows = max superpixel id + 2. Returns (counts (rows, K) int64 with row s + 1
    for superpixel s and row 0 for voxels outside all, zeroed; superpixel box start and stop
    (rows, 3); boundary box start and stop (K + 1, 3) of each class's boundary voxels, row K
    unused). Boxes as ``superpixel_soft.bounding_boxes``: stop exclusive, absent ids get
    start = extent and stop = 0.
    """
    nx, ny, nz = label.shape
    extent = np.array([nx, ny, nz], dtype=np.int64)
    counts = np.zeros((rows, num_classes), dtype=np.int64)
    sp_start = np.empty((rows, 3), dtype=np.int64)
    sp_stop = np.zeros((rows, 3), dtype=np.int64)
    bnd_start = np.empty((num_classes + 1, 3), dtype=np.int64)
    bnd_stop = np.zeros((num_classes + 1, 3), dtype=np.int64)
    for a in range(3):
        sp_start[:, a] = extent[a]
        bnd_start[:, a] = extent[a]
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                c = np.int64(label[i, j, k])
                row = np.int64(superpixels[i, j, k]) + 1
                counts[row, c] += 1
                _grow(sp_start, sp_stop, row, i, j, k)
                if _differs_from_a_face_neighbour(label, i, j, k):
                    _grow(bnd_start, bnd_stop, c, i, j, k)
    counts[0, :] = 0
    return counts, sp_start, sp_stop, bnd_start, bnd_stop


@numba.njit(cache=True, nogil=True, inline="always")
def _grow(start: np.ndarray, stop: np.ndarray, row: np.int64, i: int, j: int, k: int) -> None:
    start[row, 0] = min(start[row, 0], i)
    start[row, 1] = min(start[row, 1], j)
    start[row, 2] = min(start[row, 2], k)
    stop[row, 0] = max(stop[row, 0], i + 1)
    stop[row, 1] = max(stop[row, 1], j + 1)
    stop[row, 2] = max(stop[row, 2], k + 1)


@numba.njit(cache=True, nogil=True)
def _envelope_along_last_axis(lines: np.ndarray, step: float) -> None:
    """The 1D squared-distance envelope along the last axis of a 3D array (any strides), in place."""
    n = lines.shape[2]
    f = np.empty(n, dtype=np.float64)
    v = np.empty(n, dtype=np.int64)
    z = np.empty(n + 1, dtype=np.float64)
    for i in range(lines.shape[0]):
        for j in range(lines.shape[1]):
            f[:] = lines[i, j]
            _envelope_1d(f, step, lines[i, j], v, z)


@numba.njit(cache=True, nogil=True)
def soften_class_in_box(
    soft_c: np.ndarray, label: np.ndarray, superpixels: np.ndarray, mixed_c: np.ndarray,
    c: int, start: np.ndarray, stop: np.ndarray, steps: np.ndarray,
) -> None:  # fmt: skip
    """Write q_c (SPEC eq. 1) into ``soft_c`` at the voxels of the box [start, stop) that lie in
    superpixels mixed for class c (``mixed_c[s + 1]``), as ``superpixel_soft._soften_class_in_crop``.

    The distance is to c's boundary voxels in the box: voxels of c with a face neighbour of
    another class inside the image. steps: voxel size per axis (mm, or 1 for voxel units).
    """
    x0, y0, z0 = start[0], start[1], start[2]
    sq = np.empty((stop[0] - x0, stop[1] - y0, stop[2] - z0), dtype=np.float64)
    bx, by, bz = sq.shape
    for i in range(bx):
        for j in range(by):
            for k in range(bz):
                on_boundary = label[x0 + i, y0 + j, z0 + k] == c and _differs_from_a_face_neighbour(
                    label, x0 + i, y0 + j, z0 + k
                )
                sq[i, j, k] = 0.0 if on_boundary else np.inf
    _envelope_along_last_axis(sq.transpose((1, 2, 0)), steps[0])  # axes in SciPy's order
    _envelope_along_last_axis(sq.transpose((0, 2, 1)), steps[1])
    _envelope_along_last_axis(sq, steps[2])
    for i in range(bx):
        for j in range(by):
            for k in range(bz):
                if mixed_c[np.int64(superpixels[x0 + i, y0 + j, z0 + k]) + 1]:
                    d = np.sqrt(sq[i, j, k])
                    signed = d if label[x0 + i, y0 + j, z0 + k] == c else -d
                    soft_c[x0 + i, y0 + j, z0 + k] = np.float32(0.5 * (signed / (1 + abs(signed)) + 1))


@numba.njit(cache=True, nogil=True)
def one_hot_into(soft: np.ndarray, label: np.ndarray) -> None:
    """Set ``soft[x, label[x]] = 1`` for every voxel; soft: zeroed float32 (X, Y, Z, K), F-ordered.

    Voxels are visited in the soft labels' (Fortran) order, so the writes run along memory.
    """
    nx, ny, nz = label.shape
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                soft[i, j, k, label[i, j, k]] = 1.0


@numba.njit(cache=True, nogil=True, parallel=True)
def quantize_uint8(soft: np.ndarray, out: np.ndarray) -> None:
    """``out = rint(clip(soft, 0, 1) * 255)`` in float32, as uint8; both flat, same length."""
    scale = np.float32(255.0)
    for n in numba.prange(soft.shape[0]):
        value = min(max(soft[n], np.float32(0.0)), np.float32(1.0))
        out[n] = np.uint8(np.rint(value * scale))
