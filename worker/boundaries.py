"""Face-connected class boundaries (SPEC section 1, step 3)."""

from __future__ import annotations

from typing import Any

from worker.backend import array_module, backend_of


def face_boundary(mask: Any) -> Any:
    """Voxels of ``mask`` with at least one face neighbour outside it.

    mask: bool (X, Y[, Z]) array (NumPy or CuPy). Face neighbours are 4-connected in 2D and
    6-connected in 3D. The edge of the array is not a boundary: a voxel is never a boundary
    voxel because of a neighbour that lies outside the array.
    """
    xp = array_module(backend_of(mask))
    outside_neighbour = xp.zeros(mask.shape, dtype=bool)
    for axis in range(mask.ndim):
        lower = [slice(None)] * mask.ndim
        upper = [slice(None)] * mask.ndim
        lower[axis] = slice(0, -1)
        upper[axis] = slice(1, None)
        lower_t, upper_t = tuple(lower), tuple(upper)
        outside_neighbour[lower_t] |= ~mask[upper_t]
        outside_neighbour[upper_t] |= ~mask[lower_t]
    return mask & outside_neighbour


def label_boundaries(label: Any) -> Any:
    """Voxels with at least one face neighbour of another label: the union over all classes c of
    ``face_boundary(label == c)``, in one pass. label: int (X, Y[, Z]); returns bool."""
    xp = array_module(backend_of(label))
    other_neighbour = xp.zeros(label.shape, dtype=bool)
    for axis in range(label.ndim):
        lower = [slice(None)] * label.ndim
        upper = [slice(None)] * label.ndim
        lower[axis] = slice(0, -1)
        upper[axis] = slice(1, None)
        differs = label[tuple(lower)] != label[tuple(upper)]
        other_neighbour[tuple(lower)] |= differs
        other_neighbour[tuple(upper)] |= differs
    return other_neighbour
