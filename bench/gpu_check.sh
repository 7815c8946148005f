#!/usr/bin/env bash
# The GPU check: one prepared script for a GPU machine with no network (at most 5 minutes there).
#
#   bash bench/gpu_prepare.sh            # here, where PyPI is reachable: fills .gpu/ (wheels, studies)
#   bash bench/gpu_check.sh              # there, from the repository root, with .gpu carried along
#   bash bench/gpu_check.sh --rehearse   # here: the same steps in a fresh Python 3.12 environment that
#                                        # holds only the GPU machine's packages (bench/gpu_machine.txt)
#                                        # plus .gpu's wheels; stops where a CUDA device is needed
#
# Steps: install .gpu/wheels with --no-index; load the engine and its compiled kernels; write the
# synthetic case; the GPU tests (pytest -m gpu tests/worker, JUnit XML); the benchmark
# (bench/gpu_bench.py: both cases, each printed when measured) writing one JSON record to $OUT
# (the device tool's folder) or bench/results/gpu-check-<UTC date>.json; a real GPU worker on a
# real Redis running three jobs (bench/gpu_worker_check.py; the CPU backend in the rehearsal).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-run}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
step() { printf '\n== gpu_check [%s] %s (%ss)\n' "$MODE" "$*" "$SECONDS"; }

if [ "$MODE" = --rehearse ]; then
    MODE=rehearse
    PY312=${PY312:-$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -1)}
    [ -x "$PY312" ] || { echo "gpu_check: --rehearse needs a Python 3.12 (PY312 or pyenv's 3.12)" >&2; exit 1; }
    WORK=${REHEARSAL_DIR:-$(mktemp -d)}
    step "fresh Python 3.12 environment with the GPU machine's packages only: $WORK/venv"
    "$PY312" -m venv "$WORK/venv"
    "$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check -r bench/gpu_machine.txt
    PYTHON="$WORK/venv/bin/python"
    step "preparing .gpu (bench/gpu_prepare.sh: the softlabel wheel of this tree, the other wheels if missing)"
    PY312="$PYTHON" HOST_PY=${HOST_PY:-python3} bash bench/gpu_prepare.sh
    SITE="$WORK/site"
    RESULTS="$WORK"
elif [ "$MODE" = run ]; then
    PYTHON=${PYTHON:-python3}
    SITE=/tmp/softlabel-site
    RESULTS=${OUT:-bench/results}
else
    echo "usage: bash bench/gpu_check.sh [--rehearse]" >&2; exit 2
fi
mkdir -p "$RESULTS"

step "installing the carried wheels (--no-index) into $SITE"
rm -rf "$SITE"
"$PYTHON" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
    --target "$SITE" .gpu/wheels/*.whl
export PYTHONPATH="$SITE"

step "loading the engine and its compiled CPU kernels"
if ! "$PYTHON" -c "import softlabel.worker.engine.softening.soften_cpu, softlabel.worker.engine.superpixels.native_slic.cpu"; then
    step "the carried kernels do not load here: building softlabel from source (gcc, OpenMP)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" --upgrade .
fi
"$PYTHON" - <<'PY'
from softlabel.worker.engine.backend import gpu_unavailable_reason, resolve_backend
from softlabel.worker.engine.softening.distance_transform import gpu_edt_info
print("backend auto ->", resolve_backend("auto"), "| why not the GPU:", gpu_unavailable_reason(), "| GPU EDT:", gpu_edt_info())
PY

step "the synthetic 48x240x240 3-channel 11-class case (.gpu/studies/syn11)"
"$PYTHON" -c "import sys; sys.path.insert(0, 'bench'); from engine import prepare; print(prepare('syn11', '.gpu/studies'))"

if [ "$MODE" = run ]; then
    step "device"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi

step "GPU tests (pytest -m gpu tests/worker)"
set +e
timeout 150 "$PYTHON" -m pytest -q -m gpu -rs tests/worker -p no:cacheprovider --junitxml="$RESULTS/gpu-tests.xml"
tests_rc=$?
set -e
echo "GPU tests exit code: $tests_rc"

if [ "$MODE" = rehearse ]; then
    step "benchmark cases (stops before the first GPU call)"
    "$PYTHON" bench/gpu_bench.py --studies .gpu/studies --rehearse
    step "worker check on the CPU backend (the GPU machine runs it with --backend gpu)"
    "$PYTHON" bench/gpu_worker_check.py --studies .gpu/studies --case mni152 --backend cpu
    step "rehearsal done: every step ran up to the first CUDA device call"
    exit "$tests_rc"
fi

step "benchmark"
record="$RESULTS/gpu-check-$(date -u +%Y-%m-%d).json"
timeout 180 "$PYTHON" bench/gpu_bench.py --studies .gpu/studies --repeats 5 --record "$record" \
    --tests-junit "$RESULTS/gpu-tests.xml"
step "a GPU worker on a real Redis: three jobs"
timeout 300 "$PYTHON" bench/gpu_worker_check.py --studies .gpu/studies --case mni152 --backend gpu \
    --record "$RESULTS/gpu-worker-check-$(date -u +%Y-%m-%d).json"
step "done: $record"
exit "$tests_rc"
