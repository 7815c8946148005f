"""A stop request ends a running job within 5 s, in the middle of a long stage (issue 18).

Before the engine's checkpoints, a job run in its worker's process checked for a stop request
only between stages, so the NOISY study's 19 s SLIC stage ran to its end (and scikit-image's,
minutes long, too). A forking worker kills the job's horse; it must also leave nothing behind.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest
import redis
from rq import Queue

from helpers.service import (
    LABELSET_PARAMS, NOISY_PARAMS, multipart, start_worker, wait_for_end, wait_for_stage, write_noisy_study,
)  # fmt: skip
from softlabel.service import layout
from softlabel.worker.jobs.contract import LEASE_KEY, STOP_KEY, STOP_TTL_S
from softlabel.worker.jobs.restart import descendants

pytestmark = [pytest.mark.redis, pytest.mark.slow]
STOP_WITHIN_S = 5.0  # the bound, from the request to the job's end
JOB_TIMEOUT_S = 15  # RQ's alarm on each job: a worker restarted in place must not keep it


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"job_timeout_s": JOB_TIMEOUT_S})


@pytest.mark.parametrize(
    ("fork", "slic"),
    [(False, "native"), (False, "skimage"), (True, "native")],
    ids=["in-process worker, native SLIC", "in-process worker, scikit-image SLIC", "forking worker"],
)
def test_a_stop_mid_stage_ends_the_job_within_5_s_and_leaves_nothing(api, dataset, settings, tmp_path, fork, slic):
    parts, data = multipart(write_noisy_study(tmp_path / "in", "noisy"))
    assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": NOISY_PARAMS | {"slic": slic}})
    job_id = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies").json()["data"][0]["job_id"]
    outputs = settings.data_dir / "datasets" / dataset / "labelsets" / "sp"
    log = tmp_path / "worker.log"
    worker = start_worker(settings, *(["--fork"] if fork else []), log=log)
    try:
        wait_for_stage(api, job_id, "superpixels")
        time.sleep(0.5)  # inside the stage's compiled loop (or scikit-image's child), not at its start
        requested = time.monotonic()
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 202
        job = wait_for_end(api, job_id, timeout_s=60)
        latency = time.monotonic() - requested
        print(f"stop latency ({'forking' if fork else 'in-process'}, {slic}): {latency:.2f} s")
        assert job["status"] == "stopped" and latency < STOP_WITHIN_S, (latency, job)
        assert job["progress"]["stage"] == "superpixels", job
        leftovers = sorted(p.name for p in outputs.iterdir()) if outputs.exists() else []
        assert leftovers == [], leftovers  # no result, no hidden partial file
        assert not [args for args in _descendants(worker.pid) if "spawn_main" in args]  # no SLIC child left
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert f"backend cpu, {'forking' if fork else 'non-forking'} worker" in Path(log).read_text()


NO_CHECKPOINT_ENV = {"SOFTLABEL_STOP_CHECK_INTERVAL_S": "3600", "SOFTLABEL_STOP_GRACE_S": "1"}


def _stop_without_checkpoints(
    api, dataset, settings, tmp_path, *, warm_shutdown: bool = False, fork: bool = False, lost_command: bool = False
):
    """A worker whose checkpoints read Redis once an hour (so within the SLIC stage the job
    sees no stop request, as in one compiled call longer than the grace: one SLIC step of a
    512^3 study) runs the NOISY study; it is stopped mid-stage, during a warm shutdown if
    asked, on an in-process or a forking worker; ``lost_command``: the stop request is left in
    Redis as the API leaves it, but RQ's stop-job command (pub/sub, at most once) never comes.
    Returns the worker, the job's id and when it was seen in its SLIC stage (monotonic s)."""
    parts, data = multipart(write_noisy_study(tmp_path / "in", "noisy"))
    assert api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": NOISY_PARAMS}).status_code == 202
    assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201
    job_id = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies").json()["data"][0]["job_id"]
    copies = settings.data_dir / layout.decoded_inputs(dataset, "sp", "noisy")
    assert copies.is_dir()  # the upload's uncompressed inputs, for the job
    fork_args = ["--fork"] if fork else []
    worker = start_worker(settings, "--name", "deadline", *fork_args, log=tmp_path / "worker.log", **NO_CHECKPOINT_ENV)
    wait_for_stage(api, job_id, "superpixels")
    started = time.monotonic()
    time.sleep(0.5)
    if warm_shutdown:
        worker.send_signal(signal.SIGTERM)  # waits for the running job...
        time.sleep(0.2)
    requested = time.monotonic()
    if lost_command:
        redis.Redis.from_url(settings.redis_url).set(STOP_KEY.format(job_id=job_id), 1, ex=STOP_TTL_S)
    else:
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 202  # ...which this ends
    job = wait_for_end(api, job_id, timeout_s=60)
    latency = time.monotonic() - requested
    how = "horse killed" if fork else "restart in place"
    print(f"stop latency ({how}{', warm shutdown' if warm_shutdown else ''}): {latency:.2f} s")
    assert job["status"] == "stopped" and latency < STOP_WITHIN_S, (latency, job)
    if not fork:
        assert "restarted itself" in job["error"] and "'superpixels'" in job["error"], job["error"]
    outputs = settings.data_dir / "datasets" / dataset / "labelsets" / "sp"
    assert sorted(p.name for p in outputs.iterdir() if p.name != ".inputs") == []
    assert not copies.exists()
    connection = redis.Redis.from_url(settings.redis_url)
    registries = Queue(settings.queue, connection=connection)
    assert registries.started_job_registry.get_job_ids() == [] and job_id in registries.failed_job_registry.get_job_ids()
    assert not connection.exists(LEASE_KEY.format(job_id=job_id)), "lease"
    assert job["ended_at"] is not None, job
    return worker, job_id, started


def test_a_job_that_reaches_no_checkpoint_in_time_is_ended_by_its_worker_restarting_in_place(
    api, dataset, settings, tmp_path
):
    """The stop deadline: the worker ends the job by replacing itself with a fresh image (the
    same process), which removes the job's outputs and copies, records it stopped and then
    takes the next job."""
    worker, job_id, started = _stop_without_checkpoints(api, dataset, settings, tmp_path, warm_shutdown=False)
    try:
        assert worker.poll() is None  # the same process, running its new image
        assert not [state for state in _states(worker.pid) if state == "Z"]  # the old scheduler was reaped
        created = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "after", "params": LABELSET_PARAMS})
        assert created.status_code == 202, created.text
        following = api.get(f"/v1/datasets/{dataset}/labelsets/after/studies").json()["data"][0]["job_id"]
        following = wait_for_end(api, following, timeout_s=60)
        assert following["status"] == "finished", following.get("error")
        time.sleep(max(0.0, started + JOB_TIMEOUT_S + 2 - time.monotonic()))  # past the stopped job's alarm
        assert worker.poll() is None, worker.returncode
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    text = (tmp_path / "worker.log").read_text()
    assert "restarting this worker to end it" in text and f"restarted to end job {job_id}" in text, text[-3000:]


def test_a_worker_shutting_down_when_it_restarts_for_a_stop_exits_after_it(api, dataset, settings, tmp_path):
    """A warm shutdown waits for the running job; a stop that ends it by a restart in place
    does not bring the worker back to work: the new image finishes the stop and exits 0."""
    worker, _, _ = _stop_without_checkpoints(api, dataset, settings, tmp_path, warm_shutdown=True)
    assert worker.wait(30) == 0
    assert "exiting: the worker was shutting down" in (tmp_path / "worker.log").read_text()


def test_a_forking_worker_whose_stop_command_was_lost_kills_the_horse_at_the_deadline(api, dataset, settings, tmp_path):
    """The stop deadline of a forking worker: the horse is killed and leaves nothing."""
    worker, job_id, _ = _stop_without_checkpoints(api, dataset, settings, tmp_path, fork=True, lost_command=True)
    try:
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    log = (tmp_path / "worker.log").read_text()
    assert f"job {job_id} reached no checkpoint within 1 s of its stop request; killing its horse" in log, log[-3000:]


def _states(pid: int) -> list[str]:
    """Process states (R, S, Z...) of the processes below ``pid``."""
    states = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):  # ended meanwhile
            states.append((Path("/proc") / str(child) / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return states


def _descendants(pid: int) -> list[str]:
    """Command lines of the processes below ``pid``."""
    lines = []
    for child in descendants(pid):
        try:
            lines.append((Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # ended meanwhile
            continue
    return lines
