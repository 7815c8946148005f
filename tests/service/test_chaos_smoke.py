"""The chaos run's smoke version (bench/chaos.py) with real processes: 40 studies through the REST
API, 2 workers, a busy worker SIGKILLed about every second and Redis restarted once; no study is
lost or computed twice, and every result equals the engine's."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 300  # 15 s on 2 cores at load 4: the stack, 40 studies, the kills and the checks

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_the_chaos_smoke_run_loses_duplicates_and_mismatches_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the run restarts its own Redis
    record_path = tmp_path / "chaos.json"
    command = [sys.executable, "bench/chaos.py", "--studies", "40", "--kill-every", "1", "--json", str(record_path)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=LIMIT_S)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    record = json.loads(record_path.read_text())
    assert record["lost"] == record["duplicated"] == record["mismatches"] == 0, record
    assert record["partial_files"] == record["unexpected_files"] == record["unobserved"] == 0, record
    assert record["completions"] == 40 and record["final_counts"]["finished"] == 40, record
    assert record["kills"] >= 1 and record["redis_restarts"] == 1, record
    assert not record["stuck"] and not record["inotify_overflowed"] and record["polls_with_missing"] == 0, record


def test_the_rename_counter_sees_a_second_completion(tmp_path: Path) -> None:
    """The run's duplicate count: two renames onto one name are two, whoever made them."""
    spec = importlib.util.spec_from_file_location("file_events", REPO / "bench" / "file_events.py")
    file_events = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(file_events)
    counter = file_events.RenameCounter(tmp_path).start()
    for name in ("c1.json", "c2.json", "c1.json"):
        (tmp_path / ".partial").write_text("{}")
        os.replace(tmp_path / ".partial", tmp_path / name)
    (tmp_path / "c3.json").write_text("{}")  # written in place: not a rename
    assert counter.stop() == {"c1.json": 2, "c2.json": 1} and not counter.overflowed
