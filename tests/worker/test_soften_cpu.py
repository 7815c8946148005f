"""The compiled CPU softening kernels against the array-operation path the GPU runs.

Same inputs, same numbers: the one-hot start, the per-superpixel tables, every soft label
(bit for bit in voxel units, where SciPy's transform ties nothing; within one float32 ulp in
mm) and the uint8 quantisation. 2D studies, masked voxels (superpixel -1) and both label
dtypes the readers produce are covered.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from helpers.soft_labels import assert_same_soft_labels
from helpers.studies import random_label
from softlabel.worker.engine.boundaries import label_boundaries
from softlabel.worker.engine.io.nifti import quantize_soft_labels
from softlabel.worker.engine.softening import soften_cpu
from softlabel.worker.engine.softening.superpixel_soft import (
    bounding_boxes,
    mixed_superpixels,
    one_hot,
    one_hot_by_arrays,
    soften_by_arrays,
    soften_restricted_cpu,
    stored_one_hot,
    superpixel_soft_labels,
)


def blocky_superpixels(shape: tuple[int, ...], block: int, *, masked: bool) -> np.ndarray:
    """Superpixels as a grid of cubes, optionally with a masked (-1) corner."""
    ids = np.zeros(shape, dtype=np.int32)
    blocks_per_axis = [-(-n // block) for n in shape]
    for axis, coord in enumerate(np.indices(shape)):
        ids = ids * blocks_per_axis[axis] + coord // block
    if masked:
        ids[tuple(slice(0, n // 3) for n in shape)] = -1
    return ids


CASES = [  # shape, classes, superpixel block, spacing, label dtype, masked corner
    ((37, 29), 9, 5, None, np.uint8, False),
    ((37, 29), 5, 7, (0.8, 1.7), np.uint16, True),
    ((23, 19, 14), 7, 4, None, np.uint8, True),
    ((23, 19, 14), 12, 5, (1.2, 0.9, 2.5), np.uint8, False),
    ((31, 9, 17), 4, 6, (3.0, 1.0, 1.0), np.uint16, True),
]


@pytest.mark.parametrize(("shape", "classes", "block", "spacing", "dtype", "masked"), CASES)
def test_compiled_softening_equals_the_array_path(shape, classes, block, spacing, dtype, masked) -> None:
    label = random_label(shape, classes, seed=len(shape) + classes).astype(dtype)
    superpixels = blocky_superpixels(shape, block, masked=masked)
    compiled, arrays = one_hot(label, num_classes=classes), one_hot_by_arrays(label, num_classes=classes)
    np.testing.assert_array_equal(compiled, arrays)
    assert compiled.flags.f_contiguous
    soften_restricted_cpu(compiled, label, superpixels, num_classes=classes, spacing=spacing, threads=None)
    soften_by_arrays(arrays, label, superpixels, num_classes=classes, spacing=spacing, restrict=True, threads=None)
    assert ((compiled > 0) & (compiled < 1)).any(), "no voxel was softened: the case tests nothing"
    assert_same_soft_labels(compiled, arrays, spacing)


@pytest.mark.parametrize("spacing", [None, (1.0, 1.0, 1.0)])
def test_unit_steps_give_scipys_distances_far_from_sparse_boundaries(spacing) -> None:
    """Unit steps take the exact integer envelope: large boxes, few boundary voxels and
    distances of tens of voxels (many parabolas popped) still give SciPy's numbers."""
    shape = (45, 60, 38)
    grid = np.indices(shape)
    label = np.zeros(shape, dtype=np.uint8)
    label[((grid - np.array([30, 12, 20])[:, None, None, None]) ** 2).sum(axis=0) < 16] = 1  # a small ball
    label[:, 50:52, :] = 2  # a thin slab
    label[3, 5, 7] = 1  # a single voxel
    superpixels = blocky_superpixels(shape, 23, masked=False)
    compiled, arrays = one_hot(label, num_classes=3), one_hot_by_arrays(label, num_classes=3)
    soften_restricted_cpu(compiled, label, superpixels, num_classes=3, spacing=spacing, threads=None)
    soften_by_arrays(arrays, label, superpixels, num_classes=3, spacing=spacing, restrict=True, threads=None)
    far = (compiled[..., 1] > 0) & (compiled[..., 1] < 0.03)  # over 15 voxels from the ball or the dot
    assert far.any(), "no voxel lies far from a boundary: the case tests nothing"
    np.testing.assert_array_equal(compiled, arrays)


@pytest.mark.parametrize(("shape", "classes", "block", "spacing", "dtype", "masked"), CASES)
def test_stored_uint8_soft_labels_equal_quantised_float32_ones(shape, classes, block, spacing, dtype, masked) -> None:
    label = random_label(shape, classes, seed=len(shape) + classes).astype(dtype)
    superpixels = blocky_superpixels(shape, block, masked=masked)
    as_float = superpixel_soft_labels(label, superpixels, num_classes=classes, spacing=spacing)
    stored = superpixel_soft_labels(label, superpixels, num_classes=classes, spacing=spacing, dtype="uint8")
    assert stored.dtype == np.uint8 and stored.flags.f_contiguous
    assert ((stored > 0) & (stored < 255)).any(), "no voxel was softened: the case tests nothing"
    np.testing.assert_array_equal(stored, quantize_soft_labels(as_float, "uint8"))
    np.testing.assert_array_equal(stored_one_hot(label, num_classes=classes), one_hot(label, num_classes=classes) * 255)


def test_stored_uint8_soft_labels_need_the_restricted_cpu_path() -> None:
    label = random_label((8, 7, 6), 3, seed=2)
    superpixels = blocky_superpixels(label.shape, 3, masked=False)
    with pytest.raises(ValueError, match="restrict=True only"):
        superpixel_soft_labels(label, superpixels, num_classes=3, restrict=False, dtype="uint8")


@pytest.mark.parametrize(("shape", "classes", "block", "masked"), [((23, 19, 14), 7, 4, True), ((16, 11, 9), 3, 3, False)])
def test_study_tables_match_the_array_tables(shape, classes, block, masked) -> None:
    label = random_label(shape, classes, seed=5)
    superpixels = blocky_superpixels(shape, block, masked=masked)
    rows = int(superpixels.max()) + 2
    counts, sp_start, sp_stop, bnd_start, bnd_stop = soften_cpu.study_tables(label, superpixels, classes, rows)
    mixed = (counts > 0) & (counts < counts.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(mixed, mixed_superpixels(label, superpixels, num_classes=classes))
    expected_sp = bounding_boxes(superpixels + 1, count=rows)
    np.testing.assert_array_equal(sp_start, expected_sp[0])
    np.testing.assert_array_equal(sp_stop, expected_sp[1])
    on_boundary = np.where(label_boundaries(label), label, classes)
    expected_bnd = bounding_boxes(on_boundary, count=classes + 1)
    np.testing.assert_array_equal(bnd_start[:classes], expected_bnd[0][:classes])
    np.testing.assert_array_equal(bnd_stop[:classes], expected_bnd[1][:classes])


def test_uint8_quantisation_matches_the_channel_by_channel_formula() -> None:
    rng = np.random.default_rng(3)
    soft = np.asfortranarray(rng.uniform(-0.2, 1.2, size=(13, 7, 5, 4)).astype(np.float32))
    soft[0, 0, 0, :] = [0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0]  # rounding ties and the top
    stored = quantize_soft_labels(soft, "uint8")
    expected = np.rint(np.clip(soft, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(stored, expected)
    assert stored.dtype == np.uint8 and stored.flags.f_contiguous
    c_ordered = np.ascontiguousarray(soft)  # any layout in, Fortran order out
    np.testing.assert_array_equal(quantize_soft_labels(c_ordered, "uint8"), expected)


@pytest.mark.parametrize(("bad", "message"), [(3, "got min 0, max 3"), (-1, "got min -1, max 2")])
def test_out_of_range_labels_are_refused_before_a_kernel_runs(bad: int, message: str) -> None:
    label = np.zeros((6, 5, 4), dtype=np.int16)
    label[0, 0, :2] = (bad, 2)
    superpixels = blocky_superpixels(label.shape, 2, masked=False)
    soft = np.zeros(label.shape + (3,), dtype=np.float32, order="F")
    with pytest.raises(ValueError, match=re.escape(f"label: expected values [0, 3), {message}")):
        one_hot(label, num_classes=3)
    with pytest.raises(ValueError, match=re.escape(f"label: expected values [0, 3), {message}")):
        soften_restricted_cpu(soft, label, superpixels, num_classes=3, spacing=None, threads=1)


def test_superpixel_ids_below_minus_one_are_refused() -> None:
    label = random_label((6, 5, 4), 3, seed=1)
    superpixels = blocky_superpixels(label.shape, 2, masked=True)
    superpixels[-1, -1, -1] = -2
    soft = one_hot(label, num_classes=3)
    with pytest.raises(ValueError, match=re.escape("superpixels: expected values [-1, 2147483647), got min -2")):
        soften_restricted_cpu(soft, label, superpixels, num_classes=3, spacing=None, threads=1)


def test_quantisation_and_superpixel_ids_are_checked_before_a_kernel_runs() -> None:
    soft = np.zeros(10, dtype=np.float32)
    with pytest.raises(ValueError, match="out: expected 10 values like soft, got 9"):
        soften_cpu.quantize_uint8(soft, np.empty(9, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 'uint8' for soft labels already stored as uint8"):
        quantize_soft_labels(np.zeros((2, 2, 2, 2), dtype=np.uint8), "float32")
    label = random_label((6, 5, 4), 3, seed=1)
    superpixels = blocky_superpixels(label.shape, 2, masked=False).astype(np.int64)
    superpixels[0, 0, 0] = 2**31  # would wrap to a negative int32 row
    with pytest.raises(ValueError, match=re.escape("superpixels: expected values [-1, 2147483647)")):
        soften_restricted_cpu(one_hot(label, num_classes=3), label, superpixels, num_classes=3, spacing=None, threads=1)
