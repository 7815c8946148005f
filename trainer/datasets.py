"""Cases in memory, case-level splits and patch sampling for 2D and 3D training.

Layouts (nibabel's axis order, channels first once in memory):

- image : (C, X, Y[, Z]) float32, z-scored per case and channel;
- label : (X, Y[, Z]) uint8 hard labels in [0, K);
- soft : (K, X, Y[, Z]) float32 in [0, 1] or None;
- truth : (X, Y[, Z]) uint8 evaluation labels (clean truth) or None.

A 2D case is stored on disk as (X, Y) or (X, Y, 1) (soft labels as (X, Y, 1, K), as the engine
writes them) and held in memory with two spatial axes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from softlabel.worker.engine.boundaries import label_boundaries


@dataclass(frozen=True)
class CaseFiles:
    """Local files of one case: image channels, hard label, optional soft label and truth."""

    case_id: str
    images: tuple[Path, ...]
    label: Path
    soft: Path | None = None
    truth: Path | None = None


@dataclass
class Case:
    """One case in memory (see the module docstring for layouts); spacing_mm per spatial axis."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    soft: np.ndarray | None
    truth: np.ndarray | None
    affine: np.ndarray
    spacing_mm: tuple[float, ...]

    @property
    def spatial_dims(self) -> int:
        return self.label.ndim


def _spatial(data: np.ndarray, path: Path, ndim: int, *, trailing: int = 0) -> np.ndarray:
    """A 2D case's (X, Y[, K]) from a file stored (X, Y[, K]) or (X, Y, 1[, K]); ``trailing``
    axes (the soft labels' K) follow the spatial ones."""
    if ndim == 2:
        spatial = data.ndim - trailing
        if spatial == 2:
            return data
        if spatial == 3 and data.shape[2] == 1:
            return data[:, :, 0]
        raise ValueError(f"{path}: shape: expected (X, Y) or (X, Y, 1) for a 2D case, got {data.shape}")
    return data


def load_case(files: CaseFiles, *, num_classes: int) -> Case:
    """Read one case; 2D when the label file is (X, Y, 1). Checks shapes and label range."""
    label_img = nib.load(files.label)
    raw = np.asarray(label_img.dataobj)
    ndim = 2 if raw.ndim == 2 or (raw.ndim == 3 and raw.shape[2] == 1) else raw.ndim
    label = _spatial(raw, files.label, ndim)
    if label.min() < 0 or label.max() >= num_classes:
        raise ValueError(f"{files.label}: label values: expected integers in [0, {num_classes}), got [{label.min()}, {label.max()}]")
    channels = []
    for path in files.images:
        data = _spatial(np.asarray(nib.load(path).dataobj, dtype=np.float32), path, ndim)
        if data.shape != label.shape:
            raise ValueError(f"{path}: shape: expected {label.shape} like the label, got {data.shape}")
        channels.append((data - data.mean()) / max(float(data.std()), 1e-6))
    soft = None
    if files.soft is not None:
        data = np.asarray(nib.load(files.soft).get_fdata(dtype=np.float32))
        spatial = _spatial(data, files.soft, ndim, trailing=1) if data.ndim >= ndim + 1 else data
        if spatial.ndim != ndim + 1 or spatial.shape[:-1] != label.shape or spatial.shape[-1] != num_classes:
            raise ValueError(f"{files.soft}: shape: expected {(*label.shape, num_classes)} (2D: stored with a third axis of 1), got {data.shape}")
        soft = np.ascontiguousarray(np.moveaxis(spatial, -1, 0))
    truth = None
    if files.truth is not None:
        truth = _spatial(np.asarray(nib.load(files.truth).dataobj), files.truth, ndim).astype(np.uint8)
        if truth.shape != label.shape:
            raise ValueError(f"{files.truth}: shape: expected {label.shape} like the label, got {truth.shape}")
    zooms = tuple(float(z) for z in label_img.header.get_zooms()[:ndim])
    return Case(files.case_id, np.stack(channels), label.astype(np.uint8), soft, truth, label_img.affine, zooms)


def split_cases(case_ids: Sequence[str], *, seed: int, val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """Seeded case-level split into ``train``, ``val`` and ``test`` (each list sorted).

    The ids are sorted before shuffling, so the split depends only on the set of ids and the
    seed. Each non-zero fraction gets at least one case when there are three or more.
    """
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("case ids: expected unique ids, got duplicates")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_test = int(round(test_fraction * len(ids)))
    n_val = int(round(val_fraction * len(ids)))
    if len(ids) >= 3:
        n_test, n_val = max(n_test, test_fraction > 0), max(n_val, val_fraction > 0)
    if n_test + n_val >= len(ids):
        raise ValueError(f"split: expected at least one training case, got {len(ids)} cases for {n_val} val and {n_test} test")
    return {
        "train": sorted(order[n_test + n_val :]),
        "val": sorted(order[n_test : n_test + n_val]),
        "test": sorted(order[:n_test]),
    }


def read_splits(path: Path, case_ids: Sequence[str]) -> dict[str, list[str]]:
    """A fixed split from a JSON file with lists ``train``, ``val`` and ``test`` of case ids:
    disjoint, at least one training case, every id among ``case_ids``; cases it does not name
    are left out of the run."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: splits: expected a JSON file of case ids, got {exc}") from None
    if not isinstance(raw, dict) or set(raw) != {"train", "val", "test"} or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in raw.values()):
        raise ValueError(f"{path}: splits: expected an object with lists 'train', 'val' and 'test' of case ids")
    named = [i for part in ("train", "val", "test") for i in raw[part]]
    if len(set(named)) != len(named):
        raise ValueError(f"{path}: splits: expected each case in one list once, got duplicates")
    unknown = sorted(set(named) - set(case_ids))
    if unknown:
        raise ValueError(f"{path}: splits: expected case ids of the labelset, got unknown {unknown[:5]}")
    if not raw["train"]:
        raise ValueError(f"{path}: splits.train: expected at least one case, got none")
    return {part: sorted(raw[part]) for part in ("train", "val", "test")}


def save_splits(splits: dict[str, list[str]], path: Path) -> None:
    path.write_text(json.dumps(splits, indent=2))


class PatchSampler:
    """Random training patches from cases in memory, favouring foreground and boundaries.

    Each patch is centred on a random foreground voxel (label > 0) with probability
    ``foreground_fraction``, on a random class-boundary voxel with ``boundary_fraction``,
    and on a uniformly random voxel otherwise; it is then flipped along each spatial axis
    with probability 1/2. Parts of a patch outside the case are padded with the case's
    lowest image value, label 0 and soft label 0.

    ``sample`` returns numpy batches: image (B, C, *patch) float32, label (B, *patch) int64,
    soft (B, K, *patch) float32 or None.
    """

    def __init__(
        self,
        cases: Sequence[Case],
        patch_size: Sequence[int],
        *,
        foreground_fraction: float = 1 / 3,
        boundary_fraction: float = 1 / 3,
        with_soft: bool = False,
    ) -> None:
        if not cases:
            raise ValueError("cases: expected at least one training case, got none")
        if any(c.spatial_dims != len(patch_size) for c in cases):
            raise ValueError(f"patch_size: expected {cases[0].spatial_dims} sizes like the cases, got {tuple(patch_size)}")
        if with_soft and any(c.soft is None for c in cases):
            raise ValueError("soft labels: expected them for every case (the loss has a KL term), got a case without")
        self.cases = list(cases)
        self.patch = tuple(int(p) for p in patch_size)
        self.fractions = (foreground_fraction, boundary_fraction)
        self.with_soft = with_soft
        self.foreground = [np.flatnonzero(c.label > 0) for c in self.cases]
        self.boundary = [np.flatnonzero(label_boundaries(c.label)) for c in self.cases]

    def _centre(self, k: int, rng: np.random.Generator) -> tuple[int, ...]:
        case = self.cases[k]
        u = rng.random()
        pool = None
        if u < self.fractions[0]:
            pool = self.foreground[k]
        elif u < self.fractions[0] + self.fractions[1]:
            pool = self.boundary[k]
        if pool is not None and pool.size:
            return np.unravel_index(pool[rng.integers(pool.size)], case.label.shape)
        return tuple(int(rng.integers(n)) for n in case.label.shape)

    def _crop(self, array: np.ndarray, start: Sequence[int], fill: float) -> np.ndarray:
        """``array[..., start:start + patch]`` over the trailing spatial axes, padded with ``fill``."""
        lead = array.ndim - len(self.patch)
        out = np.full(array.shape[:lead] + self.patch, fill, dtype=array.dtype)
        src, dst = [slice(None)] * lead, [slice(None)] * lead
        for s, p, n in zip(start, self.patch, array.shape[lead:]):
            lo, hi = max(s, 0), min(s + p, n)
            src.append(slice(lo, hi))
            dst.append(slice(lo - s, hi - s))
        out[tuple(dst)] = array[tuple(src)]
        return out

    def sample(self, batch_size: int, rng: np.random.Generator):
        images, labels, softs = [], [], []
        for _ in range(batch_size):
            k = int(rng.integers(len(self.cases)))
            case = self.cases[k]
            centre = self._centre(k, rng)
            start = [int(np.clip(c - p // 2, min(0, n - p), max(0, n - p))) for c, p, n in zip(centre, self.patch, case.label.shape)]
            flips = [ax for ax in range(len(self.patch)) if rng.random() < 0.5]
            parts = [(self._crop(case.image, start, float(case.image.min())), images), (self._crop(case.label, start, 0), labels)]
            if self.with_soft:
                parts.append((self._crop(case.soft, start, 0.0), softs))
            for array, sink in parts:
                lead = array.ndim - len(self.patch)
                sink.append(np.flip(array, axis=[lead + ax for ax in flips]) if flips else array)
        soft = np.stack(softs) if self.with_soft else None
        return np.stack(images), np.stack(labels).astype(np.int64), soft


def default_patch_size(cases: Sequence[Case], spatial_dims: int, divisor: int) -> tuple[int, ...]:
    """Rounded up to ``divisor``: in 2D the largest case extent per axis (a whole slice); in 3D
    three quarters of the smallest case extent, at most 96, so that patches move inside every
    case (a patch as large as the case, the benchmark's 96^3 crops, was the same patch each time)."""
    if spatial_dims == 2:
        size = np.max([c.label.shape for c in cases], axis=0)
    else:
        size = np.minimum(np.ceil(0.75 * np.min([c.label.shape for c in cases], axis=0)), 96)
    return tuple(int(-(-int(s) // divisor) * divisor) for s in size)
