"""Superpixel-guided soft labels (SPEC section 1, step 3), computed per class in a box.

Cost grows with the class boundaries, not with K x volume. Class c's signed distance is
needed only in the superpixels mixed for c (its region R), and it measures the distance to
c's boundary voxels B. The distance transform runs over the box that holds both R and B (the
union of their bounding boxes, found for every class in one pass) and nothing else: no
boundary voxel lies outside that box, so the minimum over the box is the minimum over all of
B, and the result equals the naive full-volume computation voxel for voxel. Classes confined
to a small part of the image (atlas parcels, lesions, small organs) cost their box, not the
volume; the background costs the box around the body's surface, not the whole field of view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backend import array_module, backend_of, cpu_threads, to_host
from ..boundaries import face_boundary, label_boundaries
from ..checkpoint import Checkpoint, for_each, no_checkpoint
from . import soften_cpu
from .distance_transform import DistanceFn, distance_to_features, reference_distance_to_features


def distance_to_probability(signed_distance: Any) -> Any:
    """SPEC eq. 1: ``q = 0.5 * (d / (1 + |d|) + 1)``; d > 0 inside the class, d = 0 on its boundary."""
    xp = array_module(backend_of(signed_distance))
    return 0.5 * (signed_distance / (1 + xp.abs(signed_distance)) + 1)


def one_hot(label: Any, *, num_classes: int) -> Any:
    """float32 (X, Y[, Z], K) one-hot of an int label map with values in [0, num_classes).

    Fortran-ordered, like NIfTI's voxel order: each class channel is one contiguous block, so
    per-class work touches contiguous memory and writing the 4D file needs no transpose.
    Compiled on the CPU (``softening.soften_cpu``), array operations on the GPU.
    """
    if backend_of(label) != "cpu":
        return one_hot_by_arrays(label, num_classes=num_classes)
    return _one_hot_cpu(label, num_classes, np.float32)


def stored_one_hot(label: Any, *, num_classes: int) -> np.ndarray:
    """:func:`one_hot` in the stored uint8 form (``scl_slope = 1/255``): 255 for the label's
    class, 0 elsewhere; uint8 (X, Y[, Z], K), Fortran-ordered. CPU only."""
    if backend_of(label) != "cpu":
        raise ValueError("label: expected a NumPy label map for the stored uint8 one-hot (CPU only)")
    return _one_hot_cpu(label, num_classes, np.uint8)


def _one_hot_cpu(label: np.ndarray, num_classes: int, dtype: type) -> np.ndarray:
    """The compiled one-hot: 1 (float32) or 255 (uint8) for the label's class."""
    _check_ids("label", label, low=0, high=num_classes)  # the kernel does not check bounds
    # Filled, not np.zeros: calloc's lazily zeroed pages would then fault one 4 KiB page at a time
    # under the kernel's scattered writes (100 classes: 0.76 s against 0.15 s for the fill).
    soft = np.empty(label.shape + (num_classes,), dtype=dtype, order="F")
    soft.fill(0)
    as_3d = (lambda a: a) if label.ndim == 3 else (lambda a: a[:, :, None])
    soften_cpu.one_hot_into(as_3d(soft), as_3d(soften_cpu.as_label(label, num_classes)))
    return soft


def one_hot_by_arrays(label: Any, *, num_classes: int) -> Any:
    """:func:`one_hot` by array operations on NumPy or CuPy (the GPU's path)."""
    xp = array_module(backend_of(label))
    soft = xp.zeros(label.shape + (num_classes,), dtype=xp.float32, order="F")
    by_voxel = soft.reshape(-1, num_classes, order="F")  # a view: (voxel in F order, class)
    by_voxel[xp.arange(label.size), label.ravel(order="F").astype(xp.intp)] = 1
    return soft


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


def bounding_boxes(ids: Any, *, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes of the ids 0..count-1 in an int map, as host arrays (start, stop).

    Each is (count, ndim) int64, stop exclusive; an absent id gets start = extent, stop = 0.
    One ``bincount`` per axis, so it runs on either backend.
    """
    xp = array_module(backend_of(ids))
    ids = ids.astype(xp.int64)
    start = np.zeros((count, ids.ndim), dtype=np.int64)
    stop = np.zeros((count, ids.ndim), dtype=np.int64)
    for axis, extent in enumerate(ids.shape):
        shape = [1] * ids.ndim
        shape[axis] = extent
        coord = xp.arange(extent, dtype=xp.int64).reshape(shape)
        present = to_host(xp.bincount((ids * extent + coord).ravel(), minlength=count * extent)[: count * extent])
        present = present.reshape(count, extent) > 0
        found = present.any(axis=1)
        start[:, axis] = np.where(found, present.argmax(axis=1), extent)
        stop[:, axis] = np.where(found, extent - present[:, ::-1].argmax(axis=1), 0)
    return start, stop


def superpixel_soft_labels(
    label: Any,
    superpixels: Any,
    *,
    num_classes: int,
    spacing: Sequence[float] | None = None,
    restrict: bool = True,
    threads: int | None = None,
    dtype: str = "float32",
    checkpoint: Checkpoint = no_checkpoint,
) -> Any:
    """Soft labels from a label map and a superpixel map (SPEC section 1, step 3).

    label: int (X, Y[, Z]) with values in [0, num_classes). superpixels: int (X, Y[, Z]) with
    labels 0..M-1, or -1 for voxels outside every superpixel. spacing: per-axis voxel size in mm
    for distances in mm, or None for voxel units. restrict=False is the naive method, kept as
    the reference: one full-volume SciPy (CPU) or CuPy (GPU) transform per class.
    threads: CPU threads over classes (the distance transforms release the GIL); None: as many as
    :func:`worker.engine.backend.cpu_threads` allows.
    Returns float32 (X, Y[, Z], K) on the input's device: q_c inside superpixels mixed for c, the
    one-hot label elsewhere; K channels, not renormalised. dtype "uint8" (CPU, restrict=True
    only) returns the stored form ``rint(255 q)`` instead, computed without the float32 array.
    checkpoint: called before each class's distance transform, on either backend
    (:mod:`softlabel.worker.engine.checkpoint`).
    """
    if dtype == "uint8" and not (restrict and backend_of(label) == "cpu"):
        raise ValueError("dtype: 'uint8' soft labels are computed on the CPU with restrict=True only")
    if label.shape != superpixels.shape:
        raise ValueError(f"superpixels: expected shape {label.shape} like the label, got {superpixels.shape}")
    if spacing is not None and len(spacing) != label.ndim:
        raise ValueError(f"spacing: expected {label.ndim} values, got {len(spacing)}")
    backend = backend_of(label)
    soft = stored_one_hot(label, num_classes=num_classes) if dtype == "uint8" else one_hot(label, num_classes=num_classes)
    if restrict and backend == "cpu":
        soften_restricted_cpu(
            soft, label, superpixels, num_classes=num_classes, spacing=spacing, threads=threads, checkpoint=checkpoint
        )
    else:
        soften_by_arrays(
            soft, label, superpixels, num_classes=num_classes, spacing=spacing, restrict=restrict, threads=threads,
            checkpoint=checkpoint,
        )  # fmt: skip
    return soft


def soften_by_arrays(
    soft: Any, label: Any, superpixels: Any, *, num_classes: int, spacing: Sequence[float] | None,
    restrict: bool, threads: int | None, checkpoint: Checkpoint = no_checkpoint,
) -> None:  # fmt: skip
    """Overwrite ``soft`` (the one-hot label) with q_c in the mixed superpixels, by array
    operations that run on NumPy and CuPy: the GPU's path, and the naive method's."""
    backend = backend_of(label)
    distance = distance_to_features(backend) if restrict else reference_distance_to_features(backend)
    mixed = mixed_superpixels(label, superpixels, num_classes=num_classes)
    mixed_host = to_host(mixed)
    classes = [c for c in range(num_classes) if mixed_host[:, c].any()]
    if restrict:
        xp = array_module(backend)
        sp_start, sp_stop = bounding_boxes(superpixels + 1, count=mixed_host.shape[0])
        on_boundary = xp.where(label_boundaries(label), label, num_classes)
        bnd_start, bnd_stop = bounding_boxes(on_boundary, count=num_classes + 1)

    def soften_class(c: int) -> None:
        if restrict:
            crop = _class_box(mixed_host[:, c], sp_start, sp_stop, bnd_start[c], bnd_stop[c])
        else:
            crop = tuple(slice(0, n) for n in label.shape)
        _soften_class_in_crop(soft, label, superpixels, mixed[:, c], c, crop, spacing, distance)

    _for_each_class(soften_class, classes, threads=threads if backend == "cpu" else 1, checkpoint=checkpoint)


def soften_restricted_cpu(
    soft: np.ndarray, label: np.ndarray, superpixels: np.ndarray, *, num_classes: int,
    spacing: Sequence[float] | None, threads: int | None, checkpoint: Checkpoint = no_checkpoint,
) -> None:  # fmt: skip
    """The restricted method with the compiled CPU kernels of ``worker.engine.softening.soften_cpu``: the same
    boxes and numbers as :func:`soften_by_arrays`, without full-size temporaries. ``soft``:
    float32 q, or uint8 in the stored form (the numbers of quantising the float32 ones)."""
    _check_ids("label", label, low=0, high=num_classes)  # the kernels do not check bounds
    _check_ids("superpixels", superpixels, low=-1, high=2**31 - 1)  # the kernels take int32 ids
    as_3d = (lambda a: a) if label.ndim == 3 else (lambda a: a[..., None])
    # The kernels walk C order; labels read from NIfTI are Fortran-ordered (one cheap copy).
    label3 = np.ascontiguousarray(as_3d(soften_cpu.as_label(label, num_classes)))
    superpixels3 = soften_cpu.as_superpixels(as_3d(superpixels))
    rows = int(superpixels.max()) + 2
    counts, sp_start, sp_stop, bnd_start, bnd_stop = soften_cpu.study_tables(label3, superpixels3, num_classes, rows)
    mixed = (counts > 0) & (counts < counts.sum(axis=1, keepdims=True))
    steps = np.ones(3) if spacing is None else np.array([*map(float, spacing), 1.0][:3])
    boxes = {}
    for c in range(num_classes):
        if mixed[:, c].any():
            crop = _class_box(mixed[:, c], sp_start, sp_stop, bnd_start[c], bnd_stop[c])
            boxes[c] = (np.array([s.start for s in crop], dtype=np.int64), np.array([s.stop for s in crop], dtype=np.int64))
    # Largest boxes first: each thread's first class sizes the distance scratch it then reuses.
    classes = sorted(boxes, key=lambda c: -int(np.prod(boxes[c][1] - boxes[c][0])))
    scratch = threading.local()

    def soften_class(c: int) -> None:
        start, stop = boxes[c]
        voxels = int(np.prod(stop - start))
        if getattr(scratch, "sq", None) is None or scratch.sq.size < voxels:
            scratch.sq = np.empty(voxels, dtype=np.float64)
        soften_cpu.soften_class_in_box(
            as_3d(soft[..., c]), label3, superpixels3, mixed[:, c], c, start, stop, steps, scratch.sq
        )

    _for_each_class(soften_class, classes, threads=threads, checkpoint=checkpoint)


def _check_ids(name: str, ids: np.ndarray, *, low: int, high: int | None) -> None:
    """Raise ValueError unless every value lies in [low, high) (high None: no upper bound)."""
    if ids.size == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < low or (high is not None and hi >= high):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected values {bound}, got min {lo}, max {hi}")


def _class_box(
    mixed_c: np.ndarray, sp_start: np.ndarray, sp_stop: np.ndarray, bnd_start: np.ndarray, bnd_stop: np.ndarray
) -> tuple[slice, ...]:
    """Class c's box: the union of its mixed superpixels' boxes and its boundary voxels' box."""
    lo = np.minimum(sp_start[mixed_c].min(axis=0), bnd_start)
    hi = np.maximum(sp_stop[mixed_c].max(axis=0), bnd_stop)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _for_each_class(work: Callable[[int], None], classes: list[int], *, threads: int | None, checkpoint: Checkpoint) -> None:
    """Run ``work`` per class after a checkpoint, in a thread pool when there are several (the
    kernels release the GIL). threads None: :func:`worker.engine.backend.cpu_threads`."""
    for_each(work, classes, threads=cpu_threads() if threads is None else threads, checkpoint=checkpoint)


def _soften_class_in_crop(
    soft: Any,
    label: Any,
    superpixels: Any,
    mixed_c: Any,
    c: int,
    crop: tuple[slice, ...],
    spacing: Sequence[float] | None,
    distance: DistanceFn,
) -> None:
    """Write q_c over the voxels of ``crop`` that lie in superpixels mixed for c.

    The boundary is computed on the crop grown by one voxel (clipped to the image), so voxels
    on the crop's edge see their real neighbours; the image edge is still not a boundary.
    """
    xp = array_module(backend_of(label))
    padded = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(crop, label.shape))
    inner = tuple(slice(s.start - p.start, s.stop - p.start) for s, p in zip(crop, padded))
    inside_padded = label[padded] == c
    inside = inside_padded[inner]
    boundary = face_boundary(inside_padded)[inner]
    dist = distance(~boundary, spacing)
    region = mixed_c[superpixels[crop].astype(xp.int64) + 1]
    signed = xp.where(inside[region], dist[region], -dist[region])
    soft[crop + (c,)][region] = distance_to_probability(signed).astype(xp.float32)
