"""Redis locks, so API processes (on any host) change one dataset, or the token file, at a time.

Held while a study is placed, a labelset's jobs are queued, things are deleted, or the token
file is rewritten: short sections, never while a job runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis.exceptions import LockError

from .errors import ApiError

LOCK_TIMEOUT_S = 120  # seconds a lock lives if its holder dies
LOCK_WAIT_S = 60  # seconds a request waits for the lock before answering 503
TOKENS_LOCK = "softlabel:lock:tokens"


@contextlib.contextmanager
def redis_lock(connection: redis.Redis, key: str, busy: ApiError) -> Iterator[None]:
    """Hold the lock at ``key``; raise ``busy`` when another holder keeps it for too long."""
    lock = connection.lock(key, timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_WAIT_S)
    if not lock.acquire():
        raise busy
    try:
        yield
    finally:
        with contextlib.suppress(LockError):  # expired while held: nothing left to release
            lock.release()


def dataset_lock(connection: redis.Redis, dataset_id: str) -> contextlib.AbstractContextManager[None]:
    """Hold the dataset's lock; 503 when another request holds it for too long."""
    busy = ApiError(503, f"dataset {dataset_id!r} is busy; try again", field="dataset_id")
    return redis_lock(connection, f"softlabel:lock:dataset:{dataset_id}", busy)


def tokens_lock(connection: redis.Redis) -> contextlib.AbstractContextManager[None]:
    """Hold the token file's lock (mint, revoke, restore); 503 when held for too long."""
    return redis_lock(connection, TOKENS_LOCK, ApiError(503, "the token store is busy; try again"))
