"""NIfTI reading and writing: every bad input gets its own error and nothing is written."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers.studies import SPACING
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.errors import InputError
from softlabel.worker.engine.io import nifti as nifti_io
from softlabel.worker.engine.pipeline import soften_arrays, soften_files


def save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([*SPACING, 1.0]) if affine is None else affine), path)
    return path


def test_reads_channels_in_order(small_study: dict) -> None:
    study = nifti_io.read_study(small_study["images"], small_study["label"], num_classes=4)
    assert study.image.shape == (17, 19, 11, 3) and study.image.dtype == np.float32
    np.testing.assert_allclose(study.image, small_study["array_image"], rtol=1e-6)
    np.testing.assert_array_equal(study.label, small_study["array_label"])
    assert study.spacing_mm == pytest.approx(SPACING)


def test_reads_one_4d_file(tmp_path: Path, small_study: dict) -> None:
    four_d = save(tmp_path / "all.nii.gz", small_study["array_image"])
    study = nifti_io.read_study([four_d], small_study["label"], num_classes=4)
    np.testing.assert_allclose(study.image, small_study["array_image"], rtol=1e-6)


def test_each_channel_is_handed_over_once_in_place(tmp_path: Path, small_study: dict) -> None:
    """on_channel(image, c) runs once per channel, with channel c already read; a four-channel
    study as one 4D file and as channel files."""
    four = np.concatenate([small_study["array_image"], small_study["array_image"][..., :1] * 2], axis=-1)
    layouts = {"4D": [save(tmp_path / "all.nii.gz", four)],
               "files": [save(tmp_path / f"c_{c:04d}.nii.gz", four[..., c]) for c in range(4)]}  # fmt: skip
    for name, images in layouts.items():
        seen: dict[int, np.ndarray] = {}

        def keep(image: np.ndarray, channel: int) -> None:
            assert channel not in seen, name
            seen[channel] = image[..., channel].copy()

        study = nifti_io.read_study(images, small_study["label"], num_classes=4, on_channel=keep)
        assert sorted(seen) == [0, 1, 2, 3], name
        for channel, values in seen.items():
            np.testing.assert_array_equal(values, study.image[..., channel])


def test_an_error_in_on_channel_reaches_the_caller(small_study: dict) -> None:
    def fail(image: np.ndarray, channel: int) -> None:
        raise RuntimeError(f"channel {channel}")

    with pytest.raises(RuntimeError, match="channel"):
        nifti_io.read_study(small_study["images"], small_study["label"], num_classes=4, on_channel=fail)


def test_cpu_pipeline_rescaling_while_reading_equals_the_array_pipeline(tmp_path: Path, small_study: dict) -> None:
    """soften_files rescales the channels as they are read (no "rescale" stage on the CPU);
    the soft labels and superpixels equal those of soften_arrays on the study as read."""
    config = SofteningConfig(n_segments=40)
    out = tmp_path / "soft.nii.gz"
    result = soften_files(small_study["images"], small_study["label"], out, config=config, num_classes=4, backend="cpu")
    assert "rescale" not in result.timings_s and "read" in result.timings_s
    study = result.study
    from_arrays = soften_arrays(study.image, study.label, config=config, num_classes=4, spacing_mm=study.spacing_mm,
                                backend="cpu", as_stored=True)  # fmt: skip
    assert "rescale" in from_arrays.timings_s
    np.testing.assert_array_equal(result.superpixels, from_arrays.superpixels)
    np.testing.assert_array_equal(nib.load(out).dataobj.get_unscaled(), from_arrays.soft)


@pytest.mark.parametrize("as_hw1", [False, True])
def test_reads_2d_images(tmp_path: Path, as_hw1: bool) -> None:
    label = np.zeros((12, 9), dtype=np.uint8)
    label[3:8, 2:6] = 1
    image = np.random.default_rng(0).random((12, 9)).astype(np.float32)
    shape = (12, 9, 1) if as_hw1 else (12, 9)
    img_path = save(tmp_path / "i_0000.nii.gz", image.reshape(shape))
    lab_path = save(tmp_path / "l.nii.gz", label.reshape(shape))
    study = nifti_io.read_study([img_path], lab_path, num_classes=2)
    assert study.image.shape == (12, 9, 1) and study.label.shape == (12, 9) and len(study.spacing_mm) == 2
    out = tmp_path / "soft.nii.gz"
    soften_files([img_path], lab_path, out, config=SofteningConfig(n_segments=6), num_classes=2, backend="cpu")
    assert nib.load(out).shape == (12, 9, 1, 2)


def test_uint8_round_trip_within_half_a_step(tmp_path: Path) -> None:
    soft = np.random.default_rng(1).random((7, 6, 5, 3)).astype(np.float32)
    path = tmp_path / "soft.nii.gz"
    nifti_io.write_soft_labels(path, nifti_io.quantize_soft_labels(soft, "uint8"), affine=np.eye(4))
    img = nib.load(path)
    assert img.get_data_dtype() == np.uint8
    assert img.dataobj.slope == pytest.approx(1 / 255)  # scl_slope, read by the proxy
    np.testing.assert_allclose(nifti_io.read_soft_labels(path), soft, atol=1 / 510 + 1e-7)


def test_float32_output_is_exact(tmp_path: Path) -> None:
    soft = np.random.default_rng(2).random((4, 5, 3, 2)).astype(np.float32)
    path = tmp_path / "soft.nii.gz"
    nifti_io.write_soft_labels(path, nifti_io.quantize_soft_labels(soft, "float32"), affine=np.eye(4))
    np.testing.assert_array_equal(nifti_io.read_soft_labels(path), soft)


def _bad_cases(tmp: Path, study: dict) -> dict[str, tuple[list[Path], Path, str]]:
    """name -> (image paths, label path, expected message fragment)."""
    images, label = study["images"], study["label"]
    lab, img0 = study["array_label"], study["array_image"][..., 0]
    shifted = np.diag([*SPACING, 1.0])
    shifted[0, 3] = 0.5
    truncated = tmp / "trunc.nii.gz"
    full = images[0].read_bytes()
    truncated.write_bytes(full[: len(full) // 2])  # header intact, voxel data cut
    not_nifti = tmp / "notes.nii.gz"
    not_nifti.write_bytes(gzip.compress(b"this is not an image"))
    nan_img = img0.copy()
    nan_img[3, 4, 5] = np.nan
    return {
        "channel shape": ([images[0], save(tmp / "s.nii.gz", img0[:-1])], label, "shape: expected (17, 19, 11)"),
        "label shape": (images, save(tmp / "ls.nii.gz", lab[:, :-1]), "shape: expected (17, 19, 11)"),
        "affine": (images, save(tmp / "la.nii.gz", lab, shifted), "affine: expected within"),
        "non-integer label": (images, save(tmp / "lf.nii.gz", lab + np.float32(0.5)), "expected integers"),
        "negative label": (images, save(tmp / "ln.nii.gz", lab.astype(np.int16) - 1), "min -1"),
        "label >= K": (images, save(tmp / "lk.nii.gz", lab * 2), "max 6"),
        "NaN image": ([save(tmp / "n.nii.gz", nan_img)], label, "1 NaN/Inf voxels"),
        "constant image": ([save(tmp / "c.nii.gz", np.full_like(img0, 7.0))], label, "every voxel = 7"),
        "empty label": (images, save(tmp / "le.nii.gz", np.zeros_like(lab)), "only background"),
        "5 dimensions": ([save(tmp / "5d.nii.gz", img0[..., None, None, None].repeat(2, 3))], label, "dimensions: expected at most 4"),
        "truncated": ([truncated], label, "expected a complete, readable file"),
        "not NIfTI": ([not_nifti], label, "expected a readable NIfTI file"),
        "missing": ([tmp / "nope.nii.gz"], label, "no such file"),
    }


BAD_CASES = [
    "channel shape", "label shape", "affine", "non-integer label", "negative label", "label >= K", "NaN image",
    "constant image", "empty label", "5 dimensions", "truncated", "not NIfTI", "missing",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_names_file_and_writes_nothing(tmp_path: Path, small_study: dict, case: str) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    images, label, fragment = _bad_cases(bad_dir, small_study)[case]
    out_dir = tmp_path / "out"
    with pytest.raises(InputError, match=re.escape(fragment)) as info:
        soften_files(images, label, out_dir / "soft.nii.gz", config=SofteningConfig(), num_classes=4,
                     superpixels_out=out_dir / "sp.nii.gz", backend="cpu")  # fmt: skip
    assert info.value.file is not None and Path(info.value.file).name in str(info.value)
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_voxel_limit_is_checked_from_the_header(small_study: dict) -> None:
    with pytest.raises(InputError, match="voxel count: expected at most 1000"):
        nifti_io.read_study(small_study["images"], small_study["label"], num_classes=4, max_voxels=1000)


def _copies(folder: Path, images: list[Path]) -> list[Path]:
    folder.mkdir()
    return [folder / f"image_{i}.nii" for i in range(len(images))] + [folder / "label.nii"]


@pytest.mark.parametrize("with_copies", [False, True], ids=["in memory", "via copies"])
@pytest.mark.parametrize("case", BAD_CASES)
def test_check_study_raises_what_read_study_raises(tmp_path: Path, small_study: dict, case: str, with_copies: bool) -> None:
    images, label, fragment = _bad_cases(tmp_path, small_study)[case]
    copies = _copies(tmp_path / "copies", images) if with_copies else None
    with pytest.raises(InputError, match=re.escape(fragment)) as checked:
        nifti_io.check_study(images, label, num_classes=4, copies=copies)
    with pytest.raises(InputError) as read:
        nifti_io.read_study(images, label, num_classes=4)
    if with_copies:  # the same file, field and expectation; a truncated stream's own words differ
        assert (checked.value.file, checked.value.field, checked.value.expected) == (read.value.file, read.value.field, read.value.expected)
    else:
        assert str(checked.value) == str(read.value)


def test_check_study_gives_the_grid_read_study_gives(tmp_path: Path, small_study: dict) -> None:
    for images in (small_study["images"], [save(tmp_path / "all.nii.gz", small_study["array_image"])]):
        files = nifti_io.check_study(images, small_study["label"], num_classes=4)
        study = nifti_io.read_study(images, small_study["label"], num_classes=4)
        assert files.spatial_shape == study.spatial_shape and files.num_channels == study.image.shape[-1] == 3
        assert files.spacing_mm == study.spacing_mm and np.array_equal(files.affine, study.affine)


def test_check_study_leaves_copies_that_read_as_the_study(tmp_path: Path, small_study: dict) -> None:
    images, label = small_study["images"], small_study["label"]
    copies = _copies(tmp_path / "copies", images)
    nifti_io.check_study(images, label, num_classes=4, copies=copies)
    for source, copy in zip([*images, label], copies):
        assert copy.read_bytes() == gzip.decompress(source.read_bytes())
    ours, theirs = nifti_io.read_study(copies[:-1], copies[-1], num_classes=4), nifti_io.read_study(images, label, num_classes=4)
    assert np.array_equal(ours.image, theirs.image) and np.array_equal(ours.label, theirs.label)
    assert np.array_equal(ours.affine, theirs.affine) and ours.spacing_mm == theirs.spacing_mm


def test_a_copy_holds_only_the_voxels_its_header_declares(tmp_path: Path, small_study: dict) -> None:
    """Bytes past the declared voxels are never written (a bomb's size is bounded by its
    checked header), and a file of several gzip members is copied whole."""
    images, label = small_study["images"], small_study["label"]
    plain = gzip.decompress(images[0].read_bytes())
    padded = tmp_path / "padded.nii.gz"
    padded.write_bytes(gzip.compress(plain + bytes(1 << 20)))
    members = tmp_path / "members.nii.gz"
    members.write_bytes(gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]))
    for first in (padded, members):
        copies = _copies(tmp_path / f"copies_{first.stem}", images)
        nifti_io.check_study([first, *images[1:]], label, num_classes=4, copies=copies)
        assert copies[0].read_bytes() == plain


def test_a_copy_that_cannot_be_written_is_not_blamed_on_the_input(tmp_path: Path, small_study: dict) -> None:
    """Writing the copies is the server's business: a missing folder (or a full disk) is an
    OSError, not an InputError naming the uploaded file."""
    images, label = small_study["images"], small_study["label"]
    copies = [tmp_path / "missing" / p.name for p in _copies(tmp_path / "copies", images)]
    with pytest.raises(FileNotFoundError):
        nifti_io.check_study(images, label, num_classes=4, copies=copies)
