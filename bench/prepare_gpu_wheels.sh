#!/usr/bin/env bash
# Download the wheels bench/gpu_check.sh installs on the GPU machine (Python 3.12, CUDA 13,
# CuPy already there) into .whl/ (git-ignored). Run from the repo root where PyPI is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
download() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl "$@"; }
download cucim-cu13 nibabel nilearn pydantic pydantic-core annotated-types typing-inspection
ls -la .whl
