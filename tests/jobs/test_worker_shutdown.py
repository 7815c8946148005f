"""A worker with no job running exits promptly on SIGTERM (warm shutdown).

RQ 3's pub/sub thread blocks its read for 60 s, and a warm shutdown's unsubscribe can wait on
that read: under load, a worker SIGTERMed right after a job took 60.3 s to exit (1 of 8
tries with three CPU hogs running; 0 of 12 with the 1 s poll)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from softlabel.worker.jobs.rq_worker import PUBSUB_POLL_S, ForkingWorker, InProcessWorker

pytestmark = pytest.mark.redis
EXIT_WITHIN_S = 15  # warm shutdown of an idle worker: scheduler, registry, pub/sub, each about a second


@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["in-process worker", "forking worker"])
def test_an_idle_worker_exits_promptly_on_sigterm(redis_url: str, tmp_path: Path, fork: bool) -> None:
    log = tmp_path / "worker.log"
    env = dict(os.environ, REDIS_URL=redis_url, SOFTLABEL_QUEUE="shutdown-test")
    command = [sys.executable, "-m", "softlabel.worker.jobs.rq_worker", "--backend", "cpu", *(["--fork"] if fork else [])]
    with log.open("wb") as output:
        worker = subprocess.Popen(command, env=env, stdout=output, stderr=output, start_new_session=True)
    try:
        connection = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 60
        while not Worker.all(connection=connection) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert Worker.all(connection=connection), log.read_text()
        time.sleep(3)  # the pub/sub thread is now inside its blocking read
        worker.send_signal(signal.SIGTERM)
        start = time.monotonic()
        worker.wait(EXIT_WITHIN_S)
        assert worker.returncode == 0 and time.monotonic() - start < EXIT_WITHIN_S, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("worker_class", [InProcessWorker, ForkingWorker])
def test_the_pub_sub_thread_blocks_at_most_a_second(redis_url: str, worker_class: type) -> None:
    connection = redis.Redis.from_url(redis_url)
    worker = worker_class([Queue("poll-test", connection=connection, serializer=JSONSerializer)], connection=connection,
                          serializer=JSONSerializer)  # fmt: skip
    worker.subscribe()
    try:
        assert PUBSUB_POLL_S <= 1 and worker.pubsub_thread.sleep_time == PUBSUB_POLL_S
    finally:
        start = time.monotonic()
        worker.unsubscribe()
        assert time.monotonic() - start < 1 + PUBSUB_POLL_S
