"""Stop requests for running jobs, honoured at the job's next progress report.

RQ stops a running job by killing its forked work horse. A worker that runs jobs in its own
process (every GPU worker, and CPU workers by default) has no horse to kill, so whoever stops
a job also leaves ``softlabel:stop:<job id>`` in Redis, and the job checks it each time it
reports progress (between the engine's stages) and raises :class:`JobStopped`. RQ then marks
the job ``stopped``; outputs are only ever renamed into place, so nothing partial remains.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

STOP_KEY = "softlabel:stop:{job_id}"
STOP_TTL_S = 24 * 3600  # a request outlives any job; enqueueing the id again clears it


class JobStopped(Exception):
    """The job was asked to stop; it ends without output and is not retried."""


def request_stop(connection: redis.Redis, job_id: str) -> None:
    connection.set(STOP_KEY.format(job_id=job_id), 1, ex=STOP_TTL_S)


def clear_stop_requests(connection: redis.Redis, job_ids: Iterable[str]) -> None:
    """Forget old stop requests for ids about to be queued again."""
    keys = [STOP_KEY.format(job_id=job_id) for job_id in job_ids]
    if keys:
        connection.delete(*keys)


def stop_requested(connection: redis.Redis, job_id: str) -> bool:
    return bool(connection.exists(STOP_KEY.format(job_id=job_id)))
