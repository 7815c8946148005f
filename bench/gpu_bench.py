"""GPU benchmark and record: per-stage GPU times beside the naive CPU path, on the same machine.

For each case prepared by ``bench/gpu_prepare.sh`` (``.gpu/studies``: the 48x240x240 3-channel
11-class phantom and the MNI152 brain) it measures, medians over --repeats after a warm-up (the
pipeline synchronises the device before it reads each stage's clock):

* ``superpixels_ms`` and ``soften_ms``: the GPU pipeline on arrays already on the host (native
  SLIC, CUDA kernels; cuCIM's distance transform), target: their sum at most 50 ms on the 11-class
  case on an H100/H200;
* ``end_to_end_ms``: ``soften_files`` on the GPU backend, read to written (NIfTI in and out);
* ``naive_cpu_ms``: scikit-image SLIC plus one full-volume SciPy EDT per class, on this machine's
  CPU (target: the GPU at least 200x faster than it).

Each case's numbers are printed as soon as they are measured; the record (``--record``) is
written before any check, and last comes the check that the device memory pool is back to its
baseline. ``--rehearse`` (no CUDA device needed) loads every case and imports every GPU module,
then stops where a device is first needed, and says so.

    python bench/gpu_bench.py --studies .gpu/studies --record out.json [--tests-junit gpu-tests.xml]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import prepare  # noqa: E402  (bench/engine.py writes and caches the studies)

CASES = ("syn11", "mni152")


def device_and_versions() -> tuple[dict, dict]:
    import cupy

    from softlabel.worker.engine.softening.distance_transform import gpu_edt_info

    query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    name, driver = [part.strip() for part in subprocess.run(query, capture_output=True, text=True, check=True).stdout.splitlines()[0].split(",")]
    runtime = cupy.cuda.runtime.runtimeGetVersion()
    edt = gpu_edt_info()
    versions = {
        "cupy": cupy.__version__,
        "cucim": edt["version"] if edt["name"] == "cucim" else None,
        "cuda_runtime": f"{runtime // 1000}.{runtime % 1000 // 10}",
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "nvrtc": ".".join(map(str, cupy.cuda.nvrtc.getVersion())),
        "python": sys.version.split()[0],
    }
    return {"name": name, "driver": driver}, versions


def test_counts(junit: Path | None) -> dict | None:
    """passed, failed and skipped counts from pytest's JUnit XML."""
    if junit is None or not junit.exists():
        return None
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failed = int(suite.get("tests")), int(suite.get("failures")) + int(suite.get("errors"))
    skipped = int(suite.get("skipped"))
    return {"passed": total - failed - skipped, "failed": failed, "skipped": skipped}


def naive_cpu_s(study, config, k: int) -> float:
    """scikit-image SLIC plus one full-volume SciPy EDT per class (SPEC's naive method)."""
    from softlabel.worker.engine.intensity import rescale_intensities
    from softlabel.worker.engine.softening.superpixel_soft import superpixel_soft_labels
    from softlabel.worker.engine.superpixels.compute import compute_superpixels

    start = time.perf_counter()
    superpixels = compute_superpixels(rescale_intensities(study.image), n_segments=config.n_segments,
                                      compactness=config.compactness, spacing=study.spacing_mm, slic="skimage")  # fmt: skip
    superpixel_soft_labels(study.label, superpixels, num_classes=k, restrict=False)
    return time.perf_counter() - start


def bench_case(meta: dict, repeats: int) -> dict:
    import cupy

    from softlabel.worker.engine.backend import release_device_memory
    from softlabel.worker.engine.config import SofteningConfig
    from softlabel.worker.engine.io.nifti import read_study
    from softlabel.worker.engine.pipeline import soften_arrays, soften_files

    study = read_study(meta["images"], meta["label"], num_classes=meta["num_classes"])
    k, config = meta["num_classes"], SofteningConfig()

    def gpu_run() -> dict[str, float]:
        result = soften_arrays(study.image, study.label, config=config, num_classes=k, spacing_mm=study.spacing_mm,
                               backend="gpu")  # fmt: skip
        timings = dict(result.timings_s)
        del result
        release_device_memory("gpu")
        return timings

    gpu_run()  # warm-up: kernels already built by the worker's warm-up path; the pool grows once
    runs = [gpu_run() for _ in range(repeats)]
    superpixels_ms = 1000 * statistics.median(run["superpixels"] for run in runs)
    soften_ms = 1000 * statistics.median(run["soften"] for run in runs)
    sum_ms = 1000 * statistics.median(run["superpixels"] + run["soften"] for run in runs)
    with tempfile.TemporaryDirectory() as tmp:
        ends = []
        for _ in range(repeats):
            start = time.perf_counter()
            soften_files(meta["images"], meta["label"], Path(tmp) / "soft.nii.gz", config=config, num_classes=k, backend="gpu")
            ends.append(time.perf_counter() - start)
            release_device_memory("gpu")
    naive_ms = 1000 * naive_cpu_s(study, config, k)
    return {
        "shape": meta["shape"], "channels": meta["channels"], "classes": k, "repeats": repeats,
        "superpixels_ms": round(superpixels_ms, 2), "soften_ms": round(soften_ms, 2),
        "superpixels_plus_soften_ms": round(sum_ms, 2), "rescale_ms": round(1000 * statistics.median(r["rescale"] for r in runs), 2),
        "end_to_end_ms": round(1000 * statistics.median(ends), 1), "naive_cpu_ms": round(naive_ms, 1),
        "speedup_vs_naive": round(naive_ms / sum_ms, 1), "pool_bytes_after": int(cupy.get_default_memory_pool().used_bytes()),
    }  # fmt: skip


def rehearse(cases: dict[str, dict]) -> None:
    """Everything up to the first device call: imports, kernel sources, both cases read."""
    import cupy  # noqa: F401

    from softlabel.worker.engine.backend import gpu_unavailable_reason
    from softlabel.worker.engine.io.nifti import read_study
    from softlabel.worker.engine.softening.distance_transform import gpu_edt_info
    from softlabel.worker.engine.superpixels.native_slic import cuda_kernels, gpu  # noqa: F401

    for case, meta in cases.items():
        study = read_study(meta["images"], meta["label"], num_classes=meta["num_classes"])
        print(f"rehearse: {case} read: image {study.image.shape} {study.image.dtype}, K = {study.num_classes}", flush=True)
    print(f"rehearse: GPU distance transform: {gpu_edt_info()}", flush=True)
    print(f"rehearse: stopping before the first GPU call (needs a CUDA device): {gpu_unavailable_reason()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=Path, default=Path(".gpu/studies"))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", type=Path, help="write the JSON record here")
    parser.add_argument("--tests-junit", type=Path, help="pytest's JUnit XML of the GPU tests, for the record")
    parser.add_argument("--rehearse", action="store_true", help="stop before the first GPU call")
    args = parser.parse_args()
    cases = {case: prepare(case, args.studies) for case in args.cases.split(",")}
    if args.rehearse:
        rehearse(cases)
        return
    import cupy

    from softlabel.worker.engine.softening.distance_transform import gpu_edt_info

    device, versions = device_and_versions()
    print(json.dumps({"device": device, "versions": versions, "edt": gpu_edt_info()}), flush=True)
    baseline = cupy.get_default_memory_pool().used_bytes()
    record = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": device,
              "versions": versions, "tests": test_counts(args.tests_junit), "edt": gpu_edt_info(), "cases": {}}  # fmt: skip
    for case, meta in cases.items():
        record["cases"][case] = bench_case(meta, args.repeats)
        print(json.dumps({case: record["cases"][case]}), flush=True)
    if args.record:
        args.record.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.record}", flush=True)
    after = cupy.get_default_memory_pool().used_bytes()
    assert after == baseline, f"GPU memory pool: expected {baseline} bytes in use after the studies, got {after}"


if __name__ == "__main__":
    main()
