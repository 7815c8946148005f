"""Job duration by stage and backend, recorded by workers into a histogram kept in Redis.

Why Redis and not a per-process ``prometheus_client`` histogram: a worker's memory dies with
it, and workers come and go: KEDA scales GPU worker pods to zero, a job that crashes takes its
worker down, and a ``--fork`` worker runs each job in a work horse that exits afterwards; and
workers run on several nodes. Each job therefore adds its stage timings to one Redis hash in a single transaction,
and the API's ``/metrics`` (``service.metrics``) exports that hash as the Prometheus histogram
``softlabel_job_stage_duration_seconds{stage, backend}``. One scrape target sees every worker,
and the counts survive worker restarts (and Redis restarts, with AOF on).

Hash layout (key :data:`JOB_STAGE_KEY`), one field per counter::

    <stage>|<backend>|bucket|<le>   observations in (previous le, le], not cumulative
    <stage>|<backend>|count         observations
    <stage>|<backend>|sum           seconds, summed

The job calls :func:`record_job_timings` with the ``timings_s`` dict it also writes to its
provenance JSON. Recording never fails a job: errors are logged and dropped.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import redis

JOB_STAGE_KEY = "softlabel:metrics:v1:job_stage_seconds"  # bump the version if BUCKETS_S change
# Upper bounds in seconds (+Inf is implicit): a 2D slice takes well under a second on a GPU, a
# 512^3 study minutes on a CPU; the job timeout defaults to 3600 s.
BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # stage and backend names we accept
SEPARATOR = "|"

log = logging.getLogger("softlabel.worker.metrics")


def format_le(bound: float) -> str:
    """A bucket bound as Prometheus writes it: ``0.5``, ``10.0``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


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
            prefix = f"{stage}{SEPARATOR}{backend}{SEPARATOR}"
            pipe.hincrby(JOB_STAGE_KEY, f"{prefix}bucket{SEPARATOR}{format_le(_bucket_bound(seconds))}", 1)
            pipe.hincrby(JOB_STAGE_KEY, f"{prefix}count", 1)
            pipe.hincrbyfloat(JOB_STAGE_KEY, f"{prefix}sum", float(seconds))
            recorded += 1
        if recorded:
            pipe.execute()
        return recorded > 0
    except redis.RedisError as exc:
        log.warning("job metrics: Redis refused the timings (%s); not recorded", exc)
        return False


@dataclass
class StageHistogram:
    """One (stage, backend) series read back: cumulative buckets, count and sum in seconds."""

    stage: str
    backend: str
    buckets: list[tuple[str, int]] = field(default_factory=list)  # (le, cumulative count), +Inf last
    count: int = 0
    sum_s: float = 0.0


def read_job_timings(connection: redis.Redis) -> Iterator[StageHistogram]:
    """Every (stage, backend) histogram in Redis, with cumulative buckets (for ``/metrics``)."""
    raw = connection.hgetall(JOB_STAGE_KEY)
    series: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in raw.items():
        parts = (key.decode() if isinstance(key, bytes) else key).split(SEPARATOR)
        if len(parts) < 3:
            continue
        stage, backend, kind = parts[0], parts[1], SEPARATOR.join(parts[2:])
        series.setdefault((stage, backend), {})[kind] = float(value)
    bounds = [*BUCKETS_S, math.inf]
    for (stage, backend), values in sorted(series.items()):
        histogram = StageHistogram(stage, backend, sum_s=values.get("sum", 0.0))
        cumulative = 0
        for bound in bounds:
            le = format_le(bound)
            cumulative += int(values.get(f"bucket{SEPARATOR}{le}", 0))
            histogram.buckets.append((le, cumulative))
        histogram.count = cumulative  # the +Inf bucket, written in the same transaction as "count"
        yield histogram
