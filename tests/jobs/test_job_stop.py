"""A stopped job removes every output it or an earlier run wrote; its stop check is rate-limited."""

from __future__ import annotations

import time

import pytest
import redis
from helpers.jobs import job_payload

from softlabel.worker.jobs.contract import STOP_KEY
from softlabel.worker.jobs.soften import run_soften_job
from softlabel.worker.jobs.stop import JobStopped, StopCheck


@pytest.mark.parametrize("stage", ["superpixels", "preview"])
def test_a_stopped_job_leaves_no_output(small_study, tmp_path, stage):
    out = tmp_path / "out"
    out.mkdir()
    (out / "case.json").write_text('{"attempt": 1}')  # a stale record of an earlier run with other inputs
    present_when_stopped: list[str] = []

    def progress(name: str, fraction: float) -> None:
        if name == stage:
            present_when_stopped.extend(sorted(p.name for p in out.iterdir()))
            raise JobStopped(f"stopped on request at stage {name!r}")

    with pytest.raises(JobStopped):
        run_soften_job(job_payload(small_study, out), backend="cpu", progress=progress)
    written = ["case.json", "case.nii.gz", "case_superpixels.nii.gz"] if stage == "preview" else ["case.json"]
    assert present_when_stopped == written
    assert sorted(p.name for p in out.iterdir()) == []


@pytest.mark.redis
def test_the_checkpoint_reads_redis_at_most_every_interval_and_then_stays_stopped(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    key = STOP_KEY.format(job_id="job-1")
    check = StopCheck(connection, "job-1", interval_s=0.5)
    check()  # reads Redis: no request yet
    connection.set(key, 1)
    check()  # within the interval: no read
    time.sleep(0.5)
    with pytest.raises(JobStopped, match="at stage 'started'"):
        check()
    connection.delete(key)
    check.stage = "soften"
    with pytest.raises(JobStopped, match="at stage 'soften'"):
        check()  # a job once stopped stays stopped


@pytest.mark.redis
def test_the_stage_check_reads_redis_at_once(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    check = StopCheck(connection, "job-2", interval_s=60)
    check()
    connection.set(STOP_KEY.format(job_id="job-2"), 1)
    check()  # the checkpoint waits for its interval
    with pytest.raises(JobStopped):
        check.check()


def test_a_job_stopped_at_a_checkpoint_leaves_no_output(small_study, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "case.json").write_text('{"attempt": 1}')
    stages: list[str] = []

    def checkpoint() -> None:
        if stages[-1] == "soften":
            raise JobStopped("stopped on request at stage 'soften'")

    with pytest.raises(JobStopped):
        run_soften_job(job_payload(small_study, out), backend="cpu", progress=lambda name, fraction: stages.append(name),
                       checkpoint=checkpoint)  # fmt: skip
    assert stages[-1] == "soften" and sorted(p.name for p in out.iterdir()) == []


def test_a_checkpoint_that_cannot_reach_redis_does_not_stop_the_job(tmp_path) -> None:
    """Redis restarting is no stop request: the engine goes on (the next read, or the stop deadline, decides)."""
    unreachable = redis.Redis(unix_socket_path=str(tmp_path / "no-redis.sock"), socket_connect_timeout=0.1)
    check = StopCheck(unreachable, "job-3", interval_s=0)
    check()
    check.check()
