"""``/v1/jobs/{id}``: status and progress, retry, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from rq.job import Job, JobStatus

from ... import labelsets as ls
from ... import queue as jobs
from ...datasets import get_dataset
from ...errors import conflict, not_found
from ...layout import JOB_ID_PATTERN
from ...locks import dataset_lock
from ...schemas import JobPublic
from ...studies import get_study
from ..deps import QueueDep, ReadScope, RedisDep, SettingsDep, StorageDep, WriteScope

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="job id, as listed by a labelset")]


def _job(connection: RedisDep, job_id: str) -> Job:
    job = jobs.fetch_job(connection, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


@router.get("/{job_id}", response_model=JobPublic, dependencies=[ReadScope])
def get_job(job_id: JobId, connection: RedisDep) -> JobPublic:
    """Status, progress (stage and fraction of the study) and the error message of a job."""
    return jobs.to_public(_job(connection, job_id))


@router.post("/{job_id}/retry", response_model=JobPublic, status_code=202, dependencies=[WriteScope])
def retry_job(job_id: JobId, storage: StorageDep, queue: QueueDep, settings: SettingsDep) -> JobPublic:
    """Queue a failed, stopped or canceled job again (a fresh job with the same id)."""
    job = _job(queue.connection, job_id)
    if jobs.is_active(job) or job.get_status(refresh=False) == JobStatus.FINISHED:
        status = job.get_status(refresh=False).value
        raise conflict(f"job {job_id!r} is {status}; only failed, stopped or canceled jobs can be retried", field="job_id")
    meta = job.meta
    dataset = get_dataset(storage, meta["dataset_id"])
    labelset = ls.get_labelset(storage, dataset.id, meta["labelset"])
    get_study(storage, dataset.id, meta["case_id"])
    with dataset_lock(queue.connection, dataset.id):
        ls.queue_studies(storage, queue, settings, dataset, labelset, [meta["case_id"]])
    return jobs.to_public(_job(queue.connection, job_id))


@router.delete("/{job_id}", response_model=JobPublic, status_code=202, dependencies=[WriteScope])
def cancel_job(job_id: JobId, connection: RedisDep) -> JobPublic:
    """Cancel a queued job, or stop a running one (at once on a forking worker, else at its next stage)."""
    job = _job(connection, job_id)
    if not jobs.is_active(job):
        raise conflict(f"job {job_id!r} already ended ({job.get_status(refresh=False).value})", field="job_id")
    jobs.cancel(connection, job)
    return jobs.to_public(_job(connection, job_id))
