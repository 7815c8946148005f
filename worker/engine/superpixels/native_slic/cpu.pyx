# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled CPU SLIC steps (Cython and OpenMP), bit-identical to the twin.

Same layouts, arithmetic and tie rule as :mod:`.reference`. The assignment is
window-major (windows: :mod:`.grid`): a thread takes a row of windows (neighbouring
windows share image rows, so their reads stream), and in each window, whose voxels share
the same 8 candidate centres, keeps a running best per voxel while it visits the
candidates in increasing index order, all in one pass (``assign_window.h``, in C:
branch-free selects, so the loops over a window's planes vectorise). Centre sums are accumulated per fixed
row block (:func:`.grid.reduction_blocks`) and the blocks are added in order,
so the float64 sums do not depend on the thread count.

Built into a C extension when the package is installed (``setup.py``); floating point is
IEEE single and double precision with no contraction (``-ffp-contract=off``), as in the twin.
``OMP_NUM_THREADS`` caps the threads.
"""

from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint8_t

import numpy as np

from .connectivity import enforce_connectivity
from .grid import SlicGrid, reduction_blocks

__all__ = ["assign", "update_centres", "enforce_connectivity"]


cdef extern from "assign_window.h" nogil:
    int64_t slic_assign_window(const float* image, int64_t n0, int64_t n1, int64_t n2, int64_t nc,
                               const uint8_t* mask, const float* centres, const int32_t* cell_centre,
                               int64_t g0, int64_t g1, int64_t g2, int64_t window, const int64_t* step,
                               const int64_t* start, const float* spacing, float weight, int32_t* labels)


def _assign_kernel(const float[:, :, :, ::1] image, const uint8_t[:, :, ::1] mask, bint has_mask,
                   const float[:, ::1] centres, const int32_t[:, :, ::1] cell_centre, const int64_t[::1] step,
                   const int64_t[::1] start, const float[::1] spacing, float weight, int32_t[:, :, ::1] labels) -> int:
    """Nearest-centre labels, a row of windows per OpenMP task; returns the number of changed voxels."""
    cdef Py_ssize_t n0 = image.shape[0], n1 = image.shape[1], n2 = image.shape[2], nc = image.shape[3]
    cdef Py_ssize_t g0 = cell_centre.shape[0], g1 = cell_centre.shape[1], g2 = cell_centre.shape[2]
    cdef Py_ssize_t n_windows = (g0 + 1) * (g1 + 1) * (g2 + 1), window
    cdef int64_t[::1] changed = np.zeros(n_windows, dtype=np.int64)
    cdef const uint8_t* mask_ptr = &mask[0, 0, 0] if has_mask else NULL
    for window in prange(n_windows, nogil=True, schedule="dynamic", chunksize=g2 + 1):
        changed[window] = slic_assign_window(&image[0, 0, 0, 0], n0, n1, n2, nc, mask_ptr, &centres[0, 0],
                                             &cell_centre[0, 0, 0], g0, g1, g2, window, &step[0], &start[0],
                                             &spacing[0], weight, &labels[0, 0, 0])
    total = np.asarray(changed)
    if (total < 0).any():
        raise MemoryError("native SLIC: no memory for a window's scratch arrays")
    return int(total.sum())


cdef void _sums_block(const float* image, Py_ssize_t n1, Py_ssize_t n2, Py_ssize_t nc, const int32_t* labels,
                      int64_t row_start, int64_t row_stop, double* partial) noexcept nogil:
    """Add each voxel of the rows [row_start, row_stop) to its centre's row of ``partial`` (K, 4 + C)."""
    cdef Py_ssize_t row, i0, i1, i2, c, at
    cdef int32_t k
    cdef double* sums
    for row in range(row_start, row_stop):
        i0 = row // n1
        i1 = row % n1
        for i2 in range(n2):
            at = row * n2 + i2
            k = labels[at]
            if k < 0:
                continue
            sums = partial + k * (4 + nc)
            sums[0] += 1.0
            sums[1] += <double>i0
            sums[2] += <double>i1
            sums[3] += <double>i2
            for c in range(nc):
                sums[4 + c] += <double>image[at * nc + c]


def _sums_kernel(const float[:, :, :, ::1] image, const int32_t[:, :, ::1] labels, Py_ssize_t n_centres,
                 const int64_t[::1] bounds):
    """Per-centre float64 sums ``(K, 4 + C)``, block by block then in block order."""
    cdef Py_ssize_t n1 = image.shape[1], n2 = image.shape[2], nc = image.shape[3]
    cdef Py_ssize_t n_blocks = bounds.shape[0] - 1, b
    partial_array = np.zeros((n_blocks, n_centres, 4 + nc), dtype=np.float64)
    cdef double[:, :, ::1] partial = partial_array
    for b in prange(n_blocks, nogil=True, schedule="dynamic"):
        _sums_block(&image[0, 0, 0, 0], n1, n2, nc, &labels[0, 0, 0], bounds[b], bounds[b + 1], &partial[b, 0, 0])
    total = np.zeros((n_centres, 4 + nc), dtype=np.float64)
    for block in partial_array:  # in block order: the same float64 sums for any thread count
        total += block
    return total


def _means_kernel(const double[:, ::1] sums, centres):
    """float64 means rounded to float32; empty centres keep their value."""
    out_array = np.array(centres, dtype=np.float32, order="C")
    cdef float[:, ::1] out = out_array
    cdef Py_ssize_t k, f
    cdef double count
    for k in range(sums.shape[0]):
        count = sums[k, 0]
        if count > 0:
            for f in range(out.shape[1]):
                out[k, f] = <float>(sums[k, 1 + f] / count)
    return out_array


def assign(image: np.ndarray, mask: np.ndarray | None, centres: np.ndarray,
           grid: SlicGrid, weight: np.float32, labels: np.ndarray) -> bool:
    """Label each voxel with its nearest candidate centre, in place (see reference.assign)."""
    no_mask = np.ones((1, 1, 1), dtype=np.uint8)
    n_changed = _assign_kernel(
        image, no_mask if mask is None else mask.view(np.uint8), mask is not None,
        np.ascontiguousarray(centres, dtype=np.float32), grid.cell_centre,
        np.asarray(grid.step, dtype=np.int64), np.asarray(grid.start, dtype=np.int64),
        np.asarray(grid.spacing_mm, dtype=np.float32),
        np.float32(weight), labels)
    return bool(n_changed)


def centre_sums(image: np.ndarray, labels: np.ndarray, n_centres: int) -> np.ndarray:
    """Per-centre sums ``(K, 4 + C)`` float64, same order as reference.centre_sums."""
    n0, n1 = labels.shape[:2]
    return _sums_kernel(image, labels, n_centres, reduction_blocks(n0 * n1))


def update_centres(image: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """New centres (see reference.update_centres)."""
    return _means_kernel(centre_sums(image, labels, len(centres)), centres)
