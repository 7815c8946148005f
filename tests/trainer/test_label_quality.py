"""softlabel label-quality: the metrics by hand, uint8 decoding, un-normalised soft labels,
the folder form, the CLI and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from softlabel.trainer.cli import app
from softlabel.trainer.label_quality import quality, score_case, score_folders

TRUTH = np.array([0, 0, 1, 1]).reshape(4, 1, 1)
LABEL = np.array([0, 1, 1, 1]).reshape(4, 1, 1)  # one error, at voxel 1
Q = np.array([[1, 0], [0.5, 0.5], [0.25, 0.75], [0, 1]], dtype=np.float32).reshape(4, 1, 1, 2)
BY_HAND = {
    "brier": (0 + 0.5 + 0.125 + 0) / 4,  # voxel 1: (0.5-1)^2 + 0.5^2; voxel 2: 0.25^2 + 0.25^2
    "brier_errors": 0.5,
    "error_fraction": 0.25,
    "softened_fraction": 0.5,
    "error_softened_fraction": 1.0,
    "enrichment": 2.0,
    "mean_p_true_on_errors": 0.5,
}


def save(array: np.ndarray, path: Path, *, slope: float | None = None) -> Path:
    img = nib.Nifti1Image(array, np.eye(4))
    if slope is not None:
        img.header.set_slope_inter(slope, 0)
    nib.save(img, path)
    return path


def test_the_metrics_by_hand() -> None:
    assert quality(Q, LABEL, TRUTH) == pytest.approx(BY_HAND)


def test_probabilities_are_renormalised_and_no_error_gives_nulls() -> None:
    doubled = quality(Q * 2, LABEL, TRUTH)
    assert doubled["brier"] == pytest.approx(BY_HAND["brier"])  # p = q / sum_c q
    assert doubled["softened_fraction"] == 0  # S is defined on the stored q: max_c q_c >= 1 everywhere here
    clean = quality(Q, TRUTH, TRUTH)
    assert clean["error_fraction"] == 0 and clean["brier_errors"] is None and clean["enrichment"] is None


def test_stored_uint8_soft_labels_are_decoded(tmp_path: Path) -> None:
    stored = np.rint(Q * 255).astype(np.uint8)
    result = score_case(save(stored, tmp_path / "soft.nii.gz", slope=1 / 255), save(LABEL.astype(np.uint8), tmp_path / "l.nii.gz"),
                        save(TRUTH.astype(np.uint8), tmp_path / "t.nii.gz"))  # fmt: skip
    assert result == pytest.approx(BY_HAND, abs=2 / 255)


def test_the_folder_form_scores_every_case_and_their_mean(tmp_path: Path) -> None:
    for folder in ("soft", "label", "truth"):
        (tmp_path / folder).mkdir()
    for case, label in (("a", LABEL), ("b", TRUTH)):
        save(Q, tmp_path / "soft" / f"{case}.nii.gz")
        save(label.astype(np.uint8), tmp_path / "label" / f"{case}.nii.gz")
        save(TRUTH.astype(np.uint8), tmp_path / "truth" / f"{case}.nii.gz")
    result = score_folders(tmp_path / "soft", tmp_path / "label", tmp_path / "truth")
    assert sorted(result["cases"]) == ["a", "b"]
    assert result["mean"]["error_fraction"] == pytest.approx(0.125) and result["mean"]["brier_errors"] == pytest.approx(0.5)
    out = CliRunner().invoke(app, ["label-quality", "--soft", str(tmp_path / "soft"), "--label", str(tmp_path / "label"),
                                   "--truth", str(tmp_path / "truth")])  # fmt: skip
    assert out.exit_code == 0 and json.loads(out.stdout)["cases"]["a"] == pytest.approx(BY_HAND)


def test_bad_input_names_the_file_and_the_field(tmp_path: Path) -> None:
    soft = save(Q, tmp_path / "soft.nii.gz")
    label = save(LABEL.astype(np.uint8), tmp_path / "label.nii.gz")
    wrong_shape = save(np.zeros((3, 1, 1), np.uint8), tmp_path / "truth.nii.gz")
    runner = CliRunner()
    result = runner.invoke(app, ["label-quality", "--soft", str(soft), "--label", str(label), "--truth", str(wrong_shape)])
    assert result.exit_code == 1 and "truth.nii.gz: shape: expected the soft labels' spatial shape (4, 1, 1)" in result.output
    out_of_range = save(np.full((4, 1, 1), 5, np.uint8), tmp_path / "truth5.nii.gz")
    with pytest.raises(ValueError, match=r"truth5.nii.gz: truth: expected classes in \[0, 2\)"):
        score_case(soft, label, out_of_range)
    with pytest.raises(ValueError, match="expected soft labels \\(X, Y, Z, K\\)"):
        score_case(label, label, label)
    with pytest.raises(ValueError, match="expected an existing NIfTI file"):
        score_case(tmp_path / "nope.nii.gz", label, label)
