"""``softlabel metrics`` through typer's CliRunner on small NIfTI files."""

import json
import re

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from softlabel.trainer.cli import app

AFFINE = np.diag([0.5, 2.0, 1.5, 1.0])
MOVED = AFFINE + np.array([[0, 0, 0, 1.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # 1 mm along x


def save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), path)
    return str(path)


@pytest.fixture
def maps(tmp_path):
    truth = np.zeros((8, 6, 5), np.uint8)
    truth[2:5, 1:4, 1:3] = 1
    truth[5:7, 2:4, 2:4] = 2
    pred = np.zeros_like(truth)
    pred[2:5, 1:4, 1:3] = 1  # class 1 exact, class 2 missing
    return save(tmp_path / "pred.nii.gz", pred), save(tmp_path / "truth.nii.gz", truth), tmp_path


def run(*args):
    return CliRunner().invoke(app, ["metrics", *args])


def test_prints_json_per_class_and_mean(maps):
    pred, truth, _ = maps
    res = run("--pred", pred, "--truth", truth, "--num-classes", "4")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["spacing_mm"] == [0.5, 2.0, 1.5]
    assert out["classes"]["1"]["dice"] == 1.0 and out["classes"]["1"]["hd95"] == 0.0
    assert out["classes"]["2"]["status"] == "missing_in_pred" and out["classes"]["2"]["hd95"] == out["penalty_mm"] > 0
    assert out["classes"]["3"]["status"] == "absent"
    assert out["mean"]["dice"] == pytest.approx(0.5)
    assert out["nan_counts"]["hd95"] == 0


def test_ignore_is_repeatable(maps):
    pred, truth, _ = maps
    out = json.loads(run("--pred", pred, "--truth", truth, "--num-classes", "4", "--ignore", "2", "--ignore", "3").output)
    assert list(out["classes"]) == ["1"] and out["mean"]["dice"] == 1.0


def test_float_labels_with_whole_values_are_accepted(maps):
    pred, truth, tmp = maps
    as_float = save(tmp / "pred_float.nii.gz", np.asarray(nib.load(pred).dataobj).astype(np.float32))
    assert run("--pred", as_float, "--truth", truth).exit_code == 0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda tmp: save(tmp / "small.nii.gz", np.zeros((8, 6, 4), np.uint8)), r"small.nii.gz: shape: expected \(8, 6, 5\)"),
        (lambda tmp: save(tmp / "moved.nii.gz", np.zeros((8, 6, 5), np.uint8), MOVED), "moved.nii.gz: affine: expected the affine of truth.nii.gz"),
        (lambda tmp: save(tmp / "soft.nii.gz", np.full((8, 6, 5), 0.5, np.float32)), "soft.nii.gz: voxel values: expected whole-number labels"),
        (lambda tmp: str(tmp / "missing.nii.gz"), "missing.nii.gz: file: expected an existing NIfTI file"),
    ],
)
def test_errors_name_the_file(maps, make, match):
    _, truth, tmp = maps
    res = run("--pred", make(tmp), "--truth", truth)
    assert res.exit_code == 1
    assert res.output.startswith("error: ")
    assert re.search(match, res.output)


@pytest.mark.parametrize("command", [
    ["train", "--dataset", "d", "--labelset", "l"],
    ["make-benchmark", "--n-2d", "1", "--n-3d", "0", "--spacing-mm", "4", "--upload"],
])  # fmt: skip
def test_commands_reach_the_service_named_by_softlabel_api_url(command, tmp_path) -> None:
    """The README exports SOFTLABEL_API_URL; a refused connection names the URL it tried."""
    unreachable = "http://127.0.0.1:9"
    args = [*command, "--out", str(tmp_path / "out"), "--cache-dir" if command[0] == "train" else "--seed",
            str(tmp_path / "cache") if command[0] == "train" else "0"]
    result = CliRunner().invoke(app, args, env={"SOFTLABEL_API_URL": unreachable, "SOFTLABEL_TOKEN": "t"})
    assert result.exit_code == 1 and unreachable in result.output, result.output
