"""Import an nnU-Net raw dataset uploaded as a zip: extract safely, validate every case, then
move the whole dataset folder into place in one rename (all or nothing).
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

import nibabel as nib
from pydantic import ValidationError

from softlabel.worker.engine.errors import InputError
from softlabel.worker.engine.io import nifti as nifti_io
from softlabel.worker.engine.io.atomic import write_json_atomic
from softlabel.worker.engine.io.files import file_sha256
from softlabel.worker.engine.io.raw_dataset import read_dataset_json, scan_dataset

from . import layout
from .datasets import Dataset, new_dataset, utc_now, write_dataset_json
from .errors import ApiError
from .schemas import DatasetCreate
from .storage import Storage
from .studies import StoredFile, Study
from .uploads import COPY_CHUNK_BYTES, UploadedFile

MAX_ZIP_ENTRIES = 100_000  # files per archive
# Deflate compresses at most about 1032:1; a NIfTI label map that is mostly background reaches a
# few hundred to one, a zero-filled bomb 1000:1. Entries compressing better than this are refused.
MAX_COMPRESSION_RATIO = 500
MAX_JSON_BYTES = 1 << 20  # dataset.json, extracted
NIFTI_HEADER_BYTES = 64 << 10  # a NIfTI-1/2 header with extensions, generously
MAX_BYTES_PER_VOXEL = 8  # float64 or int64, the widest NIfTI types we read
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")
_IMAGE = re.compile(r"^(?P<case>.+)_\d{4}\.nii(?:\.gz)?$")  # imagesTr/<case>_<channel>
_LABEL = re.compile(r"^(?P<case>.+)\.nii(?:\.gz)?$")  # labelsTr/<case>


def _bad_zip(detail: str, *, got: str | None = None, status: int = 422) -> ApiError:
    return ApiError(status, f"file: {detail}", field="file", expected=detail, got=got)


def _plan(zf: zipfile.ZipFile, *, max_bytes: int, max_voxels: int) -> tuple[str, list[zipfile.ZipInfo]]:
    """Check the archive from its central directory alone, before anything is written: entry
    count, paths, links, duplicate names, the nnU-Net layout (dataset.json, imagesTr/ and
    labelsTr/ with a label per case), each entry's size and compression ratio, the total size.
    Returns the dataset root inside the archive ("" or "folder/") and the entries to extract."""
    members = [m for m in zf.infolist() if not m.filename.startswith("__MACOSX/") and not m.is_dir()]
    if len(members) > MAX_ZIP_ENTRIES:
        raise _bad_zip(f"expected at most {MAX_ZIP_ENTRIES} entries", got=str(len(members)))
    seen: set[str] = set()
    for member in members:
        parts = PurePosixPath(member.filename).parts
        if member.filename.startswith("/") or "\\" in member.filename or ".." in parts:
            raise _bad_zip("expected entries with relative paths inside the archive", got=repr(member.filename))
        if stat.S_ISLNK(member.external_attr >> 16):
            raise _bad_zip("expected no symbolic links", got=repr(member.filename))
        if member.filename in seen:
            raise _bad_zip("expected each entry name once", got=f"{member.filename!r} twice")
        seen.add(member.filename)
    roots = sorted((m.filename[: -len("dataset.json")] for m in members if PurePosixPath(m.filename).name == "dataset.json"),
                   key=lambda root: root.count("/"))  # fmt: skip
    if not roots:
        raise _bad_zip("expected a dataset.json in the archive (nnU-Net raw dataset)", got="none")
    root = roots[0]
    inside = [m for m in members if m.filename.startswith(root)]
    labels = {m.filename[len(root) + len("labelsTr/"):] for m in inside if m.filename.startswith(root + "labelsTr/")}
    images = [m.filename[len(root) + len("imagesTr/"):] for m in inside if m.filename.startswith(root + "imagesTr/")]
    if not labels or not images:
        raise _bad_zip(f"expected imagesTr/ and labelsTr/ beside {root}dataset.json", got="no " + ("labelsTr/" if not labels else "imagesTr/"))
    label_cases = {match["case"] for name in labels if (match := _LABEL.match(name))}
    for name in images:
        match = _IMAGE.match(name)
        if match is None or match["case"] not in label_cases:
            raise _bad_zip("expected imagesTr/<case>_<channel>.nii[.gz] with a labelsTr/<case> file", got=repr(name))
    max_nifti = NIFTI_HEADER_BYTES + max_voxels * MAX_BYTES_PER_VOXEL
    total = 0
    for member in inside:
        limit = MAX_JSON_BYTES if member.filename.endswith(".json") else max_nifti
        if member.file_size > limit:
            raise _bad_zip(f"expected entries of at most {limit} bytes", got=f"{member.filename!r}: {member.file_size} bytes", status=413)
        if member.file_size > 1 << 20 and member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1):
            ratio = member.file_size / max(member.compress_size, 1)
            raise _bad_zip(f"expected entries compressed at most {MAX_COMPRESSION_RATIO}:1", got=f"{member.filename!r}: {ratio:.0f}:1")
        total += member.file_size
    if total > max_bytes:
        raise _bad_zip(f"expected at most {max_bytes} bytes once extracted", got=f"{total} bytes", status=413)
    return root, inside


def _extract(archive: Path, target: Path, *, max_bytes: int, max_voxels: int) -> Path:
    """Extract the planned entries, never more bytes than each one's declared size; returns the
    folder holding ``dataset.json``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            root, members = _plan(zf, max_bytes=max_bytes, max_voxels=max_voxels)
            for member in members:
                path = target.joinpath(*PurePosixPath(member.filename).parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with zf.open(member) as source, path.open("wb") as out:
                    while chunk := source.read(COPY_CHUNK_BYTES):
                        written += len(chunk)
                        if written > member.file_size:  # the central directory lied about the size
                            raise _bad_zip("expected entries no larger than the archive declares", got=repr(member.filename))
                        out.write(chunk)
    except zipfile.BadZipFile as exc:
        raise _bad_zip("expected a zip archive of an nnU-Net raw dataset", got=str(exc)) from None
    return target.joinpath(*PurePosixPath(root).parts) if root else target


def _dataset_id(requested: str | None, meta: dict, root: Path) -> str:
    if requested is not None:
        return requested
    derived = _NOT_ID.sub("-", str(meta.get("name") or root.name)).strip("-_")[:128]
    return derived if layout.is_valid_id(derived) else f"import-{utc_now()[:10]}"


def _store_file(source: Path, dataset_folder: Path, key: str) -> StoredFile:
    """Move (or gzip) one file into the dataset folder being built, at ``key``'s place in it."""
    target = dataset_folder.joinpath(*PurePosixPath(key).parts[2:])  # key: datasets/<id>/...
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.name.endswith(".nii.gz"):
        shutil.move(source, target)
    else:
        nib.save(nib.load(source), target)
    return StoredFile(key=key, sha256=file_sha256(target), bytes=target.stat().st_size)


def import_zip(
    storage: Storage, upload: UploadedFile, *, dataset_id: str | None, name: str | None, max_bytes: int, max_voxels: int
) -> Dataset:
    """Create a dataset from an nnU-Net raw dataset zip; 4xx naming the file on bad input."""
    with storage.scratch(layout.DATASETS) as tmp:
        archive = tmp / "upload.zip"
        with archive.open("wb") as out:
            shutil.copyfileobj(upload.stream, out, COPY_CHUNK_BYTES)
        try:
            root = _extract(archive, tmp / "extracted", max_bytes=max_bytes, max_voxels=max_voxels)
            archive.unlink()
            meta = read_dataset_json(root)
            raw = scan_dataset(root)
        except InputError as exc:
            raise ApiError.from_input_error(exc, hide=tmp) from None
        if raw.file_ending not in (".nii.gz", ".nii"):
            raise ApiError(422, f"dataset.json: file_ending: expected .nii.gz or .nii, got {raw.file_ending!r}", field="file_ending")
        try:
            dataset = new_dataset(
                DatasetCreate(
                    id=_dataset_id(dataset_id, meta, root), name=name or str(meta.get("name") or root.name),
                    labels=raw.labels, channel_names=raw.channel_names,
                )
            )
        except ValidationError as exc:
            raise ApiError.from_validation_error(exc, field_prefix="dataset.json") from None
        folder = tmp / "final" / dataset.id
        for case in raw.cases:
            if not layout.is_valid_id(case.case_id) or case.case_id.endswith(layout.RESERVED_CASE_SUFFIXES):
                raise ApiError(422, f"case id: expected letters, digits, '_' or '-', got {case.case_id!r}", field="case_id")
            try:
                study = nifti_io.check_study(case.image_paths, case.label_path, num_classes=raw.num_classes, max_voxels=max_voxels)
            except InputError as exc:
                raise ApiError.from_input_error(exc, hide=tmp) from None
            keys = [layout.image(dataset.id, case.case_id, ch) for ch in range(len(case.image_paths))]
            keys.append(layout.label(dataset.id, case.case_id))
            sources = [*case.image_paths, case.label_path]
            stored = [_store_file(src, folder, key) for src, key in zip(sources, keys)]
            record = Study(
                dataset_id=dataset.id, case_id=case.case_id, shape=list(study.spatial_shape),
                spacing_mm=list(study.spacing_mm), images=stored[:-1], label=stored[-1], uploaded_at=utc_now(),
            )  # fmt: skip
            write_json_atomic(folder / "studies" / f"{case.case_id}.json", record.to_json())
        write_dataset_json(folder / "dataset.json", dataset, num_training=len(raw.cases))
        try:
            storage.put(layout.dataset_dir(dataset.id), folder)
        except FileExistsError:
            raise ApiError(409, f"dataset {dataset.id!r} already exists; pass another dataset_id", field="dataset_id") from None
    return dataset

