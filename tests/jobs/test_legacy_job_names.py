"""Jobs queued by softlabel 0.1.0 name their function ``worker.jobs.soften_study``; a worker's
job class resolves that name to today's job function when the job runs, so an upgrade needs no
drain and no rewrite of the queue (docs/deploy.md). A real worker running such a job is
``bench/gpu_worker_check.py``'s legacy case (the GPU check and its rehearsal, tests/gpu_check)."""

from __future__ import annotations

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from softlabel.worker.jobs.contract import LEGACY_SOFTEN_JOBS, SOFTEN_JOB
from softlabel.worker.jobs.rq_worker import SoftlabelJob, build_worker
from softlabel.worker.jobs.settings import WorkerSettings
from softlabel.worker.jobs.soften import soften_study

pytestmark = pytest.mark.redis
PAYLOAD = {"dataset_id": "d", "case_id": "c001", "nested": {"paths": ["/a", "/b"]}}


def test_jobs_queued_under_the_old_name_run_todays_function_with_their_payload(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("legacy-test", connection=connection, serializer=JSONSerializer)
    (old_name,) = LEGACY_SOFTEN_JOBS
    legacy = queue.enqueue(old_name, PAYLOAD, job_id="soften-queued")
    current = queue.enqueue(SOFTEN_JOB, PAYLOAD, job_id="soften-current")
    other = queue.enqueue("builtins.len", [1, 2], job_id="other")

    worker = build_worker(connection, [queue.name], fork=False, name="legacy-test", settings=WorkerSettings())
    assert worker.job_class is SoftlabelJob  # what the worker dequeues jobs as
    for job in (legacy, current):
        fetched = SoftlabelJob.fetch(job.id, connection=connection, serializer=JSONSerializer)
        assert fetched.func is soften_study and list(fetched.args) == [PAYLOAD]
    assert SoftlabelJob.fetch(other.id, connection=connection, serializer=JSONSerializer).func is len
    # Nothing in Redis was rewritten: the record still names 0.1.0's function.
    assert SoftlabelJob.fetch(legacy.id, connection=connection, serializer=JSONSerializer).func_name == old_name
