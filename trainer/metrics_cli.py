"""``softlabel metrics``: score one predicted label map against a truth map, both NIfTI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from .metrics import segmentation_metrics

AFFINE_ATOL_MM = 1e-3  # largest tolerated difference between the two affines, in mm


def read_label_map(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI label map; errors name the file."""
    try:
        return nib.load(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: file: expected an existing NIfTI file, got no such file") from None
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise ValueError(f"{path}: file: expected a readable NIfTI file, got {type(exc).__name__}: {exc}") from None


def label_array(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """The voxel data as int64; float data must hold whole numbers. (X, Y[, Z]) as stored."""
    data = np.asanyarray(img.dataobj)
    if data.ndim not in (2, 3):
        raise ValueError(f"{path}: dimensions: expected a 2D or 3D label map, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
            raise ValueError(f"{path}: voxel values: expected whole-number labels, got non-integer {data.dtype} values")
    return data.astype(np.int64)


def score_files(
    pred_path: Path,
    truth_path: Path,
    *,
    ignore: Sequence[int] = (),
    num_classes: int | None = None,
) -> dict:
    """SPEC section 3 metrics of ``pred_path`` against ``truth_path`` (see ``trainer.metrics``).

    Both files must have the same shape and the same affine (within 1e-3 mm); the voxel
    spacing in mm comes from the truth's header. Returns the JSON-ready metrics dict with
    the two file names added.
    """
    pred_img, truth_img = read_label_map(pred_path), read_label_map(truth_path)
    if pred_img.shape != truth_img.shape:
        raise ValueError(f"{pred_path}: shape: expected {truth_img.shape} like {truth_path.name}, got {pred_img.shape}")
    diff = float(np.abs(pred_img.affine - truth_img.affine).max())
    if diff > AFFINE_ATOL_MM:
        raise ValueError(
            f"{pred_path}: affine: expected the affine of {truth_path.name} within {AFFINE_ATOL_MM} mm, "
            f"got a difference of {diff:.4g}"
        )
    pred, truth = label_array(pred_img, pred_path), label_array(truth_img, truth_path)
    spacing_mm = [float(z) for z in truth_img.header.get_zooms()[: truth.ndim]]
    result = segmentation_metrics(pred, truth, spacing_mm=spacing_mm, num_classes=num_classes, ignore=ignore)
    return {"pred": str(pred_path), "truth": str(truth_path), **result}
