#!/usr/bin/env bash
# The GPU check: one prepared script for an H100 machine with no network (at most 5 minutes).
# That machine has CuPy, PyTorch, NumPy, SciPy, scikit-image, Cython and a C compiler, but not
# cuCIM, nibabel, pydantic or nilearn: run bench/prepare_gpu_wheels.sh first where PyPI is reachable,
# which fills .whl/ (git-ignored), then carry .whl to the GPU machine and run, from the repo root:
#     bash bench/gpu_check.sh
# It runs the GPU tests (engine parity, native SLIC kernels against the CPU twin) and the GPU
# benchmark: per-stage times for the 48x240x240 3-channel 11-class volume and the MNI152 brain
# beside the CPU paths on the same machine, and the GPU worker's end-to-end time per study.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/softlabel-site .whl/*.whl
export PYTHONPATH="/tmp/softlabel-site:$PWD" PYTHONUNBUFFERED=1
# The CPU kernels (the GPU tests compare against them) are C extensions: build them for this Python.
python3 setup.py -q build_ext --inplace
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY'
from worker.engine.backend import gpu_unavailable_reason, resolve_backend
from worker.engine.softening.distance_transform import gpu_edt_name
print("backend auto ->", resolve_backend("auto"), "| GPU EDT:", gpu_edt_name(), "| reason:", gpu_unavailable_reason())
PY
timeout 150 python3 -m pytest -q -m gpu -rs tests/worker -p no:cacheprovider
timeout 140 python3 bench/gpu_bench.py --repeats 5
