"""Deleting a dataset, a labelset or a study deletes the records of its jobs from Redis, which
otherwise stayed there for the result TTL (7 days) or the failure TTL (30 days)."""

from __future__ import annotations

import pytest
import redis
from rq.job import Job

from helpers.service import LABELSET_PARAMS, multipart, run_burst_workers, write_tiny_study
from softlabel.service.queue import job_id_for

pytestmark = pytest.mark.redis


def upload(api, dataset, files) -> None:
    parts, data = multipart(files)
    assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201


@pytest.mark.slow
def test_deleting_a_dataset_deletes_its_finished_and_queued_job_records(api, dataset, settings, tmp_path) -> None:
    connection = redis.Redis.from_url(settings.redis_url)
    upload(api, dataset, write_tiny_study(tmp_path / "in", "c1"))
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS})
    run_burst_workers(settings, log_dir=tmp_path / "logs")
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "g", "method": "gaussian"})  # stays queued
    finished, queued = job_id_for(dataset, "sp", "c1"), job_id_for(dataset, "g", "c1")
    assert Job.exists(finished, connection) and Job.exists(queued, connection)

    assert api.delete(f"/v1/datasets/{dataset}").status_code == 204
    assert not Job.exists(finished, connection) and not Job.exists(queued, connection)
    assert not [key for key in connection.scan_iter("rq:*") if finished.encode() in key or queued.encode() in key]


def test_deleting_a_labelset_or_a_study_deletes_their_queued_job_records(api, dataset, settings, tmp_path) -> None:
    connection = redis.Redis.from_url(settings.redis_url)
    for case in ("c1", "c2"):
        upload(api, dataset, write_tiny_study(tmp_path / case, case))
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS})
    assert api.delete(f"/v1/datasets/{dataset}/studies/c1").status_code == 204
    assert not Job.exists(job_id_for(dataset, "sp", "c1"), connection) and Job.exists(job_id_for(dataset, "sp", "c2"), connection)
    assert api.delete(f"/v1/datasets/{dataset}/labelsets/sp").status_code == 204
    assert not Job.exists(job_id_for(dataset, "sp", "c2"), connection)
