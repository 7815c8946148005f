"""Evaluate a trained model on held-out cases: metrics JSON, per-class CSV, markdown, PNGs.

Predictions are scored against each case's ``truth`` (the clean truth of a benchmark) when
present, else against its training label; ``metrics.json`` says which.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from .config import TrainConfig
from .datasets import Case
from .inference import predict
from .metrics import METRICS, segmentation_metrics
from .plots import plot_overlays

PERCENT = {"dice", "vs"}  # reported in % in tables
OVERLAY_CASES = 4  # cases shown in overlays.png


def summarise(per_case: dict[str, dict], class_names: dict[int, str]) -> dict:
    """Per class: mean, SD and count of each metric over cases (NaN left out and counted);
    ``mean``: the mean over classes of the per-class means (the paper's mean metrics)."""
    classes = sorted({c for r in per_case.values() for c in r["classes"]}, key=int)
    out: dict = {"classes": {}, "mean": {}}
    for c in classes:
        rows = [r["classes"][c] for r in per_case.values() if c in r["classes"] and r["classes"][c]["status"] != "absent"]
        entry = {"name": class_names.get(int(c), c), "cases": len(rows)}
        for m in METRICS:
            values = np.array([np.nan if r[m] is None else r[m] for r in rows], float)
            finite = values[np.isfinite(values)]
            entry[m] = {"mean": float(finite.mean()) if finite.size else None,
                        "sd": float(finite.std()) if finite.size else None, "n": int(finite.size), "nan": int(values.size - finite.size)}
        out["classes"][c] = entry
    for m in METRICS:
        means = [e[m]["mean"] for e in out["classes"].values() if e[m]["mean"] is not None]
        out["mean"][m] = float(np.mean(means)) if means else None
    return out


def _fmt(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    return f"{100 * value:.2f}" if metric in PERCENT else f"{value:.4f}"


def markdown_table(summary: dict) -> str:
    head = "| class | Dice % | VS % | HD95 mm | ASD mm | ASSD mm | cases | NaN distances |\n|---|---|---|---|---|---|---|---|\n"
    lines = []
    for c, e in summary["classes"].items():
        cells = [_fmt(e[m]["mean"], m) for m in METRICS]
        lines.append(f"| {c} {e['name']} | " + " | ".join(cells) + f" | {e['cases']} | {e['hd95']['nan']} |")
    lines.append("| **mean** | " + " | ".join(_fmt(summary["mean"][m], m) for m in METRICS) + " | | |")
    return head + "\n".join(lines) + "\n"


def _save_prediction(pred: np.ndarray, case: Case, path: Path) -> None:
    data = pred.astype(np.uint8)
    nib.save(nib.Nifti1Image(data[..., None] if data.ndim == 2 else data, case.affine), path)


def evaluate_cases(
    model,
    cases: Sequence[Case],
    *,
    cfg: TrainConfig,
    patch_size: Sequence[int],
    num_classes: int,
    class_names: dict[int, str],
    ignore_classes: Sequence[int],
    out_dir: Path,
    device,
) -> dict:
    """Predict every case, score it (SPEC section 3) and write the evaluation outputs.

    Writes into ``out_dir``: ``predictions/<case>.nii.gz``, ``metrics.json`` (per case,
    per class and mean), ``per_class.csv``, ``metrics.md`` and ``overlays.png``.
    """
    out_dir = Path(out_dir)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    per_case, overlays = {}, []
    for case in cases:
        probs = predict(model, case.image, patch_size=patch_size, overlap=cfg.sw_overlap,
                        sw_batch_size=cfg.sw_batch_size, device=device, amp=cfg.amp)
        pred = probs.argmax(0)
        truth = case.truth if case.truth is not None else case.label
        per_case[case.case_id] = segmentation_metrics(pred, truth, spacing_mm=case.spacing_mm, num_classes=num_classes,
                                                      ignore=ignore_classes, names=class_names)
        _save_prediction(pred, case, out_dir / "predictions" / f"{case.case_id}.nii.gz")
        if len(overlays) < OVERLAY_CASES:
            overlays.append((case.case_id, case.image[0], truth, pred))
    summary = summarise(per_case, class_names)
    truth_source = "clean truth" if all(c.truth is not None for c in cases) else "training labels"
    result = {"truth": truth_source, "cases": per_case, **summary}
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    with open(out_dir / "per_class.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class", "name", "cases", *[f"{m}_{s}" for m in METRICS for s in ("mean", "sd", "n", "nan")]])
        for c, e in summary["classes"].items():
            writer.writerow([c, e["name"], e["cases"], *[e[m][s] for m in METRICS for s in ("mean", "sd", "n", "nan")]])
    (out_dir / "metrics.md").write_text(f"Scored against the {truth_source} of {len(cases)} cases.\n\n" + markdown_table(summary))
    if overlays:
        plot_overlays(overlays, out_dir / "overlays.png", num_classes=num_classes)
    return result
