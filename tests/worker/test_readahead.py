"""Read-ahead: held bytes are the files' own, and anything it cannot hold falls back to disk."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from worker import nifti_io
from worker.errors import InputError
from worker.readahead import ReadAhead


def test_holds_each_gzip_file_once(tmp_path: Path, small_study: dict) -> None:
    paths = [*small_study["images"], small_study["label"]]
    with ReadAhead(paths + paths[:1]) as read_ahead:
        held = read_ahead.open(paths[0])
        assert held is not None and held.read() == gzip.decompress(Path(paths[0]).read_bytes())
        assert read_ahead.open(paths[0]) is None  # let go after the first open
        assert read_ahead.open(tmp_path / "never-asked.nii.gz") is None


def test_read_study_gives_the_same_study_with_and_without(small_study: dict) -> None:
    plain = nifti_io.read_study(small_study["images"], small_study["label"], num_classes=4)
    with ReadAhead([*small_study["images"], small_study["label"]]) as read_ahead:
        ahead = nifti_io.read_study(small_study["images"], small_study["label"], num_classes=4, read_ahead=read_ahead)
    np.testing.assert_array_equal(ahead.image, plain.image)
    np.testing.assert_array_equal(ahead.label, plain.label)
    assert ahead.label.dtype == plain.label.dtype and ahead.spacing_mm == plain.spacing_mm


@pytest.mark.parametrize("damage", ["truncated", "two members", "over the limit", "missing"])
def test_files_it_cannot_hold_are_read_from_disk(tmp_path: Path, small_study: dict, damage: str) -> None:
    source = Path(small_study["label"])
    path = tmp_path / "damaged.nii.gz"
    data = source.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "two members":
        path.write_bytes(data + gzip.compress(b"trailing"))
    elif damage != "missing":
        path.write_bytes(data)
    with ReadAhead([path], budget_bytes=100 if damage == "over the limit" else 1 << 30) as read_ahead:
        assert read_ahead.open(path) is None
    if damage == "truncated":  # the reader's own open then names the problem
        affine = nifti_io.open_nifti(small_study["images"][0]).affine
        with ReadAhead([path]) as read_ahead, pytest.raises(InputError, match="damaged.nii.gz: voxel data"):
            nifti_io.read_label(path, num_classes=4, ref_path=small_study["images"][0], ref_shape=(17, 19, 11),
                                ref_affine=affine, read_ahead=read_ahead)  # fmt: skip


def test_uncompressed_files_are_not_held(tmp_path: Path) -> None:
    path = tmp_path / "plain.nii"
    path.write_bytes(b"\0" * 400)
    with ReadAhead([path]) as read_ahead:
        assert read_ahead.open(path) is None


def test_a_study_over_the_budget_is_not_read_ahead(small_study: dict) -> None:
    paths = [*small_study["images"], small_study["label"]]
    one_file = len(gzip.decompress(Path(paths[0]).read_bytes()))
    with ReadAhead(paths, budget_bytes=2 * one_file) as read_ahead:  # the four files state more
        assert all(read_ahead.open(p) is None for p in paths)
