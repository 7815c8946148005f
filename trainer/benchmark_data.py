"""A benchmark with uncertain boundaries, built from nilearn's MNI152 2009 template.

Clean truth: inside the brain mask, the argmax over the tissue probabilities
(CSF, GM, WM) = (1 - GM - WM clipped to [0, 1], GM, WM), shifted by one so that the classes
are background 0, CSF 1, GM 2, WM 3. The brain mask is nilearn's
``load_mni152_brain_mask()``: the skull-stripped T1 template, scaled to [0, 1], above 0.2.

Each case is an independently deformed copy of the template (a smooth random displacement
field of ``SUBJECT_RMS_MM``), either one axial slice (stored as (X, Y, 1)) or one 3D crop,
with random intensity augmentation (gamma, smooth multiplicative bias field, Gaussian
noise). Its training annotation is the same anatomy labelled the way a human annotator
errs, scaled by one ``strength`` in [0, 1]:

- per-case threshold levels: the GM and WM log-probabilities get a random offset in
  ``[-strength * ln 3, strength * ln 3]`` before the argmax (an offset of ln 3 moves the GM/WM
  boundary to where one tissue is three times as likely as the other);
- smooth boundary displacement: the probability maps are sampled through a further
  smooth random displacement field of RMS ``strength * 2`` mm (correlation length 10 mm);
- slice-wise inconsistency (3D cases): each axial slice (constant third index) gets its
  own in-plane shift (RMS ``strength * 1`` mm) and its own offsets (SD ``strength * 0.25``).

``strength = 0`` gives annotations equal to the clean truth. These errors are random: their
sign varies from case to case, so over many training cases they average out. A systematic
error, the same in every case, is set apart by ``gm_offset_mm``: the annotator places the
GM/WM boundary consistently too deep (positive: GM grows by that distance into WM) or too
shallow (negative: WM grows into GM), as the annotators of one protocol tend to do where
the image's edge is gradual. CSF and background keep their labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage as ndi

LABELS = {"background": 0, "CSF": 1, "GM": 2, "WM": 3}
SUBJECT_RMS_MM = 3.0  # RMS of the per-case anatomical deformation
SUBJECT_CORR_MM = 20.0  # correlation length (Gaussian sigma) of that deformation
ANNOT_RMS_MM = 2.0  # RMS of the annotator's boundary displacement at strength 1
ANNOT_CORR_MM = 10.0
SLICE_SHIFT_MM = 1.0  # RMS per-slice in-plane shift at strength 1
THRESHOLD_LOG_RANGE = math.log(3.0)  # largest per-case log-probability offset at strength 1
SLICE_LOG_SD = 0.25  # SD of the per-slice log-probability offset at strength 1
BIAS_RMS = 0.1  # RMS of the log bias field
BIAS_CORR_MM = 40.0
BLOCK_MM = 8.0  # with a held-out 2D test set: axial blocks alternate train / test ...
GAP_MM = 4.0  # ... with this gap between blocks, so no test slice shares a level with a training slice
SLICE_MULTIPLE = 16  # 2D slices are padded to a multiple of this (U-Net downsampling)


@dataclass(frozen=True)
class Template:
    """The MNI152 template resampled to isotropic ``spacing_mm`` and cropped to the brain.

    t1 : (X, Y, Z) float32 in [0, 1]; probs : (3, X, Y, Z) float32 CSF, GM, WM inside the
    brain; brain : (X, Y, Z) float32 0/1 mask; affine : (4, 4) voxel to world (mm).
    """

    t1: np.ndarray
    probs: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    spacing_mm: float

    @cached_property
    def stack(self) -> np.ndarray:
        """(5, X, Y, Z) t1, CSF, GM, WM, brain: everything one warp samples."""
        return np.concatenate([self.t1[None], self.probs, self.brain[None]])


def load_template(spacing_mm: float = 1.0) -> Template:
    """Read nilearn's MNI152 files (shipped in the wheel) and resample them to ``spacing_mm``."""
    import nibabel as nib
    from nilearn import datasets

    t1_img = nib.load(datasets.MNI152_FILE_PATH)
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    t1 /= t1.max()
    brain = np.asarray(datasets.load_mni152_brain_mask(threshold=0.2).dataobj, dtype=np.float32)
    gm = np.asarray(nib.load(datasets.GM_MNI152_FILE_PATH).dataobj, dtype=np.float32) / 255.0
    wm = np.asarray(nib.load(datasets.WM_MNI152_FILE_PATH).dataobj, dtype=np.float32) / 255.0
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    probs = np.stack([csf, gm, wm]) * brain
    box = ndi.find_objects(brain.astype(np.int8))[0]
    box = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in box)
    t1, brain, probs = t1[box], brain[box], probs[(slice(None), *box)]
    affine = t1_img.affine @ _translation([s.start for s in box])
    factor = spacing_mm / float(t1_img.header.get_zooms()[0])
    if factor != 1.0:
        shape = tuple(int((n - 1) // factor) + 1 for n in t1.shape)
        smooth = 0.5 * max(factor - 1.0, 0.0)  # mild anti-aliasing before downsampling

        def resample(a: np.ndarray) -> np.ndarray:
            a = ndi.gaussian_filter(a, smooth) if smooth else a
            return ndi.affine_transform(a, [factor] * 3, output_shape=shape, order=1).astype(np.float32)

        t1, brain = resample(t1), (resample(brain) > 0.5).astype(np.float32)
        probs = np.stack([resample(p) for p in probs]) * brain
        affine = affine @ np.diag([factor, factor, factor, 1.0])
    return Template(t1=t1, probs=probs.astype(np.float32), brain=brain, affine=affine, spacing_mm=spacing_mm)


def _translation(offset) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = offset
    return m


def smooth_field(shape, *, components: int, rms: float, sigma_vox: float, rng: np.random.Generator) -> np.ndarray:
    """(components, *shape) Gaussian-smoothed noise, each component rescaled to RMS ``rms``."""
    noise = ndi.gaussian_filter(rng.standard_normal((components, *shape)), sigma=(0,) + (sigma_vox,) * len(shape))
    scale = np.sqrt((noise**2).mean(axis=tuple(range(1, noise.ndim)), keepdims=True))
    return (noise * (rms / np.maximum(scale, 1e-12))).astype(np.float32)


def _sample(stack: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sample every map of ``stack`` (M, X, Y, Z) at voxel ``coords`` (3, ...), linear, 0 outside."""
    return np.stack([ndi.map_coordinates(m, coords, order=1, cval=0.0) for m in stack])


def _labels(probs: np.ndarray, brain: np.ndarray, log_offset: np.ndarray | None = None) -> np.ndarray:
    """uint8 labels: 1 + argmax of (offset) log-probabilities inside the brain, 0 outside."""
    score = np.log(probs + 1e-6)
    if log_offset is not None:
        score = score + log_offset
    return np.where(brain > 0.5, 1 + np.argmax(score, axis=0), 0).astype(np.uint8)


def _augment_intensity(t1: np.ndarray, *, spacing_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma, smooth multiplicative bias field, Gaussian noise, arbitrary scale; float32."""
    image = np.clip(t1, 0.0, 1.0) ** math.exp(rng.uniform(-0.3, 0.3))
    bias = smooth_field(t1.shape, components=1, rms=BIAS_RMS, sigma_vox=BIAS_CORR_MM / spacing_mm, rng=rng)[0]
    image = image * np.exp(bias) + rng.normal(0.0, rng.uniform(0.01, 0.04), t1.shape)
    return (image * rng.uniform(600.0, 1400.0)).astype(np.float32)


@dataclass(frozen=True)
class Case:
    """One generated case: image (X, Y, Z) float32, clean and annotated labels (X, Y, Z) uint8."""

    image: np.ndarray
    clean: np.ndarray
    annotation: np.ndarray
    affine: np.ndarray
    info: dict


def offset_boundary(labels: np.ndarray, cls: int, into: int, offset_mm: float, spacing_mm: float) -> np.ndarray:
    """``labels`` with the boundary between classes ``cls`` and ``into`` moved by ``offset_mm``:
    ``cls`` grows into ``into`` (``> 0``) or ``into`` into ``cls`` (``< 0``), up to that distance
    (mm, Euclidean, ``spacing_mm`` per voxel). No other class changes."""
    grow, shrink = (cls, into) if offset_mm > 0 else (into, cls)
    out = labels.copy()
    if offset_mm:
        distance = ndi.distance_transform_edt(labels != grow, sampling=spacing_mm)
        out[(labels == shrink) & (distance <= abs(offset_mm))] = grow
    return out


def axial_levels(template: Template) -> np.ndarray:
    """Axial indices whose brain area is at least half the largest: where 2D slices are drawn."""
    area = template.brain.sum(axis=(0, 1))
    return np.flatnonzero(area >= 0.5 * area.max())


def block_levels(template: Template, *, block_mm: float = BLOCK_MM, gap_mm: float = GAP_MM) -> tuple[np.ndarray, np.ndarray]:
    """(train levels, test levels): :func:`axial_levels` cut into blocks of ``block_mm``
    separated by ``gap_mm`` that is left out, alternating train, test, train...; 2D cases are
    deformed in-plane only, so a test slice never sees a training slice's level."""
    levels = axial_levels(template)
    block = max(1, round(block_mm / template.spacing_mm))
    step = block + max(1, round(gap_mm / template.spacing_mm))
    blocks = [levels[i : i + block] for i in range(0, len(levels), step)]
    return np.concatenate(blocks[0::2]), np.concatenate(blocks[1::2] or [np.zeros(0, int)])


def make_case(template: Template, *, kind: str, strength: float, crop_vox, rng: np.random.Generator,
              gm_offset_mm: float = 0.0, level: int | None = None) -> Case:
    """One 2D slice (``kind="2d"``, shape (X, Y, 1)) or 3D crop (``"3d"``, shape ``crop_vox``).

    The 2D slice spans the template's in-plane extent padded to a multiple of 16 voxels; its
    axial position is ``level`` (a template index) or drawn from :func:`axial_levels`.
    ``gm_offset_mm``: the annotator's systematic GM error (module docstring).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength: expected a value in [0, 1], got {strength}")
    sp = template.spacing_mm
    dims = template.brain.shape
    if kind == "2d":
        z = int(rng.choice(axial_levels(template))) if level is None else int(level)
        size = [-(-n // SLICE_MULTIPLE) * SLICE_MULTIPLE for n in dims[:2]]
        origin = [(n - s) // 2 for n, s in zip(dims[:2], size)] + [z]
        shape = (*size, 1)
    elif kind == "3d":
        shape = tuple(int(c) for c in crop_vox)
        centre = np.argwhere(template.brain > 0.5)[rng.integers(int((template.brain > 0.5).sum()))]
        origin = [int(np.clip(c - s // 2, min(0, n - s), max(0, n - s))) for c, s, n in zip(centre, shape, dims)]
    else:
        raise ValueError(f"kind: expected '2d' or '3d', got {kind!r}")
    grid = np.stack(np.meshgrid(*[np.arange(o, o + s, dtype=np.float32) for o, s in zip(origin, shape)], indexing="ij"))
    in_plane = 2 if kind == "2d" else 3
    subject = np.zeros_like(grid)
    subject[:in_plane] = smooth_field(shape, components=in_plane, rms=SUBJECT_RMS_MM / sp, sigma_vox=SUBJECT_CORR_MM / sp, rng=rng)
    clean_maps = _sample(template.stack, grid + subject)
    clean = _labels(clean_maps[1:4], clean_maps[4])

    annot = np.zeros_like(grid)
    if strength > 0:
        annot[:in_plane] = smooth_field(shape, components=in_plane, rms=strength * ANNOT_RMS_MM / sp, sigma_vox=ANNOT_CORR_MM / sp, rng=rng)
    case_offset = rng.uniform(-1.0, 1.0, 2) * strength * THRESHOLD_LOG_RANGE  # GM, WM
    offset = np.zeros((3, 1, 1, shape[2]), np.float32)
    offset[1:] = case_offset[:, None, None, None]
    if kind == "3d":
        annot[:2] += rng.normal(0.0, strength * SLICE_SHIFT_MM / sp, (2, 1, 1, shape[2]))
        offset[1:] += rng.normal(0.0, strength * SLICE_LOG_SD, (2, 1, 1, shape[2]))
    annot_maps = _sample(template.stack[1:], grid + subject + annot)
    annotation = _labels(annot_maps[:3], annot_maps[3], offset)
    if gm_offset_mm and kind == "3d":
        annotation = offset_boundary(annotation, LABELS["GM"], LABELS["WM"], gm_offset_mm, sp)
    elif gm_offset_mm:  # within the slice: a 2D annotator sees no neighbouring slice
        annotation = offset_boundary(annotation[:, :, 0], LABELS["GM"], LABELS["WM"], gm_offset_mm, sp)[:, :, None]

    image = _augment_intensity(clean_maps[0], spacing_mm=sp, rng=rng)
    brain = clean > 0
    info = {
        "kind": kind,
        "origin_vox": [int(o) for o in origin],
        "log_offset_gm_wm": [float(v) for v in case_offset],
        "disagreement_in_brain": float((annotation != clean)[brain].mean()) if brain.any() else 0.0,
    }
    return Case(image=image, clean=clean, annotation=annotation, affine=template.affine @ _translation(origin), info=info)


def write_benchmark(
    out_dir,
    *,
    strength: float = 0.5,
    n_2d: int = 40,
    n_3d: int = 8,
    seed: int = 0,
    spacing_mm: float = 1.0,
    crop_vox=(96, 96, 96),
    gm_offset_mm: float = 0.0,
    n_2d_test: int = 0,
) -> dict:
    """Write an nnU-Net raw dataset folder and return its ``dataset.json`` content.

    Layout: ``imagesTr/<case>_0000.nii.gz`` (T1, float32), ``labelsTr/<case>.nii.gz`` (the
    perturbed training annotations, uint8), ``labelsTr_clean/<case>.nii.gz`` (the clean
    truth, for evaluation only). Cases ``mni2d_NNN`` are axial slices stored as (X, Y, 1),
    ``mni3d_NNN`` are 3D crops of ``crop_vox`` voxels. ``dataset.json`` has nnU-Net's keys
    plus ``softlabel_benchmark``: the parameters and, per case, its kind, origin, per-case
    GM/WM log offsets and the fraction of brain voxels whose annotation differs from the
    clean truth. Case k of a kind depends only on (seed, kind, k).

    With ``n_2d_test``, the 2D cases are split by anatomy (:func:`block_levels`): the
    ``n_2d`` cases ``mni2d_NNN`` lie in the training blocks, ``n_2d_test`` cases
    ``mni2dtest_NNN`` in the test blocks, and ``splits.json`` (``train``, ``val`` empty,
    ``test``; the trainer's ``splits_file``) records it. 3D cases go to ``train``.
    """
    import json
    from pathlib import Path

    import nibabel as nib

    if n_2d < 0 or n_3d < 0 or n_2d + n_3d == 0:
        raise ValueError(f"n_2d, n_3d: expected non-negative counts with at least one case, got {n_2d}, {n_3d}")
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm: expected a positive voxel size, got {spacing_mm}")
    if len(crop_vox) != 3 or min(crop_vox) < 1:
        raise ValueError(f"crop_vox: expected three positive sizes, got {tuple(crop_vox)}")
    if n_2d_test < 0 or (n_2d_test and not n_2d):
        raise ValueError(f"n_2d_test: expected 0, or a non-negative count beside 2D training cases, got {n_2d_test} with n_2d {n_2d}")
    out = Path(out_dir)
    for sub in ("imagesTr", "labelsTr", "labelsTr_clean"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    template = load_template(spacing_mm)
    train_levels, test_levels = block_levels(template) if n_2d_test else (None, None)
    if n_2d_test and not len(test_levels):
        raise ValueError(f"spacing_mm: expected room for a test block at {spacing_mm} mm, got one block of levels only")
    kinds = (("2d", "mni2d", n_2d, train_levels), ("3d", "mni3d", n_3d, None), ("2d", "mni2dtest", n_2d_test, test_levels))
    cases = {}
    for kind_index, (kind, prefix, count, levels) in enumerate(kinds):
        for k in range(count):
            rng = np.random.default_rng([seed, kind_index, k])
            level = None if levels is None else int(rng.choice(levels))
            case = make_case(template, kind=kind, strength=strength, crop_vox=crop_vox, rng=rng,
                             gm_offset_mm=gm_offset_mm, level=level)
            name = f"{prefix}_{k:03d}"
            nib.save(nib.Nifti1Image(case.image, case.affine), out / "imagesTr" / f"{name}_0000.nii.gz")
            nib.save(nib.Nifti1Image(case.annotation, case.affine), out / "labelsTr" / f"{name}.nii.gz")
            nib.save(nib.Nifti1Image(case.clean, case.affine), out / "labelsTr_clean" / f"{name}.nii.gz")
            cases[name] = case.info
    dataset = {
        "name": "MNI152 uncertain boundaries",
        "description": "nilearn MNI152 2009 tissue maps; labelsTr perturbed like human annotators, labelsTr_clean clean.",
        "channel_names": {"0": "T1"},
        "labels": LABELS,
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
        "softlabel_benchmark": {
            "strength": strength,
            "seed": seed,
            "spacing_mm": spacing_mm,
            "crop_vox": [int(c) for c in crop_vox],
            "gm_offset_mm": gm_offset_mm,
            "split": {"block_mm": BLOCK_MM, "gap_mm": GAP_MM} if n_2d_test else None,
            "clean_labels": "labelsTr_clean",
            "cases": cases,
        },
    }
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    if n_2d_test:
        splits = {"train": sorted(c for c in cases if not c.startswith("mni2dtest_")), "val": [],
                  "test": sorted(c for c in cases if c.startswith("mni2dtest_"))}
        (out / "splits.json").write_text(json.dumps(splits, indent=2))
    return dataset
