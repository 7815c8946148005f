"""Compiled connectivity enforcement (Numba), identical to the reference's.

Rule (see :mod:`.merge`): face-connected components of equal label, numbered
in C order of their first voxel; a component smaller than ``min_size`` merges
into the earlier adjacent component sharing the most faces with it (ties:
smaller id); kept components are numbered 0..M-1.

The component pass is a sequential union-find (roots are the smallest flat
index, i.e. the first voxel); the result is unique, so it matches SciPy's
labelling used by the reference. The merge targets are found in parallel, one
small component per task, from its voxel list.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def _union(parent, root, v, u):
    """Join voxel ``u``'s tree into the tree of ``v`` (current root ``root``)."""
    r = _find(parent, u)
    if root == v:
        return r
    if r < root:
        parent[root] = r
        return r
    if root < r:
        parent[r] = root
    return root


@njit(cache=True)
def _components(labels):
    """Component id per voxel (int64, -1 where labels < 0) and the component sizes.

    One raster pass joins each voxel with its three earlier face neighbours of
    the same label; roots are always the smallest flat index.
    """
    n0, n1, n2 = labels.shape
    n = n0 * n1 * n2
    parent = np.empty(n, dtype=np.int64)
    v = 0
    for i0 in range(n0):
        for i1 in range(n1):
            for i2 in range(n2):
                lab = labels[i0, i1, i2]
                root = v
                if lab >= 0:
                    if i2 > 0 and labels[i0, i1, i2 - 1] == lab:
                        root = _union(parent, root, v, v - 1)
                    if i1 > 0 and labels[i0, i1 - 1, i2] == lab:
                        root = _union(parent, root, v, v - n2)
                    if i0 > 0 and labels[i0 - 1, i1, i2] == lab:
                        root = _union(parent, root, v, v - n1 * n2)
                parent[v] = root
                v += 1
    flat = labels.reshape(-1)
    comp = np.full(n, -1, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    n_comp = 0
    for v in range(n):
        if flat[v] < 0:
            continue
        r = _find(parent, v)
        if r == v:
            comp[v] = n_comp
            n_comp += 1
        else:
            comp[v] = comp[r]
        sizes[comp[v]] += 1
    return comp.reshape(labels.shape), sizes[:n_comp]


@njit(cache=True)
def _voxels_by_component(comp, sizes):
    """Flat voxel indices grouped by component (CSR): ``(offsets, voxels)``."""
    flat = comp.reshape(-1)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(sizes)
    fill = offsets[:-1].copy()
    voxels = np.empty(offsets[-1], dtype=np.int64)
    for v in range(flat.size):
        c = flat[v]
        if c >= 0:
            voxels[fill[c]] = v
            fill[c] += 1
    return offsets, voxels


@njit(parallel=True, cache=True)
def _merge_targets(comp, sizes, min_size):
    """Earlier neighbour with the most shared faces for each small component, else -1."""
    n0, n1, n2 = comp.shape
    flat = comp.reshape(-1)
    offsets, voxels = _voxels_by_component(comp, sizes)
    target = np.full(len(sizes), -1, dtype=np.int64)
    n_tasks = 256
    for task in prange(n_tasks):
        nb = np.empty(6 * max(min_size, 1), dtype=np.int64)  # neighbour ids
        faces = np.empty(6 * max(min_size, 1), dtype=np.int64)  # shared faces
        for a in range(task * len(sizes) // n_tasks, (task + 1) * len(sizes) // n_tasks):
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
                if best < 0 or faces[slot] > faces[best] or (
                        faces[slot] == faces[best] and nb[slot] < nb[best]):
                    best = slot
            if best >= 0:
                target[a] = nb[best]
    return target


@njit(cache=True)
def _final_labels(target):
    """Kept components numbered in id order; merged ones follow their target."""
    final = np.empty(len(target), dtype=np.int32)
    n_kept = 0
    for c in range(len(target)):  # target[c] < c: already final
        if target[c] < 0:
            final[c] = n_kept
            n_kept += 1
        else:
            final[c] = final[target[c]]
    return final


@njit(cache=True)
def _apply(comp, final):
    out = np.full(comp.shape, -1, dtype=np.int32)
    flat_out = out.reshape(-1)
    flat = comp.reshape(-1)
    for v in range(flat.size):
        if flat[v] >= 0:
            flat_out[v] = final[flat[v]]
    return out


def enforce_connectivity(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Connected, merged and renumbered labels (rule in :mod:`.merge`).

    ``labels``: ``(n0, n1, n2)`` int32 C-contiguous NumPy array, -1 off the mask.
    """
    comp, sizes = _components(np.ascontiguousarray(labels, dtype=np.int32))
    target = _merge_targets(comp, sizes, np.int64(min_size))
    return _apply(comp, _final_labels(target))
