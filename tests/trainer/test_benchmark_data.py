"""The MNI152 benchmark: shapes, determinism, perturbation strength, nnU-Net layout."""

import json

import nibabel as nib
import numpy as np
import pytest

from softlabel.trainer import benchmark_data as bd

SPACING_MM = 4.0  # coarse, so the tests are fast


@pytest.fixture(scope="module")
def template():
    return bd.load_template(SPACING_MM)


def test_template_classes_and_geometry(template):
    assert template.probs.shape == (3, *template.t1.shape)
    assert np.allclose(np.diag(template.affine)[:3], SPACING_MM)
    inside = template.brain > 0.5
    assert inside.mean() > 0.3  # cropped to the brain's bounding box
    assert np.all(template.probs[:, ~inside] == 0)
    # WM is brighter than GM, GM brighter than CSF in the T1 template.
    labels = 1 + template.probs.argmax(0)
    means = [template.t1[inside & (labels == c)].mean() for c in (1, 2, 3)]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_strength_zero_gives_clean_annotations(template, kind):
    case = bd.make_case(template, kind=kind, strength=0.0, crop_vox=(12, 14, 10), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(case.annotation, case.clean)
    assert set(np.unique(case.clean)) <= {0, 1, 2, 3}


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_disagreement_grows_with_strength(template, kind):
    fractions = [
        bd.make_case(template, kind=kind, strength=s, crop_vox=(16, 16, 16), rng=np.random.default_rng(5)).info["disagreement_in_brain"]
        for s in (0.0, 0.3, 1.0)
    ]
    assert fractions[0] == 0.0 < fractions[1] < fractions[2]


def test_shapes_and_affines(template):
    flat = bd.make_case(template, kind="2d", strength=0.5, crop_vox=(16, 16, 16), rng=np.random.default_rng(0))
    assert flat.image.shape == flat.clean.shape == flat.annotation.shape
    assert flat.image.shape[2] == 1 and flat.image.shape[0] % 16 == 0 and flat.image.shape[1] % 16 == 0
    assert set(np.unique(flat.clean)) == {0, 1, 2, 3}
    crop = bd.make_case(template, kind="3d", strength=0.5, crop_vox=(12, 14, 10), rng=np.random.default_rng(0))
    assert crop.image.shape == (12, 14, 10) and crop.image.dtype == np.float32 and crop.clean.dtype == np.uint8
    # The affine places voxel (0, 0, 0) of the crop at its origin in the template.
    expected = template.affine @ np.append(crop.info["origin_vox"], 1.0)
    np.testing.assert_allclose(crop.affine[:, 3], expected)


def test_cases_are_seeded_and_differ(template):
    a = bd.make_case(template, kind="3d", strength=0.5, crop_vox=(12, 12, 12), rng=np.random.default_rng(1))
    b = bd.make_case(template, kind="3d", strength=0.5, crop_vox=(12, 12, 12), rng=np.random.default_rng(1))
    c = bd.make_case(template, kind="3d", strength=0.5, crop_vox=(12, 12, 12), rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.annotation, b.annotation)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"kind": "4d", "strength": 0.5}, "kind: expected"), ({"kind": "2d", "strength": 1.5}, r"strength: expected a value in \[0, 1\]")],
)
def test_bad_case_arguments(template, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bd.make_case(template, crop_vox=(8, 8, 8), rng=np.random.default_rng(0), **kwargs)


def test_write_benchmark_layout(tmp_path):
    ds = bd.write_benchmark(tmp_path, strength=0.4, n_2d=2, n_3d=1, seed=7, spacing_mm=SPACING_MM, crop_vox=(12, 12, 12))
    on_disk = json.loads((tmp_path / "dataset.json").read_text())
    assert on_disk == ds
    assert ds["channel_names"] == {"0": "T1"} and ds["file_ending"] == ".nii.gz" and ds["numTraining"] == 3
    assert ds["labels"] == {"background": 0, "CSF": 1, "GM": 2, "WM": 3}
    assert sorted(ds["softlabel_benchmark"]["cases"]) == ["mni2d_000", "mni2d_001", "mni3d_000"]
    for case in ds["softlabel_benchmark"]["cases"]:
        image = nib.load(tmp_path / "imagesTr" / f"{case}_0000.nii.gz")
        label = nib.load(tmp_path / "labelsTr" / f"{case}.nii.gz")
        clean = nib.load(tmp_path / "labelsTr_clean" / f"{case}.nii.gz")
        assert image.shape == label.shape == clean.shape
        np.testing.assert_allclose(label.affine, image.affine)
        assert label.header.get_zooms() == pytest.approx((SPACING_MM,) * 3)
        assert not np.array_equal(np.asarray(label.dataobj), np.asarray(clean.dataobj))


def test_write_benchmark_rejects_no_cases(tmp_path):
    with pytest.raises(ValueError, match="at least one case"):
        bd.write_benchmark(tmp_path, n_2d=0, n_3d=0)


def test_offset_boundary_moves_one_boundary_by_distance():
    labels = np.full((9, 9), 3, np.uint8)  # WM...
    labels[3:6, 3:6] = 2  # ...around a GM core...
    labels[0] = 1  # ...with a CSF edge
    grown = bd.offset_boundary(labels, 2, 3, 1.0, 1.0)
    expected = labels.copy()
    expected[2:7, 3:6] = expected[3:6, 2:7] = 2  # one voxel further, 4-connected (distance <= 1 mm)
    np.testing.assert_array_equal(grown, expected)
    np.testing.assert_array_equal(bd.offset_boundary(labels, 2, 3, 2.0, 2.0), grown)  # distances are in mm
    shrunk = bd.offset_boundary(labels, 2, 3, -1.0, 1.0)
    assert (shrunk == 2).sum() == 1 and shrunk[4, 4] == 2  # WM takes GM's rim
    assert (bd.offset_boundary(labels, 2, 3, 9.0, 1.0)[0] == 1).all()  # other classes keep their labels


def test_block_levels_keep_a_gap_between_train_and_test(template):
    train, test = bd.block_levels(template, block_mm=8.0, gap_mm=4.0)
    assert len(train) and len(test) and not set(train) & set(test)
    gaps = np.abs(train[:, None] - test[None, :]) * template.spacing_mm
    assert gaps.min() > 4.0  # a whole gap of left-out levels lies between them


def test_systematic_gm_offset_adds_disagreement(template):
    base = bd.make_case(template, kind="2d", strength=0.0, crop_vox=None, rng=np.random.default_rng(4))
    grown = bd.make_case(template, kind="2d", strength=0.0, crop_vox=None, rng=np.random.default_rng(4), gm_offset_mm=SPACING_MM)
    np.testing.assert_array_equal(base.clean, grown.clean)
    assert (grown.annotation == 2).sum() > (base.clean == 2).sum() and grown.info["disagreement_in_brain"] > 0
    changed = grown.annotation != base.clean
    assert (grown.annotation[changed] == 2).all() and (base.clean[changed] == 3).all()  # GM drawn over WM only


def test_write_benchmark_with_a_held_out_test_block(tmp_path, template):
    ds = bd.write_benchmark(tmp_path, strength=0.3, n_2d=3, n_3d=0, n_2d_test=2, seed=1, spacing_mm=SPACING_MM, gm_offset_mm=4.0)
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert splits == {"train": ["mni2d_000", "mni2d_001", "mni2d_002"], "val": [], "test": ["mni2dtest_000", "mni2dtest_001"]}
    train_levels, test_levels = bd.block_levels(template)
    levels = {c: info["origin_vox"][2] for c, info in ds["softlabel_benchmark"]["cases"].items()}
    assert all(levels[c] in train_levels for c in splits["train"]) and all(levels[c] in test_levels for c in splits["test"])
    assert ds["softlabel_benchmark"]["gm_offset_mm"] == 4.0 and ds["softlabel_benchmark"]["split"] == {"block_mm": 8.0, "gap_mm": 4.0}
    with pytest.raises(ValueError, match="n_2d_test: expected"):
        bd.write_benchmark(tmp_path / "bad", n_2d=0, n_3d=1, n_2d_test=2, spacing_mm=SPACING_MM)
