"""Superpixel-guided soft labels (SPEC section 1, step 3), computed per class in a box.

Cost grows with the class boundaries, not with K x volume: each class's signed distance is
computed only in the bounding box of its mixed superpixels plus a margin, and the margin is
*verified*, so the result equals the full-volume computation voxel for voxel.

Why the margin check makes the box exact. Let R be the voxels of the superpixels mixed for
class c, B the boundary voxels of c (computed from the full label, see ``_box_distance``), and
``crop`` the box grown by m_a voxels on axis a (clipped to the image). For v in R, the distance
found in the crop, d_crop(v), is a minimum over a subset of B, so d_crop(v) >= D(v), the true
distance. A boundary voxel outside the crop differs from v by more than m_a voxels on some axis
a whose side is not clipped, so it lies farther than r = min(m_a * spacing_a) over those sides.
Hence if max over R of d_crop <= r, every v's true nearest boundary voxel is inside the crop and
d_crop(v) = D(v). Otherwise the margin grows to that maximum (an upper bound of every D(v)),
after which the check always passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from worker.backend import ResolvedBackend, array_module, backend_of, to_host
from worker.boundaries import face_boundary
from worker.distances import distance_to_features

Box = tuple[tuple[int, int], ...]  # per axis (start, stop), stop exclusive


def distance_to_probability(signed_distance: Any) -> Any:
    """SPEC eq. 1: ``q = 0.5 * (d / (1 + |d|) + 1)``; d > 0 inside the class, d = 0 on its boundary."""
    xp = array_module(backend_of(signed_distance))
    return 0.5 * (signed_distance / (1 + xp.abs(signed_distance)) + 1)


def mixed_superpixels(label: Any, superpixels: Any, *, num_classes: int) -> Any:
    """(M + 1, K) bool: row s + 1 says for which classes superpixel s is mixed.

    Row 0 stands for voxels outside every superpixel (label -1, e.g. masked out): never mixed.
    A superpixel is mixed for c when it holds at least one voxel of c and one of another class.
    """
    xp = array_module(backend_of(label))
    shifted = superpixels.astype(xp.int64).ravel() + 1
    rows = int(shifted.max()) + 1
    flat = shifted * num_classes + label.astype(xp.int64).ravel()
    counts = xp.bincount(flat, minlength=rows * num_classes).reshape(rows, num_classes)
    counts[0] = 0
    sizes = counts.sum(axis=1, keepdims=True)
    return (counts > 0) & (counts < sizes)


def superpixel_boxes(superpixels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-superpixel bounding boxes as host arrays ``(start, stop)``, each (M + 1, ndim) int64.

    Row s + 1 is superpixel s; row 0 (outside every superpixel) is left empty (start > stop).
    Computed with one ``bincount`` per axis, so it runs on either backend.
    """
    xp = array_module(backend_of(superpixels))
    shifted = superpixels.astype(xp.int64) + 1
    rows = int(shifted.max()) + 1
    start = np.zeros((rows, shifted.ndim), dtype=np.int64)
    stop = np.zeros((rows, shifted.ndim), dtype=np.int64)
    for axis, extent in enumerate(shifted.shape):
        shape = [1] * shifted.ndim
        shape[axis] = extent
        coord = xp.arange(extent, dtype=xp.int64).reshape(shape)
        flat = (shifted * extent + coord).ravel()
        present = to_host(xp.bincount(flat, minlength=rows * extent).reshape(rows, extent) > 0)
        any_present = present.any(axis=1)
        start[:, axis] = np.where(any_present, present.argmax(axis=1), extent)
        stop[:, axis] = np.where(any_present, extent - present[:, ::-1].argmax(axis=1), 0)
    return start, stop


def superpixel_soft_labels(
    label: Any,
    superpixels: Any,
    *,
    num_classes: int,
    spacing: Sequence[float] | None = None,
    restrict: bool = True,
    threads: int | None = None,
) -> Any:
    """Soft labels from a label map and a superpixel map (SPEC section 1, step 3).

    label: int (X, Y[, Z]) with values in [0, num_classes). superpixels: int (X, Y[, Z]) with
    labels 0..M-1, or -1 for voxels outside every superpixel. spacing: per-axis voxel size in mm
    for distances in mm, or None for voxel units. restrict=False computes every class over the
    full volume (the naive method, kept as the reference the restricted one must equal).
    Returns float32 (X, Y[, Z], K) on the input's device: q_c inside superpixels mixed for c, the
    one-hot label elsewhere; K channels, not renormalised.
    """
    if label.shape != superpixels.shape:
        raise ValueError(f"superpixels: expected shape {label.shape} like the label, got {superpixels.shape}")
    if spacing is not None and len(spacing) != label.ndim:
        raise ValueError(f"spacing: expected {label.ndim} values, got {len(spacing)}")
    backend = backend_of(label)
    xp = array_module(backend)
    soft = xp.eye(num_classes, dtype=xp.float32)[label]
    mixed = mixed_superpixels(label, superpixels, num_classes=num_classes)
    mixed_host = to_host(mixed)
    starts, stops = superpixel_boxes(superpixels)
    classes = [c for c in range(num_classes) if mixed_host[:, c].any()]

    def soften_class(c: int) -> None:
        rows = mixed_host[:, c]
        if restrict:
            box = tuple(zip(starts[rows].min(axis=0).tolist(), stops[rows].max(axis=0).tolist()))
            margin = (stops[rows] - starts[rows]).max(axis=0).tolist()
        else:
            box = tuple((0, n) for n in label.shape)
            margin = [0] * label.ndim
        crop, region, q = _box_soft_label(label, superpixels, mixed[:, c], c, box, margin, spacing, backend)
        view = soft[crop + (c,)]
        view[region] = q[region]

    if backend == "cpu" and len(classes) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(soften_class, classes))
    else:
        for c in classes:
            soften_class(c)
    return soft


def _box_soft_label(
    label: Any,
    superpixels: Any,
    mixed_c: Any,
    c: int,
    box: Box,
    margin: list[int],
    spacing: Sequence[float] | None,
    backend: ResolvedBackend,
) -> tuple[tuple[slice, ...], Any, Any]:
    """Class c's soft label in ``box`` grown by a verified margin (see the module docstring).

    Returns the crop's slices, the region mask (voxels of superpixels mixed for c) and q over
    the crop.
    """
    xp = array_module(backend)
    edt = distance_to_features(backend)
    shape = label.shape
    steps = spacing if spacing is not None else [1.0] * label.ndim
    while True:
        crop = tuple(slice(max(lo - m, 0), min(hi + m, n)) for (lo, hi), m, n in zip(box, margin, shape))
        inside, boundary, region = _crop_masks(label, superpixels, mixed_c, c, crop, xp)
        if not bool(boundary.any()):  # only possible in a crop smaller than the image
            margin = list(shape)
            continue
        dist = edt(~boundary, spacing)
        farthest = float(dist[region].max())
        open_sides = [
            m * step
            for s, m, n, step in zip(crop, margin, shape, steps)
            if s.start > 0 or s.stop < n
        ]
        if not open_sides or farthest <= min(open_sides):
            break
        margin = [max(m, math.ceil(farthest / step)) for m, step in zip(margin, steps)]
    signed = xp.where(inside, dist, -dist)
    return crop, region, distance_to_probability(signed).astype(xp.float32)


def _crop_masks(
    label: Any, superpixels: Any, mixed_c: Any, c: int, crop: tuple[slice, ...], xp: Any
) -> tuple[Any, Any, Any]:
    """Inside-c, boundary-of-c and mixed-region masks over ``crop``.

    The boundary is computed on the crop grown by one voxel (clipped to the image), so voxels on
    the crop's edge see their real neighbours; the image edge is still not a boundary.
    """
    padded = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(crop, label.shape))
    inner = tuple(slice(s.start - p.start, s.stop - p.start) for s, p in zip(crop, padded))
    inside_padded = label[padded] == c
    boundary = face_boundary(inside_padded)[inner]
    inside = inside_padded[inner]
    region = mixed_c[superpixels[crop].astype(xp.int64) + 1]
    return inside, boundary, region
