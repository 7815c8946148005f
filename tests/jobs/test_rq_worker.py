"""The in-process RQ worker forgets a stop command once the job it named has ended; the forking
worker cleans up after a horse it killed on a stop command."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis
from helpers.jobs import job_payload
from rq import Queue, Retry
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from softlabel.worker.jobs.contract import SOFTEN_JOB, STOP_KEY
from softlabel.worker.jobs.rq_worker import ForkingWorker, InProcessWorker

pytestmark = pytest.mark.redis


@pytest.mark.parametrize(("func", "ends"), [("builtins.len", JobStatus.FINISHED), ("builtins.int", JobStatus.STOPPED)])
def test_a_stop_command_does_not_outlive_its_job(redis_url: str, func: str, ends: JobStatus) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("stop-test", connection=connection, serializer=JSONSerializer)
    # len([1, 2]) succeeds; int("x") raises, as a job that saw its stop request does.
    job = queue.enqueue(func, [1, 2] if func == "builtins.len" else "x", retry=None)
    worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer)
    worker._stopped_job_id = job.id  # what RQ's stop-job command leaves while the job runs
    worker.execute_job(job, queue)
    assert job.get_status(refresh=True) == ends
    assert worker._stopped_job_id is None


def test_the_forking_worker_removes_what_a_killed_horse_left(redis_url: str, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    spec = job_payload({"K": 2, "images": [tmp_path / "case_0000.nii.gz"], "label": tmp_path / "case.nii.gz"}, out)
    for name in ("case.nii.gz", ".case_superpixels.partial-0123abcd.nii.gz", "other.json"):  # as a horse killed mid-write left them
        (out / name).write_bytes(b"partial")
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("stop-test", connection=connection, serializer=JSONSerializer)
    job = queue.enqueue(SOFTEN_JOB, spec.model_dump(mode="json"), retry=None)
    worker = ForkingWorker([queue], connection=connection, serializer=JSONSerializer)
    worker._stopped_job_id = job.id  # what RQ's stop-job command leaves before it kills the horse
    worker.handle_job_failure(job, queue, exc_string="Job stopped by user, work-horse terminated.")
    assert job.get_status(refresh=True) == JobStatus.STOPPED
    assert sorted(p.name for p in out.iterdir()) == ["other.json"]  # another study's file stays


def _failing_job_with_copies(redis_url: str, tmp_path, small_study) -> tuple[redis.Redis, Queue, object, Path]:
    """A soften job with one retry that fails for a reason a retry may not meet (its output
    folder is a file), and a folder of upload copies named in its payload."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    copies = tmp_path / "inputs" / "case"
    copies.mkdir(parents=True)
    (copies / "image_0000.nii").write_bytes(b"")  # an incomplete set: the job reads the gzipped files
    spec = job_payload(small_study, blocker).model_copy(update={"decoded_inputs": str(copies)})
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("retry-test", connection=connection, serializer=JSONSerializer)
    return connection, queue, queue.enqueue(SOFTEN_JOB, spec.model_dump(mode="json"), retry=Retry(max=1)), copies


def test_the_last_attempt_of_a_failing_job_removes_its_input_copies(redis_url: str, tmp_path, small_study) -> None:
    """The copies stay for the retry, and go with the last attempt."""
    connection, queue, job, copies = _failing_job_with_copies(redis_url, tmp_path, small_study)
    worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer)
    worker.execute_job(job, queue)
    assert job.get_status(refresh=True) == JobStatus.QUEUED and copies.is_dir()  # retried at once (no interval)
    retried, _ = Queue.dequeue_any([queue], None, connection=connection, serializer=JSONSerializer)
    worker.execute_job(retried, queue)
    assert job.get_status(refresh=True) == JobStatus.FAILED and not copies.exists()
    assert "NotADirectoryError" in job.meta["error"]


def test_a_failing_job_whose_stop_was_requested_removes_its_input_copies(redis_url: str, tmp_path, small_study) -> None:
    """Stopped while it failed: RQ does not retry it, so nothing will read the copies."""
    connection, queue, job, copies = _failing_job_with_copies(redis_url, tmp_path, small_study)
    connection.set(STOP_KEY.format(job_id=job.id), 1)  # what DELETE /v1/jobs/{id} leaves...
    worker = InProcessWorker([queue], connection=connection, serializer=JSONSerializer)
    worker._stopped_job_id = job.id  # ...with RQ's stop-job command
    worker.execute_job(job, queue)
    assert not copies.exists()


def test_a_shutdown_signal_is_noted_for_a_restart_even_before_python_handles_it(redis_url: str) -> None:
    """The restart in place reads SIGTERM/SIGINT from the signal wakeup pipe: a signal that
    arrived during a long compiled call has not reached RQ's handler yet, and execve drops it."""
    connection = redis.Redis.from_url(redis_url)
    worker = InProcessWorker([Queue("signals", connection=connection)], connection=connection)
    previous = {number: signal.signal(number, lambda *_: None) for number in (signal.SIGTERM, signal.SIGUSR1)}
    worker.watch_shutdown_signals()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert not worker._shutdown_signalled()  # another signal is not a shutdown
        os.kill(os.getpid(), signal.SIGTERM)
        assert worker._shutdown_signalled()
        assert not worker._shutdown_signalled()  # read once
    finally:
        signal.set_wakeup_fd(-1)
        for number, handler in previous.items():
            signal.signal(number, handler)
