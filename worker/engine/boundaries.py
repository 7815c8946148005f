"""Face-connected class boundaries (SPEC section 1, step 3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .backend import array_module, backend_of


def _face_neighbour_views(ndim: int) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Per axis, the slices (lower, upper) that pair every voxel with its next face neighbour."""
    for axis in range(ndim):
        lower = [slice(None)] * ndim
        upper = [slice(None)] * ndim
        lower[axis] = slice(0, -1)
        upper[axis] = slice(1, None)
        yield tuple(lower), tuple(upper)


def face_boundary(mask: Any) -> Any:
    """Voxels of ``mask`` with at least one face neighbour outside it.

    mask: bool (X, Y[, Z]) array (NumPy or CuPy). Face neighbours are 4-connected in 2D and
    6-connected in 3D. The edge of the array is not a boundary: a voxel is never a boundary
    voxel because of a neighbour that lies outside the array.
    """
    xp = array_module(backend_of(mask))
    outside_neighbour = xp.zeros(mask.shape, dtype=bool)
    for lower, upper in _face_neighbour_views(mask.ndim):
        outside_neighbour[lower] |= ~mask[upper]
        outside_neighbour[upper] |= ~mask[lower]
    return mask & outside_neighbour


def label_boundaries(label: Any) -> Any:
    """Voxels with at least one face neighbour of another label: the union over all classes c of
    ``face_boundary(label == c)``, in one pass. label: int (X, Y[, Z]); returns bool."""
    xp = array_module(backend_of(label))
    other_neighbour = xp.zeros(label.shape, dtype=bool)
    for lower, upper in _face_neighbour_views(label.ndim):
        differs = label[lower] != label[upper]
        other_neighbour[lower] |= differs
        other_neighbour[upper] |= differs
    return other_neighbour
