"""Crash recovery for RQ jobs: a lease per running job, and requeuing jobs whose lease expired.

The process that runs a job (the worker itself, or with ``--fork`` its work horse) renews
``softlabel:lease:<job id>`` every ``ttl / 3`` seconds. When that process
dies (SIGKILL, OOM, lost node) the lease expires after ``ttl`` seconds; every worker scans its
queues' StartedJobRegistry on start and every ``ttl / 2`` seconds and requeues such jobs at
the front, at most ``max_recoveries`` times, then fails them. The same scan requeues jobs a
worker took off the queue and died before starting (RQ's intermediate list), once they have
sat there for ``ttl`` seconds. RQ's own cleanup of abandoned jobs (execution heartbeat plus
60 s, checked every maintenance interval) stays as a backstop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone

import redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.worker_registration import unregister

from .contract import IN_TRANSIT_KEY, LEASE_KEY, RECOVERING_KEY, SoftenJobPayload

log = logging.getLogger(__name__)

RECOVERING_LOCK_S = 30  # seconds; bounds the lock of a worker that dies while recovering a job
IN_TRANSIT_KEY_MIN_TTL_S = 60  # seconds a job's first sighting in RQ's intermediate list is kept, at least


def lease_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def job_lease(job: Job | None, *, ttl_s: int) -> Iterator[None]:
    """Hold the job's lease while the body runs (renewed from a daemon thread)."""
    if job is None:  # called outside RQ (tests, benchmarks)
        yield
        return
    key, holder = LEASE_KEY.format(job_id=job.id), lease_holder()
    connection = job.connection
    connection.set(key, holder, ex=ttl_s)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            with contextlib.suppress(redis.RedisError):  # Redis restarting: try again next beat
                connection.set(key, holder, ex=ttl_s)

    thread = threading.Thread(target=renew, name=f"lease-{job.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(redis.RedisError):
            connection.delete(key)


def _age_s(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - moment).total_seconds()


def requeue_abandoned(connection: redis.Redis, queues: Sequence[Queue], *, lease_ttl_s: int, max_recoveries: int) -> list[str]:
    """Requeue jobs whose worker died: started jobs whose lease expired, and jobs taken off the
    queue but never started (see :func:`_stranded`); returns their ids."""
    recovered = []
    for queue in queues:
        entries: dict[str, list[str]] = {}
        for job_id, execution_id in queue.started_job_registry.get_job_and_execution_ids(cleanup=False):
            entries.setdefault(job_id, []).append(f"{job_id}:{execution_id}")
        checks: list[tuple[str, Callable[[], Job | None]]] = [
            (job_id, functools.partial(_abandoned, connection, queue, job_id, keys, lease_ttl_s=lease_ttl_s))
            for job_id, keys in entries.items()
        ]
        checks += [
            (job_id, functools.partial(_stranded, connection, queue, job_id, lease_ttl_s=lease_ttl_s))
            for job_id in queue.intermediate_queue.get_job_ids() if job_id not in entries
        ]  # fmt: skip
        for job_id, check in checks:
            if check() is None:
                continue
            lock = RECOVERING_KEY.format(job_id=job_id)
            if not connection.set(lock, lease_holder(), nx=True, ex=RECOVERING_LOCK_S):
                continue
            try:
                # Again under the lock: another worker may have recovered it since the scan began.
                job = check()
                if job is None:
                    continue
                _recover(connection, queue, job, entries.get(job_id, []), max_recoveries=max_recoveries)
            finally:
                # Held only while recovering: a job whose next worker dies soon after is recovered
                # again once that lease expires, not once a lock outlives it.
                connection.delete(lock)
            _forget_worker(connection, job.worker_name)
            recovered.append(job_id)
    return recovered


def _stranded(connection: redis.Redis, queue: Queue, job_id: str, *, lease_ttl_s: int) -> Job | None:
    """The job, if a worker took it off the queue at least ``lease_ttl_s`` ago and never started it.

    RQ moves a dequeued job to the queue's intermediate list and marks it started a moment
    later; a worker that dies in between (SIGKILL, or Redis going away, as in a restart) leaves
    it there, queued in name but in no queue. RQ's own cleanup of that list runs only at
    maintenance, which an idle worker reaches after its blocking dequeue times out (about 7
    minutes). The first scan that finds the job records when it did, keyed by the job's
    ``enqueued_at``, so a later pass through the list (after a requeue) starts a new count.
    """
    if job_id not in queue.intermediate_queue.get_job_ids():
        return None
    try:
        job = Job.fetch(job_id, connection=connection, serializer=queue.serializer)
    except NoSuchJobError:
        return None
    if job.get_status() != JobStatus.QUEUED:
        return None
    key, transit = IN_TRANSIT_KEY.format(job_id=job_id), str(job.enqueued_at)
    seen = connection.get(key)
    if seen is None or seen.decode().rsplit("|", 1)[0] != transit:
        connection.set(key, f"{transit}|{time.time()}", ex=max(4 * lease_ttl_s, IN_TRANSIT_KEY_MIN_TTL_S))
        return None
    return job if time.time() - float(seen.decode().rsplit("|", 1)[1]) >= lease_ttl_s else None


def _abandoned(connection: redis.Redis, queue: Queue, job_id: str, registry_keys: list[str], *, lease_ttl_s: int) -> Job | None:
    """The job, if these started-registry entries of it are still there and its lease is gone."""
    if connection.exists(LEASE_KEY.format(job_id=job_id)):
        return None
    if not any(connection.zscore(queue.started_job_registry.key, key) is not None for key in registry_keys):
        return None
    try:
        job = Job.fetch(job_id, connection=connection, serializer=queue.serializer)
    except NoSuchJobError:
        return None
    # A job that has only just started may not hold its lease yet.
    if job.get_status() != JobStatus.STARTED or _age_s(job.started_at) < lease_ttl_s:
        return None
    return job


def _forget_worker(connection: redis.Redis, name: str | None) -> None:
    """Unregister the worker that held an abandoned job: it died (its lease expired), but RQ keeps
    it registered as busy until its key's TTL (7 minutes) runs out."""
    if not name:
        return
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=connection)
    if worker is not None:
        with connection.pipeline() as pipe:
            unregister(worker, pipe)
            pipe.delete(worker.key)
            pipe.execute()
        log.warning("worker %s died while running a job; unregistered it", name)


def _recover(connection: redis.Redis, queue: Queue, job: Job, registry_keys: list[str], *, max_recoveries: int) -> None:
    count = int(job.meta.get("recoveries", 0)) + 1
    job.meta["recoveries"] = count
    with connection.pipeline() as pipe:
        pipe.multi()  # one transaction: out of RQ's started registry and intermediate list, and back in the queue, or failed
        if registry_keys:
            pipe.zrem(queue.started_job_registry.key, *registry_keys)
        pipe.lrem(queue.intermediate_queue_key, 0, job.id)
        pipe.delete(IN_TRANSIT_KEY.format(job_id=job.id))
        if count > max_recoveries:
            job.meta["error"] = f"the worker running this job died {count} times; giving up"
            job.save(pipeline=pipe)
            record_job_failure(job, job.meta["error"], pipe)
            log.warning("job %s: worker died %d times, failed", job.id, count)
        else:
            queue.enqueue_job(job, pipeline=pipe, at_front=True)
            log.warning("job %s: its worker died; requeued (recovery %d of %d)", job.id, count, max_recoveries)
        pipe.execute()
    if count > max_recoveries and (spec := SoftenJobPayload.of_job(job.func_name, job.args)) is not None:
        spec.remove_decoded_inputs()  # failed for good: no run will read the upload's copies


def start_recovery_loop(
    connection: redis.Redis, queues: Sequence[Queue], *, lease_ttl_s: int, max_recoveries: int
) -> threading.Event:
    """Scan now and every ``lease_ttl_s / 2`` seconds from a daemon thread; set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                requeue_abandoned(connection, queues, lease_ttl_s=lease_ttl_s, max_recoveries=max_recoveries)
            except redis.RedisError as exc:  # Redis restarting: scan again later
                log.warning("crash recovery scan failed: %s", exc)
            if stop.wait(max(lease_ttl_s / 2, 1)):
                return

    threading.Thread(target=loop, name="softlabel-recovery", daemon=True).start()
    return stop
