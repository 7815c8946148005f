"""Preview PNG: image, superpixel boundaries, hard label and one class's soft label, side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worker.atomic import atomic_path


def pick_class(soft: np.ndarray) -> int:
    """The foreground class with the most softened voxels (0 < q < 1); 1 when none is softened."""
    softened = ((soft > 0) & (soft < 1)).reshape(-1, soft.shape[-1]).sum(axis=0)
    softened[0] = -1
    return int(softened.argmax()) if softened.max() > 0 else min(1, soft.shape[-1] - 1)


def pick_slice(soft_c: np.ndarray) -> int:
    """The z index (last spatial axis) with the most softened voxels of one class."""
    softened = ((soft_c > 0) & (soft_c < 1)).reshape(-1, soft_c.shape[-1]).sum(axis=0)
    return int(softened.argmax()) if softened.max() > 0 else soft_c.shape[-1] // 2


def render_preview(
    image: np.ndarray,
    label: np.ndarray,
    soft: np.ndarray,
    out_path: str | Path,
    *,
    superpixels: np.ndarray | None = None,
    class_index: int | None = None,
    slice_index: int | None = None,
) -> tuple[int, int]:
    """Write the preview PNG atomically; returns the (class, z slice) shown.

    image: (X, Y, Z, C) (channel 0 is shown); label: (X, Y, Z); soft: (X, Y, Z, K);
    superpixels: (X, Y, Z) or None, in which case the second panel outlines the softened
    region (0 < q < 1) instead. 2D studies come as Z = 1. Axial slices, X across, Y up.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries, mark_boundaries

    num_classes = soft.shape[-1]
    c = pick_class(soft) if class_index is None else class_index
    if not 0 <= c < num_classes:
        raise ValueError(f"class: expected an id in [0, {num_classes}), got {c}")
    z = pick_slice(soft[..., c]) if slice_index is None else slice_index
    if not 0 <= z < label.shape[-1]:
        raise ValueError(f"slice: expected an index in [0, {label.shape[-1]}), got {z}")

    def view(a: np.ndarray) -> np.ndarray:
        return np.rot90(a[:, :, z])

    img = view(image[..., 0]).astype(np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    if superpixels is not None:
        edges = find_boundaries(view(superpixels), mode="inner")
        second_title = "superpixel boundaries"
    else:
        q = view(soft[..., c])
        edges = find_boundaries((q > 0) & (q < 1), mode="inner")
        second_title = f"softened region, class {c}"
    overlay = mark_boundaries(np.dstack([img] * 3), edges.astype(int), color=(1, 0.8, 0), mode="inner")
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6), constrained_layout=True)
    axes[0].imshow(img, cmap="gray")
    axes[0].set_title("image (channel 0)")
    axes[1].imshow(overlay)
    axes[1].set_title(second_title)
    axes[2].imshow(view(label), cmap="tab20", vmin=0, vmax=max(19, int(label.max())), interpolation="nearest")
    axes[2].set_title("hard label")
    heat = axes[3].imshow(view(soft[..., c]), cmap="magma", vmin=0, vmax=1)
    axes[3].set_title(f"soft label q, class {c}")
    fig.colorbar(heat, ax=axes[3], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"slice z = {z}")
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return c, z
