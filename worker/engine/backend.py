"""Backend selection: NumPy/SciPy on the CPU, CuPy/cuCIM on the GPU.

The caller chooses ``auto``, ``cpu`` or ``gpu``; :func:`resolve_backend` says which one runs,
and every result records it. Nothing switches device silently.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any, Literal

ResolvedBackend = Literal["cpu", "gpu"]


@functools.cache
def gpu_unavailable_reason() -> str | None:
    """None when CuPy imports and sees a CUDA device; otherwise why not (for skips and errors)."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); install the extra for your CUDA: 'gpu-cu12' or 'gpu-cu13'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        return f"CuPy found no usable CUDA device ({exc})"
    return None if count > 0 else "CuPy sees no CUDA device"


def resolve_backend(backend: str) -> ResolvedBackend:
    """Map ``auto|cpu|gpu`` to the backend that will run.

    ``auto`` picks the GPU when CuPy sees a device; ``gpu`` raises ValueError when none is usable.
    """
    if backend == "cpu":
        return "cpu"
    if backend not in ("auto", "gpu"):
        raise ValueError(f"backend: expected 'auto', 'cpu' or 'gpu', got {backend!r}")
    reason = gpu_unavailable_reason()
    if reason is None:
        return "gpu"
    if backend == "gpu":
        raise ValueError(f"backend: expected a usable GPU for 'gpu', got none: {reason}")
    return "cpu"


def cpu_threads() -> int:
    """Threads the engine's CPU work may use: what the OpenMP runtime gives the compiled kernels
    (``OMP_NUM_THREADS`` when set, else the CPUs this process may run on; workers sharing a
    machine get cores / workers). The engine's thread pools keep to the same number."""
    from .softening.soften_cpu import openmp_threads  # compiled; imports NumPy

    return openmp_threads()


def array_module(backend: ResolvedBackend) -> ModuleType:
    """``numpy`` or ``cupy``."""
    return importlib.import_module("cupy" if backend == "gpu" else "numpy")


def ndimage_module(backend: ResolvedBackend) -> ModuleType:
    """``scipy.ndimage`` or ``cupyx.scipy.ndimage``."""
    return importlib.import_module("cupyx.scipy.ndimage" if backend == "gpu" else "scipy.ndimage")


def backend_of(array: Any) -> ResolvedBackend:
    """The backend an array lives on (CuPy arrays expose ``__cuda_array_interface__``)."""
    return "gpu" if hasattr(array, "__cuda_array_interface__") else "cpu"


def to_host(array: Any) -> Any:
    """A NumPy copy of a CuPy array; NumPy arrays are returned as they are."""
    return array.get() if backend_of(array) == "gpu" else array


def device_pool_bytes(backend: ResolvedBackend) -> int | None:
    """Bytes CuPy's device memory pool holds (in use or cached) on the GPU; None on the CPU."""
    if backend != "gpu":
        return None
    return int(importlib.import_module("cupy").get_default_memory_pool().total_bytes())


def release_device_memory(backend: ResolvedBackend) -> None:
    """Return CuPy's pooled device and pinned memory, so a long-running worker does not grow."""
    if backend == "gpu":
        cupy = importlib.import_module("cupy")
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
