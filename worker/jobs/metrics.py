"""Job duration by stage and backend, recorded by workers into a histogram kept in Redis.

Why Redis and not a per-process ``prometheus_client`` histogram: a worker's memory dies with
it, and workers come and go: KEDA scales GPU worker pods to zero, a job that crashes takes its
worker down, and a ``--fork`` worker runs each job in a work horse that exits afterwards; and
workers run on several nodes. Each job therefore adds its stage timings to one Redis hash in a single transaction,
and the API's ``/metrics`` (``service.metrics``) exports that hash as the Prometheus histogram
``softlabel_job_stage_duration_seconds{stage, backend}``. One scrape target sees every worker,
and the counts survive worker restarts (and Redis restarts, with AOF on).

The hash's key and layout are in :mod:`.contract` (the API reads it).

The job calls :func:`record_job_timings` with the ``timings_s`` dict it also writes to its
provenance JSON. Recording never fails a job: errors are logged and dropped.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping

import redis

from .contract import BUCKETS_S, JOB_STAGE_KEY, STAGE_FIELD_SEPARATOR, format_le

LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # stage and backend names we accept

log = logging.getLogger("softlabel.worker.metrics")


def _bucket_bound(seconds: float) -> float:
    return next((bound for bound in BUCKETS_S if seconds <= bound), math.inf)


def record_job_timings(timings_s: Mapping[str, float], *, backend: str, connection: redis.Redis | None = None) -> bool:
    """Add one job's stage timings to the histogram; True when Redis took them.

    Parameters
    ----------
    timings_s : mapping of str to float
        Seconds per stage, e.g. ``{"superpixels": 3.2, "distances": 1.1, "total": 5.0}``
        (the job's ``timings_s``). Stages whose names do not match :data:`LABEL_PATTERN`, and
        negative or non-finite values, are skipped with a warning.
    backend : str
        The backend that ran the job, ``"cpu"`` or ``"gpu"``.
    connection : redis.Redis, optional
        Defaults to the connection of the RQ job running in this process.
    """
    if not LABEL_PATTERN.match(backend):
        log.warning("job metrics: backend %r does not match %s; not recorded", backend, LABEL_PATTERN.pattern)
        return False
    if connection is None:
        from rq import get_current_job  # only when called from inside an RQ job

        job = get_current_job()
        if job is None:
            log.warning("job metrics: no Redis connection given and no RQ job running; not recorded")
            return False
        connection = job.connection
    try:
        pipe = connection.pipeline(transaction=True)
        recorded = 0
        for stage, seconds in timings_s.items():
            if not LABEL_PATTERN.match(stage) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
                log.warning("job metrics: skipping stage %r = %r (expected a name matching %s and seconds >= 0)",
                            stage, seconds, LABEL_PATTERN.pattern)  # fmt: skip
                continue
            prefix = f"{stage}{STAGE_FIELD_SEPARATOR}{backend}{STAGE_FIELD_SEPARATOR}"
            pipe.hincrby(JOB_STAGE_KEY, f"{prefix}bucket{STAGE_FIELD_SEPARATOR}{format_le(_bucket_bound(seconds))}", 1)
            pipe.hincrby(JOB_STAGE_KEY, f"{prefix}count", 1)
            pipe.hincrbyfloat(JOB_STAGE_KEY, f"{prefix}sum", float(seconds))
            recorded += 1
        if recorded:
            pipe.execute()
        return recorded > 0
    except redis.RedisError as exc:
        log.warning("job metrics: Redis refused the timings (%s); not recorded", exc)
        return False
