"""``/v1/jobs/{id}``: status and progress, retry, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from ... import labelsets as ls
from ... import queue as jobs
from ...layout import JOB_ID_PATTERN
from ...schemas import JobPublic
from ..deps import QueueDep, ReadScope, RedisDep, SettingsDep, StorageDep, WriteScope
from ..responses import PATH_IDS, errors

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="job id, as listed by a labelset")]


@router.get("/{job_id}", response_model=JobPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def get_job(job_id: JobId, connection: RedisDep) -> JobPublic:
    """Status, progress (stage and fraction of the study) and the error message of a job."""
    return jobs.to_public(ls.job_or_404(connection, job_id))


@router.post(
    "/{job_id}/retry", response_model=JobPublic, status_code=202, dependencies=[WriteScope], responses=errors(*PATH_IDS, 409)
)
def retry_job(job_id: JobId, storage: StorageDep, queue: QueueDep, settings: SettingsDep) -> JobPublic:
    """Queue a failed, stopped or canceled job again (a fresh job with the same id)."""
    return ls.retry_job(storage, queue, settings, job_id)


@router.delete(
    "/{job_id}", response_model=JobPublic, status_code=202, dependencies=[WriteScope], responses=errors(*PATH_IDS, 409)
)
def cancel_job(job_id: JobId, connection: RedisDep) -> JobPublic:
    """Cancel a queued job, or stop a running one (at once on a forking worker, else at its next checkpoint)."""
    return ls.stop_job(connection, job_id)
