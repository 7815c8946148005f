"""The in-process RQ worker forgets a stop command once the job it named has ended."""

from __future__ import annotations

import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from softlabel.worker.jobs.rq_worker import InProcessWorker

pytestmark = pytest.mark.redis


@pytest.mark.parametrize(("func", "ends"), [("builtins.len", JobStatus.FINISHED), ("builtins.int", JobStatus.STOPPED)])
def test_a_stop_command_does_not_outlive_its_job(redis_url: str, func: str, ends: JobStatus) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("stop-test", connection=connection, serializer=JSONSerializer)
    # len([1, 2]) succeeds; int("x") raises, as a job that saw its stop request does.
    job = queue.enqueue(func, [1, 2] if func == "builtins.len" else "x", retry=None)
    worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer)
    worker._stopped_job_id = job.id  # what RQ's stop-job command leaves while the job runs
    worker.execute_job(job, queue)
    assert job.get_status(refresh=True) == ends
    assert worker._stopped_job_id is None
