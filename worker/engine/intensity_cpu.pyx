# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled CPU steps of the intensity rescaling (worker.engine.intensity).

* :func:`order_statistics`: exact k-th smallest values of one channel by a two-level radix
  select (a histogram of the top 16 bits of an order-preserving key, then of the low 16 bits
  inside the buckets that hold the wanted ranks): two parallel passes over the channel, where
  NumPy's percentile copies it and runs one introselect per index.
* :func:`clip_rescale_into`: clip and rescale one channel in one pass, straight into the
  channels-last output; the same float32 numbers as NumPy's ``clip``, ``subtract`` and
  ``divide`` done one after the other (NaN stays NaN, as with ``np.clip``).

Built with ``-ffp-contract=off`` like the other kernels. Both release the GIL; the histogram
passes use OpenMP threads (``OMP_NUM_THREADS`` caps them).
"""

cimport openmp
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcpy

import numpy as np

DEF N_BUCKETS = 65536  # 16 bits per level


cdef inline uint32_t _key(float x) noexcept nogil:
    """An unsigned key in the order of the floats (-0.0 counts as +0.0; not for NaN)."""
    cdef uint32_t u
    if x == 0:
        x = 0.0
    memcpy(&u, &x, 4)
    return (u ^ 0xFFFFFFFFu) if (u >> 31) else (u | 0x80000000u)


cdef inline float _value(uint32_t key) noexcept nogil:
    cdef uint32_t u = (key ^ 0x80000000u) if (key >> 31) else (key ^ 0xFFFFFFFFu)
    cdef float x
    memcpy(&x, &u, 4)
    return x


cdef void _top_histogram(const float* image, Py_ssize_t stride, Py_ssize_t start, Py_ssize_t stop,
                         int64_t* hist, int64_t* n_nan) noexcept nogil:
    cdef Py_ssize_t i
    cdef float x
    for i in range(start, stop):
        x = image[i * stride]
        if x != x:
            n_nan[0] += 1
        else:
            hist[_key(x) >> 16] += 1


cdef void _low_histogram(const float* image, Py_ssize_t stride, Py_ssize_t start, Py_ssize_t stop,
                         const int* slot_of_bucket, int64_t* hist) noexcept nogil:
    """hist[(slot - 1) * N_BUCKETS + low 16 bits] for the elements whose top bucket has a slot."""
    cdef Py_ssize_t i
    cdef float x
    cdef uint32_t key
    cdef int slot
    for i in range(start, stop):
        x = image[i * stride]
        if x != x:
            continue
        key = _key(x)
        slot = slot_of_bucket[key >> 16]
        if slot:
            hist[(slot - 1) * N_BUCKETS + (key & 0xFFFFu)] += 1


def order_statistics(const float[:, ::1] image, Py_ssize_t channel, ranks, int threads=0) -> np.ndarray:
    """The values of rank ``ranks`` (0-based, ascending) of ``image[:, channel]``, float32.

    image: (voxels, C) float32, C order. Equal to the sorted channel's entries at those ranks
    (a zero comes back as +0.0). A channel holding NaN returns NaN for every rank, as NumPy's
    percentile does. threads: OpenMP threads for the histogram passes (0: the runtime's count;
    callers that run channels in threads of their own share the cores out).
    """
    cdef Py_ssize_t n = image.shape[0], stride = image.shape[1], t, b, r
    if not 0 <= channel < stride:
        raise ValueError(f"expected channel in [0, {stride}), got {channel}")
    wanted = np.asarray(ranks, dtype=np.int64)
    if n == 0 or wanted.size == 0 or wanted.min() < 0 or wanted.max() >= n:
        raise ValueError(f"expected ranks in [0, {n}), got {wanted.tolist()}")
    cdef int n_threads = max(1, min(threads if threads > 0 else openmp.omp_get_max_threads(), n // 65536))
    cdef const float* data = &image[0, channel]
    top_array = np.zeros((n_threads, N_BUCKETS), dtype=np.int64)
    nan_array = np.zeros(n_threads, dtype=np.int64)
    cdef int64_t[:, ::1] top = top_array
    cdef int64_t[::1] nans = nan_array
    for t in prange(n_threads, nogil=True, schedule="static", chunksize=1, num_threads=n_threads):
        _top_histogram(data, stride, t * n // n_threads, (t + 1) * n // n_threads, &top[t, 0], &nans[t])
    if nan_array.sum():
        return np.full(wanted.size, np.nan, dtype=np.float32)
    below = np.concatenate(([0], np.cumsum(top_array.sum(axis=0))))  # elements in buckets < b
    buckets = np.searchsorted(below, wanted, side="right") - 1  # bucket holding each rank
    used = np.array(sorted(set(buckets.tolist())), dtype=np.int64)  # np.unique would import numpy.ma (7 ms)
    slot_array = np.zeros(N_BUCKETS, dtype=np.intc)
    slot_array[used] = np.arange(1, used.size + 1)
    low_array = np.zeros((n_threads, used.size * N_BUCKETS), dtype=np.int64)
    cdef const int[::1] slot_of_bucket = slot_array
    cdef int64_t[:, ::1] low = low_array
    for t in prange(n_threads, nogil=True, schedule="static", chunksize=1, num_threads=n_threads):
        _low_histogram(data, stride, t * n // n_threads, (t + 1) * n // n_threads, &slot_of_bucket[0], &low[t, 0])
    low_counts = low_array.sum(axis=0).reshape(used.size, N_BUCKETS)
    values = np.empty(wanted.size, dtype=np.float32)
    for index in range(wanted.size):
        b = buckets[index]
        within = np.cumsum(low_counts[slot_array[b] - 1])
        r = wanted[index] - below[b]
        values[index] = _value((<uint32_t>b << 16) | <uint32_t>np.searchsorted(within, r, side="right"))
    return values


def clip_rescale_into(const float[:, ::1] image, Py_ssize_t channel, float lo, float hi, float span,
                      float[:, ::1] out) -> None:
    """``out[:, channel] = (clip(image[:, channel], lo, hi) - lo) / span``, float32.

    image, out: (voxels, C) float32, C order (a channels-last image flattened).
    """
    cdef Py_ssize_t i, n = image.shape[0]
    cdef Py_ssize_t n_channels = image.shape[1]
    cdef float x
    if out.shape[0] != n or out.shape[1] != n_channels or not 0 <= channel < n_channels:
        raise ValueError(f"expected out of shape ({n}, {n_channels}) and channel in [0, {n_channels}), "
                         f"got ({out.shape[0]}, {out.shape[1]}) and {channel}")
    with nogil:
        for i in range(n):
            x = image[i, channel]
            if x < lo:
                x = lo
            elif x > hi:
                x = hi
            out[i, channel] = (x - lo) / span
