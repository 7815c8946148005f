"""Chaos run: small studies through the REST API with 2 workers, a worker SIGKILLed every few
seconds and Redis restarted once; then every result is checked against the engine.

    python bench/chaos.py                                # 1,000 studies of 24^3, a kill every ~2 s
    python bench/chaos.py --studies 40 --kill-every 2    # the smoke run

1. The embedded stack (``EmbeddedStack``: Redis with append-only persistence, the API under
   uvicorn) starts with no workers of its own. This script runs the workers
   (``python -m softlabel.worker.jobs.rq_worker``, each in its own process group, as
   ``softlabel up`` runs them) and replaces any that exits, without ``softlabel up``'s restart
   limit, which a kill every few seconds would exhaust. Workers use a short lease
   (``--lease-ttl``), so crash recovery requeues a killed worker's job within seconds.
2. N synthetic studies (``synthetic_study``, 1 channel, 4 classes) are uploaded through the API,
   then one superpixel labelset is created: N jobs are queued.
3. Chaos, until no study is queued or running: the first worker seen holding a job's lease is
   SIGKILLed at once (so even a run that ends within a second has a kill), then one every
   ``--kill-every`` seconds (uniformly 0.5x to 1.5x); every kill interrupts a job, at
   whatever stage it is in; once half the studies are finished, Redis is restarted (SIGTERM: it
   writes its append-only file; then started again on the same files and socket).
4. The workers are stopped (warm shutdown) and the run is checked:
   - lost: studies that are not ``finished`` in the labelset (failed, missing, or still queued
     or running at ``--timeout``) or lack one of their four outputs;
   - duplicated: studies whose job ran to completion more than once (below);
   - mismatches: studies whose soft labels, downloaded through the API, differ from those of
     ``soften_files`` (what ``softlabel soften`` calls) on the same input files in this process:
     the stored arrays, their dtype, scaling and affine, exactly;
   - partial files: hidden temporary files left in the labelset folder;
   - polls with missing: looks at the labelset during the run that counted a study as
     ``missing`` (no study is ever deleted here, so each is a wrong state).

Counting completions so that kills cannot hide one: a run of the job that completes ends by
renaming its provenance record into place (``<case>.json``, written last by
``worker.jobs.soften``); a later run that finds the same record reuses it and writes nothing.
This process watches the labelset folder with inotify (``file_events.RenameCounter``) from before
the first job starts, so the kernel reports every such rename to this process, whatever then
happens to the worker that made it. A study whose record was renamed into place more than once
was computed to completion more than once. RQ's result records (one per successful execution,
with the job's return value, which says whether it reused an earlier result) are a second count,
kept in Redis, which a restart with persistence keeps.

Requeues come from the jobs' records: ``recoveries`` (requeued by crash recovery after their
worker died) and ``attempts`` (runs started; any beyond the first is a rerun, after a kill or an
RQ retry). The figures are printed and written as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import nibabel as nib
import numpy as np
import redis

from file_events import RenameCounter  # bench/file_events.py, beside this script
from softlabel.service.client import ApiError, SoftlabelClient
from softlabel.service.embedded import EmbeddedStack, admin_token, exit_reason, worker_threads
from softlabel.service.embedded_redis import child_of_this_process
from softlabel.service.queue import fetch_job, job_id_for
from softlabel.worker.jobs.contract import LEASE_KEY
from softlabel.worker.jobs.settings import WorkerSettings

WORKERS = 2
# This process's engine runs use the workers' OpenMP thread count (1 each on 2 cores), set before
# the kernels load: the result does not depend on it, but with more threads than free cores a
# small study waits on OpenMP barriers (2 threads: 0.4 s per 24^3 study on the loaded 2-core
# machine, 1 thread: 0.012 s).
os.environ.setdefault("OMP_NUM_THREADS", str(worker_threads(WORKERS)))

from softlabel.worker.engine.config import SofteningConfig  # noqa: E402
from softlabel.worker.engine.demo_data import synthetic_study, write_study  # noqa: E402
from softlabel.worker.engine.pipeline import soften_files  # noqa: E402

SHAPE = (24, 24, 24)  # voxels per study
CLASSES = 4
PARAMS = {"n_segments": 100}  # the labelset's superpixel parameters (others: defaults)
DATASET, LABELSET = "chaos", "sp"
POLL_S = 1.0  # seconds between looks at the labelset (each lists every study's state)
TICK_S = 0.1  # seconds between looks at the workers (to replace the dead, or to kill one)
WORKER_STOP_TIMEOUT_S = 60  # seconds for a warm shutdown before the worker is killed
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Study:
    case: str
    images: list[Path]
    label: Path


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def make_studies(folder: Path, count: int) -> list[Study]:
    studies = []
    for index in range(count):
        case = f"c{index:04d}"
        phantom = synthetic_study(SHAPE, channels=1, classes=CLASSES, spacing_mm=(1.0, 1.0, 1.0), seed=index)
        images, label = write_study(phantom, folder, case)
        studies.append(Study(case, images, label))
    return studies


@dataclass
class WorkerPool:
    """``size`` worker processes, each in its own process group; dead ones are replaced."""

    env: dict[str, str]
    log_dir: Path
    size: int = WORKERS
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    exits: Counter[str] = field(default_factory=Counter)  # by exit_reason, before the final stop
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._logs = [(self.log_dir / f"worker-{i}.log").open("ab") for i in range(self.size)]
        self.processes = [self._spawn(i) for i in range(self.size)]

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        name = f"chaos-{index}-{uuid.uuid4().hex[:6]}"
        command = [sys.executable, "-m", "softlabel.worker.jobs.rq_worker", "--backend", "cpu", "--name", name]
        log = self._logs[index]
        return subprocess.Popen(command, env=self.env, stdout=log, stderr=log, **child_of_this_process())

    def replace_dead(self) -> int:
        """Start a new worker for each that exited; returns how many."""
        replaced = 0
        for index, process in enumerate(self.processes):
            if process.poll() is None:
                continue
            self.exits[exit_reason(process.returncode)] += 1
            try:  # RQ's scheduler, forked by the worker, outlives a SIGKILL of its parent
                os.killpg(process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            self.processes[index] = self._spawn(index)
            replaced += 1
        return replaced

    def busy(self, connection: redis.Redis) -> dict[int, str]:
        """Our live workers running a job: pid -> job id, from the jobs' leases (``host:pid``)."""
        keys = [key.decode() for key in connection.scan_iter(LEASE_KEY.format(job_id="*"))]
        values = connection.mget(keys) if keys else []
        holders = {int(v.decode().rsplit(":", 1)[1]): k.rsplit(":", 1)[1] for k, v in zip(keys, values) if v}
        return {p.pid: holders[p.pid] for p in self.processes if p.pid in holders and p.poll() is None}

    def stop(self) -> None:
        """Warm shutdown of every worker, then SIGKILL what is left; leftovers' groups are ended."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        for log in self._logs:
            log.close()


@dataclass
class Chaos:
    """What the chaos loop did."""

    kills: int = 0
    redis_restarts: int = 0
    redis_down_s: float = 0.0
    stuck: bool = False
    polls: int = 0
    polls_with_missing: int = 0  # looks at the labelset that counted a study as missing
    counts: dict[str, int] = field(default_factory=dict)


def recoveries(connection: redis.Redis, job_id: str) -> int:
    """How many times crash recovery has requeued this job."""
    job = fetch_job(connection, job_id)
    return int(job.meta.get("recoveries", 0)) if job is not None else 0


def run_chaos(
    client: SoftlabelClient, stack: EmbeddedStack, pool: WorkerPool, *, studies: int, kill_every_s: float,
    timeout_s: float, rng: random.Random,
) -> Chaos:  # fmt: skip
    """Kill busy workers and restart Redis once until no study is queued or running.

    A worker is killed only if crash recovery would requeue its job once more: a job whose
    worker died more than ``SOFTLABEL_MAX_RECOVERIES`` times is failed by design (a job that
    kills its worker every time must not be retried forever), and at the end of a run the
    last jobs would otherwise draw every kill.
    """
    assert stack.redis is not None
    max_recoveries = WorkerSettings().max_recoveries
    connection = redis.Redis.from_url(stack.redis.url)
    chaos = Chaos()
    start = time.monotonic()
    next_kill, next_poll = start, start  # the first kill: as soon as a worker holds a job
    while True:
        time.sleep(TICK_S)
        now = time.monotonic()
        pool.replace_dead()
        if now >= next_kill:
            try:
                victims = [pid for pid, job_id in pool.busy(connection).items() if recoveries(connection, job_id) < max_recoveries]
            except redis.RedisError:
                victims = []
            if victims:  # otherwise try again at the next tick
                victim = rng.choice(victims)
                os.kill(victim, signal.SIGKILL)
                chaos.kills += 1
                log(f"{now - start:6.1f} s: SIGKILL worker {victim}")
                next_kill = now + kill_every_s * rng.uniform(0.5, 1.5)
        if now < next_poll:
            continue
        next_poll = now + POLL_S
        try:
            state = client.labelset(DATASET, LABELSET)
        except (ApiError, httpx.HTTPError):  # Redis restarting: the API answers 503
            continue
        chaos.counts = state["counts"]
        chaos.polls += 1
        chaos.polls_with_missing += chaos.counts["missing"] > 0
        log(f"{now - start:6.1f} s: {chaos.counts}")
        if not chaos.redis_restarts and chaos.counts["finished"] >= studies / 2:
            down = time.monotonic()
            stack.redis.stop()  # SIGTERM: Redis writes its append-only file and exits
            stack.redis.start()  # same folder and socket: the file is replayed
            chaos.redis_down_s = time.monotonic() - down
            chaos.redis_restarts += 1
            log(f"{now - start:6.1f} s: restarted Redis ({chaos.redis_down_s:.2f} s down)")
        if chaos.counts["queued"] == 0 and chaos.counts["running"] == 0:
            break
        if now - start > timeout_s:
            chaos.stuck = True
            break
    return chaos


def job_records(connection: redis.Redis, cases: list[str]) -> dict[str, dict]:
    """Per case: runs started, crash recoveries, and RQ's successful executions that computed."""
    from rq.job import Job
    from rq.results import Result
    from rq.serializers import JSONSerializer

    ids = [job_id_for(DATASET, LABELSET, case) for case in cases]
    out = {}
    for case, job in zip(cases, Job.fetch_many(ids, connection=connection, serializer=JSONSerializer)):
        if job is None:
            out[case] = {"attempts": 0, "recoveries": 0, "computed": 0}
            continue
        results = Result.all(job, serializer=JSONSerializer)
        computed = sum(
            1 for r in results
            if r.type == Result.Type.SUCCESSFUL and isinstance(r.return_value, dict) and r.return_value.get("reused") is False
        )  # fmt: skip
        out[case] = {"attempts": int(job.meta.get("attempts", 0)), "recoveries": int(job.meta.get("recoveries", 0)), "computed": computed}
    return out


def same_soft_labels(a: Path, b: Path) -> bool:
    """Stored arrays, dtype, scaling and affine all equal."""
    x, y = nib.load(a), nib.load(b)
    return (
        x.get_data_dtype() == y.get_data_dtype()
        and np.array_equal(x.affine, y.affine)
        and x.dataobj.slope == y.dataobj.slope
        and x.dataobj.inter == y.dataobj.inter
        and np.array_equal(np.asarray(x.dataobj.get_unscaled()), np.asarray(y.dataobj.get_unscaled()))
    )


def mismatched(studies: list[Study], downloaded: Path, reference: Path) -> list[str]:
    """Cases whose downloaded soft labels differ from soften_files' on the same inputs."""
    config = SofteningConfig(method="superpixel", **PARAMS)
    reference.mkdir(parents=True, exist_ok=True)
    bad = []
    for study in studies:
        ours = downloaded / f"{study.case}.nii.gz"
        if not ours.exists():
            continue  # counted as lost
        ref = reference / f"{study.case}.nii.gz"
        soften_files(study.images, study.label, ref, config=config, num_classes=CLASSES, backend="cpu")
        if not same_soft_labels(ours, ref):
            bad.append(study.case)
    return bad


def chaos_run(args: argparse.Namespace, root: Path) -> dict:
    """The whole run in ``root`` (studies, data directory, logs, downloads); returns the record.
    ``wall_s`` runs from the labelset's creation (the workers start then) until they stopped."""
    rng = random.Random(args.seed)
    studies = make_studies(root / "studies", args.studies)
    data = root / "data"
    with EmbeddedStack(data_dir=data, port=0, workers=0, backend="cpu", log_dir=data / "logs") as stack:
        assert stack.redis is not None
        env = dict(
            os.environ, SOFTLABEL_DATA_DIR=str(stack.data_dir), REDIS_URL=stack.redis.url,
            SOFTLABEL_ADMIN_TOKEN=admin_token(stack.data_dir), SOFTLABEL_LEASE_TTL_S=str(args.lease_ttl),
            OMP_NUM_THREADS=os.environ["OMP_NUM_THREADS"],
        )  # fmt: skip
        pool = WorkerPool(env, data / "logs")
        with SoftlabelClient(stack.api_url, admin_token(data)) as client:
            client.create_dataset(
                dataset_id=DATASET, name=DATASET, labels={"background": 0} | {f"class_{c}": c for c in range(1, CLASSES)},
                channel_names={"0": "ch0"},
            )  # fmt: skip
            upload_start = time.perf_counter()
            for study in studies:
                client.upload_study(DATASET, images=study.images, label=study.label, case_id=study.case)
            upload_s = time.perf_counter() - upload_start
            outputs = stack.data_dir / "datasets" / DATASET / "labelsets" / LABELSET
            outputs.mkdir(parents=True)
            counter = RenameCounter(outputs).start()
            start = time.perf_counter()
            client.create_labelset(DATASET, LABELSET, params=PARAMS)
            pool.start()
            try:
                chaos = run_chaos(
                    client, stack, pool, studies=args.studies, kill_every_s=args.kill_every, timeout_s=args.timeout, rng=rng
                )
            finally:
                pool.stop()
            wall_s = time.perf_counter() - start
            renames = counter.stop()
            check_start = time.perf_counter()
            states = {s["case_id"]: s["status"] for s in client.labelset_studies(DATASET, LABELSET)}
            records = job_records(redis.Redis.from_url(stack.redis.url), [s.case for s in studies])
            client.download_labelset(DATASET, LABELSET, root / "downloaded")
        files = {p.name for p in outputs.iterdir()}
    cases = [s.case for s in studies]
    expected = {c: {f"{c}.json", f"{c}.nii.gz", f"{c}_superpixels.nii.gz", f"{c}_preview.png"} for c in cases}
    partials = sorted(name for name in files if name.startswith("."))
    unexpected = sorted(files - set().union(*expected.values()) - set(partials))
    lost = [
        c for c in cases
        if states.get(c) != "finished" or not expected[c] <= files or not (root / "downloaded" / f"{c}.nii.gz").exists()
    ]  # fmt: skip
    duplicated = [c for c in cases if renames[f"{c}.json"] > 1 or records[c]["computed"] > 1]
    unobserved = [c for c in cases if states.get(c) == "finished" and renames[f"{c}.json"] == 0]
    mismatches = mismatched(studies, root / "downloaded", root / "reference")
    check_s = time.perf_counter() - check_start
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/chaos.py " + " ".join(sys.argv[1:]),
        "studies": args.studies, "shape": list(SHAPE), "classes": CLASSES, "params": PARAMS, "workers": WORKERS,
        "cpus": len(os.sched_getaffinity(0)), "kill_every_s": args.kill_every, "lease_ttl_s": args.lease_ttl,
        "seed": args.seed, "upload_s": round(upload_s, 1), "wall_s": round(wall_s, 1),
        "studies_per_min": round(60 * args.studies / wall_s, 1), "check_s": round(check_s, 1),
        "kills": chaos.kills, "worker_exits": dict(pool.exits),
        "redis_restarts": chaos.redis_restarts, "redis_down_s": round(chaos.redis_down_s, 2),
        "requeues": sum(r["recoveries"] for r in records.values()),
        "reruns": sum(max(r["attempts"] - 1, 0) for r in records.values()),
        "completions": sum(renames[f"{c}.json"] for c in cases),
        "lost": len(lost), "duplicated": len(duplicated), "mismatches": len(mismatches),
        "partial_files": len(partials), "unexpected_files": len(unexpected), "stuck": chaos.stuck, "inotify_overflowed": counter.overflowed,
        "unobserved": len(unobserved), "polls": chaos.polls, "polls_with_missing": chaos.polls_with_missing,
        "final_counts": chaos.counts,
        "cases": {"lost": lost[:20], "duplicated": duplicated[:20], "mismatches": mismatches[:20], "partials": partials[:20],
                  "unexpected": unexpected[:20]},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=2.0, help="mean seconds between worker kills")
    parser.add_argument("--lease-ttl", type=int, default=5, help="workers' SOFTLABEL_LEASE_TTL_S (seconds)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before unfinished jobs count as stuck")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    parser.add_argument("--workdir", type=Path, help="a new folder to keep studies, data and logs in (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / f"chaos-{dt.date.today().isoformat()}.json")
    args = parser.parse_args()
    if os.environ.get("REDIS_URL"):
        parser.error("unset REDIS_URL: the chaos run starts, and restarts, its own embedded Redis")
    if args.workdir:
        args.workdir.mkdir(parents=True)
        record = chaos_run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="softlabel-chaos-") as tmp:
            record = chaos_run(args, Path(tmp))
    print(json.dumps(record, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    checks = (
        "lost", "duplicated", "mismatches", "partial_files", "unexpected_files", "stuck", "inotify_overflowed", "unobserved",
        "polls_with_missing",
    )  # fmt: skip
    sys.exit(1 if any(record[check] for check in checks) else 0)


if __name__ == "__main__":
    main()
