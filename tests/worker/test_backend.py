"""Backend dispatch on the CPU: auto, cpu and gpu resolve as documented, with reasons."""

from __future__ import annotations

import os

import numpy as np
import pytest

from softlabel.worker.engine.backend import backend_of, cpu_threads, gpu_unavailable_reason, resolve_backend, to_host
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.pipeline import soften_arrays


def test_cpu_is_always_cpu() -> None:
    assert resolve_backend("cpu") == "cpu"


def test_auto_picks_the_gpu_only_when_cupy_sees_one() -> None:
    assert resolve_backend("auto") == ("gpu" if gpu_unavailable_reason() is None else "cpu")


@pytest.mark.skipif(gpu_unavailable_reason() is None, reason="a GPU is present: 'gpu' resolves")
def test_gpu_without_device_says_why() -> None:
    with pytest.raises(ValueError, match="expected a usable GPU for 'gpu', got none: "):
        resolve_backend("gpu")


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected 'auto', 'cpu' or 'gpu', got 'tpu'"):
        resolve_backend("tpu")


def test_result_records_the_backend_that_ran() -> None:
    label = np.zeros((6, 5), dtype=np.uint8)
    label[2:4, 1:3] = 1
    result = soften_arrays(None, label, config=SofteningConfig(method="hard"), num_classes=2, spacing_mm=(1, 1), backend="cpu")
    assert result.backend == "cpu" and backend_of(result.soft) == "cpu" and to_host(result.soft) is result.soft


def test_cpu_threads_is_the_openmp_runtimes_count() -> None:
    import subprocess
    import sys

    def threads(preset: str | None) -> int:
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | ({"OMP_NUM_THREADS": preset} if preset else {})
        code = "from softlabel.worker.engine.backend import cpu_threads; print(cpu_threads())"
        return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)

    assert threads("3") == 3
    assert threads(None) == len(os.sched_getaffinity(0))
    assert cpu_threads() >= 1
