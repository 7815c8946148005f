"""Stop requests for running jobs, honoured at the job's next progress report.

RQ stops a running job by killing its forked work horse. A worker that runs jobs in its own
process (every GPU worker, and CPU workers by default) has no horse to kill, so whoever stops
a job also leaves ``softlabel:stop:<job id>`` in Redis (:data:`.contract.STOP_KEY`, set by the
service), and the job checks it each time it reports progress (between the engine's stages)
and raises :class:`JobStopped`. RQ then marks the job ``stopped``; outputs are only ever
renamed into place, so nothing partial remains.
"""

from __future__ import annotations

import redis

from .contract import STOP_KEY


class JobStopped(Exception):
    """The job was asked to stop; it ends without output and is not retried."""


def stop_requested(connection: redis.Redis, job_id: str) -> bool:
    return bool(connection.exists(STOP_KEY.format(job_id=job_id)))
