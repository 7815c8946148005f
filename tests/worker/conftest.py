"""Engine and engine-command fixtures; nothing here needs Redis, RQ or the service."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.studies import write_small_study


@pytest.fixture
def small_study(tmp_path: Path) -> dict:
    """A 3-channel (17, 19, 11) study with 4 classes, one file per channel."""
    return write_small_study(tmp_path)
