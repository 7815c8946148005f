"""``native_slic``: argument checks, the k-means loop and the final relabelling.

The loop is the same for the three implementations; they differ only in the
step functions ``assign``, ``update_centres`` and ``enforce_connectivity``
(:mod:`.reference`, :mod:`.cpu` + :mod:`.connectivity`, :mod:`.gpu`).
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from ...checkpoint import Checkpoint, no_checkpoint
from . import cpu
from .grid import SlicGrid, array_module_of, make_grid

BACKENDS = ("cpu", "gpu")


def native_slic(image, *, n_segments: int, compactness: float,
                spacing: tuple[float, ...] | None = None, max_num_iter: int = 10,
                mask=None, enforce_connectivity: bool = True,
                min_size_factor: float = 0.5, backend: str = "cpu", checkpoint: Checkpoint = no_checkpoint):
    """SLIC superpixels: each centre competes for the voxels within one grid step of its seed.

    Parameters
    ----------
    image : (X, Y, C) or (X, Y, Z, C) float32 array
        Channels last, even when C == 1; each channel already scaled to
        [0, 1]. A NumPy array for ``backend="cpu"``, a CuPy array for
        ``backend="gpu"``; other float dtypes are converted to float32.
    n_segments : int
        Wanted number of superpixels (approximate, >= 1).
    compactness : float
        Weight of space against colour (> 0): the distance is
        ``sum_c (I_c - mu_c)^2 + (compactness / S)^2 * |x - x_k|^2`` with the
        spatial term in mm and ``S`` the grid interval in mm. With
        ``compactness = 0.1`` and ``S = 16 mm``, 10 mm of distance weigh as much
        as a colour difference of 0.0625.
    spacing : tuple of float, optional
        Voxel size per spatial axis (mm), in the array's axis order. None
        means isotropic 1 mm.
    max_num_iter : int
        Maximum number of assignment / update rounds (>= 1); the loop stops
        early when no label changes.
    mask : (X, Y[, Z]) bool array, optional
        Voxels to segment; the others get label -1. Same device as ``image``.
    enforce_connectivity : bool
        Make every superpixel face-connected and merge fragments smaller than
        ``min_size_factor * voxels / n_centres`` into an earlier neighbour
        (rule in :mod:`.merge`).
    min_size_factor : float
        Minimum segment size, as a fraction of the mean segment size (>= 0).
        Unlike scikit-image (``max_size_factor``), a connected segment is never split.
    backend : {"cpu", "gpu"}
        Where to run; must match the array type of ``image``: C extensions on the CPU,
        CUDA kernels on the GPU.
    checkpoint : callable
        Called before each assignment, each centre update and the connectivity pass (the
        same calls on every backend); raising abandons the computation
        (:mod:`softlabel.worker.engine.checkpoint`).

    Returns
    -------
    (X, Y[, Z]) int32 array
        Labels ``0..M-1`` (``-1`` outside the mask), on the input's device.
        With connectivity enforcement, labels are numbered in C order of the
        segments' first voxels; without, in order of centre index.

    Notes
    -----
    Every step runs on the input's device, the connectivity pass included
    (union-find kernels on the GPU). The three implementations give the same
    labels: bit for bit on the CPU; on the GPU the float64 atomic centre sums
    may round a centre colour one float32 ulp away, which can move a voxel that
    sits on a near-tie.
    """
    steps = _steps_for(image, backend)
    return slic_with(steps, image, n_segments=n_segments, compactness=compactness, spacing=spacing,
                     max_num_iter=max_num_iter, mask=mask, enforce_connectivity=enforce_connectivity,
                     min_size_factor=min_size_factor, checkpoint=checkpoint)


def slic_with(steps: ModuleType, image, *, n_segments: int, compactness: float,
              spacing: tuple[float, ...] | None = None, max_num_iter: int = 10, mask=None,
              enforce_connectivity: bool = True, min_size_factor: float = 0.5,
              checkpoint: Checkpoint = no_checkpoint):
    """:func:`native_slic` with the given step functions: :mod:`.cpu`, :mod:`.gpu`, or the
    NumPy twin :mod:`.reference` (which the tests and benchmarks compare against)."""
    image, mask, spacing = _checked(image, mask, spacing, n_segments, compactness,
                                    max_num_iter, min_size_factor)
    spatial_shape = image.shape[:-1]
    grid = make_grid(spatial_shape, spacing, int(n_segments), mask)
    image3 = image.reshape(grid.shape + image.shape[-1:])
    mask3 = None if mask is None else mask.reshape(grid.shape)
    weight = np.float32((compactness / grid.step_mm) ** 2)
    labels = run_kmeans(steps, image3, mask3, grid, weight, int(max_num_iter), checkpoint=checkpoint)
    if enforce_connectivity:
        checkpoint()
        n_valid = labels.size if mask is None else int(mask.sum())
        min_size = int(min_size_factor * n_valid / grid.n_centres)
        labels = steps.enforce_connectivity(labels, min_size)
    else:
        labels = _relabel_in_order(labels, grid.n_centres)
    return labels.reshape(spatial_shape)


def run_kmeans(impl: ModuleType, image, mask, grid: SlicGrid, weight: np.float32,
               max_num_iter: int, *, checkpoint: Checkpoint = no_checkpoint):
    """Iterate assignment and centre update; returns the last assignment.

    Arrays in the canonical 3D layout of :mod:`.reference`, on the device of
    ``impl``. Returns ``(n0, n1, n2)`` int32 centre indices (-1 off the mask).
    ``checkpoint`` is called before each step: on the GPU each assignment ends by reading its
    change flag back, so no more than one step's kernels are queued when it is called.
    """
    xp = array_module_of(image)
    centres = xp.asarray(grid.initial_centres(image.shape[-1]))
    labels = xp.full(grid.shape, -1, dtype=np.int32)
    for it in range(max_num_iter):
        checkpoint()
        changed = impl.assign(image, mask, centres, grid, weight, labels)
        if not changed or it == max_num_iter - 1:
            break
        checkpoint()
        centres = impl.update_centres(image, labels, centres)
    return labels


def _relabel_in_order(labels, n_centres: int):
    """Renumber the used centre indices to 0..M-1, keeping their order."""
    xp = array_module_of(labels)
    valid = labels >= 0
    used = xp.bincount(labels[valid], minlength=n_centres) > 0
    new = (xp.cumsum(used) - 1).astype(np.int32)
    return xp.where(valid, new[xp.maximum(labels, 0)], -1).astype(np.int32)


def _steps_for(image, backend: str) -> ModuleType:
    """The step-function module for this backend, after checking the array type."""
    if backend not in BACKENDS:
        raise ValueError(f"expected backend in {BACKENDS}, got {backend!r}")
    on_gpu = array_module_of(image) is not np
    if backend == "cpu":
        if on_gpu or not isinstance(image, np.ndarray):
            raise TypeError(f"expected a numpy.ndarray image for backend 'cpu', "
                            f"got {type(image).__module__}.{type(image).__name__}")
        return cpu
    if not on_gpu:
        raise TypeError(f"expected a cupy.ndarray image for backend 'gpu', "
                        f"got {type(image).__module__}.{type(image).__name__}")
    from . import gpu
    return gpu


def _checked(image, mask, spacing, n_segments, compactness, max_num_iter, min_size_factor):
    """Validate the arguments; return float32 C-contiguous image, bool mask, spacing."""
    xp = array_module_of(image)
    if image.ndim not in (3, 4):
        raise ValueError(f"expected image of shape (X, Y, C) or (X, Y, Z, C), "
                         f"got shape {tuple(image.shape)}")
    if min(image.shape) < 1:
        raise ValueError(f"expected a non-empty image, got shape {tuple(image.shape)}")
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise TypeError(f"expected a real image dtype, got {image.dtype}")
    n_spatial = image.ndim - 1
    if spacing is None:
        spacing = (1.0,) * n_spatial
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != n_spatial:
        raise ValueError(f"expected spacing with {n_spatial} values (one per spatial axis), "
                         f"got {len(spacing)}: {spacing}")
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"expected positive finite spacing, got {spacing}")
    if isinstance(n_segments, bool) or int(n_segments) != n_segments or n_segments < 1:
        raise ValueError(f"expected integer n_segments >= 1, got {n_segments!r}")
    if not (math.isfinite(compactness) and compactness > 0):
        raise ValueError(f"expected finite compactness > 0, got {compactness!r}")
    if isinstance(max_num_iter, bool) or int(max_num_iter) != max_num_iter or max_num_iter < 1:
        raise ValueError(f"expected integer max_num_iter >= 1, got {max_num_iter!r}")
    if not (math.isfinite(min_size_factor) and min_size_factor >= 0):
        raise ValueError(f"expected min_size_factor >= 0, got {min_size_factor!r}")
    image = xp.ascontiguousarray(image, dtype=np.float32)
    if mask is not None:
        if array_module_of(mask) is not xp:
            raise TypeError(f"expected mask on the same device as image, "
                            f"got {type(mask).__module__}.{type(mask).__name__}")
        if tuple(mask.shape) != image.shape[:-1]:
            raise ValueError(f"expected mask of the spatial shape {image.shape[:-1]}, "
                             f"got {tuple(mask.shape)}")
        if mask.dtype != bool:
            raise TypeError(f"expected a bool mask, got dtype {mask.dtype}")
        mask = xp.ascontiguousarray(mask)
        if not bool(mask.any()):
            raise ValueError("expected a mask with at least one True voxel, got none")
    values = image if mask is None else image[mask]
    if not bool(xp.isfinite(values).all()):
        raise ValueError("expected finite image values (inside the mask), got NaN or inf")
    return image, mask, spacing
