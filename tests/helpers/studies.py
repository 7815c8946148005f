"""Small seeded studies (arrays, and NIfTI files) for engine, CLI and job tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

SPACING = (1.2, 0.9, 2.0)  # mm, anisotropic on purpose


def random_label(shape: tuple[int, ...], num_classes: int, seed: int) -> np.ndarray:
    """Smooth random blobs with every class present: uint8 (shape)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random(shape), 2.5)
    edges = np.quantile(field, np.linspace(0, 1, num_classes + 1)[1:-1])
    return np.digitize(field, edges).astype(np.uint8)


def image_from_label(label: np.ndarray, channels: int, seed: int) -> np.ndarray:
    """float32 (shape, C): per-class intensities plus noise."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0, 100, size=(channels, int(label.max()) + 1))
    return np.stack([means[c][label] + rng.normal(0, 3, label.shape) for c in range(channels)], -1).astype(np.float32)


def write_small_study(tmp_path: Path) -> dict:
    """A 3-channel (17, 19, 11) study with 4 classes written to ``tmp_path``, one file per channel."""
    label = random_label((17, 19, 11), 4, seed=1)
    image = image_from_label(label, 3, seed=2)
    affine = np.diag([*SPACING, 1.0])
    paths = []
    for c in range(3):
        p = tmp_path / f"case_{c:04d}.nii.gz"
        nib.save(nib.Nifti1Image(image[..., c], affine), p)
        paths.append(p)
    label_path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(label, affine), label_path)
    return {"images": paths, "label": label_path, "array_image": image, "array_label": label, "affine": affine, "K": 4}
