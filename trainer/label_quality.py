"""``softlabel label-quality``: judge soft labels against the clean truth, before any training.

With ``q`` the stored soft labels decoded (uint8 with ``scl_slope`` 1/255, or float32), ``p = q /
sum_c q`` per voxel, ``y`` the one-hot of the truth T, the errors ``E = {L != T}`` (L the noisy
annotation the soft labels were made from) and the softened voxels ``S = {max_c q_c < 1 - 1e-6}``,
over all N voxels:

- ``brier``: the mean of ``sum_c (p_c - y_c)^2``; ``brier_errors``: the same mean over E;
- ``error_fraction`` = |E| / N; ``softened_fraction`` = |S| / N;
- ``error_softened_fraction`` = |S ∩ E| / |E|; ``enrichment`` = error_softened_fraction /
  softened_fraction (1: errors are softened no more often than any voxel);
- ``mean_p_true_on_errors``: the mean over E of ``p_T``.

Means over an empty set are null. A folder form scores every case and their mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .metrics_cli import label_array, read_label_map

SOFTENED_BELOW = 1 - 1e-6  # a voxel is softened when its largest probability is below this
METRICS = ("brier", "brier_errors", "error_fraction", "softened_fraction", "error_softened_fraction", "enrichment",
           "mean_p_true_on_errors")  # fmt: skip


def read_soft_labels(path: Path) -> np.ndarray:
    """Decoded soft labels, float32 (X, Y, Z, K); a 2D study's (H, W, 1, K) as stored."""
    img = read_label_map(path)
    if len(img.shape) != 4:
        raise ValueError(f"{path}: dimensions: expected soft labels (X, Y, Z, K), got shape {img.shape}")
    q = np.asarray(img.dataobj, dtype=np.float32)  # applies scl_slope: uint8 255 -> 1.0
    if not np.all(np.isfinite(q)) or q.min() < 0:
        raise ValueError(f"{path}: voxel values: expected finite probabilities >= 0, got min {q.min()}")
    return q


def _as_spatial(label: np.ndarray, shape: tuple[int, ...], path: Path, what: str) -> np.ndarray:
    if label.shape != shape and label.size == int(np.prod(shape)) and label.ndim == 2 and shape[2:] == (1,):
        label = label.reshape(shape)  # a 2D map beside (H, W, 1, K) soft labels
    if label.shape != shape:
        raise ValueError(f"{path}: shape: expected the soft labels' spatial shape {shape} for the {what}, got {label.shape}")
    return label


def quality(q: np.ndarray, label: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """The metrics of the module docstring for one case (arrays already checked)."""
    k = q.shape[-1]
    if truth.max() >= k or truth.min() < 0:
        raise ValueError(f"truth: expected classes in [0, {k}), got values in [{truth.min()}, {truth.max()}]")
    total = q.sum(axis=-1)
    if np.any(total <= 0):
        raise ValueError("soft labels: expected a positive sum of probabilities in every voxel, got 0 somewhere")
    p = q / total[..., None]
    p_true = np.take_along_axis(p, truth[..., None], axis=-1)[..., 0]
    brier = (p**2).sum(axis=-1) - 2 * p_true + 1  # sum_c (p_c - y_c)^2 with y one-hot
    errors = label != truth
    softened = q.max(axis=-1) < SOFTENED_BELOW
    n, n_errors, n_softened = truth.size, int(errors.sum()), int(softened.sum())
    error_softened = (softened & errors).sum() / n_errors if n_errors else None
    softened_fraction = n_softened / n
    return {
        "brier": float(brier.mean()),
        "brier_errors": float(brier[errors].mean()) if n_errors else None,
        "error_fraction": n_errors / n,
        "softened_fraction": softened_fraction,
        "error_softened_fraction": None if error_softened is None else float(error_softened),
        "enrichment": None if error_softened is None or not softened_fraction else float(error_softened / softened_fraction),
        "mean_p_true_on_errors": float(p_true[errors].mean()) if n_errors else None,
    }


def score_case(soft_path: Path, label_path: Path, truth_path: Path) -> dict[str, float | None]:
    """One study's metrics from its three files; errors name the file and the field."""
    q = read_soft_labels(soft_path)
    shape = q.shape[:-1]
    label = _as_spatial(label_array(read_label_map(label_path), label_path), shape, label_path, "label")
    truth = _as_spatial(label_array(read_label_map(truth_path), truth_path), shape, truth_path, "truth")
    try:
        return quality(q, label, truth)
    except ValueError as exc:
        raise ValueError(f"{truth_path if str(exc).startswith('truth') else soft_path}: {exc}") from None


def _cases(folder: Path) -> dict[str, Path]:
    return {p.name[: -len(".nii.gz")] if p.name.endswith(".nii.gz") else p.stem: p
            for p in sorted(folder.iterdir()) if p.name.endswith((".nii.gz", ".nii"))}  # fmt: skip


def score_folders(soft_dir: Path, label_dir: Path, truth_dir: Path) -> dict[str, object]:
    """Every case present in all three folders (``<case>.nii[.gz]``): rows and their mean."""
    soft, labels, truths = _cases(soft_dir), _cases(label_dir), _cases(truth_dir)
    missing = sorted((set(labels) | set(truths)) - set(soft))
    if missing:
        raise ValueError(f"{soft_dir}: cases: expected soft labels for every labelled case, got none for {missing[:5]}")
    if not soft:
        raise ValueError(f"{soft_dir}: cases: expected <case>.nii.gz soft label files, got none")
    rows = {}
    for case in soft:
        if case not in labels or case not in truths:
            raise ValueError(f"{label_dir if case not in labels else truth_dir}: {case}: expected a file for this case, got none")
        rows[case] = score_case(soft[case], labels[case], truths[case])
    return {"cases": rows, "mean": _mean(rows.values())}


def _mean(rows: Iterable[dict[str, float | None]]) -> dict[str, float | None]:
    rows = list(rows)
    out: dict[str, float | None] = {}
    for metric in METRICS:
        values = [row[metric] for row in rows if row[metric] is not None]
        out[metric] = float(np.mean(values)) if values else None
    return out
