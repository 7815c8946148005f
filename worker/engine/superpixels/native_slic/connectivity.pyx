# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled connectivity enforcement (Cython and OpenMP), identical to the reference's.

Rule (see :mod:`.merge`): face-connected components of equal label, numbered
in C order of their first voxel; a component smaller than ``min_size`` merges
into the earlier adjacent component sharing the most faces with it (ties:
smaller id); kept components are numbered 0..M-1.

The component pass is a union-find (roots are the smallest flat index, i.e.
the first voxel), run in parallel over slabs of axis-0 rows whose touching rows
are then joined; the result is unique, so it matches SciPy's labelling used by
the reference whatever the thread count. The merge targets are found in parallel, one
small component per task, from its voxel list.
"""

cimport openmp
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

import numpy as np

cdef Py_ssize_t N_TASKS = 256  # merge-target tasks (components are split evenly among them)


cdef inline int32_t _find(int32_t* parent, int32_t i) noexcept nogil:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


cdef inline int32_t _union(int32_t* parent, int32_t root, int32_t v, int32_t u) noexcept nogil:
    """Join voxel ``u``'s tree into the tree of ``v`` (current root ``root``)."""
    cdef int32_t r = _find(parent, u)
    if root == v:
        return r
    if r < root:
        parent[root] = r
        return r
    if root < r:
        parent[r] = root
    return root


cdef void _union_slab(const int32_t* flat, int32_t* parent, Py_ssize_t first, Py_ssize_t last,
                      Py_ssize_t n1, Py_ssize_t n2) noexcept nogil:
    """The raster union-find pass over the axis-0 rows [first, last), joining each voxel with
    its earlier face neighbours inside the slab; roots are the smallest flat index."""
    cdef Py_ssize_t i0, i1, i2, plane = n1 * n2
    cdef int32_t v = <int32_t>(first * plane), root, lab
    for i0 in range(first, last):
        for i1 in range(n1):
            for i2 in range(n2):
                lab = flat[v]
                root = v
                if lab >= 0:
                    if i2 > 0 and flat[v - 1] == lab:
                        root = _union(parent, root, v, v - 1)
                    if i1 > 0 and flat[v - n2] == lab:
                        root = _union(parent, root, v, v - n2)
                    if i0 > first and flat[v - plane] == lab:
                        root = _union(parent, root, v, <int32_t>(v - plane))
                parent[v] = root
                v += 1


cdef void _join_across(const int32_t* flat, int32_t* parent, Py_ssize_t row, Py_ssize_t plane) noexcept nogil:
    """Join the voxels of axis-0 row ``row`` with their neighbours in the row before (another
    slab's), keeping the smaller root, so roots stay the smallest flat index."""
    cdef Py_ssize_t j
    cdef int32_t v, u, rv, ru
    for j in range(plane):
        v = <int32_t>(row * plane + j)
        u = <int32_t>(v - plane)
        if flat[v] >= 0 and flat[u] == flat[v]:
            rv = _find(parent, v)
            ru = _find(parent, u)
            if ru < rv:
                parent[rv] = ru
            elif rv < ru:
                parent[ru] = rv


def _components(const int32_t[:, :, ::1] labels):
    """Component id per voxel (int32, -1 where labels < 0) and the component sizes (int32).

    A raster union-find pass joins each voxel with its three earlier face neighbours of the
    same label, in parallel over slabs of axis-0 rows, whose touching rows are then joined;
    roots are always the smallest flat index, so every voxel's parent comes before it. A
    second raster pass then turns the parent array into component ids in place: a root takes
    the next id, any other voxel its parent's id (already converted, and the same component).
    """
    cdef Py_ssize_t n0 = labels.shape[0], n1 = labels.shape[1], n2 = labels.shape[2]
    cdef Py_ssize_t n = n0 * n1 * n2, plane = n1 * n2, s
    cdef Py_ssize_t n_slabs = max(1, min(openmp.omp_get_max_threads(), n0))
    comp_array = np.empty(n, dtype=np.int32)
    sizes_array = np.zeros(n, dtype=np.int32)
    cdef int32_t[::1] comp_view = comp_array
    cdef int32_t* parent = &comp_view[0]  # parents, then component ids
    cdef int32_t[::1] sizes = sizes_array
    cdef const int32_t* flat = &labels[0, 0, 0]
    cdef int32_t v, n_comp = 0
    for s in prange(n_slabs, nogil=True, schedule="static", chunksize=1, num_threads=n_slabs):
        _union_slab(flat, parent, s * n0 // n_slabs, (s + 1) * n0 // n_slabs, n1, n2)
    with nogil:
        for s in range(1, n_slabs):
            _join_across(flat, parent, s * n0 // n_slabs, plane)
        for v in range(n):
            if flat[v] < 0:
                parent[v] = -1
                continue
            if parent[v] == v:
                parent[v] = n_comp
                n_comp += 1
            else:
                parent[v] = parent[parent[v]]
            sizes[parent[v]] += 1
    return comp_array.reshape((n0, n1, n2)), sizes_array[:n_comp]


def _voxels_by_component(const int32_t[:, :, ::1] comp, sizes, int64_t min_size):
    """Flat voxel indices of the components smaller than ``min_size``, grouped by component
    (CSR: ``(offsets, voxels)``; larger components get empty ranges, as they merge into none)."""
    n_comp = len(sizes)
    offsets_array = np.zeros(n_comp + 1, dtype=np.int64)
    offsets_array[1:] = np.cumsum(np.where(sizes < min_size, sizes, 0))
    fill_array = offsets_array[:n_comp].copy()
    voxels_array = np.empty(offsets_array[n_comp], dtype=np.int32)
    cdef int64_t[::1] fill = fill_array
    cdef int32_t[::1] voxels = voxels_array
    cdef const int32_t[::1] size = sizes
    cdef const int32_t* flat = &comp[0, 0, 0]
    cdef Py_ssize_t v, n = comp.shape[0] * comp.shape[1] * comp.shape[2]
    cdef int32_t c
    with nogil:
        for v in range(n):
            c = flat[v]
            if c >= 0 and size[c] < min_size:
                voxels[fill[c]] = <int32_t>v
                fill[c] += 1
    return offsets_array, voxels_array


cdef int _merge_targets_task(const int32_t* flat, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2,
                             const int32_t* sizes, Py_ssize_t first, Py_ssize_t last, int64_t min_size,
                             const int64_t* offsets, const int32_t* voxels, int32_t* target) noexcept nogil:
    """Merge targets of the small components first..last-1; -1 when scratch memory cannot be had."""
    cdef Py_ssize_t capacity = 6 * max(min_size, 1)
    cdef int32_t* nb = <int32_t*>malloc(capacity * sizeof(int32_t))  # neighbour ids
    cdef int64_t* faces = <int64_t*>malloc(capacity * sizeof(int64_t))  # shared faces
    cdef Py_ssize_t a, j, side, slot, n_nb, best
    cdef int64_t v, u, i0, i1, i2
    cdef int32_t b
    cdef bint ok
    if nb == NULL or faces == NULL:
        free(nb)
        free(faces)
        return -1
    for a in range(first, last):
        if sizes[a] >= min_size:
            continue
        n_nb = 0
        for j in range(offsets[a], offsets[a + 1]):
            v = voxels[j]
            i0 = v // (n1 * n2)
            i1 = (v // n2) % n1
            i2 = v % n2
            for side in range(6):
                if side == 0:
                    ok, u = i0 > 0, v - n1 * n2
                elif side == 1:
                    ok, u = i0 < n0 - 1, v + n1 * n2
                elif side == 2:
                    ok, u = i1 > 0, v - n2
                elif side == 3:
                    ok, u = i1 < n1 - 1, v + n2
                elif side == 4:
                    ok, u = i2 > 0, v - 1
                else:
                    ok, u = i2 < n2 - 1, v + 1
                if not ok:
                    continue
                b = flat[u]
                if b < 0 or b >= a:
                    continue
                slot = 0
                while slot < n_nb and nb[slot] != b:
                    slot += 1
                if slot == n_nb:
                    nb[slot] = b
                    faces[slot] = 0
                    n_nb += 1
                faces[slot] += 1
        best = -1
        for slot in range(n_nb):
            if best < 0 or faces[slot] > faces[best] or (faces[slot] == faces[best] and nb[slot] < nb[best]):
                best = slot
        if best >= 0:
            target[a] = nb[best]
    free(nb)
    free(faces)
    return 0


def _merge_targets(const int32_t[:, :, ::1] comp, sizes_array, int64_t min_size):
    """Earlier neighbour with the most shared faces for each small component, else -1."""
    offsets_array, voxels_array = _voxels_by_component(comp, sizes_array, min_size)
    target_array = np.full(len(sizes_array), -1, dtype=np.int32)
    status_array = np.zeros(N_TASKS, dtype=np.int32)
    cdef const int32_t[::1] sizes = np.ascontiguousarray(sizes_array)
    cdef const int64_t[::1] offsets = offsets_array
    cdef const int32_t[::1] voxels = voxels_array
    cdef int32_t[::1] target = target_array
    cdef int32_t[::1] status = status_array
    cdef Py_ssize_t n_comp = sizes.shape[0], task
    cdef const int32_t* sizes_ptr = &sizes[0] if n_comp else NULL
    cdef const int32_t* voxels_ptr = &voxels[0] if voxels.shape[0] else NULL
    cdef int32_t* target_ptr = &target[0] if n_comp else NULL
    for task in prange(N_TASKS, nogil=True, schedule="dynamic"):
        status[task] = _merge_targets_task(
            &comp[0, 0, 0], comp.shape[0], comp.shape[1], comp.shape[2], sizes_ptr,
            task * n_comp // N_TASKS, (task + 1) * n_comp // N_TASKS, min_size, &offsets[0], voxels_ptr, target_ptr)
    if (status_array < 0).any():
        raise MemoryError("native SLIC: no memory for the connectivity merge's scratch arrays")
    return target_array


def _final_labels(const int32_t[::1] target):
    """Kept components numbered in id order; merged ones follow their target."""
    final_array = np.empty(target.shape[0], dtype=np.int32)
    cdef int32_t[::1] final = final_array
    cdef int32_t n_kept = 0
    cdef Py_ssize_t c
    for c in range(target.shape[0]):  # target[c] < c: already final
        if target[c] < 0:
            final[c] = n_kept
            n_kept += 1
        else:
            final[c] = final[target[c]]
    return final_array


def _apply(const int32_t[:, :, ::1] comp, const int32_t[::1] final):
    out_array = np.full((comp.shape[0], comp.shape[1], comp.shape[2]), -1, dtype=np.int32)
    cdef int32_t[:, :, ::1] out = out_array
    cdef int32_t* flat_out = &out[0, 0, 0]
    cdef const int32_t* flat = &comp[0, 0, 0]
    cdef Py_ssize_t v, n = comp.shape[0] * comp.shape[1] * comp.shape[2]
    with nogil:
        for v in range(n):
            if flat[v] >= 0:
                flat_out[v] = final[flat[v]]
    return out_array


def enforce_connectivity(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Connected, merged and renumbered labels (rule in :mod:`.merge`).

    ``labels``: ``(n0, n1, n2)`` int32 NumPy array, -1 off the mask, fewer than 2**31 voxels
    (voxel and component indices are int32).
    """
    if labels.size >= 2**31:
        raise ValueError(f"labels: expected fewer than 2**31 voxels, got shape {labels.shape}")
    comp, sizes = _components(np.ascontiguousarray(labels, dtype=np.int32))
    target = _merge_targets(comp, sizes, min_size)
    return _apply(comp, _final_labels(target))
