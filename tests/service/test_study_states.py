"""A study whose job finishes while the service reads its state: never ``missing`` (found by
the chaos run, bench/chaos.py, where 12 of 81 looks at a busy labelset counted a just-finished
study as missing), and never queued again by a retry posted at that moment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from helpers.service import LABELSET_PARAMS, multipart, write_tiny_study
from softlabel.service import queue as jobs
from softlabel.service.settings import Settings
from softlabel.worker.jobs.rq_worker import InProcessWorker

pytestmark = pytest.mark.redis



def finish_the_queued_job_when_jobs_are_read(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the API next reads job records, a real worker first runs the queued job to its end."""
    fetch_jobs = jobs.fetch_jobs

    def job_finishes_then_fetch(connection: redis.Redis, job_ids: list[str]) -> dict:
        if len(queue):
            job = queue.dequeue_any([queue], timeout=None, connection=connection, serializer=JSONSerializer)[0]
            worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer)
            worker.death_penalty_class = TimerDeathPenalty  # the API calls this from a thread: no SIGALRM
            worker.execute_job(job, queue)
        return fetch_jobs(connection, job_ids)

    monkeypatch.setattr(jobs, "fetch_jobs", job_finishes_then_fetch)


def test_a_study_that_finishes_while_its_state_is_read_reads_as_finished(
    api: Any, dataset: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts, data = multipart(write_tiny_study(tmp_path / "in", "c0"))
    assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201
    assert api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS}).status_code == 202
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(settings.queue, connection=connection, serializer=JSONSerializer)
    finish_the_queued_job_when_jobs_are_read(queue, monkeypatch)
    counts = api.get(f"/v1/datasets/{dataset}/labelsets/sp").json()["counts"]
    assert counts["finished"] == 1 and counts["missing"] == 0, counts


def test_a_study_that_finishes_while_a_retry_is_queued_is_not_queued_again(
    api: Any, dataset: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts, data = multipart(write_tiny_study(tmp_path / "in", "c0"))
    assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201
    body = {"name": "sp", "params": LABELSET_PARAMS}
    assert api.post(f"/v1/datasets/{dataset}/labelsets", json=body).status_code == 202
    connection = redis.Redis.from_url(settings.redis_url)
    queue = Queue(settings.queue, connection=connection, serializer=JSONSerializer)
    finish_the_queued_job_when_jobs_are_read(queue, monkeypatch)  # after the results were listed
    again = api.post(f"/v1/datasets/{dataset}/labelsets", json=body)
    assert again.status_code == 202, again.text
    assert again.json()["enqueued"] == 0, again.json()  # the study has its result: nothing to compute again
    assert again.json()["counts"]["finished"] == 1, again.json()
