"""A tiny nnU-Net raw dataset with soft labels made by the engine, for the nnU-Net tests.

Cases are about 40^3 voxels, 3 classes (background, an off-centre ellipsoid, a box in a
corner: nothing is symmetric, so a swapped or flipped axis shows), one image channel that is
zero on two faces (nnU-Net's crop to the non-zero region then has work to do), and one case
whose x spacing differs from the others (nnU-Net resamples it to the median spacing).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.pipeline import soften_files

SHAPES = [(40, 38, 30), (42, 40, 30), (38, 40, 28), (40, 40, 30), (40, 42, 32)]
SPACINGS_MM = [(1.0, 1.0, 1.5), (1.0, 1.0, 1.5), (1.25, 1.0, 1.5), (1.0, 1.0, 1.5), (1.0, 1.0, 1.5)]
LABELS = {"background": 0, "blob": 1, "box": 2}


def case_arrays(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8), both (X, Y, Z)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    cx, cy, cz = shape[0] * 0.4 + rng.uniform(-2, 2), shape[1] * 0.55 + rng.uniform(-2, 2), shape[2] * 0.5
    blob = ((x - cx) / 9.0) ** 2 + ((y - cy) / 6.0) ** 2 + ((z - cz) / 5.0) ** 2 <= 1.0
    label = np.zeros(shape, np.uint8)
    label[blob] = 1
    x0, y0 = int(shape[0] * 0.62), int(shape[1] * 0.12)
    label[x0 : x0 + 9, y0 : y0 + 7, 4:12] = 2
    means = np.array([20.0, 80.0, 140.0], np.float32)
    # blurred edges: SLIC superpixels then straddle the class boundaries, which softens them
    image = ndimage.gaussian_filter(means[label], 1.5) + ndimage.gaussian_filter(rng.normal(0, 12, shape), 1.0)
    image[:3] = 0  # two zero faces: nnU-Net crops them away
    image[:, -2:] = 0
    label[:3] = 0
    label[:, -2:] = 0
    return image.astype(np.float32), label


def write_raw_dataset(root: Path, *, n_segments: int = 300, compactness: float = 1.0) -> dict:
    """Write ``root/{dataset.json, imagesTr, labelsTr, softlabels}`` and return dataset.json.

    The soft labels are the engine's superpixel soft labels (uint8, scl_slope 1/255), as
    ``softlabel soften-dataset ROOT --out ROOT/softlabels`` writes them.
    """
    for sub in ("imagesTr", "labelsTr", "softlabels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    config = SofteningConfig(method="superpixel", n_segments=n_segments, compactness=compactness)
    for i, (shape, spacing) in enumerate(zip(SHAPES, SPACINGS_MM)):
        case = f"case_{i:03d}"
        image, label = case_arrays(shape, seed=i)
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = (-10.0, 5.0, 2.0)
        image_path = root / "imagesTr" / f"{case}_0000.nii.gz"
        label_path = root / "labelsTr" / f"{case}.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), image_path)
        nib.save(nib.Nifti1Image(label, affine), label_path)
        soften_files([image_path], label_path, root / "softlabels" / f"{case}.nii.gz", config=config,
                     num_classes=len(LABELS), backend="cpu")
    meta = {"channel_names": {"0": "MRI"}, "labels": LABELS, "numTraining": len(SHAPES), "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return meta
