"""Cases in memory, seeded case-level splits, boundary masks and patch sampling."""

import nibabel as nib
import numpy as np
import pytest

from softlabel.trainer.datasets import (
    Case,
    CaseFiles,
    PatchSampler,
    default_patch_size,
    load_case,
    split_cases,
)
from softlabel.worker.engine.boundaries import label_boundaries as boundary_mask

AFFINE = np.diag([0.8, 1.2, 2.5, 1.0])


def _write(tmp_path, name, data, slope=None):
    img = nib.Nifti1Image(data, AFFINE)
    if slope:
        img.header.set_slope_inter(slope, 0.0)
    nib.save(img, tmp_path / name)
    return tmp_path / name


def test_load_2d_case_with_uint8_soft_labels(tmp_path):
    label = np.zeros((6, 5, 1), np.uint8)
    label[1:4, 1:3] = 2
    soft = np.zeros((6, 5, 1, 3), np.uint8)
    soft[..., 0] = 255
    soft[1:4, 1:3, :, 2], soft[1:4, 1:3, :, 0] = 204, 51  # 0.8 and 0.2
    image = np.arange(30, dtype=np.float32).reshape(6, 5, 1)
    case = load_case(CaseFiles("c", (_write(tmp_path, "i.nii", image),), _write(tmp_path, "l.nii", label),
                               _write(tmp_path, "s.nii", soft, slope=1 / 255), _write(tmp_path, "t.nii", label)), num_classes=3)
    assert case.image.shape == (1, 6, 5) and case.label.shape == (6, 5) and case.soft.shape == (3, 6, 5)
    assert case.spatial_dims == 2 and case.spacing_mm == pytest.approx((0.8, 1.2))
    assert case.image.mean() == pytest.approx(0.0, abs=1e-5) and case.image.std() == pytest.approx(1.0, rel=1e-4)
    assert case.soft[2, 2, 1] == pytest.approx(0.8, abs=1e-6) and case.soft[0, 2, 1] == pytest.approx(0.2, abs=1e-6)
    np.testing.assert_array_equal(case.truth, case.label)


def test_load_2d_case_stored_with_two_axes(tmp_path):
    """A 2D study stored (X, Y): its soft labels come from the engine as (X, Y, 1, K)."""
    label = np.zeros((6, 5), np.uint8)
    label[2:5, 1:4] = 1
    soft = np.stack([1.0 - label, label], axis=-1).astype(np.float32)[:, :, None, :]
    case = load_case(CaseFiles("c", (_write(tmp_path, "i.nii", np.ones((6, 5), np.float32)),), _write(tmp_path, "l.nii", label),
                               _write(tmp_path, "s.nii", soft), _write(tmp_path, "t.nii", label)), num_classes=2)  # fmt: skip
    assert case.spatial_dims == 2 and case.label.shape == (6, 5) and case.soft.shape == (2, 6, 5)
    np.testing.assert_array_equal(case.soft[1], label)
    with pytest.raises(ValueError, match=r"s.nii: shape: expected \(6, 5, 2\)"):
        load_case(CaseFiles("c", (_write(tmp_path, "i.nii", np.ones((6, 5), np.float32)),), _write(tmp_path, "l.nii", label),
                            _write(tmp_path, "s.nii", soft[:, :4])), num_classes=2)  # fmt: skip


@pytest.mark.parametrize(
    ("label", "soft_shape", "match"),
    [
        (np.full((4, 4, 3), 3, np.uint8), None, r"expected integers in \[0, 3\)"),
        (np.zeros((4, 4, 3), np.uint8), (4, 4, 3, 2), r"s.nii: shape: expected \(4, 4, 3, 3\)"),
    ],
)
def test_load_case_errors(tmp_path, label, soft_shape, match):
    soft = _write(tmp_path, "s.nii", np.zeros(soft_shape, np.float32)) if soft_shape else None
    files = CaseFiles("c", (_write(tmp_path, "i.nii", np.zeros((4, 4, 3), np.float32)),), _write(tmp_path, "l.nii", label), soft)
    with pytest.raises(ValueError, match=match):
        load_case(files, num_classes=3)


def test_image_shape_must_match_label(tmp_path):
    files = CaseFiles("c", (_write(tmp_path, "i.nii", np.zeros((4, 4, 2), np.float32)),), _write(tmp_path, "l.nii", np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ValueError, match=r"i.nii: shape: expected \(4, 4, 3\)"):
        load_case(files, num_classes=2)


def test_split_is_seeded_disjoint_and_order_free():
    ids = [f"c{i:02d}" for i in range(20)]
    a = split_cases(ids, seed=3, val_fraction=0.2, test_fraction=0.25)
    b = split_cases(list(reversed(ids)), seed=3, val_fraction=0.2, test_fraction=0.25)
    assert a == b
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (11, 4, 5)
    assert sorted(a["train"] + a["val"] + a["test"]) == ids
    assert split_cases(ids, seed=4, val_fraction=0.2, test_fraction=0.25) != a


def test_split_small_and_invalid():
    s = split_cases(["a", "b", "c"], seed=0, val_fraction=0.1, test_fraction=0.1)
    assert [len(s[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    with pytest.raises(ValueError, match="at least one training case"):
        split_cases(["a", "b"], seed=0, val_fraction=0.5, test_fraction=0.5)


def test_boundary_mask_hand():
    label = np.array([[0, 0, 1], [0, 2, 1]])
    expected = np.array([[0, 1, 1], [1, 1, 1]], bool)  # every voxel with a differently labelled face neighbour
    np.testing.assert_array_equal(boundary_mask(label), expected)
    assert not boundary_mask(np.ones((3, 4, 2), int)).any()


def _case(shape, rng, *, soft=True, fg_at=None):
    label = np.zeros(shape, np.uint8)
    label[fg_at] = 1
    image = rng.normal(size=(2, *shape)).astype(np.float32)
    q = np.stack([label == 0, label == 1]).astype(np.float32) if soft else None
    return Case("c", image, label, q, None, np.eye(4), (1.0,) * len(shape))


def test_patches_pad_flip_and_keep_alignment():
    rng = np.random.default_rng(0)
    case = _case((5, 7), rng, fg_at=(slice(1, 3), slice(2, 4)))
    sampler = PatchSampler([case], (8, 8), with_soft=True)
    image, label, soft = sampler.sample(6, np.random.default_rng(1))
    assert image.shape == (6, 2, 8, 8) and label.shape == (6, 8, 8) and soft.shape == (6, 2, 8, 8)
    assert label.dtype == np.int64
    # soft channel 1 is the one-hot of the label everywhere, padding included (label 0, soft 0 there)
    np.testing.assert_array_equal(soft[:, 1] == 1, label == 1)
    assert (label == 1).sum(axis=(1, 2)).tolist() == [4] * 6  # the whole blob is inside every patch
    assert (image == case.image.min()).sum() >= 6 * 2 * (64 - 35)  # padded voxels


def test_foreground_oversampling_3d():
    rng = np.random.default_rng(0)
    case = _case((40, 40, 40), rng, soft=False, fg_at=(slice(30, 32), slice(3, 5), slice(20, 22)))
    always = PatchSampler([case], (8, 8, 8), foreground_fraction=1.0, boundary_fraction=0.0)
    never = PatchSampler([case], (8, 8, 8), foreground_fraction=0.0, boundary_fraction=0.0)
    assert all(always.sample(1, np.random.default_rng(s))[1].any() for s in range(20))
    assert sum(never.sample(1, np.random.default_rng(s))[1].any() for s in range(20)) < 5


def test_sampler_is_deterministic_and_checks_input():
    rng = np.random.default_rng(0)
    case = _case((12, 10), rng, fg_at=(slice(2, 5), slice(2, 5)))
    s = PatchSampler([case], (8, 8), with_soft=True)
    a, b = s.sample(4, np.random.default_rng(7)), s.sample(4, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="expected them for every case"):
        PatchSampler([_case((12, 10), rng, soft=False)], (8, 8), with_soft=True)
    with pytest.raises(ValueError, match="patch_size: expected 2 sizes"):
        PatchSampler([case], (8, 8, 8))


def test_default_patch_size():
    rng = np.random.default_rng(0)
    assert default_patch_size([_case((37, 50), rng), _case((40, 20), rng)], 2, 16) == (48, 64)
    assert default_patch_size([_case((120, 30, 97), rng)], 3, 8) == (96, 24, 80)  # 3/4 of each extent, at most 96


def test_3d_patches_move_inside_a_case_the_size_of_the_old_default():
    """The benchmark's 96^3 crops: the default patch is smaller, so patches differ in position."""
    rng = np.random.default_rng(0)
    case = _case((96, 96, 96), rng)
    patch = default_patch_size([case], 3, 8)
    assert patch == (72, 72, 72)
    case.image[0] = np.indices(case.label.shape)[0]  # channel 0 holds each voxel's x index
    sampler = PatchSampler([case], patch)
    starts = {int(sampler.sample(1, rng)[0][0, 0].min()) for _ in range(12)}  # a flip keeps the smallest x
    assert len(starts) > 1 and max(starts) <= 96 - 72
