"""Euclidean distance transforms on the chosen backend.

CPU: SciPy's ``distance_transform_edt``; the softener's own CPU path computes its distances
inside compiled kernels instead (``softening.soften_cpu``) and uses these only as its reference.
GPU: cuCIM's ``distance_transform_edt`` (the ``gpu-cu12``/``gpu-cu13`` extras install it), or
``cupyx.scipy.ndimage.distance_transform_edt`` where cuCIM does not import: that choice is logged
once with the reason, and :func:`gpu_edt_info` names it for provenance records and benchmarks.
Both are asked for float32 distances (CuPy's default is float64).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..backend import ResolvedBackend

DistanceFn = Callable[[Any, "Sequence[float] | None"], Any]

log = logging.getLogger("softlabel.engine")


def _scipy_edt(features_absent: Any, sampling: Sequence[float] | None) -> Any:
    from scipy import ndimage

    return ndimage.distance_transform_edt(features_absent, sampling=sampling)


@functools.cache
def _gpu_edt_impl() -> tuple[dict[str, str], Callable[..., Any]]:
    """({"name", "version"[, "fallback_reason"]}, the transform)."""
    try:
        module = importlib.import_module("cucim.core.operations.morphology")
        version = importlib.import_module("cucim").__version__
        return {"name": "cucim", "version": str(version)}, module.distance_transform_edt
    except ImportError as exc:
        cupy = importlib.import_module("cupy")
        reason = f"cuCIM does not import ({exc})"
        log.warning("GPU distance transform: CuPy's (cupyx.scipy.ndimage) instead of cuCIM's: %s", reason)
        info = {"name": "cupyx", "version": str(cupy.__version__), "fallback_reason": reason}
        return info, importlib.import_module("cupyx.scipy.ndimage").distance_transform_edt


def _gpu_edt(features_absent: Any, sampling: Sequence[float] | None) -> Any:
    _, edt = _gpu_edt_impl()
    return edt(features_absent, sampling=sampling, float64_distances=False)


def distance_to_features(backend: ResolvedBackend) -> DistanceFn:
    """``f(mask, sampling)``: distance from each voxel to the nearest voxel where mask is False.

    ``sampling`` is the voxel spacing per axis (mm) or None for voxel units. float64 on the CPU
    (SciPy), float32 on the GPU.
    """
    return _gpu_edt if backend == "gpu" else _scipy_edt


def reference_distance_to_features(backend: ResolvedBackend) -> DistanceFn:
    """The naive method's transform: SciPy's on the CPU, CuPy's own on the GPU (float32)."""
    if backend == "gpu":
        edt = importlib.import_module("cupyx.scipy.ndimage").distance_transform_edt
        return lambda features_absent, sampling: edt(features_absent, sampling=sampling, float64_distances=False)
    return _scipy_edt


def gpu_edt_info() -> dict[str, str]:
    """Which GPU distance transform :func:`distance_to_features` uses: ``{"name": "cucim" or
    "cupyx", "version": ...}``, with ``"fallback_reason"`` when cuCIM did not import."""
    return dict(_gpu_edt_impl()[0])
