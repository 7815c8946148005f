"""Per-dataset Redis locks, so API processes (on any host) change one dataset at a time.

Held while a study is placed, a labelset's jobs are queued, or things are deleted: short
sections, never while a job runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis.exceptions import LockError

from .errors import ApiError

LOCK_TIMEOUT_S = 120  # seconds a lock lives if its holder dies
LOCK_WAIT_S = 60  # seconds a request waits for the lock before answering 503


@contextlib.contextmanager
def dataset_lock(connection: redis.Redis, dataset_id: str) -> Iterator[None]:
    """Hold the dataset's lock; 503 when another request holds it for too long."""
    lock = connection.lock(f"softlabel:lock:dataset:{dataset_id}", timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_WAIT_S)
    if not lock.acquire():
        raise ApiError(503, f"dataset {dataset_id!r} is busy; try again", field="dataset_id")
    try:
        yield
    finally:
        with contextlib.suppress(LockError):  # expired while held: nothing left to release
            lock.release()
