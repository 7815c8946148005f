"""Service overhead and worker scaling on the CPU backend.

N MRBrainS-size studies (48 x 240 x 240, 3 channels, 11 classes; ``synthetic_study``) go
through upload, job and download with the embedded stack (Redis, the API under uvicorn and
1 or 2 workers, each a process), and the same studies through ``worker.engine.pipeline.soften_files``
directly in this process, as the baseline. The labelset exists before the uploads, so jobs
start while later studies upload, as they would for a labeling team.

    python bench/service.py --studies 6 --workers 1 2

Reports the engine's median seconds per study, each run's end-to-end wall time, seconds per
study, its ratio to the engine and throughput, plus the job's own median time, its preview
time and what the job adds to ``soften_files`` inside it (from the provenance timings, so
the last figure does not depend on other load on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `service` package; drop the folder (`python -m bench.service` needs no such care).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from softlabel.service.client import SoftlabelClient  # noqa: E402
from softlabel.service.embedded import EmbeddedStack, admin_token  # noqa: E402
from softlabel.worker.engine.config import SofteningConfig  # noqa: E402
from softlabel.worker.engine.demo_data import synthetic_study, write_study  # noqa: E402
from softlabel.worker.engine.pipeline import soften_files  # noqa: E402

SHAPE = (48, 240, 240)  # MRBrainS-size volume
CHANNELS = 3
CLASSES = 11
WORKER_READY_TIMEOUT_S = 120
# soften_files' own stages; on the CPU "normalise" is part of "read" and absent from the timings.
ENGINE_STAGES = ("read", "normalise", "superpixels", "soften", "write")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, waited-for children included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def stack_cpu_s(stack: EmbeddedStack) -> dict[str, float]:
    """CPU seconds used so far by the stack's processes and by this one (the client)."""
    return {
        "api": process_cpu_s(stack.api.pid), "workers": sum(process_cpu_s(w.pid) for w in stack.workers),
        "redis": process_cpu_s(stack.redis.process.pid) if stack.redis else 0.0, "client": time.process_time(),
    }  # fmt: skip


def make_studies(folder: Path, count: int) -> list[tuple[str, list[Path], Path]]:
    studies = []
    for index in range(count):
        case = f"mrb{index:03d}"
        images, label = write_study(synthetic_study(SHAPE, channels=CHANNELS, classes=CLASSES, seed=index), folder, case)
        studies.append((case, images, label))
    return studies


def engine_baseline(studies: list[tuple[str, list[Path], Path]], out: Path) -> tuple[list[float], list[float]]:
    """Seconds and CPU seconds per study for soften_files with superpixels written, after one warm-up run."""
    config = SofteningConfig()
    case, images, label = studies[0]
    soften_files(images, label, out / "warmup.nii.gz", config=config, num_classes=CLASSES, backend="cpu")
    times, cpu = [], []
    for case, images, label in studies:
        start, start_cpu = time.perf_counter(), time.process_time()
        soften_files(
            images, label, out / f"{case}.nii.gz", config=config, num_classes=CLASSES,
            superpixels_out=out / f"{case}_superpixels.nii.gz", backend="cpu",
        )  # fmt: skip
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu


def _wait_for_workers(client: SoftlabelClient, stack: EmbeddedStack, count: int) -> None:
    """Workers are ready once they registered in Redis (after their warm-up)."""
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(stack.redis.url if stack.redis else os.environ["REDIS_URL"])
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while Worker.count(connection=connection) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not start within {WORKER_READY_TIMEOUT_S} s")
        time.sleep(0.2)


def service_run(studies: list[tuple[str, list[Path], Path]], workers: int, root: Path) -> dict:
    """Upload, compute and download every study through the service; returns timings."""
    data = root / f"data-{workers}w"
    with EmbeddedStack(data_dir=data, port=0, workers=workers, backend="cpu", log_dir=data / "logs") as stack:
        with SoftlabelClient(stack.api_url, admin_token(data)) as client:
            _wait_for_workers(client, stack, workers)
            names = {"background": 0} | {f"class_{c}": c for c in range(1, CLASSES)}
            client.create_dataset(dataset_id="bench", name="bench", labels=names, channel_names={str(c): f"ch{c}" for c in range(CHANNELS)})
            client.create_labelset("bench", "sp")
            start, start_cpu = time.perf_counter(), stack_cpu_s(stack)
            for case, images, label in studies:
                client.upload_study("bench", images=images, label=label, case_id=case)
            uploaded = time.perf_counter() - start
            client.watch("bench", "sp", poll_s=0.2)
            computed = time.perf_counter() - start
            client.download_labelset("bench", "sp", root / f"out-{workers}w")
            total = time.perf_counter() - start
            cpu = {k: v - start_cpu[k] for k, v in stack_cpu_s(stack).items()}
        records = [json.loads(p.read_text()) for p in (data / "datasets/bench/labelsets/sp").glob("*.json")]
    return {
        "workers": workers, "wall_s": total, "uploads_done_s": uploaded, "jobs_done_s": computed,
        "per_study_s": total / len(studies), "studies_per_min": 60 * len(studies) / total,
        "cpu_per_study_s": sum(cpu.values()) / len(studies),
        "cpu_per_study_by_process_s": {k: v / len(studies) for k, v in cpu.items()},
        "read_decoded_copies": sum(bool(r.get("read_decoded_copies")) for r in records),
        "job_total_s": statistics.median(r["timings_s"]["total"] for r in records),
        "job_preview_s": statistics.median(r["timings_s"]["preview"] for r in records),
        # What the job adds to soften_files (preview, hashes, provenance), as a share of it.
        "job_overhead": statistics.median(
            r["timings_s"]["total"] / sum(r["timings_s"].get(s, 0.0) for s in ENGINE_STAGES) - 1 for r in records
        ),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=Path("bench/out/service.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="softlabel-bench-") as tmp:
        root = Path(tmp)
        studies = make_studies(root / "studies", args.studies)
        (root / "engine").mkdir()
        engine, engine_cpu = engine_baseline(studies, root / "engine")
        engine_median, engine_cpu_median = statistics.median(engine), statistics.median(engine_cpu)
        runs = [service_run(studies, workers, root) for workers in args.workers]
    print(
        f"engine (soften_files, this process): median {engine_median:.2f} s/study, {engine_cpu_median:.2f} CPU s/study "
        f"over {len(engine)} studies; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )
    print(
        "| workers | wall (s) | s/study | vs engine | studies/min | uploads done (s) | job (s) | preview (s) | job overhead "
        "| CPU s/study | CPU vs engine |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        overhead = run["per_study_s"] / engine_median - 1
        print(
            f"| {run['workers']} | {run['wall_s']:.1f} | {run['per_study_s']:.2f} | {overhead:+.1%} | "
            f"{run['studies_per_min']:.2f} | {run['uploads_done_s']:.1f} | {run['job_total_s']:.2f} | "
            f"{run['job_preview_s']:.2f} | {run['job_overhead']:+.1%} | {run['cpu_per_study_s']:.2f} | "
            f"{run['cpu_per_study_s'] / engine_cpu_median - 1:+.1%} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "engine_s": engine, "engine_median_s": engine_median, "engine_cpu_s": engine_cpu,
        "engine_cpu_median_s": engine_cpu_median, "runs": runs,
    }  # fmt: skip
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
