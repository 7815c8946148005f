"""NIfTI reading and writing with nibabel, in nibabel's axis order end to end.

Layouts: image (X, Y[, Z], C) float32, channels last; label (X, Y[, Z]) unsigned int; soft
labels (X, Y[, Z], K). 2D studies arrive as (H, W) or (H, W, 1) files and are handled with two
spatial axes; they are written back as (H, W, 1[, K]) so every output is a 3D/4D NIfTI.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

try:  # ISA-L's zlib-compatible gzip: several times faster both ways (docs/performance.md)
    from isal import igzip as gzip_codec
    from isal.igzip import IGzipFile as GzipWriter
    from isal.isal_zlib import error as GzipError

    GZIP_LEVEL_MAX = gzip_codec._COMPRESS_LEVEL_BEST
except ImportError:  # the standard library's, where isal is not installed (the GPU check)
    import gzip as gzip_codec  # type: ignore[no-redef]
    from gzip import GzipFile as GzipWriter  # type: ignore[assignment]
    from zlib import error as GzipError  # type: ignore[assignment]

    GZIP_LEVEL_MAX = 9

from .. import validation
from ..backend import array_module, backend_of, cpu_threads
from ..errors import InputError
from ..softening.soften_cpu import quantize_uint8
from .atomic import atomic_path

SOFT_UINT8_SLOPE = 1.0 / 255.0  # scl_slope of uint8 soft labels: q = stored / 255
GZIP_LEVEL = 1  # fastest deflate level; higher levels cost 2-3x the time for ~2x smaller files
NIFTI1_DATA_OFFSET = 352  # 348-byte header + 4-byte extension flag (no extensions)

ChannelFn = Callable[[np.ndarray, int], None]  # on_channel(image, channel) of read_study

_READ_ERRORS = (OSError, EOFError, zlib.error, GzipError, ValueError, nib.filebasedimages.ImageFileError)


@dataclass(frozen=True)
class Study:
    """One study read and validated: image channels, label and geometry."""

    image: np.ndarray  # float32 (X, Y[, Z], C)
    label: np.ndarray  # uint (X, Y[, Z]), values in [0, K)
    num_classes: int  # K: given by the caller, or the label's maximum + 1
    affine: np.ndarray  # (4, 4) voxel-to-world, from the first image file
    spacing_mm: tuple[float, ...]  # voxel size per spatial axis

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.label.shape


def open_nifti(path: str | Path, *, max_voxels: int | None = None) -> nib.Nifti1Image:
    """Open a NIfTI file and check its header (dimensions, voxel count) before reading data."""
    path = Path(path)
    try:
        img = nib.load(path)
    except FileNotFoundError:
        raise InputError(file=path, field="file", expected="an existing NIfTI file", got="no such file") from None
    except _READ_ERRORS as exc:
        raise InputError(file=path, field="file", expected="a readable NIfTI file", got=f"{type(exc).__name__}: {exc}") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(file=path, field="format", expected="NIfTI (.nii or .nii.gz)", got=type(img).__name__)
    validation.check_header(path, img.shape, max_voxels=max_voxels)
    return img


def _read_data(img: nib.Nifti1Image, path: Path, dtype: type | None = None, *, copy_to: Path | None = None) -> np.ndarray:
    """The voxels (scaled by scl_slope/inter, as nibabel does), read only up to the size the
    checked header declares. Gzipped files are decompressed by ISA-L where it is installed:
    about 2x faster than the standard library's streamed zlib, which nibabel uses.

    copy_to: also write the file's uncompressed NIfTI there (header, extensions and the
    declared voxels, nothing past them), which then reads as the same image without
    decompressing again. Only reading errors are the file's (``InputError``); an error writing
    the copy is this machine's and is raised as it is."""
    head = raw = None
    try:
        if not path.name.endswith(".gz"):
            data = np.asarray(img.dataobj, dtype=dtype)
        else:
            proxy = img.dataobj
            spec = (proxy.shape, proxy.dtype, proxy.offset, proxy.slope, proxy.inter)
            with gzip_codec.open(path, "rb") as fileobj:
                if copy_to is None:
                    return np.asarray(nib.arrayproxy.ArrayProxy(fileobj, spec), dtype=dtype)
                head = fileobj.read(proxy.offset)
                raw = nib.arrayproxy.ArrayProxy(fileobj, spec).get_unscaled()  # Fortran order, the file's dtype
            data = np.asarray(nib.volumeutils.apply_read_scaling(raw, proxy.slope, proxy.inter), dtype=dtype)
    except _READ_ERRORS as exc:
        raise InputError(file=path, field="voxel data", expected="a complete, readable file", got=f"{type(exc).__name__}: {exc}") from None
    if copy_to is not None and raw is None:
        shutil.copyfile(path, copy_to)
    elif copy_to is not None:
        with copy_to.open("wb") as out:
            out.write(head)
            out.write(np.asfortranarray(raw).reshape(-1, order="F").view(np.uint8))
    return data


def _spatial(shape: Sequence[int]) -> tuple[int, ...]:
    """Spatial axes of a 2D/3D array: (H, W, 1) counts as 2D."""
    shape = tuple(shape)
    return shape[:2] if len(shape) == 3 and shape[2] == 1 else shape


@dataclass(frozen=True)
class ImageFiles:
    """Image files whose headers were checked: one 4D file, or one 2D/3D file per channel."""

    paths: list[Path]
    images: list[nib.Nifti1Image]
    spatial_shape: tuple[int, ...]
    num_channels: int

    @property
    def affine(self) -> np.ndarray:
        return self.images[0].affine

    @property
    def spacing_mm(self) -> tuple[float, ...]:
        return tuple(float(z) for z in self.images[0].header.get_zooms()[: len(self.spatial_shape)])


def open_image_files(paths: Sequence[str | Path], *, max_voxels: int | None = None) -> ImageFiles:
    """Check the image files' headers (dimensions, voxel count, one grid) without reading voxels."""
    if not paths:
        raise InputError(file=None, field="image", expected="at least one image file", got="none")
    paths = [Path(p) for p in paths]
    images = [open_nifti(p, max_voxels=max_voxels) for p in paths]
    first, ref = images[0], paths[0]
    if len(first.shape) == 4 and len(paths) > 1:
        raise InputError(file=ref, field="dimensions", expected="3D files when several channel files are given", got=str(first.shape))
    spatial = _spatial(first.shape[:3]) if len(first.shape) == 4 else _spatial(first.shape)
    for path, img in zip(paths[1:], images[1:]):
        if len(img.shape) == 4:
            raise InputError(file=path, field="dimensions", expected="a 2D or 3D channel file", got=str(img.shape))
        validation.check_same_grid(path, _spatial(img.shape), img.affine, ref_path=ref, ref_shape=spatial, ref_affine=first.affine)
    channels = first.shape[3] if len(first.shape) == 4 else len(paths)
    return ImageFiles(paths=paths, images=images, spatial_shape=spatial, num_channels=channels)


def _checked_file(files: ImageFiles, file_index: int, copy_to: Path | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(channel index, float32 (X, Y[, Z]) channel) of one image file, read and checked; a 4D
    file (then the only one) gives all its channels, a 2D/3D file the channel ``file_index``.
    copy_to: see :func:`_read_data`."""
    path, img = files.paths[file_index], files.images[file_index]
    data = _read_data(img, path, np.float32, copy_to=copy_to).reshape(files.spatial_shape + (-1,))
    for index in range(data.shape[-1]):
        channel = file_index + index
        validation.check_image_channel(path, data[..., index], index=channel)
        yield channel, data[..., index]


def _checked_channels(files: ImageFiles, copies: Sequence[Path] | None = None) -> Iterator[np.ndarray]:
    """Each channel, read and checked in order, one file at a time (copies: one per file, see :func:`_read_data`)."""
    for file_index in range(len(files.paths)):
        for _, channel in _checked_file(files, file_index, None if copies is None else copies[file_index]):
            yield channel


def _read_channels(files: ImageFiles, pool: ThreadPoolExecutor, on_channel: ChannelFn | None = None) -> np.ndarray:
    """The image, float32 (X, Y[, Z], C) (nnU-Net ``_0000`` channel order).

    The channel files are read in the pool's threads (decompression and the checks release the
    GIL), each written into the image as it is read: beside the image, at most one file's
    voxels per thread. Each channel in place is handed to ``on_channel(image, c)`` as a task of
    the same pool, so that work overlaps the reading of the other files. The first bad file in
    order is reported."""
    image = np.empty(files.spatial_shape + (files.num_channels,), dtype=np.float32)
    channel_tasks: list[Future] = []

    def read_into(file_index: int) -> None:
        for channel, data in _checked_file(files, file_index):
            image[..., channel] = data
            if on_channel is not None:
                channel_tasks.append(pool.submit(on_channel, image, channel))

    for done in [pool.submit(read_into, i) for i in range(len(files.paths))]:
        done.result()
    for done in channel_tasks:
        done.result()
    return image


def read_label(
    path: str | Path, *, num_classes: int | None, ref_path: str | Path, ref_shape: Sequence[int], ref_affine: np.ndarray,
    max_voxels: int | None = None, copy_to: Path | None = None,
) -> np.ndarray:
    """An integer label map on the image's grid, values in [0, num_classes) (None: K from the label);
    copy_to: see :func:`_read_data`."""
    path = Path(path)
    img = open_nifti(path, max_voxels=max_voxels)
    if len(img.shape) == 4:
        raise InputError(file=path, field="dimensions", expected="a 2D or 3D label map", got=str(img.shape))
    validation.check_same_grid(path, _spatial(img.shape), img.affine, ref_path=ref_path, ref_shape=ref_shape, ref_affine=ref_affine)
    data = _read_data(img, path, copy_to=copy_to).reshape(tuple(ref_shape))
    return validation.check_label_values(path, data, num_classes=num_classes)


def read_study(
    image_paths: Sequence[str | Path], label_path: str | Path, *, num_classes: int | None, max_voxels: int | None = None,
    on_channel: ChannelFn | None = None,
) -> Study:
    """Read and validate one study; raises InputError naming the file on any bad input (the
    image's problems first, then the label's).

    The files are read in threads (``cpu_threads``): the channel files and the label at once.
    num_classes None takes K from the label (its maximum + 1): for a study outside a dataset.
    on_channel: called as ``on_channel(image, c)`` in the reading threads once channel c of the
    float32 (X, Y[, Z], C) image is read and checked (the pipeline rescales it there, while
    the other files are still being read); every call has returned when read_study returns.
    """
    if num_classes is not None:
        validation.check_num_classes(num_classes)
    files = open_image_files(image_paths, max_voxels=max_voxels)
    with ThreadPoolExecutor(max_workers=cpu_threads()) as pool:
        label_read = pool.submit(
            read_label, label_path, num_classes=num_classes, ref_path=files.paths[0], ref_shape=files.spatial_shape,
            ref_affine=files.affine, max_voxels=max_voxels,
        )  # fmt: skip
        image = _read_channels(files, pool, on_channel)
        label = label_read.result()
    k = int(label.max()) + 1 if num_classes is None else num_classes
    return Study(image=image, label=label, num_classes=k, affine=files.affine, spacing_mm=files.spacing_mm)


def check_study(
    image_paths: Sequence[str | Path], label_path: str | Path, *, num_classes: int, max_voxels: int | None = None,
    copies: Sequence[Path] | None = None,
) -> ImageFiles:
    """Every check of :func:`read_study`, holding one file's voxels at a time (uploads, imports):
    a channel file, or a whole 4D file.

    copies: one target path per file, the image files then the label: each file's
    uncompressed NIfTI is written there as the file is decompressed for its checks, so the
    copies read as the study without a second decompression (the service hands them to the
    study's jobs).
    Returns the checked image files, which give the study's grid (shape, spacing, affine).
    """
    validation.check_num_classes(num_classes)
    files = open_image_files(image_paths, max_voxels=max_voxels)
    if copies is not None and len(copies) != len(files.paths) + 1:
        raise ValueError(f"copies: expected {len(files.paths) + 1} paths (the image files, then the label), got {len(copies)}")
    for _ in _checked_channels(files, None if copies is None else copies[:-1]):
        pass
    read_label(
        label_path, num_classes=num_classes, ref_path=files.paths[0], ref_shape=files.spatial_shape,
        ref_affine=files.affine, max_voxels=max_voxels, copy_to=None if copies is None else copies[-1],
    )  # fmt: skip
    return files


def _as_3d(array: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """Give a 2D study's arrays a z axis of length 1 before writing."""
    return array if spatial_ndim == 3 else np.expand_dims(array, 2)


def quantize_soft_labels(soft: Any, dtype: str) -> Any:
    """Soft labels in their stored dtype, on their own device (NumPy or CuPy).

    uint8 stores ``round(255 q)`` (read back through ``scl_slope = 1/255``, within 1/510);
    float32 stores q as it is. uint8 soft labels are taken as already stored (dtype uint8 only).
    """
    xp = array_module(backend_of(soft))
    if soft.dtype == np.uint8:  # already stored (softeners.soften_label as_stored)
        if dtype != "uint8":
            raise ValueError(f"dtype: expected 'uint8' for soft labels already stored as uint8, got {dtype!r}")
        return soft
    if dtype == "uint8" and xp is np:  # one compiled pass over the voxels, on all cores
        stored = np.empty(soft.shape, dtype=np.uint8, order="F")
        source = np.asfortranarray(soft, dtype=np.float32)
        quantize_uint8(source.reshape(-1, order="F"), stored.reshape(-1, order="F"))
        return stored
    if dtype == "uint8":  # channel by channel: temporaries stay one channel large
        stored = xp.empty(soft.shape, dtype=xp.uint8, order="F")
        for c in range(soft.shape[-1]):
            stored[..., c] = xp.rint(xp.clip(soft[..., c], 0, 1) * 255)
        return stored
    if dtype == "float32":
        return soft.astype(xp.float32, copy=False)
    raise ValueError(f"dtype: expected 'uint8' or 'float32', got {dtype!r}")


def save_nifti(img: nib.Nifti1Image, path: str | Path, *, compresslevel: int = GZIP_LEVEL) -> None:
    """Save an in-memory NIfTI-1 image atomically, gzip-compressed when ``path`` ends in ``.gz``.

    The same voxels and header as ``nib.save`` for unscaled or preset-scaled data, several
    times faster: Fortran-ordered voxels go to the compressor (``gzip_codec``) as one buffer,
    without the copies nibabel makes, and the gzip stream carries no name and no time.
    """
    img.update_header()
    header = img.header.copy()
    data = np.asanyarray(img.dataobj)
    header.set_data_dtype(data.dtype)
    header["vox_offset"] = NIFTI1_DATA_OFFSET
    head = header.binaryblock + b"\x00" * (NIFTI1_DATA_OFFSET - len(header.binaryblock))
    voxels = np.asfortranarray(data).reshape(-1, order="F").view(np.uint8)  # a view when F-ordered
    with atomic_path(path) as tmp, tmp.open("wb") as raw:
        if not str(path).endswith(".gz"):
            raw.write(head)
            raw.write(voxels)
            return
        level = min(compresslevel, GZIP_LEVEL_MAX)
        with GzipWriter(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0) as out:
            out.write(head)
            out.write(voxels)


def write_soft_labels(path: str | Path, stored: np.ndarray, *, affine: np.ndarray) -> None:
    """Write quantised soft labels (X, Y[, Z], K) as a 4D NIfTI (X, Y, Z, K), atomically.

    stored: the output of :func:`quantize_soft_labels` on the host; uint8 gets scl_slope 1/255.
    """
    if stored.dtype not in (np.uint8, np.float32):
        raise ValueError(f"stored: expected uint8 or float32 soft labels, got {stored.dtype}")
    img = nib.Nifti1Image(_as_3d(stored, stored.ndim - 1), affine)
    img.header.set_data_dtype(stored.dtype)
    if stored.dtype == np.uint8:
        img.header.set_slope_inter(SOFT_UINT8_SLOPE, 0.0)
    img.header.set_intent("vector", (), name="soft labels")
    save_nifti(img, path)


def write_label_map(path: str | Path, labels: np.ndarray, *, affine: np.ndarray, dtype: type = np.int32) -> None:
    """Write an integer map (superpixels, labels) of a 2D or 3D study as a 3D NIfTI, atomically."""
    data = labels.astype(dtype, copy=False)
    img = nib.Nifti1Image(_as_3d(data, labels.ndim), affine)
    img.header.set_data_dtype(dtype)
    save_nifti(img, path)


def read_superpixels(path: str | Path, *, ref_path: str | Path, ref_shape: Sequence[int], ref_affine: np.ndarray) -> np.ndarray:
    """A superpixel map given by the user: int32 on the image grid, values >= -1."""
    path = Path(path)
    img = open_nifti(path)
    validation.check_same_grid(path, _spatial(img.shape), img.affine, ref_path=ref_path, ref_shape=ref_shape, ref_affine=ref_affine)
    data = _read_data(img, path)
    if not np.issubdtype(data.dtype, np.integer) or data.min() < -1:
        raise InputError(file=path, field="superpixel ids", expected="integers >= -1", got=f"{data.dtype} min {data.min():g}")
    return data.reshape(tuple(ref_shape)).astype(np.int32, copy=False)


def read_soft_labels(path: str | Path) -> np.ndarray:
    """Soft labels as float32 (X, Y, Z, K) in [0, 1] (2D studies keep their z axis of 1).

    uint8 files are scaled by their scl_slope in float32 (not through nibabel's float64
    path) and clipped to [0, 1]: 255 times the float32 slope 1/255 is 1 + 6e-8.
    """
    path = Path(path)
    img = open_nifti(path)
    try:
        raw = np.asarray(img.dataobj.get_unscaled())
    except _READ_ERRORS as exc:
        raise InputError(file=path, field="voxel data", expected="a complete, readable file", got=f"{type(exc).__name__}: {exc}") from None
    slope, inter = img.dataobj.slope, img.dataobj.inter
    soft = raw.astype(np.float32)
    if (slope, inter) != (1.0, 0.0):
        soft *= np.float32(slope)
        soft += np.float32(inter)
    return np.clip(soft, 0, 1, out=soft)
