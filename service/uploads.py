"""Study uploads: stream into scratch space in the dataset folder, validate, then move into place.

The engine's checks run on the uploaded files under their own names, so errors read
``t2.nii.gz: shape: expected (24, 28, 20) like t1.nii.gz, got (24, 28, 21)``. Headers are
checked (voxel count, dimensions) before any voxel data is decompressed. On any failure the
scratch folder is removed and nothing is left in storage.

When the dataset has labelsets and the files are stored as uploaded, each file is
decompressed once: the checks write its uncompressed copy as they read it, and the jobs the
upload queues read the copies instead of decompressing the files again
(``layout.decoded_inputs``; docs/performance.md, "Service").
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
from rq import Queue

from softlabel.worker.engine.errors import InputError
from softlabel.worker.engine.io import nifti as nifti_io
from softlabel.worker.engine.io.files import file_sha256
from softlabel.worker.jobs.contract import decoded_paths

from . import layout
from .datasets import Dataset, labelset_names, refresh_num_training, utc_now
from .errors import ApiError, conflict
from .labelsets import list_labelsets, queue_studies
from .locks import dataset_lock
from .schemas import QueuedJobPublic
from .settings import Settings
from .storage import Storage
from .studies import StoredFile, Study

GZIP_MAGIC = b"\x1f\x8b"
COPY_CHUNK_BYTES = 1 << 20  # bytes copied at a time from the request to scratch space
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file: the form field it came in, the client's file name and its bytes."""

    field: str  # "images[0]", "label"
    filename: str
    stream: BinaryIO


@dataclass(frozen=True)
class PreparedStudy:
    """Validated files under their final names in scratch space, ready to move into storage."""

    case_id: str
    shape: list[int]
    spacing_mm: list[float]
    images: list[Path]  # one per channel
    label: Path
    decoded: Path | None  # folder of the inputs' uncompressed copies (contract names), if made


def safe_filename(filename: str, *, gzipped: bool) -> str:
    """The client's base name with unsafe characters replaced and the extension the bytes need."""
    base = _UNSAFE.sub("_", Path(filename.replace("\\", "/")).name).lstrip(".") or "upload"
    for ending in (".nii.gz", ".nii"):
        if base.endswith(ending):
            base = base[: -len(ending)]
            break
    return f"{base or 'upload'}{'.nii.gz' if gzipped else '.nii'}"


def save_upload(upload: UploadedFile, folder: Path) -> Path:
    """Copy an uploaded file into ``folder`` under a NIfTI name (gzip is detected from its bytes)."""
    head = upload.stream.read(2)
    target = folder / safe_filename(upload.filename, gzipped=head == GZIP_MAGIC)
    folder.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        out.write(head)
        shutil.copyfileobj(upload.stream, out, COPY_CHUNK_BYTES)
    return target


def resolve_case_id(case_id: str | None, label_filename: str) -> str:
    """The given case id, else the label file's name when it is a valid id, else a generated one."""
    if case_id is None:
        stem = Path(label_filename).name.split(".")[0]
        case_id = stem if layout.is_valid_id(stem) and not stem.endswith(layout.RESERVED_CASE_SUFFIXES) else None
        return case_id or f"case-{uuid.uuid4().hex[:8]}"
    if not layout.is_valid_id(case_id):
        raise ApiError(
            422, f"case_id: expected letters, digits, '_' or '-' (at most 128, no path), got {case_id!r}",
            field="case_id", expected=layout.ID_PATTERN, got=case_id,
        )  # fmt: skip
    if case_id.endswith(layout.RESERVED_CASE_SUFFIXES):
        raise ApiError(422, f"case_id: expected no {layout.RESERVED_CASE_SUFFIXES} suffix, got {case_id!r}", field="case_id")
    return case_id


def _kept_as_uploaded(files: nifti_io.ImageFiles) -> bool:
    """Whether the image files are stored byte for byte: already one gzipped 2D/3D file per channel."""
    gzipped = all(p.name.endswith(".nii.gz") for p in files.paths)
    return gzipped and len(files.paths) == files.num_channels and all(len(img.shape) < 4 for img in files.images)


def _as_channel_files(files: nifti_io.ImageFiles, folder: Path) -> list[Path]:
    """One gzipped 2D/3D file per channel: uploaded files are kept byte for byte when they
    already are one; a 4D file is split and plain ``.nii`` is compressed."""
    if _kept_as_uploaded(files):
        return files.paths
    folder.mkdir()
    paths, channels = files.paths, files.num_channels
    out = []
    for index in range(channels):
        img = nib.load(paths[0] if len(paths) == 1 else paths[index])
        channel = img.slicer[..., index] if len(img.shape) == 4 else img
        target = folder / f"channel_{index:04d}.nii.gz"
        nib.save(channel, target)
        out.append(target)
    return out


def _as_gzipped(path: Path, folder: Path) -> Path:
    if path.name.endswith(".nii.gz"):
        return path
    folder.mkdir(exist_ok=True)
    target = folder / "label.nii.gz"
    nib.save(nib.load(path), target)
    return target


def prepare_study(
    folder: Path, dataset: Dataset, *, case_id: str, images: list[UploadedFile], label: UploadedFile, max_voxels: int,
    decode: bool = False,
) -> PreparedStudy:
    """Save and validate one study in the scratch ``folder``; raises ApiError (4xx) on bad input.

    decode: write each file's uncompressed copy as its voxels are checked, for the jobs this
    upload queues (only when the files are stored as uploaded).
    """
    image_paths = [save_upload(part, folder / f"image{i}") for i, part in enumerate(images)]
    label_path = save_upload(label, folder / "label")
    try:
        files = nifti_io.open_image_files(image_paths, max_voxels=max_voxels)
        channels = files.num_channels
        if channels != dataset.num_channels:
            names = ", ".join(dataset.channel_names.values())
            raise ApiError(
                422, f"images: expected {dataset.num_channels} channel(s) ({names}): one file each or one 4D file, "
                f"got {channels} in {len(images)} file(s)", field="images",
                expected=f"{dataset.num_channels} channels", got=f"{channels} channels",
            )  # fmt: skip
        nifti_io.open_nifti(label_path, max_voxels=max_voxels)
        kept = _kept_as_uploaded(files) and label_path.name.endswith(".nii.gz")  # stored as uploaded
        decoded = folder / "decoded" if decode and kept else None
        copies = None
        if decoded is not None:
            decoded.mkdir()
            copies = decoded_paths(decoded, channels=channels)
        study = nifti_io.check_study(
            image_paths, label_path, num_classes=dataset.num_classes, max_voxels=max_voxels, copies=copies
        )
        final_images = _as_channel_files(files, folder / "channels")
        final_label = _as_gzipped(label_path, folder / "converted")
    except InputError as exc:
        raise ApiError.from_input_error(exc, hide=folder) from None
    return PreparedStudy(
        case_id=case_id, shape=list(study.spatial_shape), spacing_mm=list(study.spacing_mm),
        images=final_images, label=final_label, decoded=decoded,
    )  # fmt: skip


def _duplicate(case_id: str) -> ApiError:
    return conflict(f"case_id: study {case_id!r} already exists in this dataset; delete it first", field="case_id")


def place_study(storage: Storage, dataset: Dataset, prepared: PreparedStudy) -> Study:
    """Move prepared files into the dataset, metadata last; call under the dataset lock."""
    case = prepared.case_id
    if storage.exists(layout.study_meta(dataset.id, case)):
        raise _duplicate(case)
    keys = [layout.image(dataset.id, case, ch) for ch in range(len(prepared.images))] + [layout.label(dataset.id, case)]
    stored = [StoredFile(key, file_sha256(path), path.stat().st_size) for key, path in zip(keys, [*prepared.images, prepared.label])]
    try:
        for key, path in zip(keys, [*prepared.images, prepared.label]):
            storage.put(key, path)
        study = Study(
            dataset_id=dataset.id, case_id=case, shape=prepared.shape, spacing_mm=prepared.spacing_mm,
            images=stored[:-1], label=stored[-1], uploaded_at=utc_now(),
        )  # fmt: skip
        storage.write_json(layout.study_meta(dataset.id, case), study.to_json())
    except BaseException:
        for key in keys:
            storage.delete(key)
        raise
    refresh_num_training(storage, dataset)
    return study


def add_study(
    storage: Storage, queue: Queue, settings: Settings, dataset: Dataset, *,
    case_id: str | None, images: list[UploadedFile], label: UploadedFile,
) -> tuple[Study, list[QueuedJobPublic]]:  # fmt: skip
    """Validate and store one study, then queue it for every labelset of the dataset, each
    job with its own links to the uncompressed copies the validation made."""
    case = resolve_case_id(case_id, label.filename)
    if storage.exists(layout.study_meta(dataset.id, case)):
        raise _duplicate(case)
    with storage.scratch(layout.dataset_dir(dataset.id)) as folder:
        prepared = prepare_study(
            folder, dataset, case_id=case, images=images, label=label, max_voxels=settings.max_voxels,
            decode=bool(labelset_names(storage, dataset.id)),
        )  # fmt: skip
        with dataset_lock(queue.connection, dataset.id):
            study = place_study(storage, dataset, prepared)
            queued = []
            for labelset in list_labelsets(storage, dataset.id):
                decoded = layout.decoded_inputs(dataset.id, labelset.name, case)
                if prepared.decoded is not None:
                    storage.put_copy(decoded, prepared.decoded)
                ids, _ = queue_studies(storage, queue, settings, dataset, labelset, [case])
                if not ids:
                    storage.delete(decoded)
                queued += [QueuedJobPublic(labelset=labelset.name, job_id=job_id) for job_id in ids]
    return study, queued
