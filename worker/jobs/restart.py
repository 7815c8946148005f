"""The stop deadline of a worker that runs jobs in its own process: restart in place.

A stop request normally ends such a job at its next checkpoint (``worker.jobs.stop``), within
a fraction of a second. But a single compiled call (one SLIC step on a very large study, the
decompression of one huge file, the compression of its soft labels) cannot be interrupted,
and on a 512^3 study one may run longer than the 5 s a stop may take. So while a job runs,
its worker looks for the job's stop request in Redis (``rq_worker.StopDeadline``); once it is
there, the job has ``SOFTLABEL_STOP_GRACE_S``. If the job is still running then, the worker
replaces itself with a fresh copy of its own
program (``execve``: same process id, same arguments, the job's id in
:data:`RESTARTED_FOR_STOP_ENV`), which ends every thread of the job at once, on the CPU or
the GPU, with nothing to fork. The new image, before it takes work, removes what the job
left (outputs, hidden partial files, its uncompressed input copies) and only then records
the job as stopped: a retry queued after the stop cannot have its outputs removed.

Why ``execve`` and not an exit: the process stays, so neither ``softlabel up`` nor
Kubernetes counts a crash (no restart limit, no CrashLoopBackOff) for what was a user's
request, and no supervisor has to be there to start it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.serializers import JSONSerializer

from .contract import LEASE_KEY, SoftenJobPayload
from .soften import discard_outputs

RESTARTED_FOR_STOP_ENV = "SOFTLABEL_RESTARTED_FOR_STOP"  # the stopped job's id, set for the new image only
EXIT_AFTER_STOP_ENV = "SOFTLABEL_EXIT_AFTER_STOP"  # "1": the old image was shutting down; the new one exits

log = logging.getLogger("softlabel.worker")


def restart_in_place(job_id: str, *, then_exit: bool) -> None:
    """Replace this process with a fresh run of its own command line; never returns.

    Every thread ends at once, the job's among them. What ``execve`` keeps is cleared first:
    the job's timeout alarm (RQ's death penalty: ``signal.alarm``, whose SIGALRM would kill
    the idle new image later) and the child processes (scikit-image's SLIC child, the
    multiprocessing resource tracker), which are killed. The new image finishes the stop
    (:func:`finish_stop`) before it takes work, or exits after it when ``then_exit`` (a
    shutdown was requested).
    """
    signal.alarm(0)
    kill_children()
    env = dict(os.environ, **{RESTARTED_FOR_STOP_ENV: job_id, EXIT_AFTER_STOP_ENV: "1" if then_exit else "0"})
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc), children first, then theirs, and so on."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # ended meanwhile
            continue
    below, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        below += frontier
    return below


def kill_children() -> None:
    """SIGKILL every process below this one, deepest first, and reap this one's children."""
    below = descendants(os.getpid())
    for pid in reversed(below):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ChildProcessError):  # not ours: its parent was killed too
            os.waitpid(pid, 0)


def finish_stop(connection: redis.Redis, *, grace_s: float, wait_s: float) -> tuple[str, bool] | None:
    """In a worker started by :func:`restart_in_place`: remove the stopped job's outputs, then
    record it as stopped; returns its id and whether to exit now (None when this start was
    not one). Redis errors are retried for ``wait_s`` seconds.

    A job that is no longer running (it ended on its own just before the restart, or was
    deleted) is left as it is.
    """
    job_id = os.environ.pop(RESTARTED_FOR_STOP_ENV, None)
    then_exit = os.environ.pop(EXIT_AFTER_STOP_ENV, "0") == "1"
    if job_id is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _record_stopped(connection, job_id, grace_s=grace_s)
            return job_id, then_exit
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("finishing the stop of job %s: Redis: %s; trying again", job_id, exc)
            time.sleep(1.0)


def _record_stopped(connection: redis.Redis, job_id: str, *, grace_s: float) -> None:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return
    if job.get_status() != JobStatus.STARTED:
        return
    if (spec := SoftenJobPayload.of_job(job.func_name, job.args)) is not None:
        discard_outputs(spec)
        spec.remove_decoded_inputs()
    registry = Queue(job.origin, connection=connection, serializer=JSONSerializer).started_job_registry
    runs = [run for jid, run in registry.get_job_and_execution_ids(cleanup=False) if jid == job_id]
    stage = job.meta.get("progress", {}).get("stage", "started")
    job.meta["error"] = message = (
        f"stopped on request at stage {stage!r}: no checkpoint came within {grace_s:g} s, so the worker restarted "
        "itself to end the job"
    )
    job.ended_at = datetime.now(timezone.utc)
    with connection.pipeline() as pipe:
        pipe.multi()  # one transaction: the execution records gone, failed and then stopped, no lease
        for run in runs:
            try:
                Execution.fetch(run, job_id, connection).delete(job=job, pipeline=pipe)
            except ValueError:  # its record expired: the registry entry alone
                pipe.zrem(registry.key, f"{job_id}:{run}")
        job.save(pipeline=pipe)
        record_job_failure(job, message, pipe)
        job.set_status(JobStatus.STOPPED, pipeline=pipe)
        pipe.delete(LEASE_KEY.format(job_id=job_id))
        pipe.execute()
