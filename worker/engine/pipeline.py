"""One study end to end: read, rescale, superpixels, soften, write.

The CLI, the RQ job and the benchmarks call these two functions, so every entry point runs
the same code. Progress is reported through a callback as (stage, fraction of the study done),
as each stage starts and ends; within the stages the long loops call a second callback, the
checkpoint, several times a second, which may raise to abandon the study
(:mod:`.checkpoint`; the RQ job stops there on request).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backend import ResolvedBackend, array_module, resolve_backend, to_host
from .checkpoint import Checkpoint, no_checkpoint
from .config import SofteningConfig
from .errors import InputError
from .intensity import ChannelRescaler, rescale_intensities
from .io import nifti as nifti_io
from .softening.softeners import soften_label
from .superpixels.compute import compute_superpixels

ProgressFn = Callable[[str, float], None]

# Share of a study's time each stage typically takes, for progress fractions.
STAGE_END_FRACTION = {"read": 0.1, "rescale": 0.15, "superpixels": 0.7, "soften": 0.9, "write": 1.0}


@dataclass
class SoftenResult:
    """Soft labels of one study, with the stage timings and the backend that ran."""

    soft: Any  # float32 q (X, Y[, Z], K) on the backend's device, or uint8 rint(255 q) (see as_stored)
    superpixels: Any | None  # int32 (X, Y[, Z]) or None for methods that need none
    backend: ResolvedBackend
    timings_s: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    study: nifti_io.Study | None = None  # the inputs as read, when they came from files


class _Stages:
    """Times stages and reports progress when each one ends."""

    def __init__(self, progress: ProgressFn | None, backend: ResolvedBackend) -> None:
        self.timings_s: dict[str, float] = {}
        self._progress = progress
        self._backend = backend

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._progress:
            self._progress(name, _fraction_before(name))
        start = time.perf_counter()
        yield
        if self._backend == "gpu":  # kernels are asynchronous: wait before reading the clock
            array_module("gpu").cuda.get_current_stream().synchronize()
        self.timings_s[name] = time.perf_counter() - start
        if self._progress:
            self._progress(name, STAGE_END_FRACTION[name])


def _fraction_before(name: str) -> float:
    names = list(STAGE_END_FRACTION)
    index = names.index(name)
    return 0.0 if index == 0 else STAGE_END_FRACTION[names[index - 1]]


def soften_arrays(
    image: np.ndarray | None,
    label: np.ndarray,
    *,
    config: SofteningConfig,
    num_classes: int,
    spacing_mm: Sequence[float],
    superpixels: np.ndarray | None = None,
    rescaled: np.ndarray | None = None,
    backend: str = "auto",
    progress: ProgressFn | None = None,
    as_stored: bool = False,
    checkpoint: Checkpoint = no_checkpoint,
) -> SoftenResult:
    """Soft labels for in-memory arrays (host NumPy in, device arrays out).

    image: float32 (X, Y[, Z], C), needed only when the superpixel method computes superpixels.
    label: int (X, Y[, Z]). superpixels: reuse a given int32 map instead of computing one.
    rescaled: the image already rescaled (``rescale_intensities``' numbers), which skips the
    rescale stage. as_stored: soft labels in ``config.dtype``'s stored form where that is
    computed directly (``softeners.soften_label``), as the file pipeline writes them.
    checkpoint: called within the stages; raising abandons the study (:mod:`.checkpoint`).
    """
    resolved = resolve_backend(backend)
    xp = array_module(resolved)
    stages = _Stages(progress, resolved)
    sp = None
    if config.method == "superpixel":
        if superpixels is not None:
            sp = xp.asarray(superpixels)
        else:
            if rescaled is not None:
                rescaled = xp.asarray(rescaled)
            elif image is None:
                raise ValueError("image: expected an image to compute superpixels from, got None")
            if config.n_segments > label.size:
                raise InputError(file=None, field="n_segments", expected=f"at most the study's {label.size} voxels",
                                 got=str(config.n_segments))  # fmt: skip
            if rescaled is None:
                with stages.stage("rescale"):
                    rescaled = rescale_intensities(xp.asarray(image), checkpoint=checkpoint)
            with stages.stage("superpixels"):
                sp = compute_superpixels(
                    rescaled if config.slic == "native" else to_host(rescaled),
                    n_segments=config.n_segments,
                    compactness=config.compactness,
                    spacing=spacing_mm,
                    slic=config.slic,
                    max_num_iter=config.max_num_iter,
                    checkpoint=checkpoint,
                )
                sp = xp.asarray(sp)
    with stages.stage("soften"):
        soft = soften_label(
            xp.asarray(label), config=config, num_classes=num_classes, spacing_mm=spacing_mm, superpixels=sp,
            as_stored=as_stored, checkpoint=checkpoint,
        )
    return SoftenResult(soft=soft, superpixels=sp, backend=resolved, timings_s=stages.timings_s)


def soften_files(
    image_paths: Sequence[str | Path],
    label_path: str | Path,
    out_path: str | Path,
    *,
    config: SofteningConfig,
    num_classes: int | None,
    superpixels_in: str | Path | None = None,
    superpixels_out: str | Path | None = None,
    backend: str = "auto",
    max_voxels: int | None = None,
    progress: ProgressFn | None = None,
    checkpoint: Checkpoint = no_checkpoint,
) -> SoftenResult:
    """Read and validate a study, soften it and write the soft labels (and superpixels).

    Every input is checked before anything is written; outputs appear atomically.
    num_classes None takes K from the label (its maximum + 1), for a study outside a dataset.
    On the CPU, superpixels computed here start from channels rescaled as they are read, in
    the reading threads: the "read" stage then includes the rescaling and there is no
    "rescale" stage. checkpoint: called within the stages; raising abandons the study before
    anything is written (:mod:`.checkpoint`).
    """
    resolved = resolve_backend(backend)
    stages = _Stages(progress, resolved)
    rescaler = None
    if config.method == "superpixel" and superpixels_in is None and resolved == "cpu":
        rescaler = ChannelRescaler()
    with stages.stage("read"):
        study = nifti_io.read_study(
            image_paths, label_path, num_classes=num_classes, max_voxels=max_voxels, on_channel=rescaler
        )
        given_sp = None
        if superpixels_in is not None and config.method == "superpixel":
            given_sp = nifti_io.read_superpixels(
                superpixels_in, ref_path=image_paths[0], ref_shape=study.spatial_shape, ref_affine=study.affine
            )
    result = soften_arrays(
        study.image,
        study.label,
        config=config,
        num_classes=study.num_classes,
        spacing_mm=study.spacing_mm,
        superpixels=given_sp,
        rescaled=None if rescaler is None else rescaler.output,
        backend=resolved,
        progress=progress,
        as_stored=True,
        checkpoint=checkpoint,
    )
    with stages.stage("write"):
        stored = to_host(nifti_io.quantize_soft_labels(result.soft, config.dtype))  # the one copy out
        nifti_io.write_soft_labels(out_path, stored, affine=study.affine)
        if superpixels_out is not None and result.superpixels is not None:
            nifti_io.write_label_map(superpixels_out, to_host(result.superpixels), affine=study.affine)
    result.timings_s = {"read": stages.timings_s["read"], **result.timings_s, "write": stages.timings_s["write"]}
    result.study = study
    return result
