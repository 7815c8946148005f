"""Preview PNG: image, superpixel boundaries, hard label and one class's soft label, side by side.

Drawn with NumPy and Pillow (matplotlib only lends its colour maps), so a worker pays a few
tens of milliseconds per study rather than a figure's layout and rendering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .boundaries import label_boundaries
from .io.atomic import atomic_path

PANEL_MIN_PX = 240  # small slices are enlarged (nearest neighbour) to at least this height
TITLE_PX = 18  # title band above each panel
GAP_PX = 6
BOUNDARY_RGB = (255, 204, 0)


def certain(soft: np.ndarray) -> float:
    """The value of q = 1 in these soft labels: 1 for float q, 255 for the stored uint8 form."""
    return 255.0 if soft.dtype == np.uint8 else 1.0


def pick_class(soft: np.ndarray) -> int:
    """The foreground class with the most softened voxels (0 < q < 1); 1 when none is softened."""
    top = certain(soft)
    softened = np.array([np.count_nonzero((soft[..., c] > 0) & (soft[..., c] < top)) for c in range(soft.shape[-1])])
    softened[0] = -1
    return int(softened.argmax()) if softened.max() > 0 else min(1, soft.shape[-1] - 1)


def pick_slice(soft_c: np.ndarray) -> int:
    """The z index (last spatial axis) with the most softened voxels of one class."""
    softened = ((soft_c > 0) & (soft_c < certain(soft_c))).sum(axis=(0, 1))
    return int(softened.argmax()) if softened.max() > 0 else soft_c.shape[-1] // 2


def _colour_map(name: str, n: int) -> np.ndarray:
    """(n, 3) uint8 RGB table of a matplotlib colour map."""
    import matplotlib

    return (matplotlib.colormaps[name].resampled(n)(np.arange(n))[:, :3] * 255).astype(np.uint8)


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

    image: (X, Y, Z, C) (channel 0 is shown); label: (X, Y, Z); soft: (X, Y, Z, K), float q or
    the stored uint8 form;
    superpixels: (X, Y, Z) or None, in which case the second panel outlines the softened
    region (0 < q < 1) instead. 2D studies come as Z = 1. Axial slices, X across, Y up.
    Panels: image (grey), boundaries over the image (yellow), hard label (tab20), soft label
    of the class (magma, 0 to 1, with its scale below).
    """
    from PIL import Image, ImageDraw

    num_classes = soft.shape[-1]
    c = pick_class(soft) if class_index is None else class_index
    if not 0 <= c < num_classes:
        raise ValueError(f"class: expected an id in [0, {num_classes}), got {c}")
    z = pick_slice(soft[..., c]) if slice_index is None else slice_index
    if not 0 <= z < label.shape[-1]:
        raise ValueError(f"slice: expected an index in [0, {label.shape[-1]}), got {z}")

    def view(a: np.ndarray) -> np.ndarray:
        return np.rot90(a[:, :, z])

    grey = view(image[..., 0]).astype(np.float32)
    lo, hi = np.percentile(grey, [0.5, 99.5])
    grey_rgb = np.repeat((np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)
    q = view(soft[..., c]).astype(np.float32) / np.float32(certain(soft))
    if superpixels is not None:
        edges, second_title = label_boundaries(view(superpixels)), "superpixel boundaries"
    else:
        edges, second_title = label_boundaries((q > 0) & (q < 1)), f"softened region, class {c}"
    overlay = grey_rgb.copy()
    overlay[edges] = BOUNDARY_RGB
    labels_rgb = _colour_map("tab20", 20)[view(label).astype(np.int64) % 20]
    heat_rgb = _colour_map("magma", 256)[np.rint(np.clip(q, 0, 1) * 255).astype(np.int64)]
    panels = [(grey_rgb, "image (channel 0)"), (overlay, second_title), (labels_rgb, "hard label"),
              (heat_rgb, f"soft label q, class {c}")]  # fmt: skip
    scale = max(1, -(-PANEL_MIN_PX // grey.shape[0]))
    h, w = grey.shape[0] * scale, grey.shape[1] * scale
    canvas = Image.new("RGB", (4 * w + 5 * GAP_PX, h + 2 * TITLE_PX + 2 * GAP_PX + 12), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (rgb, title) in enumerate(panels):
        x = GAP_PX + i * (w + GAP_PX)
        panel = Image.fromarray(np.ascontiguousarray(rgb)).resize((w, h), Image.NEAREST)
        canvas.paste(panel, (x, TITLE_PX + GAP_PX))
        draw.text((x, 3), title, fill="black")
    bar_y = TITLE_PX + 2 * GAP_PX + h
    bar = Image.fromarray(np.repeat(_colour_map("magma", 256)[None], 8, axis=0)).resize((w, 8), Image.NEAREST)
    x_heat = GAP_PX + 3 * (w + GAP_PX)
    canvas.paste(bar, (x_heat, bar_y))
    draw.text((x_heat, bar_y + 9), "0", fill="black")
    draw.text((x_heat + w - 6, bar_y + 9), "1", fill="black")
    draw.text((GAP_PX, bar_y + 9), f"slice z = {z}", fill="black")
    with atomic_path(out_path) as tmp:
        canvas.save(tmp, format="PNG")
    return c, z
