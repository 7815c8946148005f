"""Demo and benchmark studies: the nilearn MNI152 brain and synthetic phantoms.

Nothing downloads: nilearn ships the MNI152 2009a T1 and its GM/WM probability maps.
Arrays are in nibabel's (X, Y, Z) order; images are float32 (X, Y, Z, C).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

MNI152_CLASSES = {"background": 0, "CSF": 1, "GM": 2, "WM": 3}


@dataclass(frozen=True)
class DemoStudy:
    """An image, its label map and the geometry to write them as NIfTI."""

    image: np.ndarray  # float32 (X, Y, Z, C)
    label: np.ndarray  # uint8 (X, Y, Z)
    affine: np.ndarray  # (4, 4)
    classes: dict[str, int]  # name -> id, nnU-Net "labels" form

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def mni152_study() -> DemoStudy:
    """The MNI152 2009a T1 (197 x 233 x 189, 1 mm) with a 4-class tissue map.

    Inside nilearn's brain mask (template > 0.2), the label is the argmax over
    (CSF = 1 - GM - WM clipped at 0, GM, WM) probabilities: 1 CSF, 2 GM, 3 WM; 0 outside.
    """
    from nilearn import datasets

    t1 = nib.load(datasets.MNI152_FILE_PATH)
    gm = np.asarray(nib.load(datasets.GM_MNI152_FILE_PATH).dataobj, dtype=np.float32) / 255
    wm = np.asarray(nib.load(datasets.WM_MNI152_FILE_PATH).dataobj, dtype=np.float32) / 255
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    csf = np.clip(1 - gm - wm, 0, None)
    tissue = np.argmax(np.stack([csf, gm, wm]), axis=0).astype(np.uint8) + 1
    label = np.where(brain, tissue, 0).astype(np.uint8)
    image = np.asarray(t1.dataobj, dtype=np.float32)[..., None]
    return DemoStudy(image=image, label=label, affine=t1.affine, classes=dict(MNI152_CLASSES))


def synthetic_study(
    shape: tuple[int, int, int] = (48, 240, 240),
    *,
    channels: int = 3,
    classes: int = 11,
    spacing_mm: tuple[float, float, float] = (3.0, 0.96, 0.96),
    seed: int = 0,
) -> DemoStudy:
    """A brain-like phantom: nested shells (like CSF, GM, WM) plus parcels and blobs inside.

    With 11 classes it resembles MRBrainS (3 spread tissues, 7 local structures); with 100+
    it resembles an atlas (the inner volume split into smooth Voronoi-like parcels).
    Channels are different intensity mappings of the classes with a smooth bias field,
    partial-volume blur and noise, so each sequence shows different contrasts.
    """
    if classes < 4:
        raise ValueError(f"classes: expected at least 4, got {classes}")
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing_mm)
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    radii = np.asarray(shape) * spacing * 0.45
    wobble = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=8 / spacing) * 6
    radius = np.sqrt(sum((g / r) ** 2 for g, r in zip(grids, radii))) + wobble * 0.05
    label = np.zeros(shape, dtype=np.int32)
    label[radius < 1.0] = 1  # outer CSF
    label[radius < 0.92] = 2  # cortex
    label[radius < 0.8] = 3  # white matter
    inner = radius < 0.75
    n_local = classes - 4
    seeds = np.argwhere(inner)[rng.choice(int(inner.sum()), size=n_local, replace=False)]
    coords = np.stack(grids, axis=-1)
    warp = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), sigma=6 / spacing) * 40 for _ in range(3)], -1)
    if classes <= 20:  # local structures: blobs of random size around each seed
        for index, seed_vox in enumerate(seeds):
            centre = coords[tuple(seed_vox)]
            size = rng.uniform(6, 16)
            dist = np.linalg.norm(coords + warp * 0.15 - centre, axis=-1)
            label[(dist < size) & inner] = 4 + index
    else:  # atlas-like parcellation of the inner volume
        centres = coords[tuple(seeds.T)]
        from scipy.spatial import cKDTree

        points = (coords + warp * 0.25)[inner]
        _, nearest = cKDTree(centres).query(points)
        label[inner] = 4 + nearest
    means = rng.uniform(0.1, 1.0, size=(channels, classes))
    bias = np.exp(ndimage.gaussian_filter(rng.standard_normal(shape), sigma=30 / spacing) * 3)
    image = np.empty(shape + (channels,), dtype=np.float32)
    for ch in range(channels):
        clean = means[ch][label] * bias
        blurred = ndimage.gaussian_filter(clean, sigma=0.8 / spacing)
        image[..., ch] = blurred + rng.normal(0, 0.03, size=shape)
    affine = np.diag([*spacing, 1.0])
    names = {"background": 0} | {f"class_{c}": c for c in range(1, classes)}
    return DemoStudy(image=image, label=label.astype(np.uint8 if classes <= 256 else np.uint16), affine=affine, classes=names)


def write_study(study: DemoStudy, folder: str | Path, case_id: str) -> tuple[list[Path], Path]:
    """Write a study as nnU-Net files: ``imagesTr/<case>_0000.nii.gz``... and ``labelsTr/<case>.nii.gz``."""
    folder = Path(folder)
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    image_paths = []
    for ch in range(study.image.shape[-1]):
        path = folder / "imagesTr" / f"{case_id}_{ch:04d}.nii.gz"
        nib.save(nib.Nifti1Image(study.image[..., ch], study.affine), path)
        image_paths.append(path)
    label_path = folder / "labelsTr" / f"{case_id}.nii.gz"
    nib.save(nib.Nifti1Image(study.label, study.affine), label_path)
    return image_paths, label_path


def write_dataset_json(study: DemoStudy, folder: str | Path, *, num_training: int, channel_names: list[str]) -> Path:
    """nnU-Net v2 ``dataset.json`` for a folder of studies like ``study``."""
    path = Path(folder) / "dataset.json"
    payload = {
        "channel_names": {str(i): name for i, name in enumerate(channel_names)},
        "labels": study.classes,
        "numTraining": num_training,
        "file_ending": ".nii.gz",
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
