"""Euclidean distance transforms on the chosen backend.

CPU: SciPy's ``distance_transform_edt``; the softener's own CPU path computes its distances
inside compiled kernels instead (``worker.engine.softening.soften_cpu``) and uses these only as its reference.
GPU: cuCIM's ``distance_transform_edt`` (float32), falling back to
``cupyx.scipy.ndimage.distance_transform_edt`` when cuCIM is not installed.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from ..backend import ResolvedBackend

DistanceFn = Callable[[Any, "Sequence[float] | None"], Any]


def _scipy_edt(features_absent: Any, sampling: Sequence[float] | None) -> Any:
    from scipy import ndimage

    return ndimage.distance_transform_edt(features_absent, sampling=sampling)


@functools.cache
def _gpu_edt_impl() -> tuple[str, Callable[..., Any]]:
    try:
        module = importlib.import_module("cucim.core.operations.morphology")
        return "cucim", module.distance_transform_edt
    except ImportError:
        module = importlib.import_module("cupyx.scipy.ndimage")
        return "cupyx", module.distance_transform_edt


def _gpu_edt(features_absent: Any, sampling: Sequence[float] | None) -> Any:
    _, edt = _gpu_edt_impl()
    return edt(features_absent, sampling=sampling)


def distance_to_features(backend: ResolvedBackend) -> DistanceFn:
    """``f(mask, sampling)``: distance from each voxel to the nearest voxel where mask is False.

    ``sampling`` is the voxel spacing per axis (mm) or None for voxel units.
    """
    return _gpu_edt if backend == "gpu" else _scipy_edt


def reference_distance_to_features(backend: ResolvedBackend) -> DistanceFn:
    """The naive method's transform: SciPy's on the CPU, CuPy's own on the GPU."""
    if backend == "gpu":
        return importlib.import_module("cupyx.scipy.ndimage").distance_transform_edt
    return _scipy_edt


def gpu_edt_name() -> str:
    """Which GPU distance transform :func:`distance_to_features` uses: 'cucim' or 'cupyx'."""
    return _gpu_edt_impl()[0]
