"""Reference ("twin") SLIC steps: plain vectorised NumPy/SciPy, slow, exact.

This module pins the behaviour that the compiled CPU (:mod:`.cpu`) and CUDA
(:mod:`.gpu`) implementations must reproduce bit for bit (CUDA: the
assignment only; its centre sums use float64 atomics, see :mod:`.gpu`).

Layouts (canonical 3D, see :mod:`.grid`):

- ``image``: ``(n0, n1, n2, C)`` float32, C-contiguous.
- ``mask``: ``(n0, n1, n2)`` bool, or None.
- ``centres``: ``(K, 3 + C)`` float32; voxel coordinates then colour.
- ``labels``: ``(n0, n1, n2)`` int32; centre index, ``-1`` outside the mask.

Arithmetic of the distance, all float32 and in this order (no fused
multiply-add)::

    d_a    = (float32(i_a) - centre_a) * spacing_a        a = 0, 1, 2
    space  = d_0 * d_0 + (d_1 * d_1 + d_2 * d_2)          mm^2
    colour = ((0 + t_0 * t_0) + t_1 * t_1) + ...          t_c = image_c - centre_c
    D      = colour + weight * space                      weight = (compactness / S)^2

Candidates are the centres seeded within one grid step of the voxel along each
axis: cells ``w`` and ``w + 1`` per axis, ``w`` from :func:`.grid.lower_cell`
(at most 8), visited in C order of cells, which is increasing centre index; the
first strictly smaller ``D`` wins, so exact ties go to the lowest centre index.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

from .grid import SlicGrid, lower_cell, reduction_blocks
from .merge import merge_small_components

OFFSETS = tuple(itertools.product((0, 1), repeat=3))  # C order of the candidate cells


def _lower_cells(grid: SlicGrid) -> list[np.ndarray]:
    """:func:`.grid.lower_cell` of each voxel along each axis, broadcastable to the shape."""
    n_cells = grid.cell_centre.shape
    cells = []
    for axis, (size, start, step, g) in enumerate(zip(grid.shape, grid.start, grid.step, n_cells)):
        view = [1, 1, 1]
        view[axis] = size
        cells.append(lower_cell(np.arange(size), start, step, g).reshape(view))
    return cells


def assign(image: np.ndarray, mask: np.ndarray | None, centres: np.ndarray,
           grid: SlicGrid, weight: np.float32, labels: np.ndarray) -> bool:
    """Label each voxel with its nearest candidate centre, in place.

    Writes ``labels`` (voxels outside ``mask`` are left as they are) and
    returns whether any label changed.
    """
    n_cells = grid.cell_centre.shape
    cells = _lower_cells(grid)
    coords = [np.arange(s, dtype=np.float32).reshape(c.shape) for s, c in zip(grid.shape, cells)]
    spacing = [np.float32(s) for s in grid.spacing_mm]
    best = np.full(grid.shape, np.inf, dtype=np.float32)
    best_k = np.full(grid.shape, -1, dtype=np.int32)
    for offset in OFFSETS:
        q = [c + o for c, o in zip(cells, offset)]
        valid = np.ones(grid.shape, dtype=bool)
        for qa, g in zip(q, n_cells):
            valid &= (qa >= 0) & (qa < g)
        q = [np.clip(qa, 0, g - 1) for qa, g in zip(q, n_cells)]
        k = grid.cell_centre[q[0], q[1], q[2]]
        valid &= k >= 0
        k = np.where(valid, k, 0)
        cen = centres[k]  # (n0, n1, n2, 3 + C)
        d = [(coords[a] - cen[..., a]) * spacing[a] for a in range(3)]
        space = d[0] * d[0] + (d[1] * d[1] + d[2] * d[2])
        colour = np.zeros(grid.shape, dtype=np.float32)
        for c in range(image.shape[-1]):
            t = image[..., c] - cen[..., 3 + c]
            colour = colour + t * t
        dist = np.where(valid, colour + weight * space, np.float32(np.inf))
        better = dist < best
        best = np.where(better, dist, best)
        best_k = np.where(better, k, best_k).astype(np.int32)
    if mask is not None:
        best_k = np.where(mask, best_k, labels)
    changed = not np.array_equal(best_k, labels)
    labels[...] = best_k
    return changed


def centre_sums(image: np.ndarray, labels: np.ndarray, n_centres: int) -> np.ndarray:
    """Per-centre sums, ``(K, 4 + C)`` float64: count, 3 coordinates, C colours.

    Voxels are added in C order within each of the fixed row blocks of
    :func:`.grid.reduction_blocks`, starting from 0.0; the block sums are then
    added in block order. Coordinates and counts are integers, hence exact.
    """
    n0, n1, n2, n_channels = image.shape
    flat_labels = labels.reshape(-1)
    feats = [np.broadcast_to(np.arange(s, dtype=np.float64).reshape(v), labels.shape).reshape(-1)
             for s, v in zip(labels.shape, [(-1, 1, 1), (1, -1, 1), (1, 1, -1)])]
    colour = image.reshape(-1, n_channels)
    total = np.zeros((n_centres, 4 + n_channels), dtype=np.float64)
    bounds = reduction_blocks(n0 * n1) * n2
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lab = flat_labels[lo:hi]
        keep = lab >= 0
        lab = lab[keep]
        block = np.empty_like(total)
        block[:, 0] = np.bincount(lab, minlength=n_centres)
        for a in range(3):
            block[:, 1 + a] = np.bincount(lab, weights=feats[a][lo:hi][keep], minlength=n_centres)
        for c in range(n_channels):
            values = colour[lo:hi, c][keep].astype(np.float64)
            block[:, 4 + c] = np.bincount(lab, weights=values, minlength=n_centres)
        total += block
    return total


def update_centres(image: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """New centres: float64 means of each cluster, rounded to float32.

    A centre that lost all its voxels keeps its previous value.
    """
    sums = centre_sums(image, labels, len(centres))
    count = sums[:, :1]
    means = (sums[:, 1:] / np.where(count > 0, count, 1.0)).astype(np.float32)
    return np.where(count > 0, means, centres)


def components(labels: np.ndarray) -> np.ndarray:
    """Face-connected components of equal label, int64 ids, ``-1`` where labels < 0.

    Components are numbered in C order of their first voxel. Uses
    ``scipy.ndimage.label`` on each label's bounding box.
    """
    flat_index = np.arange(labels.size, dtype=np.int64).reshape(labels.shape)
    first = np.full(labels.shape, -1, dtype=np.int64)
    structure = ndimage.generate_binary_structure(labels.ndim, 1)
    for k, box in enumerate(ndimage.find_objects(labels + 1)):
        if box is None:
            continue
        inside = labels[box] == k
        cc, n = ndimage.label(inside, structure=structure)
        firsts = np.asarray(ndimage.minimum(flat_index[box], cc, index=np.arange(1, n + 1)))
        first[box][inside] = firsts.astype(np.int64)[cc[inside] - 1]
    comp = np.full(labels.shape, -1, dtype=np.int64)
    valid = first >= 0
    comp[valid] = np.unique(first[valid], return_inverse=True)[1].reshape(-1)
    return comp


def enforce_connectivity(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Split labels into face-connected segments and merge the small ones.

    Parameters
    ----------
    labels : (n0, n1, n2) int32 ndarray
        Centre index per voxel, ``-1`` outside the mask.
    min_size : int
        Segments with fewer voxels merge into an earlier neighbour (rule in
        :mod:`.merge`).

    Returns
    -------
    (n0, n1, n2) int32 ndarray
        Labels ``0..M-1`` numbered in C order of each segment's first voxel,
        ``-1`` kept.
    """
    return merge_small_components(components(labels), min_size)
