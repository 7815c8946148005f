"""Crash recovery's scan on a real Redis: a job abandoned by its worker is requeued once per
death, however soon it dies again (found by the chaos run, bench/chaos.py)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from helpers.jobs import job_payload
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from softlabel.worker.jobs.contract import SOFTEN_JOB
from softlabel.worker.jobs.recovery import requeue_abandoned
from softlabel.worker.jobs.rq_worker import InProcessWorker

pytestmark = pytest.mark.redis

LEASE_TTL_S = 1


def take_and_die(connection: redis.Redis, queue: Queue) -> str:
    """What a worker that takes the next job and is then SIGKILLed leaves behind: the job started,
    in the started registry, and no lease (the job function never ran)."""
    worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer, name=f"doomed-{uuid.uuid4().hex[:6]}")
    worker.register_birth()
    job, _ = worker.dequeue_job_and_maintain_ttl(timeout=1)
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    return job.id


def scan(connection: redis.Redis, queue: Queue) -> list[str]:
    time.sleep(LEASE_TTL_S + 0.1)  # the scan leaves jobs younger than the lease TTL alone
    return requeue_abandoned(connection, [queue], lease_ttl_s=LEASE_TTL_S, max_recoveries=3)


def test_a_job_whose_worker_dies_again_soon_is_requeued_again(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(f"recovery-{uuid.uuid4().hex[:6]}", connection=connection, serializer=JSONSerializer)
    job_id = queue.enqueue("builtins.len", [1]).id

    assert take_and_die(connection, queue) == job_id
    assert scan(connection, queue) == [job_id]
    assert queue.job_ids == [job_id]
    # Its next worker dies too, well within the 30 s the recovery lock used to outlive the recovery.
    assert take_and_die(connection, queue) == job_id
    assert scan(connection, queue) == [job_id]
    assert queue.job_ids == [job_id]
    assert queue.fetch_job(job_id).meta["recoveries"] == 2


def test_a_scan_that_finds_nothing_abandoned_requeues_nothing(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(f"recovery-{uuid.uuid4().hex[:6]}", connection=connection, serializer=JSONSerializer)
    job_id = queue.enqueue("builtins.len", [1]).id
    take_and_die(connection, queue)
    assert scan(connection, queue) == [job_id]
    assert scan(connection, queue) == []  # queued again, not started: nothing to recover
    assert queue.job_ids == [job_id]


def test_a_job_whose_worker_died_between_taking_and_starting_it_is_requeued(redis_url: str) -> None:
    """RQ moves a dequeued job to an intermediate list and marks it started a moment later; a
    worker that dies in between (in the chaos run: Redis restarting at that moment) left it
    there, in no queue, until RQ's maintenance about 7 minutes later."""
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(f"recovery-{uuid.uuid4().hex[:6]}", connection=connection, serializer=JSONSerializer)
    job_id = queue.enqueue("builtins.len", [1]).id
    worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer)
    assert worker.dequeue_job_and_maintain_ttl(timeout=1)[0].id == job_id  # and dies here
    assert queue.job_ids == [] and queue.intermediate_queue.get_job_ids() == [job_id]

    assert requeue_abandoned(connection, [queue], lease_ttl_s=LEASE_TTL_S, max_recoveries=3) == []  # first sighting
    assert scan(connection, queue) == [job_id]
    assert queue.job_ids == [job_id] and queue.intermediate_queue.get_job_ids() == []
    assert queue.fetch_job(job_id).meta["recoveries"] == 1


def test_a_job_taken_and_started_is_left_to_its_worker(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(f"recovery-{uuid.uuid4().hex[:6]}", connection=connection, serializer=JSONSerializer)
    job_id = queue.enqueue("builtins.len", [1]).id
    worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer)
    job, _ = worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert requeue_abandoned(connection, [queue], lease_ttl_s=LEASE_TTL_S, max_recoveries=3) == []  # seen in transit
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)  # started: from here its lease speaks for it
    connection.set(f"softlabel:lease:{job_id}", "alive", ex=60)
    assert scan(connection, queue) == []
    assert queue.job_ids == []


def test_a_soften_job_given_up_after_its_worker_died_removes_its_input_copies(redis_url: str, tmp_path) -> None:
    """Once crash recovery fails a job for good, no run will read the upload's uncompressed copies."""
    copies = tmp_path / "inputs" / "case"
    copies.mkdir(parents=True)
    (copies / "image_0000.nii").write_bytes(b"voxels")
    study = {"K": 2, "images": [tmp_path / "case_0000.nii.gz"], "label": tmp_path / "case.nii.gz"}
    spec = job_payload(study, tmp_path / "out").model_copy(update={"decoded_inputs": str(copies)})
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(f"recovery-{uuid.uuid4().hex[:6]}", connection=connection, serializer=JSONSerializer)
    job_id = queue.enqueue(SOFTEN_JOB, spec.model_dump(mode="json")).id
    assert take_and_die(connection, queue) == job_id
    time.sleep(LEASE_TTL_S + 0.1)
    assert requeue_abandoned(connection, [queue], lease_ttl_s=LEASE_TTL_S, max_recoveries=0) == [job_id]
    assert queue.fetch_job(job_id).get_status() == JobStatus.FAILED and not copies.exists()
