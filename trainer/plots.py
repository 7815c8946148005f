"""PNG figures of a run: loss and metric curves, prediction overlays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict], path: Path) -> None:
    """Training loss terms, validation Dice and learning rate per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name in history[0]["train"]:
        ax_loss.plot(epochs, [h["train"][name] for h in history], label=name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_loss.legend()
    val = [(h["epoch"], h["val_dice"]) for h in history if h.get("val_dice") is not None]
    if val:
        ax_val.plot(*zip(*val), "o-", label="val Dice (annotations)")
        ax_val.legend(loc="lower right")
    ax_val.set(xlabel="epoch", ylabel="mean Dice", title="validation" if val else "no validation cases")
    ax_lr = ax_val.twinx()
    ax_lr.plot(epochs, [h["lr"] for h in history], "k--", alpha=0.4, label="lr")
    ax_lr.set_ylabel("learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _middle_slice(a: np.ndarray) -> np.ndarray:
    """(X, Y) as is; the middle axial slice of (X, Y, Z)."""
    return a[:, :, a.shape[2] // 2] if a.ndim == 3 else a


def plot_overlays(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path, *, num_classes: int) -> None:
    """One row per case: image, truth and prediction of its middle axial slice.

    rows : (case_id, image (X, Y[, Z]), truth (X, Y[, Z]), prediction (X, Y[, Z])).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for (case_id, image, truth, pred), ax in zip(rows, axes):
        ax[0].imshow(_middle_slice(image).T, cmap="gray", origin="lower")
        for a, lab, title in ((ax[1], truth, "truth"), (ax[2], pred, "prediction")):
            a.imshow(_middle_slice(image).T, cmap="gray", origin="lower")
            a.imshow(np.ma.masked_equal(_middle_slice(lab), 0).T, cmap="tab10", vmin=0, vmax=max(num_classes - 1, 1),
                     alpha=0.5, origin="lower")
            a.set_title(f"{case_id} {title}", fontsize=8)
        ax[0].set_title(f"{case_id} image", fontsize=8)
        for a in ax:
            a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
