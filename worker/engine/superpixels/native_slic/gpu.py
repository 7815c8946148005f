"""GPU SLIC steps: the CUDA kernels of :mod:`.cuda_kernels` run through CuPy.

Same step functions and layouts as :mod:`.reference`, on CuPy arrays. The
assignment equals the twin's bit for bit given the same centres; the centre
update uses float64 atomics, so a centre colour may differ from the twin's by
one float32 ulp (counts and coordinates are exact).

Connectivity runs on the device: union-find components (``CCL_SOURCE``), then
the vectorised merge of :mod:`.merge` on CuPy arrays; the result equals the
CPU passes' exactly (the component partition and its numbering are unique).
Volumes must have fewer than 2**31 voxels (int32 union-find parents).
"""

from __future__ import annotations

import cupy
import numpy as np

from .cuda_kernels import (
    CCL_KERNEL_NAMES,
    CCL_SOURCE,
    KERNEL_NAMES,
    THREADS_PER_BLOCK,
    accumulate_args,
    accumulate_tasks,
    assign_args,
    blocks_for,
    ccl_compress_args,
    ccl_init_args,
    ccl_merge_args,
    finalize_args,
    source,
)
from .grid import SlicGrid
from .merge import components_from_roots, merge_small_components


@cupy.memoize(for_each_device=True)
def _kernels(n_channels: int) -> dict[str, cupy.RawKernel]:
    """Compiled SLIC kernels for ``n_channels`` channels, one build per device."""
    module = cupy.RawModule(code=source(n_channels), options=("--std=c++14",))
    return {name: module.get_function(name) for name in KERNEL_NAMES}


@cupy.memoize(for_each_device=True)
def _ccl_kernels() -> dict[str, cupy.RawKernel]:
    """Compiled connected-component kernels, one build per device."""
    module = cupy.RawModule(code=CCL_SOURCE, options=("--std=c++14",))
    return {name: module.get_function(name) for name in CCL_KERNEL_NAMES}


def _launch(kernel: cupy.RawKernel, n_items: int, args: tuple) -> None:
    kernel((blocks_for(n_items),), (THREADS_PER_BLOCK,), args)


def assign(image: cupy.ndarray, mask: cupy.ndarray | None, centres: cupy.ndarray,
           grid: SlicGrid, weight: np.float32, labels: cupy.ndarray) -> bool:
    """Label each voxel with its nearest candidate centre, in place (see reference.assign)."""
    changed = cupy.zeros(1, dtype=cupy.int32)
    cell_centre = cupy.asarray(grid.cell_centre)
    # Without a mask the kernel never reads one, but needs a valid pointer: a 1-byte array per
    # call (not memoized: a cached array would keep the memory pool from emptying between studies).
    args = assign_args(image, cupy.ones(1, dtype=cupy.bool_) if mask is None else mask, mask is not None,
                       centres, grid, weight, labels, changed, cell_centre)
    _launch(_kernels(image.shape[-1])["softlabel_slic_assign"], labels.size, args)
    return bool(changed.get()[0])


def centre_sums(image: cupy.ndarray, labels: cupy.ndarray, n_centres: int) -> cupy.ndarray:
    """Per-centre sums ``(K, 4 + C)`` float64 (atomic order; see module docstring)."""
    sums = cupy.zeros((n_centres, 4 + image.shape[-1]), dtype=cupy.float64)
    _launch(_kernels(image.shape[-1])["softlabel_slic_accumulate"],
            accumulate_tasks(labels.shape), accumulate_args(image, labels, sums))
    return sums


def update_centres(image: cupy.ndarray, labels: cupy.ndarray,
                   centres: cupy.ndarray) -> cupy.ndarray:
    """New centres (see reference.update_centres)."""
    sums = centre_sums(image, labels, len(centres))
    out = centres.copy()
    _launch(_kernels(image.shape[-1])["softlabel_slic_finalize"], len(centres),
            finalize_args(sums, out))
    return out


def components(labels: cupy.ndarray) -> cupy.ndarray:
    """Component ids as :func:`.reference.components` (int64, C order of first voxels)."""
    if labels.size >= 2**31:
        raise ValueError(f"expected fewer than 2**31 voxels for the GPU connectivity pass, got {labels.size}")
    kernels = _ccl_kernels()
    parent = cupy.empty(labels.size, dtype=cupy.int32)
    _launch(kernels["softlabel_ccl_init"], labels.size, ccl_init_args(labels, parent))
    _launch(kernels["softlabel_ccl_merge"], labels.size, ccl_merge_args(labels, parent))
    _launch(kernels["softlabel_ccl_compress"], labels.size, ccl_compress_args(parent))
    return components_from_roots(parent, labels.shape)


def enforce_connectivity(labels: cupy.ndarray, min_size: int) -> cupy.ndarray:
    """Connected, merged and renumbered labels on the device (see reference.enforce_connectivity)."""
    return merge_small_components(components(labels), min_size)
