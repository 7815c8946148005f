"""The longest stretch of a job that no stop request can interrupt, at the largest parameters.

    python bench/stop_gaps.py [--case syn11] [--configs all|NAME,...]

Runs the RQ job's function (``run_soften_job``: the engine, the preview and the provenance
record) on a prepared case (``bench/engine.prepare``) on the CPU, once per configuration, and
records the time of every place the job looks for a stop request: each stage boundary
(progress) and each engine checkpoint. Prints per configuration the job's time, the number of
checks, and the longest gap between two checks (or between the last check and the job's end,
after which it has finished anyway), with the checks around it. A stop lands within that gap
plus the job's rate limit on Redis reads (``SOFTLABEL_STOP_CHECK_INTERVAL_S``, 0.25 s). Each configuration takes
the largest values ``worker/engine/config.py`` allows for the parameters that cost time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import CASES, prepare  # noqa: E402

from softlabel.worker.engine.config import MAX_COMPACTNESS, MAX_N_SEGMENTS, MAX_NUM_ITER, MAX_SIGMA, SofteningConfig  # noqa: E402
from softlabel.worker.jobs.contract import JobOutputs, SoftenJobPayload  # noqa: E402
from softlabel.worker.jobs.soften import run_soften_job  # noqa: E402

CONFIGS = {
    "superpixel-default": SofteningConfig(),
    "superpixel-max": SofteningConfig(n_segments=MAX_N_SEGMENTS, compactness=MAX_COMPACTNESS, max_num_iter=MAX_NUM_ITER),
    "superpixel-max-segments": SofteningConfig(n_segments=MAX_N_SEGMENTS, max_num_iter=MAX_NUM_ITER),
    "superpixel-mm-float32": SofteningConfig(max_num_iter=MAX_NUM_ITER, distance="mm", normalize=True, dtype="float32"),
    "superpixel-skimage": SofteningConfig(slic="skimage"),
    "gaussian-max": SofteningConfig(method="gaussian", sigma=MAX_SIGMA),
    "gaussian-max-mm-float32": SofteningConfig(method="gaussian", sigma=MAX_SIGMA, distance="mm", dtype="float32"),
    "svls-max": SofteningConfig(method="svls", sigma=MAX_SIGMA),
    "smoothing": SofteningConfig(method="smoothing"),
    "hard": SofteningConfig(method="hard"),
}


def gaps(case: dict, config: SofteningConfig, out: Path) -> dict:
    """Run one job; returns its time, check count and longest gap with the checks around it."""
    outputs = JobOutputs(soft=str(out / "case.nii.gz"), superpixels=str(out / "case_superpixels.nii.gz"),
                         preview=str(out / "case_preview.png"), provenance=str(out / "case.json"))  # fmt: skip
    spec = SoftenJobPayload(dataset_id="bench", labelset="gaps", case_id="case", num_classes=case["num_classes"],
                            config=config, image_paths=case["images"], label_path=case["label"], outputs=outputs)  # fmt: skip
    events: list[tuple[float, str]] = []
    stage = ["start"]
    lock = threading.Lock()

    def progress(name: str, fraction: float) -> None:
        with lock:
            stage[0] = name
            events.append((time.perf_counter(), f"{name} {fraction:.2f}"))

    def checkpoint() -> None:
        with lock:
            events.append((time.perf_counter(), f"checkpoint in {stage[0]}"))

    start = time.perf_counter()
    run_soften_job(spec, backend="cpu", progress=progress, checkpoint=checkpoint)
    end = time.perf_counter()
    marks = [(start, "job start")] + sorted(events) + [(end, "job end")]
    widths = [(b[0] - a[0], a[1], b[1]) for a, b in zip(marks, marks[1:])]
    longest = max(widths)
    return {"job_s": end - start, "checks": len(events), "longest_s": longest[0], "from": longest[1], "to": longest[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, default="syn11")
    parser.add_argument("--configs", default="all", help=f"comma-separated, of: {', '.join(CONFIGS)}")
    args = parser.parse_args()
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    if unknown := [name for name in names if name not in CONFIGS]:
        parser.error(f"--configs: expected all or names among {', '.join(CONFIGS)}, got {', '.join(unknown)}")
    case = prepare(args.case)
    print(f"case {args.case}: {case['shape']} x {case['channels']} channels, {case['num_classes']} classes")
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            row = gaps(case, CONFIGS[name], Path(tmp))
        print(f"{name:26s} job {row['job_s']:6.2f} s  checks {row['checks']:4d}  longest gap {row['longest_s']:.3f} s"
              f"  ({row['from']} -> {row['to']})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
