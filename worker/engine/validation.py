"""Input checks shared by the CLI, the REST upload route and the worker.

Every failure raises :class:`worker.engine.errors.InputError` naming the file, the field, what was
expected and what was found. The checks run on arrays already read, or on NIfTI headers
before any voxel data is decompressed (:func:`check_header`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import InputError

AFFINE_ATOL = 1e-3  # mm for the translation, unitless for the rotation/zoom part
MAX_NDIM = 4


def check_header(path: str | Path, shape: Sequence[int], *, max_voxels: int | None) -> None:
    """Dimensions and voxel count read from a header, before decompression (bomb guard)."""
    if len(shape) > MAX_NDIM:
        raise InputError(file=path, field="dimensions", expected=f"at most {MAX_NDIM}", got=f"{len(shape)} {tuple(shape)}")
    if len(shape) < 2:
        raise InputError(file=path, field="dimensions", expected="2, 3 or 4", got=f"{len(shape)} {tuple(shape)}")
    voxels = int(np.prod(np.asarray(shape, dtype=np.float64)))
    if voxels == 0:
        raise InputError(file=path, field="shape", expected="no zero-length axis", got=str(tuple(shape)))
    if max_voxels is not None and voxels > max_voxels:
        raise InputError(file=path, field="voxel count", expected=f"at most {max_voxels}", got=f"{voxels} {tuple(shape)}")


def check_same_grid(
    path: str | Path, shape: Sequence[int], affine: np.ndarray, *, ref_path: str | Path, ref_shape: Sequence[int], ref_affine: np.ndarray
) -> None:
    """Same spatial shape and (within AFFINE_ATOL) the same affine as the reference file."""
    if tuple(shape) != tuple(ref_shape):
        raise InputError(
            file=path, field="shape", expected=f"{tuple(ref_shape)} like {Path(ref_path).name}", got=str(tuple(shape))
        )
    if not np.allclose(affine, ref_affine, atol=AFFINE_ATOL, rtol=0):
        worst = float(np.abs(np.asarray(affine) - np.asarray(ref_affine)).max())
        raise InputError(
            file=path,
            field="affine",
            expected=f"within {AFFINE_ATOL} of {Path(ref_path).name}'s",
            got=f"a difference of {worst:.4g}",
        )


def check_image_channel(path: str | Path, channel: np.ndarray, *, index: int) -> None:
    """Finite, non-constant voxel values in one image channel."""
    finite = np.isfinite(channel)
    if not finite.all():
        bad = int(channel.size - np.count_nonzero(finite))
        raise InputError(file=path, field=f"channel {index} values", expected="finite numbers", got=f"{bad} NaN/Inf voxels")
    lo, hi = float(channel.min()), float(channel.max())
    if lo == hi:
        raise InputError(file=path, field=f"channel {index} values", expected="a non-constant image", got=f"every voxel = {lo:g}")


def check_label_values(path: str | Path, label: np.ndarray, *, num_classes: int | None) -> np.ndarray:
    """Integer class ids in [0, num_classes) with some foreground; returns the label as an int array.

    num_classes None takes K from the label itself (its maximum + 1), once it is known to hold
    integers. The dtype is the smallest unsigned type that holds K (uint8 up to 256 classes).
    """
    if num_classes is not None:
        check_num_classes(num_classes)
    if not np.issubdtype(label.dtype, np.integer):
        if not np.isfinite(label).all():
            raise InputError(file=path, field="label values", expected="integers", got="NaN/Inf voxels")
        if not np.array_equal(label, np.round(label)):
            frac = label[label != np.round(label)]
            raise InputError(file=path, field="label values", expected="integers", got=f"non-integer values such as {float(frac.flat[0]):g}")
    lo, hi = label.min(), label.max()
    num_classes = int(hi) + 1 if num_classes is None else num_classes
    if lo < 0:
        raise InputError(file=path, field="label values", expected=f"integers in [0, {num_classes})", got=f"min {lo:g}")
    if hi >= num_classes:
        raise InputError(file=path, field="label values", expected=f"integers in [0, {num_classes})", got=f"max {hi:g}")
    if hi == 0:
        raise InputError(file=path, field="label values", expected="at least one foreground voxel (class > 0)", got="only background")
    dtype = np.uint8 if num_classes <= 256 else np.uint16 if num_classes <= 65536 else np.int32
    return label.astype(dtype, copy=False)


def check_num_classes(num_classes: int) -> None:
    """K comes from the caller (a dataset declares it)."""
    if num_classes < 2:
        raise InputError(file=None, field="classes", expected="at least 2 (background and one class)", got=str(num_classes))
