"""The superpixel softener: SPEC's worked example, hand-computed cases, properties, and
the region-restricted computation against the naive full-volume one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from helpers.soft_labels import assert_same_soft_labels
from helpers.studies import random_label
from softlabel.worker.engine.boundaries import face_boundary
from softlabel.worker.engine.softening.superpixel_soft import bounding_boxes, mixed_superpixels, superpixel_soft_labels


def test_spec_worked_example() -> None:
    label = np.array([[0, 0, 1, 1, 1]])
    one_superpixel = np.zeros_like(label)
    q = superpixel_soft_labels(label, one_superpixel, num_classes=2)[..., 1]
    np.testing.assert_allclose(q[0], [1 / 6, 0.25, 0.5, 0.75, 5 / 6], rtol=1e-6)


def test_hand_computed_2d_with_two_superpixels() -> None:
    # Class 1 fills columns 2-4. Superpixel 0 (column 0) is all class 0; superpixel 1
    # (columns 1-4) straddles the boundary.
    label = np.array([[0, 0, 1, 1, 1]] * 3)
    superpixels = np.array([[0, 1, 1, 1, 1]] * 3)
    soft = superpixel_soft_labels(label, superpixels, num_classes=2)
    expected_c1 = np.array([0.0, 0.25, 0.5, 0.75, 5 / 6])  # column 0 keeps its hard 0
    np.testing.assert_allclose(soft[..., 1], np.tile(expected_c1, (3, 1)), rtol=1e-6)
    # Class 0's boundary is column 1 (its last column); d = +1 at column 0 is outside the
    # mixed superpixel, so it stays 1.
    expected_c0 = np.array([1.0, 0.5, 0.25, 1 / 6, 0.125])
    np.testing.assert_allclose(soft[..., 0], np.tile(expected_c0, (3, 1)), rtol=1e-6)


def test_hand_computed_3d_cube_in_mm() -> None:
    # A 1-voxel class-1 cube in the middle of a 3x3x3 volume, one superpixel, spacing in mm.
    label = np.zeros((3, 3, 3), dtype=np.uint8)
    label[1, 1, 1] = 1
    spacing = (2.0, 1.0, 3.0)
    soft = superpixel_soft_labels(label, np.zeros_like(label), num_classes=2, spacing=spacing)
    q1 = soft[..., 1]
    assert q1[1, 1, 1] == pytest.approx(0.5)  # the cube is its own boundary
    d = -np.sqrt(2.0**2 + 1.0**2 + 3.0**2)  # corner voxel (0, 0, 0)
    assert q1[0, 0, 0] == pytest.approx(0.5 * (d / (1 + abs(d)) + 1))
    assert q1[1, 0, 1] == pytest.approx(0.5 * (-1 / 2 + 1))  # one step of 1 mm along y


def test_face_boundary_ignores_image_edge_and_diagonals() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    expected = np.array([[0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(face_boundary(mask), expected)
    assert not face_boundary(np.ones((3, 5, 4), dtype=bool)).any()


@pytest.mark.parametrize("shape", [(23, 31), (13, 17, 9)])
def test_properties(shape: tuple[int, ...]) -> None:
    num_classes = 5
    label = random_label(shape, num_classes, seed=3)
    superpixels = (np.indices(shape).sum(axis=0) // 4 % 7).astype(np.int32)  # striped superpixels
    soft = superpixel_soft_labels(label, superpixels, num_classes=num_classes)
    onehot = np.eye(num_classes, dtype=np.float32)[label]
    assert soft.dtype == np.float32 and soft.shape == shape + (num_classes,)
    assert soft.min() >= 0 and soft.max() <= 1
    mixed = mixed_superpixels(label, superpixels, num_classes=num_classes)
    for c in range(num_classes):
        in_mixed = mixed[superpixels + 1, c]
        np.testing.assert_array_equal(soft[..., c][~in_mixed], onehot[..., c][~in_mixed])
        boundary = face_boundary(label == c) & in_mixed
        np.testing.assert_allclose(soft[..., c][boundary], 0.5)
        assert (soft[..., c][in_mixed & (label == c)] >= 0.5).all()
        assert (soft[..., c][in_mixed & (label != c)] < 0.5).all()


def test_absent_class_is_zero_and_masked_voxels_stay_hard() -> None:
    label = random_label((15, 14, 6), 3, seed=5)
    superpixels = np.full(label.shape, -1, dtype=np.int32)  # every voxel outside superpixels
    soft = superpixel_soft_labels(label, superpixels, num_classes=5)
    np.testing.assert_array_equal(soft, np.eye(5, dtype=np.float32)[label])
    assert not soft[..., 3:].any()


def test_bounding_boxes_match_find_objects() -> None:
    superpixels = (np.indices((9, 8, 7)).sum(axis=0) // 3).astype(np.int32)
    start, stop = bounding_boxes(superpixels + 1, count=int(superpixels.max()) + 2)
    for s, box in enumerate(ndimage.find_objects(superpixels + 1), start=1):
        assert [b.start for b in box] == start[s].tolist()
        assert [b.stop for b in box] == stop[s].tolist()


@pytest.mark.parametrize(
    ("shape", "num_classes", "n_segments", "spacing", "seed"),
    [
        ((41, 37), 12, 40, None, 0),
        ((41, 37), 30, 90, (0.7, 1.9), 1),
        ((29, 23, 17), 9, 60, None, 2),
        ((29, 23, 17), 40, 150, (1.0, 0.6, 2.5), 3),
        ((37, 21, 12), 6, 8, (3.0, 1.0, 1.0), 4),  # few big superpixels: margins must grow
    ],
)
def test_restricted_equals_naive(shape, num_classes, n_segments, spacing, seed) -> None:
    from skimage.segmentation import slic

    rng = np.random.default_rng(seed)
    label = random_label(shape, num_classes, seed=seed)
    image = rng.random(shape + (2,)).astype(np.float32)
    superpixels = slic(image, n_segments=n_segments, channel_axis=-1, convert2lab=False, start_label=0)
    fast = superpixel_soft_labels(label, superpixels, num_classes=num_classes, spacing=spacing)
    naive = superpixel_soft_labels(label, superpixels, num_classes=num_classes, spacing=spacing, restrict=False)
    assert_same_soft_labels(fast, naive, spacing)


def test_restricted_equals_naive_with_disconnected_superpixels() -> None:
    # A user-given map whose superpixels are scattered (not connected): the margin check must
    # still find the exact distances.
    rng = np.random.default_rng(7)
    label = random_label((30, 26, 10), 7, seed=7)
    superpixels = rng.integers(0, 25, size=label.shape).astype(np.int32)
    fast = superpixel_soft_labels(label, superpixels, num_classes=7, spacing=(1.0, 2.0, 0.5))
    naive = superpixel_soft_labels(label, superpixels, num_classes=7, spacing=(1.0, 2.0, 0.5), restrict=False)
    assert_same_soft_labels(fast, naive, (1.0, 2.0, 0.5))


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected shape"):
        superpixel_soft_labels(np.zeros((3, 3), int), np.zeros((3, 4), int), num_classes=2)


def test_label_boundaries_is_the_union_of_class_boundaries() -> None:
    from softlabel.worker.engine.boundaries import label_boundaries

    label = random_label((14, 11, 7), 6, seed=9)
    union = np.zeros(label.shape, dtype=bool)
    for c in range(6):
        union |= face_boundary(label == c)
    np.testing.assert_array_equal(label_boundaries(label), union)
