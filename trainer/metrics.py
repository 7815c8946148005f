"""Segmentation metrics of SPEC section 3: Dice, VS, HD95, ASD, ASSD, per class and mean.

Conventions (see ``docs/metrics.md``):

- Label maps are (X, Y) or (X, Y, Z) integer arrays in nibabel's axis order; a (X, Y, 1)
  map is a 2D slice and is scored in 2D (its singleton axis has no neighbours).
- Surface voxels of a mask: voxels of the mask with a face neighbour (4-connectivity in 2D,
  6 in 3D) outside it. **Outside the image counts as outside the mask**, so a mask that
  touches the image edge has surface voxels there (as in MONAI, medpy and DeepMind's
  surface-distance; unlike the soft-label boundary of SPEC section 1).
- Distances are Euclidean in mm, voxel centre to voxel centre, using ``spacing_mm``.
- Status of each class: ``ok``; ``missing_in_pred`` or ``missing_in_truth`` (empty in
  exactly one map: Dice 0, VS 0, and every distance the **penalty**, the image's diagonal in
  mm, so that missing a class never improves a mean distance; counted); ``absent`` (empty in
  both: every metric NaN, left out of the mean and counted).
- The mean over classes ignores NaN entries; ``nan_counts`` says how many each metric had.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi

METRICS = ("dice", "vs", "hd95", "asd", "assd")
BACKGROUND = 0


def _as_spatial(labels: np.ndarray, spacing_mm: Sequence[float]) -> tuple[np.ndarray, tuple[float, ...]]:
    """Drop the singleton third axis of a (X, Y, 1) slice, with its spacing."""
    labels = np.asarray(labels)
    spacing = tuple(float(s) for s in spacing_mm)
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels, spacing = labels[:, :, 0], spacing[:2]
    if labels.ndim not in (2, 3):
        raise ValueError(f"label map: expected 2D (X, Y[, 1]) or 3D (X, Y, Z), got shape {labels.shape}")
    if len(spacing) != labels.ndim or min(spacing) <= 0:
        raise ValueError(f"spacing_mm: expected {labels.ndim} positive values, got {tuple(spacing_mm)}")
    return labels, spacing


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it; the image edge counts as outside.

    mask : (X, Y[, Z]) bool. Returns a bool array of the same shape.
    """
    structure = ndi.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndi.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each surface voxel of one mask to the other mask's surface.

    pred, truth : (X, Y[, Z]) bool, both non-empty. Returns ``(d_pg, d_gp)``: for every
    surface voxel of ``pred`` the distance to the nearest surface voxel of ``truth``, and
    the reverse. Both maps are cropped to the bounding box of their union first; the
    distance transform stays exact because every surface voxel lies inside that box.
    """
    box = ndi.find_objects((pred | truth).astype(np.int8))[0]
    pred, truth = pred[box], truth[box]
    # An edge of the crop is either an image edge or has only background beyond it, so
    # border_value=0 in surface_voxels gives the same surface as on the full image.
    surf_p, surf_g = surface_voxels(pred), surface_voxels(truth)
    to_g = ndi.distance_transform_edt(~surf_g, sampling=spacing_mm)
    to_p = ndi.distance_transform_edt(~surf_p, sampling=spacing_mm)
    return to_g[surf_p], to_p[surf_g]


def penalty_distance_mm(shape: Sequence[int], spacing_mm: Sequence[float]) -> float:
    """The image's diagonal in mm: the distance given to a class missing from one map."""
    return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing_mm))))


def mask_scores(pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]) -> dict[str, float | str]:
    """Dice, VS, HD95, ASD (pred to truth) and ASSD of two bool masks, and a status.

    pred, truth : (X, Y[, Z]) bool; spacing_mm : voxel size per axis. Distances in mm; a
    mask empty in one map only gets :func:`penalty_distance_mm` for each distance.
    """
    n_p, n_g = int(pred.sum()), int(truth.sum())
    nan = math.nan
    if n_p == 0 and n_g == 0:
        return {"dice": nan, "vs": nan, "hd95": nan, "asd": nan, "assd": nan, "status": "absent"}
    overlap = {
        "dice": 2.0 * int(np.count_nonzero(pred & truth)) / (n_p + n_g),
        "vs": 1.0 - abs(n_p - n_g) / (n_p + n_g),
    }
    if n_p == 0 or n_g == 0:
        status = "missing_in_pred" if n_p == 0 else "missing_in_truth"
        penalty = penalty_distance_mm(pred.shape, spacing_mm)
        return {**overlap, "hd95": penalty, "asd": penalty, "assd": penalty, "status": status}
    d_pg, d_gp = surface_distances(pred, truth, spacing_mm)
    return {
        **overlap,
        "hd95": float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))),
        "asd": float(d_pg.mean()),
        "assd": float((d_pg.sum() + d_gp.sum()) / (d_pg.size + d_gp.size)),
        "status": "ok",
    }


def dice_scores(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Dice per class of two label maps of any shape; NaN where a class is empty in both.

    A cheap score for validation during training (no surface distances).
    """
    out = np.full(len(classes), math.nan)
    for i, c in enumerate(classes):
        p, g = pred == c, truth == c
        total = int(p.sum()) + int(g.sum())
        if total:
            out[i] = 2.0 * int(np.count_nonzero(p & g)) / total
    return out


def segmentation_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    num_classes: int | None = None,
    ignore: Sequence[int] = (),
    names: Mapping[int, str] | None = None,
) -> dict:
    """SPEC section 3 metrics of two label maps, per class and as a mean over classes.

    Parameters
    ----------
    pred, truth : (X, Y[, Z]) or (X, Y, 1) int label maps of the same shape.
    spacing_mm : voxel size per axis of the map as given, in mm.
    num_classes : K; classes ``1 .. K-1`` are scored. Default: the largest label seen + 1.
    ignore : further classes to leave out (background 0 is always left out).
    names : optional class names for the output.

    Returns
    -------
    A JSON-ready dict: ``classes`` maps each scored class (as a string) to its metrics and
    status (see the module docstring); ``mean`` holds the NaN-ignoring mean of each metric
    over the classes that are not ``absent``; ``nan_counts`` the number of NaN entries each
    mean left out; ``status_counts`` the number of classes per status; ``penalty_mm`` the
    distance given to a class missing from one map. NaN is ``None`` in the result so that it
    serialises to JSON ``null``.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction: expected the truth's shape {truth.shape}, got {pred.shape}")
    pred, spacing = _as_spatial(pred, spacing_mm)
    truth, _ = _as_spatial(truth, spacing_mm)
    for what, arr in (("prediction", pred), ("truth", truth)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what} labels: expected an integer array, got {arr.dtype}")
    top = int(max(pred.max(initial=0), truth.max(initial=0)))
    k = top + 1 if num_classes is None else int(num_classes)
    if top >= k or min(pred.min(initial=0), truth.min(initial=0)) < 0:
        raise ValueError(f"labels: expected values in [0, {k}), got values up to {top}")
    classes = [c for c in range(k) if c != BACKGROUND and c not in set(ignore)]
    per_class = {}
    for c in classes:
        scores = mask_scores(pred == c, truth == c, spacing)
        if names and c in names:
            scores = {"name": names[c], **scores}
        per_class[str(c)] = scores
    scored = [s for s in per_class.values() if s["status"] != "absent"]
    mean, nan_counts = {}, {}
    for m in METRICS:
        values = np.array([s[m] for s in scored], dtype=float)
        nan_counts[m] = int(np.isnan(values).sum())
        finite = values[~np.isnan(values)]
        mean[m] = float(finite.mean()) if finite.size else math.nan
    statuses = [s["status"] for s in per_class.values()]
    status_counts = {st: statuses.count(st) for st in ("ok", "missing_in_pred", "missing_in_truth", "absent")}
    return _nan_to_none({
        "spacing_mm": list(spacing),
        "classes": per_class,
        "mean": mean,
        "nan_counts": nan_counts,
        "status_counts": status_counts,
        "penalty_mm": penalty_distance_mm(truth.shape, spacing),
    })


def _nan_to_none(obj):
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
