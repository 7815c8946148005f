"""Soft targets through nnU-Net's preprocessing: transpose, crop, linear resampling, uint8.

Run after ``nnUNetv2_plan_and_preprocess``. For each preprocessed case of a configuration it
reads the case's soft labels (``<nnUNet_raw>/<dataset>/softlabelsTr/<case>.nii.gz``, 4D
(X, Y, Z, K)) and repeats on them what nnU-Net's ``DefaultPreprocessor`` did to the images:

1. read them with the plans' own image reader (each class channel written to a temporary 3D
   NIfTI on the soft labels' grid and read like an image channel, so that the reader's axis
   order and any reorientation are exactly the images'); the reader's geometry of the soft
   labels (spacing, origin, direction) must be that of the case's images;
2. ``transpose_forward``, then the crop to the images' non-zero box that nnU-Net recorded
   (``bbox_used_for_cropping``);
3. the plans' image resampling function with linear interpolation (``order`` and ``order_z``
   1 where it takes them) to the preprocessed segmentation's shape;
4. clip to [0, 1] and store ``round(255 q)`` as uint8, (K, *spatial) in nnU-Net's axis order,
   as ``<case>_soft.npy`` beside ``<case>.b2nd`` (nnU-Net's dataset classes ignore ``.npy``
   files there).

Each case is then checked against nnU-Net's own preprocessed segmentation: wherever the soft
labels are hard (one class at 255), their argmax must be the segmentation's label. A swapped
or flipped axis, or soft labels of another case, fail that check. A summary goes to
``<nnUNet_preprocessed>/<dataset>/softlabel_<data identifier>.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from softlabel.worker.engine.io.nifti import read_soft_labels

from . import SOFT_FOLDER, SOFT_SUFFIX
from .paths import dataset_name, nnunet_folder

HARD_AGREEMENT_MIN = 0.99  # least fraction of hard soft-label voxels whose argmax is nnU-Net's label
GEOMETRY_RTOL = 1e-4  # reader geometry (spacing, origin, direction) of soft labels vs images


def _same_geometry(a, b) -> bool:
    """Nested dicts/lists/tuples of numbers (a reader's properties) equal within GEOMETRY_RTOL."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_geometry(a[k], b[k]) for k in a)
    try:
        return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=GEOMETRY_RTOL, atol=1e-6)
    except (TypeError, ValueError):
        return a == b


def read_soft_as_nnunet(path: Path, reader) -> tuple[np.ndarray, dict]:
    """Soft labels as nnU-Net's ``reader`` reads images: float32 (K, *spatial in the reader's
    axis order) and the reader's properties of that grid."""
    img = nib.load(path)
    soft = read_soft_labels(path)  # (X, Y, Z, K) float32 in [0, 1]
    with tempfile.TemporaryDirectory(prefix="softlabel-nnunet-") as tmp:
        files = []
        for k in range(soft.shape[-1]):
            channel = nib.Nifti1Image(np.ascontiguousarray(soft[..., k]), img.affine)
            channel.header.set_xyzt_units(*img.header.get_xyzt_units())
            files.append(str(Path(tmp) / f"soft_{k:04d}.nii"))
            nib.save(channel, files[-1])
        data, properties = reader.read_images(files)
    return np.asarray(data, dtype=np.float32), properties


def _linear(kwargs: dict) -> dict:
    """The image resampling kwargs with linear interpolation where the function takes an order."""
    return {**kwargs, **{key: 1 for key in ("order", "order_z") if key in kwargs}}


def soft_targets_for_case(
    soft_path: Path, properties: dict, seg_shape: tuple[int, ...], *, plans_manager, configuration_manager, reader,
) -> np.ndarray:
    """The preprocessed soft targets of one case, float32 (K, *seg_shape) in [0, 1]."""
    from nnunetv2.preprocessing.resampling.utils import recursive_find_resampling_fn_by_name

    soft, soft_props = read_soft_as_nnunet(soft_path, reader)
    for key in properties:
        if key == "spacing" or key.endswith("_stuff"):
            if key not in soft_props or not _same_geometry(soft_props[key], properties[key]):
                raise ValueError(
                    f"{soft_path}: geometry ({key}): expected the images' {properties[key]}, got {soft_props.get(key)}"
                )
    transpose = plans_manager.transpose_forward
    soft = soft.transpose([0, *[i + 1 for i in transpose]])
    if soft.shape[1:] != tuple(properties["shape_before_cropping"]):
        raise ValueError(f"{soft_path}: shape: expected {tuple(properties['shape_before_cropping'])} after transpose like the images, got {soft.shape[1:]}")
    bbox = properties["bbox_used_for_cropping"]
    soft = soft[(slice(None), *[slice(int(lo), int(hi)) for lo, hi in bbox])]
    original_spacing = [properties["spacing"][i] for i in transpose]
    target_spacing = list(configuration_manager.spacing)
    if len(target_spacing) < len(soft.shape[1:]):  # 2D configurations keep the spacing between slices
        target_spacing = [original_spacing[0], *target_spacing]
    config = configuration_manager.configuration
    resample = recursive_find_resampling_fn_by_name(config["resampling_fn_data"])
    soft = resample(soft, tuple(seg_shape), original_spacing, target_spacing, **_linear(config["resampling_fn_data_kwargs"]))
    return np.clip(np.asarray(soft, dtype=np.float32), 0.0, 1.0)


def quantize(soft: np.ndarray) -> np.ndarray:
    """uint8 ``round(255 q)`` (read back as ``stored / 255``, within 1/510)."""
    return np.rint(soft * 255.0).astype(np.uint8)


def hard_agreement(stored: np.ndarray, seg: np.ndarray) -> tuple[float, int]:
    """(fraction, count) of the voxels where one class is at 255 and nnU-Net's label is known
    (``seg >= 0``) whose argmax is that label; fraction 1.0 when there are none."""
    hard = (stored.max(0) == 255) & (seg >= 0)
    count = int(hard.sum())
    if count == 0:
        return 1.0, 0
    return float((stored.argmax(0)[hard] == seg[hard]).mean()), count


def preprocess_soft_labels(
    dataset: str | int,
    *,
    configuration: str = "3d_fullres",
    plans_identifier: str = "nnUNetPlans",
    soft_dir: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """Write ``<case>_soft.npy`` for every preprocessed case; returns the summary written beside the plans."""
    from batchgenerators.utilities.file_and_folder_operations import load_json, load_pickle
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    raw_root, preprocessed = nnunet_folder("nnUNet_raw"), nnunet_folder("nnUNet_preprocessed")
    name = dataset_name(dataset)
    base = preprocessed / name
    plans_file = base / f"{plans_identifier}.json"
    if not plans_file.exists():
        raise ValueError(f"{plans_file}: plans: expected nnUNetv2_plan_and_preprocess to have run, got no such file")
    plans_manager = PlansManager(str(plans_file))
    configuration_manager = plans_manager.get_configuration(configuration)
    folder = base / configuration_manager.data_identifier
    if not folder.is_dir():
        raise ValueError(f"{folder}: preprocessed data: expected nnUNetv2_plan_and_preprocess -c {configuration} to have run, got no folder")
    raw_meta = load_json(str(raw_root / name / "dataset.json"))
    soft_dir = Path(soft_dir) if soft_dir else raw_root / name / raw_meta.get("softlabel", {}).get("soft_folder", SOFT_FOLDER)
    num_classes = max(raw_meta["labels"].values()) + 1
    reader = plans_manager.image_reader_writer_class()
    dataset_class = infer_dataset_class(str(folder))
    identifiers = sorted(dataset_class.get_identifiers(str(folder)))
    data = dataset_class(str(folder), identifiers)
    cases = {}
    for case in identifiers:
        soft_path = soft_dir / f"{case}{raw_meta.get('file_ending', '.nii.gz')}"
        if not soft_path.exists():
            raise ValueError(f"{soft_path}: file: expected the soft labels of case {case}, got no such file")
        _, seg, _, _ = data.load_case(case)
        seg = np.asarray(seg[:])[0]
        properties = load_pickle(str(folder / f"{case}.pkl"))
        soft = soft_targets_for_case(soft_path, properties, seg.shape, plans_manager=plans_manager,
                                     configuration_manager=configuration_manager, reader=reader)
        if soft.shape[0] != num_classes:
            raise ValueError(f"{soft_path}: classes: expected K = {num_classes} channels, got {soft.shape[0]}")
        stored = quantize(soft)
        agreement, n_hard = hard_agreement(stored, seg)
        if agreement < HARD_AGREEMENT_MIN:
            raise ValueError(
                f"{soft_path}: alignment: expected the argmax of the hard soft-label voxels to be nnU-Net's label on at "
                f"least {HARD_AGREEMENT_MIN:.0%} of them, got {agreement:.1%} of {n_hard} (swapped axes, another grid or another case?)"
            )
        tmp = base / f".{case}{SOFT_SUFFIX}"
        np.save(tmp, np.ascontiguousarray(stored))
        os.replace(tmp, folder / f"{case}{SOFT_SUFFIX}")
        cases[case] = {"shape": list(stored.shape), "hard_voxels": n_hard, "hard_agreement": agreement,
                       "soft_fraction": float(((stored > 0) & (stored < 255)).any(0).mean())}
        log(f"{case}: soft targets {stored.shape}, argmax = nnU-Net label on {agreement:.2%} of {n_hard} hard voxels")
    summary = {"dataset": name, "configuration": configuration, "plans": plans_identifier,
               "data_identifier": configuration_manager.data_identifier, "soft_dir": str(soft_dir),
               "dtype": "uint8", "scale": "q = stored / 255", "cases": cases}
    (base / f"softlabel_{configuration_manager.data_identifier}.json").write_text(json.dumps(summary, indent=2))
    return summary
