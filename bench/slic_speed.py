"""Speed of native SLIC against scikit-image's, same process, same arrays.

Cases (``worker.engine.demo_data``, normalised per channel as in the pipeline, no mask):

* ``small``: synthetic 24x96x96, 3 channels, 11 classes (the only case where the NumPy
  reference twin is timed: it is slow by design);
* ``syn11``: synthetic 48x240x240, 3 channels, 11 classes, 3.0 x 0.96 x 0.96 mm;
* ``mni152``: the MNI152 brain, 197x233x189, 1 channel, 1 mm.

Each timing is the median (and the minimum) of ``--repeats`` runs after one warm-up run
(scikit-image: ``--sk-repeats``); the 1-minute load average at the end of each case is
printed too, since other processes on the machine slow the 2-thread compiled code most. ``--backend gpu`` also times the CuPy kernels (the device is
synchronised before each clock read; the image is already on the device).

First-run cost is measured in fresh processes (``python -c``, three of them, medians):
``import`` plus the first call on a 16^3 image. The kernels are a C extension built at
install, so there is no compile and no cache: every process is a first run.

    python bench/slic_speed.py [--cases small,syn11,mni152] [--repeats 5] [--sk-repeats 3] [--backend cpu|gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from softlabel.worker.engine.demo_data import mni152_study, synthetic_study
from softlabel.worker.engine.intensity import rescale_intensities
from softlabel.worker.engine.superpixels.native_slic import native_slic, reference
from softlabel.worker.engine.superpixels.native_slic.driver import slic_with

N_SEGMENTS, COMPACTNESS = 2000, 0.1
CASES = {
    "small": lambda: synthetic_study(shape=(24, 96, 96), classes=11),
    "syn11": lambda: synthetic_study(classes=11),
    "mni152": mni152_study,
}
FIRST_CALL = """
import time
start = time.perf_counter()
import numpy as np
from softlabel.worker.engine.superpixels.native_slic import native_slic, reference
from softlabel.worker.engine.superpixels.native_slic.driver import slic_with
imported = time.perf_counter()
native_slic(np.random.default_rng(0).random((16, 16, 16, 2), dtype=np.float32), n_segments=20, compactness=0.1)
done = time.perf_counter()
print(imported - start, done - imported)
"""


def timings(run, repeats: int, sync=lambda: None) -> dict:
    """Median and minimum seconds over ``repeats`` runs after one warm-up run."""
    run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times)}


def first_run_cost(runs: int = 3) -> dict:
    """Median seconds for import and first call, each in a fresh process."""
    measured = []
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-c", FIRST_CALL], check=True, capture_output=True, text=True)
        measured.append([float(v) for v in result.stdout.split()])
    return {"import_s": statistics.median(m[0] for m in measured),
            "first_call_s": statistics.median(m[1] for m in measured), "runs": runs}


def time_case(name: str, repeats: int, sk_repeats: int, backend: str) -> dict:
    from skimage.segmentation import slic

    study = CASES[name]()
    spacing = tuple(float(s) for s in np.abs(np.diag(study.affine))[:3])
    image = rescale_intensities(study.image)
    kw = dict(n_segments=N_SEGMENTS, compactness=COMPACTNESS, spacing=spacing)
    row = {"case": name, "shape": list(image.shape), "n_segments": N_SEGMENTS, "compactness": COMPACTNESS}
    row["skimage"] = timings(lambda: slic(image, channel_axis=-1, convert2lab=False, start_label=0,
                                          spacing=np.asarray(spacing), n_segments=N_SEGMENTS,
                                          compactness=COMPACTNESS), sk_repeats)
    row["native_cpu"] = timings(lambda: native_slic(image, **kw), repeats)
    if name == "small":
        row["reference_cpu"] = timings(lambda: slic_with(reference, image, **kw), 1)
    if backend == "gpu":
        import cupy

        device_image = cupy.asarray(image)
        sync = cupy.cuda.Device().synchronize
        row["native_gpu"] = timings(lambda: native_slic(device_image, backend="gpu", **kw), repeats, sync)
    row["speedup_cpu_median"] = row["skimage"]["median_s"] / row["native_cpu"]["median_s"]
    row["load_average_1min"] = os.getloadavg()[0]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="small,syn11,mni152")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sk-repeats", type=int, default=3)
    parser.add_argument("--backend", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args()
    print(json.dumps({"omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset (one per core)"),
                      "cpu_count": os.cpu_count(),
                      "first_run": first_run_cost()}), flush=True)
    for name in args.cases.split(","):
        print(json.dumps(time_case(name, args.repeats, args.sk_repeats, args.backend)), flush=True)


if __name__ == "__main__":
    main()
