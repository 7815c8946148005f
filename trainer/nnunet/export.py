"""Export a labelset as an nnU-Net raw dataset with its soft labels beside it.

Output layout, under ``<nnUNet_raw>/Dataset<ID>_<name>/``:

- ``dataset.json``: nnU-Net's (channel names, labels, numTraining, file ending ``.nii.gz``)
  plus a ``softlabel`` entry (the soft-label folder, K, where the labels came from);
- ``imagesTr/<case>_<XXXX>.nii.gz``: one file per channel, as nnU-Net reads them;
- ``labelsTr/<case>.nii.gz``: the hard labels the soft labels were made from;
- ``softlabelsTr/<case>.nii.gz``: the soft labels, 4D (X, Y, Z, K) in nibabel's axis order
  (uint8 with scl_slope 1/255, or float32), on the grid of the case's images.

Every case is checked before it is written: the soft labels' spatial shape and affine must be
the images' (nnU-Net's readers transpose the arrays they read; the soft-label preprocessing
reads the soft labels through the same reader, so equal grids give equal axes), K must be
the dataset's class count and the values must lie in [0, 1].
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from softlabel.worker.engine.io.nifti import read_soft_labels
from softlabel.worker.engine.io.raw_dataset import scan_dataset

from ..datasets import CaseFiles
from . import SOFT_FOLDER

FILE_ENDING = ".nii.gz"
AFFINE_ATOL_MM = 1e-3  # affines of the images and the soft labels agree to this (mm)
DATASET_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's ``Dataset<XXX>_<name>`` (three digits, 1..999)."""
    if not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset id: expected an integer in 1..999 (nnU-Net's three digits), got {dataset_id}")
    if not DATASET_NAME.match(name):
        raise ValueError(f"dataset name: expected letters, digits, '_' or '-', got {name!r}")
    return f"Dataset{dataset_id:03d}_{name}"


def check_case(case: CaseFiles, *, num_classes: int, num_channels: int) -> None:
    """Raise ValueError naming the file when the soft labels do not fit the case's images."""
    if case.soft is None:
        raise ValueError(f"{case.label}: soft labels: expected a soft-label file for {case.case_id}, got none")
    ref = nib.load(case.images[0])
    spatial = ref.shape[:3]  # a 4D image file holds the channels on its last axis
    soft_img = nib.load(case.soft)
    if soft_img.ndim != 4 or soft_img.shape[:3] != tuple(spatial) or soft_img.shape[3] != num_classes:
        raise ValueError(
            f"{case.soft}: shape: expected (X, Y, Z, K) = {(*spatial, num_classes)} like {case.images[0].name}, got {soft_img.shape}"
        )
    if not np.allclose(soft_img.affine, ref.affine, atol=AFFINE_ATOL_MM):
        raise ValueError(f"{case.soft}: affine: expected the affine of {case.images[0].name}, got {soft_img.affine.tolist()}")
    label_img = nib.load(case.label)
    if label_img.shape[:3] != tuple(spatial) or not np.allclose(label_img.affine, ref.affine, atol=AFFINE_ATOL_MM):
        raise ValueError(f"{case.label}: grid: expected the shape and affine of {case.images[0].name}, got {label_img.shape}")
    soft = read_soft_labels(case.soft)  # clipped to [0, 1] after scaling; NaN survives the clip
    if not np.isfinite(soft).all():
        raise ValueError(f"{case.soft}: values: expected finite probabilities in [0, 1], got NaN or inf")


def _put(src: Path, dest: Path) -> None:
    """Copy a NIfTI file to ``dest`` (``.nii.gz``), recompressing an uncompressed one."""
    if src.name.endswith(".gz"):
        shutil.copyfile(src, dest)
    else:
        nib.save(nib.load(src), dest)


def _put_channels(images: Sequence[Path], case_id: str, out: Path, num_channels: int) -> None:
    """Channel files ``<case>_<XXXX>.nii.gz``; a single 4D image file is split into them."""
    if len(images) == num_channels:
        for c, src in enumerate(images):
            _put(src, out / f"{case_id}_{c:04d}{FILE_ENDING}")
        return
    img = nib.load(images[0])
    if len(images) != 1 or img.ndim != 4 or img.shape[3] != num_channels:
        raise ValueError(f"{images[0]}: channels: expected {num_channels} channel files or one 4D file, got {len(images)} file(s)")
    data = np.asanyarray(img.dataobj)
    for c in range(num_channels):
        nib.save(nib.Nifti1Image(data[..., c], img.affine, img.header), out / f"{case_id}_{c:04d}{FILE_ENDING}")


def write_raw_dataset(
    out_root: Path,
    folder_name: str,
    cases: Sequence[CaseFiles],
    *,
    labels: dict[str, int],
    channel_names: dict[str, str],
    source: dict,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """Check every case, then write the nnU-Net raw dataset; returns its folder."""
    num_classes = max(labels.values()) + 1
    if not cases:
        raise ValueError("cases: expected at least one case to export, got none")
    for case in cases:
        check_case(case, num_classes=num_classes, num_channels=len(channel_names))
    root = Path(out_root) / folder_name
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root}: folder: expected a new or empty folder for the export, got an existing dataset")
    for sub in ("imagesTr", "labelsTr", SOFT_FOLDER):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for case in cases:
        _put_channels(case.images, case.case_id, root / "imagesTr", len(channel_names))
        _put(case.label, root / "labelsTr" / f"{case.case_id}{FILE_ENDING}")
        _put(case.soft, root / SOFT_FOLDER / f"{case.case_id}{FILE_ENDING}")
        log(f"exported {case.case_id}")
    meta = {
        "channel_names": channel_names,
        "labels": labels,
        "numTraining": len(cases),
        "file_ending": FILE_ENDING,
        "softlabel": {"soft_folder": SOFT_FOLDER, "num_classes": num_classes, "layout": "(X, Y, Z, K)", "source": source},
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2))
    return root


def export_local(raw: Path, soft_dir: Path, out_root: Path, *, dataset_id: int, name: str | None = None,
                 log: Callable[[str], None] = lambda _: None) -> Path:
    """Export a local nnU-Net raw dataset and its soft labels ``<soft_dir>/<case>.nii.gz``
    (what ``softlabel soften-dataset RAW --out SOFT_DIR`` writes)."""
    dataset = scan_dataset(raw)
    cases = []
    for case in dataset.cases:
        soft = Path(soft_dir) / f"{case.case_id}{FILE_ENDING}"
        if not soft.exists():
            raise ValueError(f"{soft}: file: expected the soft labels of {case.case_id}, got no such file")
        cases.append(CaseFiles(case.case_id, case.image_paths, case.label_path, soft))
    default_name = re.sub(r"^Dataset\d{3}_", "", Path(raw).resolve().name)
    return write_raw_dataset(
        out_root, dataset_folder_name(dataset_id, name or default_name), cases,
        labels=dataset.labels, channel_names=dataset.channel_names,
        source={"raw": str(Path(raw).resolve()), "soft": str(Path(soft_dir).resolve())}, log=log,
    )  # fmt: skip


def export_from_service(
    api: str, dataset: str, labelset: str, out_root: Path, *, dataset_id: int, name: str | None = None,
    cache_dir: Path, token: str | None = None, log: Callable[[str], None] = lambda _: None,
) -> Path:
    """Export a finished labelset of the service (3D studies), through the trainer's cache."""
    from ..data_cache import DataCache, fetch_labelset

    cache = DataCache(cache_dir, api=api, token=token)
    manifest, cases = fetch_labelset(cache, dataset, labelset, spatial_dims=3, with_soft=True)
    meta = manifest["dataset"]
    return write_raw_dataset(
        out_root, dataset_folder_name(dataset_id, name or re.sub(r"[^A-Za-z0-9_-]", "_", dataset)), cases,
        labels=meta["labels"], channel_names=meta["channel_names"],
        source={"api": api, "dataset": dataset, "labelset": labelset, "method": manifest["labelset"]["method"]}, log=log,
    )  # fmt: skip
