"""Compiled connectivity enforcement (Numba), identical to the reference's.

Rule (see :func:`.reference.enforce_connectivity`): face-connected components
of equal label, numbered in C order of their first voxel; a component smaller
than ``min_size`` merges into the earlier adjacent component sharing the most
faces with it (ties: smaller id); kept components are numbered 0..M-1.

The component pass is a sequential union-find (roots are the smallest flat
index, i.e. the first voxel); the result is unique, so it matches SciPy's
labelling used by the reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def _components(labels):
    """Component id per voxel (int64, -1 where labels < 0) and the component sizes."""
    n0, n1, n2 = labels.shape
    flat = labels.reshape(-1)
    n = flat.size
    parent = np.arange(n, dtype=np.int64)
    strides = (n1 * n2, n2, 1)
    for v in range(n):
        lab = flat[v]
        if lab < 0:
            continue
        i0 = v // strides[0]
        i1 = (v // n2) % n1
        i2 = v % n2
        for axis in range(3):
            coord = i0 if axis == 0 else (i1 if axis == 1 else i2)
            if coord == 0:
                continue
            u = v - strides[axis]
            if flat[u] != lab:
                continue
            ru = _find(parent, u)
            rv = _find(parent, v)
            if ru < rv:
                parent[rv] = ru
            elif rv < ru:
                parent[ru] = rv
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
def _merge_targets(comp, sizes, min_size):
    """Earlier neighbour with the most shared faces for each small component, else -1."""
    n0, n1, n2 = comp.shape
    n_comp = len(sizes)
    n_pairs = 0
    keys = np.empty(0, dtype=np.int64)
    for rnd in range(2):  # count, then fill
        if rnd == 1:
            keys = np.empty(n_pairs, dtype=np.int64)
            n_pairs = 0
        for i0 in range(n0):
            for i1 in range(n1):
                for i2 in range(n2):
                    a = comp[i0, i1, i2]
                    if a < 0 or sizes[a] >= min_size:
                        continue
                    for nb in range(6):
                        j0, j1, j2 = i0, i1, i2
                        if nb == 0:
                            j0 -= 1
                        elif nb == 1:
                            j0 += 1
                        elif nb == 2:
                            j1 -= 1
                        elif nb == 3:
                            j1 += 1
                        elif nb == 4:
                            j2 -= 1
                        else:
                            j2 += 1
                        if j0 < 0 or j0 >= n0 or j1 < 0 or j1 >= n1 or j2 < 0 or j2 >= n2:
                            continue
                        b = comp[j0, j1, j2]
                        if b < 0 or b >= a:
                            continue
                        if rnd == 1:
                            keys[n_pairs] = a * n_comp + b
                        n_pairs += 1
    keys.sort()
    target = np.full(n_comp, -1, dtype=np.int64)
    best = np.zeros(n_comp, dtype=np.int64)
    i = 0
    while i < len(keys):
        j = i
        while j < len(keys) and keys[j] == keys[i]:
            j += 1
        a = keys[i] // n_comp
        b = keys[i] % n_comp
        if j - i > best[a]:  # b ascending: ties keep the smaller id
            best[a] = j - i
            target[a] = b
        i = j
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
    """Connected, merged and renumbered labels; see reference.enforce_connectivity.

    ``labels``: ``(n0, n1, n2)`` int32 C-contiguous NumPy array, -1 off the mask.
    """
    comp, sizes = _components(np.ascontiguousarray(labels, dtype=np.int32))
    target = _merge_targets(comp, sizes, np.int64(min_size))
    return _apply(comp, _final_labels(target))
