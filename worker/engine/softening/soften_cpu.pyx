# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The restricted superpixel softening's CPU kernels, compiled ahead of time (3D arrays only).

``worker.superpixel_soft`` states the method with array operations that run on NumPy and
CuPy alike; on the CPU those spend most of their time making full-size temporaries (masks,
int64 copies, moved axes, gathers), and MNI152's four classes each span the whole head. These
kernels compute the same numbers in place, bit for bit (tests/worker/test_soften_cpu.py):

* :func:`study_tables`: one pass over the study gives the class counts per superpixel and the
  bounding boxes of every superpixel and of every class's boundary voxels;
* :func:`soften_class_in_box`: one class in its box: face boundary, exact Euclidean distance
  transform, signed distance and SPEC eq. 1, written straight into the soft labels;
* :func:`one_hot_into` and :func:`quantize_uint8`: the one-hot start and the uint8 output.

The soft labels are float32 q, or straight away their stored uint8 form ``round(255 q)``, the
same numbers as quantising the float32 ones, without the float32 (X, Y, Z, K) array: 4 times
less memory, which is what 100+ class atlases need.

The distance transform is Felzenszwalb & Huttenlocher's (Theory of Computing 8, 2012): one
pass per axis, each the lower envelope of parabolas along every 1D line (the first pass, on
the 0/inf feature map, is the offset to the nearest feature, found by two sweeps over planes). It gives SciPy's
``distance_transform_edt`` numbers: squared terms ``(spacing_a * offset_a) ** 2`` are summed in
axis order and square-rooted, as SciPy does (the two can pick different features only between
exactly equidistant ones, so in mm they may differ in the last bit), and it is about 3x faster.
With unit steps (voxel distances, or 1 mm voxels) the envelopes run in exact integers, without
a division per parabola: the same numbers, about 12% less time per class.

This is Cython, built into a C extension when the package is installed (``setup.py``), so no
run pays a compile. All kernels release the GIL; only :func:`quantize_uint8` starts threads
(OpenMP; ``OMP_NUM_THREADS`` caps them), as the softener runs classes in a thread pool. Labels
are uint8, uint16 or int32 and superpixels int32, C-ordered where the docstrings say so;
:func:`as_label` and :func:`as_superpixels` make such copies when needed. 2D studies go through
as (X, Y, 1) volumes; a unit axis changes no distance.
"""

cimport openmp
from cython.parallel cimport prange
from libc.math cimport INFINITY, fabs, rintf, sqrt
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport free, malloc

import numpy as np

ctypedef fused label_t:
    uint8_t
    uint16_t
    int32_t

ctypedef fused soft_t:  # soft labels as computed (float32 q) or as stored (uint8 round(255 q))
    float
    uint8_t


cdef inline uint8_t _stored_uint8(float q) noexcept nogil:
    """The uint8 file value of a soft label q: ``rint(clip(q, 0, 1) * 255)`` in float32."""
    return <uint8_t>rintf(min(max(q, <float>0.0), <float>1.0) * <float>255.0)


def openmp_threads() -> int:
    """Threads an OpenMP loop of the kernels gets: ``OMP_NUM_THREADS`` when set, else the CPUs
    this process may run on (GNU OpenMP's rule)."""
    return openmp.omp_get_max_threads()


def as_label(label, num_classes: int):
    """``label`` (values already checked to lie in [0, num_classes)) as a dtype the kernels take."""
    dtype = np.uint8 if num_classes <= 256 else np.uint16 if num_classes <= 65536 else np.int32
    return label if label.dtype in (np.uint8, np.uint16, np.int32) else label.astype(dtype)


def as_superpixels(superpixels):
    """C-ordered int32 superpixel ids (values already checked to be >= -1 and to fit)."""
    return np.ascontiguousarray(superpixels, dtype=np.int32)


cdef inline void _no_feature(double* out, Py_ssize_t n, Py_ssize_t out_stride) noexcept nogil:
    """A line without a feature: every squared distance is inf."""
    cdef Py_ssize_t p
    for p in range(n):
        out[p * out_stride] = INFINITY


cdef void _envelope_1d(const double* f, Py_ssize_t n, double step, double* out, Py_ssize_t out_stride,
                       Py_ssize_t* v, double* z, double* g) noexcept nogil:
    """out[p * out_stride] = min_q (step * (p - q))**2 + f[q]; f may hold inf (no feature yet).

    Scratch: v (n), z (n + 1), g (n). Each parabola's intersection with the one below it on
    the stack is divided out once (the value that stops the pops is the new z), and
    g[q] = f[q] + (step * q)**2 once per parabola: the same operations on the same numbers as
    recomputing them.
    """
    cdef Py_ssize_t q, r, p, j
    cdef Py_ssize_t k = -1
    cdef double gq, s = 0.0, d
    cdef double two_step_sq = 2.0 * step * step
    for q in range(n):
        if f[q] == INFINITY:
            continue
        gq = f[q] + (step * q) * (step * q)
        g[q] = gq
        while k >= 0:
            r = v[k]
            s = (gq - g[r]) / (two_step_sq * <double>(q - r))
            if s <= z[k]:
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        z[k] = -INFINITY if k == 0 else s
        z[k + 1] = INFINITY
    if k < 0:
        _no_feature(out, n, out_stride)
        return
    j = 0
    for p in range(n):
        while z[j + 1] < p:
            j += 1
        d = step * <double>(p - v[j])
        out[p * out_stride] = d * d + f[v[j]]


cdef void _envelope_1d_unit(const int64_t* f, Py_ssize_t n, double* out, Py_ssize_t out_stride,
                            Py_ssize_t* v, int64_t* z_num, int64_t* z_den, int64_t* g) noexcept nogil:
    """:func:`_envelope_1d` for a unit step and integer f (-1 for inf), in exact integers.

    With unit steps every squared distance is an integer, so each intersection of two
    parabolas is a fraction ``z_num / z_den`` (z_den > 0) and is compared by cross-multiplying,
    without a division. Decisions and numbers equal :func:`_envelope_1d`'s: its doubles round
    each intersection correctly, and two different fractions of such small denominators never
    round to one double, nor across an integer p. Scratch: v (n), z_num and z_den (n + 1), g (n).
    """
    cdef Py_ssize_t q, r, p, j
    cdef Py_ssize_t k = -1
    cdef int64_t gq, num = 0, den = 1, d
    for q in range(n):
        if f[q] < 0:
            continue
        gq = f[q] + <int64_t>q * q
        g[q] = gq
        while k >= 0:
            r = v[k]
            num = gq - g[r]
            den = 2 * <int64_t>(q - r)
            if k > 0 and num * z_den[k] <= z_num[k] * den:  # s <= z[k]; z[0] is -inf
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        z_num[k] = num
        z_den[k] = den
    if k < 0:
        _no_feature(out, n, out_stride)
        return
    j = 0
    for p in range(n):
        while j < k and z_num[j + 1] < p * z_den[j + 1]:
            j += 1
        d = p - v[j]
        out[p * out_stride] = <double>(d * d + f[v[j]])


cdef int _envelope_along_axis(double* sq, Py_ssize_t[3] shape, int axis, double step, bint unit) noexcept nogil:
    """The 1D squared-distance envelope along ``axis`` (1 or 2; axis 0 is the first pass,
    :func:`_first_axis_from_features`) of a C-ordered 3D array, in place.

    unit: every axis step is 1 (distances in voxels, or 1 mm voxels in mm), so ``sq`` holds
    integers and the exact integer envelope :func:`_envelope_1d_unit` gives the same numbers
    as the floating-point one, faster. Returns -1 when scratch memory cannot be had, else 0.
    """
    cdef Py_ssize_t strides[3]
    strides[2] = 1
    strides[1] = shape[2]
    strides[0] = shape[1] * shape[2]
    cdef int a = 0  # the lines run along ``axis``; a and b are the other two
    cdef int b = 1 if axis == 2 else 2
    cdef Py_ssize_t n = shape[axis]
    cdef Py_ssize_t stride = strides[axis]
    # Per line: the input values f, the envelope's parabolas v, their g values and intersections
    # z, as doubles or, with unit steps, as int64 of the same size (z then the numerators, with
    # the denominators in z_den).
    cdef Py_ssize_t* v = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    cdef void* f = malloc(n * sizeof(double))
    cdef void* g = malloc(n * sizeof(double))
    cdef void* z = malloc((n + 1) * sizeof(double))
    cdef int64_t* z_den = <int64_t*>malloc((n + 1) * sizeof(int64_t)) if unit else NULL
    cdef Py_ssize_t i, j, p
    cdef double* line
    cdef double* f_double = <double*>f
    cdef int64_t* f_int = <int64_t*>f
    cdef int status = 0
    if v == NULL or f == NULL or g == NULL or z == NULL or (unit and z_den == NULL):
        status = -1
    else:
        for i in range(shape[a]):
            for j in range(shape[b]):
                line = sq + i * strides[a] + j * strides[b]
                if unit:
                    for p in range(n):
                        f_int[p] = -1 if line[p * stride] == INFINITY else <int64_t>line[p * stride]
                    _envelope_1d_unit(f_int, n, line, stride, v, <int64_t*>z, z_den, <int64_t*>g)
                else:
                    for p in range(n):
                        f_double[p] = line[p * stride]
                    _envelope_1d(f_double, n, step, line, stride, v, <double*>z, <double*>g)
    free(v)
    free(f)
    free(g)
    free(z)
    free(z_den)
    return status


cdef void _first_axis_from_features(double* sq, Py_ssize_t[3] shape, double step) noexcept nogil:
    """The axis-0 pass on a feature map (0.0 at features, inf elsewhere), in place:
    ``(step * offset to the nearest feature along axis 0) ** 2``, or inf for a line without one.

    The envelope pass gives exactly these numbers on such input (its nearest parabola is a
    nearest feature, and ``d * d + 0.0 == d * d``); two sweeps over whole (axis 1, axis 2)
    planes compute them along memory, where the envelope walks one strided line at a time.
    """
    cdef Py_ssize_t n = shape[0], plane = shape[1] * shape[2], i, jk
    cdef double* row
    cdef double* other
    cdef double d
    for i in range(1, n):  # offset since the last feature, counted in doubles (exact)
        row = sq + i * plane
        other = row - plane
        for jk in range(plane):
            row[jk] = 0.0 if row[jk] == 0.0 else other[jk] + 1.0
    for i in range(n - 2, -1, -1):  # or to the next feature, when nearer
        row = sq + i * plane
        other = row + plane
        for jk in range(plane):
            row[jk] = min(row[jk], other[jk] + 1.0)
    for jk in range(n * plane):
        d = step * sq[jk]
        sq[jk] = d * d  # inf stays inf


cdef inline bint _differs_from_a_face_neighbour(const label_t* label, Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t nz,
                                                Py_ssize_t i, Py_ssize_t j, Py_ssize_t k) noexcept nogil:
    """Whether voxel (i, j, k) of a C-ordered label has a face neighbour inside it with another label."""
    cdef Py_ssize_t at = (i * ny + j) * nz + k
    cdef label_t value = label[at]
    return (
        (i > 0 and label[at - ny * nz] != value) or (i + 1 < nx and label[at + ny * nz] != value)
        or (j > 0 and label[at - nz] != value) or (j + 1 < ny and label[at + nz] != value)
        or (k > 0 and label[at - 1] != value) or (k + 1 < nz and label[at + 1] != value)
    )


cdef inline void _grow(int64_t* start, int64_t* stop, Py_ssize_t row,
                       Py_ssize_t i, Py_ssize_t j, Py_ssize_t k) noexcept nogil:
    """Grow row ``row`` of (rows, 3) C-ordered box tables to hold voxel (i, j, k)."""
    start += 3 * row
    stop += 3 * row
    start[0] = min(start[0], i)
    start[1] = min(start[1], j)
    start[2] = min(start[2], k)
    stop[0] = max(stop[0], i + 1)
    stop[1] = max(stop[1], j + 1)
    stop[2] = max(stop[2], k + 1)


def study_tables(label, superpixels, num_classes: int, rows: int):
    """Per-superpixel class counts and bounding boxes, in one pass over a 3D study.

    label: int (X, Y, Z) in [0, num_classes); superpixels: int (X, Y, Z), -1 outside every
    superpixel; rows = max superpixel id + 2. Returns (counts (rows, K) int64 with row s + 1
    for superpixel s and row 0 for voxels outside all, zeroed; superpixel box start and stop
    (rows, 3); boundary box start and stop (K + 1, 3) of each class's boundary voxels, row K
    unused). Boxes as ``superpixel_soft.bounding_boxes``: stop exclusive, absent ids get
    start = extent and stop = 0.
    """
    label = np.ascontiguousarray(as_label(label, num_classes))
    counts = np.zeros((rows, num_classes), dtype=np.int64)
    sp_start = np.empty((rows, 3), dtype=np.int64)
    sp_stop = np.zeros((rows, 3), dtype=np.int64)
    bnd_start = np.empty((num_classes + 1, 3), dtype=np.int64)
    bnd_stop = np.zeros((num_classes + 1, 3), dtype=np.int64)
    sp_start[:] = label.shape
    bnd_start[:] = label.shape
    _study_tables(label, as_superpixels(superpixels), counts, sp_start, sp_stop, bnd_start, bnd_stop)
    counts[0, :] = 0
    return counts, sp_start, sp_stop, bnd_start, bnd_stop


def _study_tables(const label_t[:, :, ::1] label, const int32_t[:, :, ::1] superpixels, int64_t[:, ::1] counts,
                  int64_t[:, ::1] sp_start, int64_t[:, ::1] sp_stop, int64_t[:, ::1] bnd_start, int64_t[:, ::1] bnd_stop):
    cdef Py_ssize_t nx = label.shape[0], ny = label.shape[1], nz = label.shape[2]
    cdef Py_ssize_t i, j, k, c, row
    cdef const label_t* flat_label = &label[0, 0, 0]
    with nogil:
        for i in range(nx):
            for j in range(ny):
                for k in range(nz):
                    c = label[i, j, k]
                    row = superpixels[i, j, k] + 1
                    counts[row, c] += 1
                    _grow(&sp_start[0, 0], &sp_stop[0, 0], row, i, j, k)
                    if _differs_from_a_face_neighbour(flat_label, nx, ny, nz, i, j, k):
                        _grow(&bnd_start[0, 0], &bnd_stop[0, 0], c, i, j, k)


def soften_class_in_box(soft_t[::1, :, :] soft_c, const label_t[:, :, ::1] label,
                        const int32_t[:, :, ::1] superpixels, mixed_c, Py_ssize_t c, start, stop, steps,
                        double[::1] scratch) -> None:
    """Write q_c (SPEC eq. 1) into ``soft_c`` at the voxels of the box [start, stop) that lie in
    superpixels mixed for class c (``mixed_c[s + 1]``), as ``superpixel_soft._soften_class_in_crop``.

    The distance is to c's boundary voxels in the box: voxels of c with a face neighbour of
    another class inside the image. soft_c: (X, Y, Z) Fortran-ordered, one channel of the soft
    labels, float32 q or uint8 (the stored form, ``quantize_uint8``'s numbers); label (uint8, uint16 or int32) and superpixels (int32): C-ordered (X, Y, Z);
    mixed_c: bool per superpixel row; steps: voxel size per axis (mm, or 1 for voxel units);
    scratch: float64, at least the box's voxel count, for the squared distances (a caller that
    softens several classes reuses one, rather than faulting in fresh pages per class).
    Releases the GIL while it computes.
    """
    cdef int64_t[::1] box_start = np.ascontiguousarray(start, dtype=np.int64)
    cdef int64_t[::1] box_stop = np.ascontiguousarray(stop, dtype=np.int64)
    cdef double[::1] axis_steps = np.ascontiguousarray(steps, dtype=np.float64)
    cdef const uint8_t[::1] mixed = np.ascontiguousarray(mixed_c).view(np.uint8)
    cdef Py_ssize_t nx = label.shape[0], ny = label.shape[1], nz = label.shape[2]
    cdef Py_ssize_t x0 = box_start[0], y0 = box_start[1], z0 = box_start[2]
    cdef Py_ssize_t[3] shape
    shape[0] = box_stop[0] - x0
    shape[1] = box_stop[1] - y0
    shape[2] = box_stop[2] - z0
    cdef Py_ssize_t i, j, k, at = 0
    cdef int axis, status = 0
    cdef bint unit
    cdef double d, signed
    cdef float q
    cdef const label_t* flat_label = &label[0, 0, 0]
    if scratch.shape[0] < shape[0] * shape[1] * shape[2]:
        raise ValueError(f"scratch: expected at least {shape[0] * shape[1] * shape[2]} values for the box "
                         f"{tuple(start)}-{tuple(stop)}, got {scratch.shape[0]}")
    cdef double* sq = &scratch[0]
    with nogil:
        for i in range(shape[0]):
            for j in range(shape[1]):
                for k in range(shape[2]):
                    if label[x0 + i, y0 + j, z0 + k] == c and _differs_from_a_face_neighbour(
                            flat_label, nx, ny, nz, x0 + i, y0 + j, z0 + k):
                        sq[at] = 0.0
                    else:
                        sq[at] = INFINITY
                    at += 1
        _first_axis_from_features(sq, shape, axis_steps[0])
        unit = axis_steps[0] == 1.0 and axis_steps[1] == 1.0 and axis_steps[2] == 1.0
        for axis in range(1, 3):  # SciPy's order: each axis's squared terms are added in turn
            status = status or _envelope_along_axis(sq, shape, axis, axis_steps[axis], unit)
        if status == 0:
            at = 0
            for i in range(shape[0]):
                for j in range(shape[1]):
                    for k in range(shape[2]):
                        if mixed[superpixels[x0 + i, y0 + j, z0 + k] + 1]:
                            d = sqrt(sq[at])
                            signed = d if label[x0 + i, y0 + j, z0 + k] == c else -d
                            q = <float>(0.5 * (signed / (1 + fabs(signed)) + 1))
                            if soft_t is float:
                                soft_c[x0 + i, y0 + j, z0 + k] = q
                            else:
                                soft_c[x0 + i, y0 + j, z0 + k] = _stored_uint8(q)
                        at += 1
    if status != 0:
        raise MemoryError(f"class {c}: no memory for the distance transform of its box {tuple(start)}-{tuple(stop)}")


def one_hot_into(soft_t[::1, :, :, :] soft, const label_t[:, :, :] label) -> None:
    """Set ``soft[x, label[x]]`` to 1 (float32) or 255 (uint8, the stored form) for every voxel;
    soft: zeroed (X, Y, Z, K), F-ordered; label: (X, Y, Z) uint8, uint16 or int32 in [0, K), any
    layout.

    Voxels are visited in the soft labels' (Fortran) order, so the writes run along memory.
    """
    cdef Py_ssize_t nx = label.shape[0], ny = label.shape[1], nz = label.shape[2]
    cdef Py_ssize_t i, j, k
    cdef soft_t one = 1 if soft_t is float else 255
    with nogil:
        for k in range(nz):
            for j in range(ny):
                for i in range(nx):
                    soft[i, j, k, label[i, j, k]] = one


def quantize_uint8(const float[::1] soft, uint8_t[::1] out) -> None:
    """``out = rint(clip(soft, 0, 1) * 255)`` in float32, as uint8; both flat, same length.

    Runs on OpenMP threads, without the GIL.
    """
    if out.shape[0] != soft.shape[0]:
        raise ValueError(f"out: expected {soft.shape[0]} values like soft, got {out.shape[0]}")
    cdef Py_ssize_t n
    with nogil:
        for n in prange(soft.shape[0], schedule="static"):
            out[n] = _stored_uint8(soft[n])
