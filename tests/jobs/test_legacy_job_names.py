"""Jobs queued by softlabel 0.1.0 name their function ``worker.jobs.soften_study``; a worker
renames them at start, so an upgrade needs no drain (docs/deploy.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from softlabel.worker.jobs.contract import LEGACY_SOFTEN_JOBS, SOFTEN_JOB
from softlabel.worker.jobs.recovery import rename_legacy_jobs
from softlabel.worker.jobs.soften import soften_study

pytestmark = pytest.mark.redis
PAYLOAD = {"dataset_id": "d", "case_id": "c001", "nested": {"paths": ["/a", "/b"]}}


def test_jobs_queued_under_the_old_name_are_renamed_with_their_payload(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("legacy-test", connection=connection, serializer=JSONSerializer)
    (old_name,) = LEGACY_SOFTEN_JOBS
    queued = queue.enqueue(old_name, PAYLOAD, job_id="soften-queued")
    waiting = queue.enqueue_in(timedelta(minutes=5), old_name, PAYLOAD, job_id="soften-retry")  # a retry's wait
    current = queue.enqueue(SOFTEN_JOB, PAYLOAD, job_id="soften-current")
    other = queue.enqueue("builtins.len", [1, 2], job_id="other")

    renamed = rename_legacy_jobs(connection, [queue])

    assert sorted(renamed) == ["soften-queued", "soften-retry"]
    for job in (queued, waiting, current):
        fetched = Job.fetch(job.id, connection=connection, serializer=JSONSerializer)
        assert fetched.func_name == SOFTEN_JOB and list(fetched.args) == [PAYLOAD]
        assert fetched.func is soften_study  # the name resolves, as RQ resolves it when it runs the job
    assert Job.fetch(other.id, connection=connection, serializer=JSONSerializer).func_name == "builtins.len"
    assert queue.get_job_ids() == ["soften-queued", "soften-current", "other"]  # order kept
    assert rename_legacy_jobs(connection, [queue]) == []  # nothing left to rename
