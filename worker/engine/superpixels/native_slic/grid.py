"""The SLIC seed grid: cell sizes, initial centres and the cell -> centre index.

Every implementation works on a canonical 3D layout: a 2D image ``(X, Y, C)`` is
handled as ``(1, X, Y, C)`` with a dummy leading axis of spacing 1 mm, one cell
and step 1. Coordinates of centres are in voxel index units along the array
axes; distances are in millimetres (index difference times spacing).

The grid follows ``skimage.util.regular_grid`` (scikit-image 0.26), generalised
to physical lengths so the cells are close to cubic *in millimetres*: with
isotropic spacing it returns exactly scikit-image's steps and seed positions.
Along axis ``a`` the seeds sit at ``start[a] + j * step[a]`` (voxels) and cell
``j`` covers the voxels ``[j * step[a], (j + 1) * step[a])``; voxels past the
last seed's cell belong to the last cell (``cell = min(i // step, n_cells - 1)``).
Each centre stays attached to the cell it was seeded in, for the whole run.

The assignment's candidates are SLIC's own: a centre competes for the voxels within one
grid step of its seed along each axis (the ``2S x 2S x 2S`` window of Achanta et al.), so a
voxel has at most 2 x 2 x 2 = 8 candidates. Along axis ``a`` they are the centres of cells
``w`` and ``w + 1``, where ``w = min(floor((i - start) / step), n_cells - 1)`` is the cell
of the last seed at or before voxel ``i`` (``-1`` before the first seed); the voxels sharing
one ``w`` per axis form a *window*, whose 8 candidates are the same (the compiled kernel
works window by window: ``slic_window_bounds`` in ``assign_window.h``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Number of row blocks whose centre sums are accumulated separately and then
#: added in block order. Fixed (not the thread count) so that every CPU
#: implementation adds the same float64 numbers in the same order.
REDUCTION_BLOCKS = 64


@dataclass(frozen=True)
class SlicGrid:
    """Seed grid of one SLIC run, in the canonical 3D layout.

    Attributes
    ----------
    shape : (3,) tuple of int
        Spatial shape ``(n0, n1, n2)`` (voxels).
    spacing_mm : (3,) tuple of float
        Voxel size along each axis (mm).
    step : (3,) tuple of int
        Cell size along each axis (voxels).
    start : (3,) tuple of int
        Index of the first seed along each axis (voxels).
    cell_centre : (g0, g1, g2) int32 ndarray
        Index of the centre seeded in each cell, ``-1`` for a cell without one
        (only possible with a mask). Centres are numbered in C order of cells.
    step_mm : float
        The SLIC grid interval ``S`` (mm): the largest cell side. The spatial
        weight is ``(compactness / step_mm) ** 2``.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    step: tuple[int, int, int]
    start: tuple[int, int, int]
    cell_centre: np.ndarray
    step_mm: float

    @property
    def n_centres(self) -> int:
        """Number of centres (cells that hold one)."""
        return int(np.count_nonzero(self.cell_centre >= 0))

    def initial_centres(self, n_channels: int) -> np.ndarray:
        """Seed centres, ``(n_centres, 3 + n_channels)`` float32.

        Columns: the three voxel coordinates of the seed, then the colour, which
        starts at 0 as in scikit-image (so the first assignment is purely
        spatial: the colour term is then the same for every candidate).
        """
        cells = np.argwhere(self.cell_centre >= 0)  # C order == centre order
        centres = np.zeros((len(cells), 3 + n_channels), dtype=np.float32)
        centres[:, :3] = np.asarray(self.start) + cells * np.asarray(self.step)
        return centres


def _physical_steps(shape: tuple[int, ...], spacing: tuple[float, ...],
                    n_points: float) -> np.ndarray:
    """Grid steps (mm) close to cubic: ``regular_grid``'s rule on lengths in mm.

    An axis shorter than the cubic step is "discarded" (its whole length is
    one step) and the volume is shared among the remaining axes.
    """
    lengths = np.asarray(shape, dtype=np.float64) * np.asarray(spacing)
    ndim = len(shape)
    unsort = np.argsort(np.argsort(lengths))
    sorted_len = np.sort(lengths)
    volume = float(np.prod(lengths))
    steps = np.full(ndim, (volume / n_points) ** (1.0 / ndim))
    if (sorted_len < steps).any():
        for dim in range(ndim):
            steps[dim] = sorted_len[dim]
            rest = float(np.prod(sorted_len[dim + 1:]))
            steps[dim + 1:] = (rest / n_points) ** (1.0 / (ndim - dim - 1))
            if (sorted_len >= steps).all():
                break
    return steps[unsort]


def make_grid(spatial_shape: tuple[int, ...], spacing_mm: tuple[float, ...],
              n_segments: int, mask: np.ndarray | None = None) -> SlicGrid:
    """Build the seed grid for ``n_segments`` superpixels.

    Parameters
    ----------
    spatial_shape : (2,) or (3,) tuple of int
        Spatial shape of the image (voxels).
    spacing_mm : tuple of float
        Voxel size per spatial axis (mm), same order as ``spatial_shape``.
    n_segments : int
        Wanted number of superpixels (approximate).
    mask : (X, Y[, Z]) bool ndarray, optional
        Voxels to segment (NumPy or CuPy). The grid is then made finer by
        ``size / mask voxels`` so that about ``n_segments`` cells meet the
        mask, and only cells holding at least one mask voxel get a centre.

    Returns
    -------
    SlicGrid
        In the canonical 3D layout (2D input gets a dummy leading axis).
    """
    shape = tuple(int(s) for s in spatial_shape)
    spacing = tuple(float(s) for s in spacing_mm)
    n_voxels = int(np.prod(shape))
    n_points = float(n_segments)
    if mask is not None:
        n_points = n_segments * n_voxels / max(int(mask.sum()), 1)
    if n_voxels <= n_points:
        step_f = np.ones(len(shape))
        start = np.zeros(len(shape), dtype=np.int64)
    else:
        step_f = _physical_steps(shape, spacing, n_points) / np.asarray(spacing)
        start = (step_f // 2).astype(np.int64)
    step = np.maximum(np.round(step_f), 1).astype(np.int64)
    n_cells = [len(range(int(b), s, int(t))) for b, s, t in zip(start, shape, step)]
    step_mm = float(np.max(step * np.asarray(spacing)))
    if len(shape) == 2:
        shape, spacing = (1, *shape), (1.0, *spacing)
        step, start, n_cells = np.r_[1, step], np.r_[0, start], [1, *n_cells]
        if mask is not None:
            mask = mask[None]
    has_centre = np.ones(n_cells, dtype=bool)
    if mask is not None:
        has_centre = _cells_with_mask(mask, tuple(int(s) for s in step), n_cells)
    cell_centre = np.full(n_cells, -1, dtype=np.int32)
    cell_centre[has_centre] = np.arange(np.count_nonzero(has_centre), dtype=np.int32)
    return SlicGrid(shape=shape, spacing_mm=spacing,
                    step=tuple(int(s) for s in step), start=tuple(int(s) for s in start),
                    cell_centre=cell_centre, step_mm=step_mm)


def _cells_with_mask(mask, step: tuple[int, int, int], n_cells: list[int]) -> np.ndarray:
    """``(g0, g1, g2)`` bool: which cells hold a mask voxel (NumPy or CuPy mask)."""
    xp = array_module_of(mask)
    cell_axes = [xp.minimum(xp.arange(s) // t, g - 1)
                 for s, t, g in zip(mask.shape, step, n_cells)]
    flat = ((cell_axes[0][:, None, None] * n_cells[1] + cell_axes[1][None, :, None])
            * n_cells[2] + cell_axes[2][None, None, :])
    counts = xp.bincount(flat[mask.astype(bool)], minlength=int(np.prod(n_cells)))
    counts = counts.get() if xp is not np else counts
    return (counts > 0).reshape(n_cells)


def array_module_of(array):
    """``numpy`` for host arrays, ``cupy`` for device arrays."""
    if type(array).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def lower_cell(index, start: int, step: int, n_cells: int):
    """``w``: the cell of the last seed at or before voxel ``index`` along one axis, ``-1``
    before the first seed; the voxel's candidate cells are ``w`` and ``w + 1`` (NumPy arrays
    or ints)."""
    return np.minimum((index - start) // step, n_cells - 1)


def reduction_blocks(n_rows: int) -> np.ndarray:
    """Row bounds of the ``REDUCTION_BLOCKS`` blocks, ``(n_blocks + 1,)`` int64.

    A row is one line along the last axis; rows are numbered in C order.
    """
    n_blocks = min(n_rows, REDUCTION_BLOCKS)
    return (np.arange(n_blocks + 1, dtype=np.int64) * n_rows) // n_blocks
