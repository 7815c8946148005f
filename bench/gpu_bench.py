"""GPU benchmark: per-stage times on the GPU beside the CPU paths, on the same machine.

For the synthetic 48x240x240 3-channel 11-class phantom and the MNI152 brain it reports
(medians over --repeats after a warm-up; the pipeline synchronises the device before it reads
each stage's clock):

* GPU, native SLIC: normalise, superpixels, soften, and their sum (target: at most 50 ms for
  superpixels plus softening on the 11-class volume on an H100);
* the naive CPU path: scikit-image SLIC plus one full-volume SciPy EDT per class (target: the
  GPU at least 200x faster than it);
* our CPU path (native SLIC, restricted softening), for reference;
* the GPU worker's end-to-end time per study, reading and writing NIfTI included
  (``worker.engine.pipeline.soften_files`` with the GPU backend).

    python bench/gpu_bench.py [--cases syn11,mni152] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import prepare  # noqa: E402  (bench/engine.py writes and caches the studies)


def median_stages(runs: list[dict[str, float]]) -> dict[str, float]:
    return {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}


def bench_case(case: str, repeats: int) -> dict:
    import numpy as np

    from softlabel.worker.engine.backend import release_device_memory
    from softlabel.worker.engine.config import SofteningConfig
    from softlabel.worker.engine.io.nifti import read_study
    from softlabel.worker.engine.pipeline import soften_arrays, soften_files
    from softlabel.worker.engine.softening.superpixel_soft import superpixel_soft_labels

    meta = prepare(case)
    study = read_study(meta["images"], meta["label"], num_classes=meta["num_classes"])
    k = meta["num_classes"]
    native = SofteningConfig(slic="native")
    results: dict[str, object] = {"case": case, "shape": meta["shape"], "classes": k}

    def run(config: SofteningConfig, backend: str) -> dict[str, float]:
        result = soften_arrays(study.image, study.label, config=config, num_classes=k,
                               spacing_mm=study.spacing_mm, backend=backend)  # fmt: skip
        timings = dict(result.timings_s)
        del result
        release_device_memory(backend)
        return timings

    run(native, "gpu")  # warm-up: kernel compilation, memory pool
    gpu = median_stages([run(native, "gpu") for _ in range(repeats)])
    results["gpu_native_s"] = gpu
    results["gpu_superpixels_plus_soften_ms"] = 1000 * (gpu["superpixels"] + gpu["soften"])
    cpu_ours = median_stages([run(native, "cpu") for _ in range(max(1, repeats // 2))])
    results["cpu_native_s"] = cpu_ours

    def naive_once() -> float:
        start = time.perf_counter()
        from softlabel.worker.engine.intensity import rescale_intensities
        from softlabel.worker.engine.superpixels.compute import compute_superpixels

        sp = compute_superpixels(rescale_intensities(study.image), n_segments=native.n_segments,
                                 compactness=native.compactness, spacing=study.spacing_mm, slic="skimage")  # fmt: skip
        superpixel_soft_labels(study.label, sp, num_classes=k, restrict=False)
        return time.perf_counter() - start

    naive_s = statistics.median(naive_once() for _ in range(max(1, repeats // 2)))
    results["cpu_naive_s"] = naive_s
    results["speedup_vs_naive"] = naive_s / (results["gpu_superpixels_plus_soften_ms"] / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        ends = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = soften_files(meta["images"], meta["label"], Path(tmp) / "soft.nii.gz", config=native,
                                  num_classes=k, backend="gpu")  # fmt: skip
            ends.append(time.perf_counter() - start)
            del result
            release_device_memory("gpu")
    results["gpu_worker_end_to_end_s"] = statistics.median(ends)
    results["gpu_memory_pool_bytes_after"] = int(__import__("cupy").get_default_memory_pool().total_bytes())
    np.testing.assert_equal(results["gpu_memory_pool_bytes_after"], 0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="syn11,mni152")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for case in args.cases.split(","):
        print(json.dumps(bench_case(case, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
