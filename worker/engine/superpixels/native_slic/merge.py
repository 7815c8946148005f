"""Merging small components: vectorised, for NumPy (the twin) and CuPy (the GPU).

Input is a component map as made by :func:`.reference.components` (or the GPU's
union-find): ``(n0, n1, n2)`` int64 ids numbered in C order of each component's
first voxel, ``-1`` off the mask. The rule, shared by every implementation:

- a component smaller than ``min_size`` voxels merges into the face-adjacent
  component with a *smaller* id (first voxel earlier in C order) that shares
  the most voxel faces with it; ties go to the smaller id;
- it stays a segment of its own when it is large enough or has no earlier
  neighbour (without a mask, only the component holding voxel 0 can lack one);
- kept components are numbered 0..M-1 in id order, and a merged component
  takes the label of the kept component that its chain of merges ends in.
"""

from __future__ import annotations

import numpy as np

from .grid import array_module_of


def components_from_roots(root, shape: tuple[int, int, int]):
    """Component ids from a union-find result.

    ``root``: ``(n,)`` integer, the flat index of each voxel's component root,
    which must be the component's smallest flat index (``-1`` off the mask).
    Returns ``shape`` int64 ids numbered in C order of first voxels, ``-1`` kept.
    """
    xp = array_module_of(root)
    is_root = root == xp.arange(root.size, dtype=root.dtype)
    rank = xp.cumsum(is_root, dtype=np.int64) - 1
    return xp.where(root >= 0, rank[xp.maximum(root, 0)], -1).reshape(shape)


def merge_targets(comp, sizes, min_size: int):
    """Merge target of each component (int64 id), ``-1`` for a kept one."""
    xp = array_module_of(comp)
    n_comp = len(sizes)
    small = sizes < min_size
    keys = []
    for axis in range(comp.ndim):
        lo = comp[(slice(None),) * axis + (slice(None, -1),)].reshape(-1)
        hi = comp[(slice(None),) * axis + (slice(1, None),)].reshape(-1)
        touch = (lo >= 0) & (hi >= 0) & (lo != hi)
        lo, hi = lo[touch], hi[touch]
        a, b = xp.maximum(lo, hi), xp.minimum(lo, hi)  # the later one may merge into the earlier
        keys.append((a * n_comp + b)[small[a]])
    keys = xp.concatenate(keys)
    target = xp.full(n_comp, -1, dtype=np.int64)
    if keys.size == 0:
        return target
    pairs, faces = xp.unique(keys, return_counts=True)
    a, b = pairs // n_comp, pairs % n_comp
    order = xp.lexsort(xp.stack([b, -faces, a]))  # by a, then most faces, then smallest b
    a, b = a[order], b[order]
    head = xp.concatenate([xp.ones(1, dtype=bool), a[1:] != a[:-1]])
    target[a[head]] = b[head]
    return target


def final_labels(target):
    """int32 final label of each component, given its merge target."""
    xp = array_module_of(target)
    kept = target < 0
    new = xp.cumsum(kept) - 1
    root = xp.where(kept, xp.arange(len(target)), target)
    while True:  # pointer jumping: targets point to smaller ids, so chains end
        nxt = root[root]
        if bool(xp.array_equal(nxt, root)):
            break
        root = nxt
    return new[root].astype(np.int32)


def apply(comp, final):
    """Label map ``(n0, n1, n2)`` int32 from component ids, ``-1`` kept."""
    xp = array_module_of(comp)
    return xp.where(comp >= 0, final[xp.maximum(comp, 0)], -1).astype(np.int32)


def merge_small_components(comp, min_size: int):
    """Connected, merged labels 0..M-1 from a component map (see module docstring)."""
    xp = array_module_of(comp)
    valid = comp >= 0
    sizes = xp.bincount(comp[valid]) if bool(valid.any()) else xp.zeros(0, dtype=np.int64)
    return apply(comp, final_labels(merge_targets(comp, sizes, min_size)))
