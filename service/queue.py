"""The RQ side of the service: enqueue soften jobs by name with JSON payloads, read their state.

One job per (dataset, labelset, study) with a deterministic id, so a study is never queued
twice for the same labelset. Jobs carry ``job_timeout``, ``Retry(max, [10, 30, 60] s)``,
``result_ttl`` and ``failure_ttl``; RQ's ``JSONSerializer`` is used on both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from softlabel.worker.jobs.contract import SOFTEN_JOB, STOP_KEY, STOP_TTL_S, SoftenJobPayload

from .schemas import JobProgress, JobPublic, StudyStatus
from .settings import Settings

RETRY_INTERVALS_S = [10, 30, 60]  # seconds before the 1st, 2nd and 3rd retry
ACTIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED}
_STUDY_STATUS: dict[JobStatus, StudyStatus] = {
    JobStatus.CREATED: "queued",
    JobStatus.QUEUED: "queued",
    JobStatus.DEFERRED: "queued",
    JobStatus.SCHEDULED: "queued",  # waiting for a retry
    JobStatus.STARTED: "running",
    JobStatus.FAILED: "failed",
    JobStatus.STOPPED: "failed",
    JobStatus.CANCELED: "canceled",
}



def request_stop(connection: redis.Redis, job_id: str) -> None:
    """Ask a running job to stop at its next stage boundary or engine checkpoint (the job honours the key)."""
    connection.set(STOP_KEY.format(job_id=job_id), 1, ex=STOP_TTL_S)


def clear_stop_requests(connection: redis.Redis, job_ids: Iterable[str]) -> None:
    """Forget old stop requests for ids about to be queued again."""
    keys = [STOP_KEY.format(job_id=job_id) for job_id in job_ids]
    if keys:
        connection.delete(*keys)


def job_id_for(dataset_id: str, labelset: str, case_id: str) -> str:
    """Deterministic job id of one study in one labelset (RQ ids allow ``[A-Za-z0-9_-]``)."""
    digest = hashlib.sha256(f"{dataset_id}/{labelset}/{case_id}".encode()).hexdigest()[:32]
    return f"soften-{digest}"


def get_queue(connection: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue, connection=connection, serializer=JSONSerializer)


def fetch_jobs(connection: redis.Redis, job_ids: list[str]) -> dict[str, Job | None]:
    """Jobs by id in one round trip (None for ids Redis does not know)."""
    jobs = Job.fetch_many(job_ids, connection=connection, serializer=JSONSerializer) if job_ids else []
    return dict(zip(job_ids, jobs))


def fetch_job(connection: redis.Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def is_active(job: Job | None) -> bool:
    """Queued, waiting for a retry, or running."""
    return job is not None and job.get_status(refresh=False) in ACTIVE


def study_status(*, finished: bool, job: Job | None) -> StudyStatus:
    """A study's state in a labelset: its result if present, else its job's state."""
    if finished:
        return "finished"
    if job is None:
        return "missing"
    status = job.get_status(refresh=False)
    # A finished job whose result is gone (the study was deleted and re-uploaded) must run again.
    return "missing" if status == JobStatus.FINISHED else _STUDY_STATUS.get(status, "queued")


def enqueue(queue: Queue, payloads: Iterable[SoftenJobPayload], settings: Settings) -> list[str]:
    """Queue one job per payload as one batch (replacing ended jobs with the same ids)."""
    payloads = list(payloads)
    if not payloads:
        return []
    ids = [job_id_for(p.dataset_id, p.labelset, p.case_id) for p in payloads]
    for job in fetch_jobs(queue.connection, ids).values():
        if job is not None:
            job.delete()  # an ended job of an earlier attempt; active ones are never passed here
    clear_stop_requests(queue.connection, ids)
    retry = Retry(max=settings.job_retries, interval=RETRY_INTERVALS_S) if settings.job_retries else None
    batch = [
        Queue.prepare_data(
            SOFTEN_JOB, args=(payload.model_dump(mode="json"),), job_id=job_id, timeout=settings.job_timeout_s,
            result_ttl=settings.result_ttl_s, failure_ttl=settings.failure_ttl_s, retry=retry,
            description=f"soften {payload.dataset_id}/{payload.labelset}/{payload.case_id}",
            meta={"dataset_id": payload.dataset_id, "labelset": payload.labelset, "case_id": payload.case_id},
        )  # fmt: skip
        for job_id, payload in zip(ids, payloads)
    ]
    queue.enqueue_many(batch)
    return ids


def cancel(connection: redis.Redis, job: Job) -> None:
    """Cancel a queued job, or stop a running one: a forking worker kills its work horse at
    once, in a non-forking one the job stops itself at its next checkpoint (``worker.jobs.stop``)."""
    if job.get_status() == JobStatus.STARTED:
        try:  # RQ's command first: its worker then records the job as stopped, not failed
            send_stop_job_command(connection, job.id, serializer=JSONSerializer)
        except InvalidJobOperation:  # it ended meanwhile
            return
        request_stop(connection, job.id)
    else:
        job.cancel()
        if (spec := SoftenJobPayload.of_job(job.func_name, job.args)) is not None:
            spec.remove_decoded_inputs()  # it will not run: nothing reads the upload's copies


def error_message(job: Job) -> str | None:
    """The job's last error in one line: the worker's own message, else RQ's exception text."""
    if job.meta.get("error"):
        return str(job.meta["error"])
    if job.get_status(refresh=False) not in (JobStatus.FAILED, JobStatus.STOPPED):
        return None
    result = job.latest_result()
    lines = (result.exc_string or "").strip().splitlines() if result else []
    return lines[-1] if lines else "failed without a message"


def _iso(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


def to_public(job: Job) -> JobPublic:
    meta = job.meta
    progress = meta.get("progress") or {}
    return JobPublic(
        id=job.id, status=job.get_status(refresh=False).value, dataset_id=meta.get("dataset_id"),
        labelset=meta.get("labelset"), case_id=meta.get("case_id"),
        progress=JobProgress(stage=progress.get("stage"), fraction=progress.get("fraction", 0.0)),
        attempts=int(meta.get("attempts", 0)), error=error_message(job), enqueued_at=_iso(job.enqueued_at),
        started_at=_iso(job.started_at), ended_at=_iso(job.ended_at),
    )  # fmt: skip
