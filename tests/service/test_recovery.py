"""Worker lifecycle with real processes: SIGKILL mid-job (crash recovery, no partial file ever
visible), SIGTERM mid-job (warm shutdown), and a Redis restart with persistence."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import nibabel as nib
import pytest
import redis
from rq import Worker

from helpers.service import (
    ADMIN,
    BIG,
    CLASSES,
    dataset_body,
    multipart,
    run_burst_workers,
    start_slow_job,
    start_worker,
    wait_for_stage,
    write_tiny_study,
)  # fmt: skip
from softlabel.service.app import create_app
from softlabel.service.embedded_redis import EmbeddedRedis
from softlabel.service.settings import Settings
from softlabel.worker.jobs.restart import descendants

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LEASE_TTL_S = "2"


class VisibleFileChecker(threading.Thread):
    """Polls a folder and fully reads every visible (non-hidden) output; records any that is partial."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.stop, self.errors, self.checked = folder, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.wait(0.01):
            for path in list(self.folder.glob("[!.]*")) if self.folder.exists() else []:
                try:
                    if path.name.endswith(".nii.gz"):
                        nib.load(path).get_fdata()
                    elif path.suffix == ".json":
                        json.loads(path.read_text())
                    elif path.suffix == ".png":
                        assert path.read_bytes().endswith(b"IEND\xaeB`\x82")
                    self.checked += 1
                except FileNotFoundError:
                    pass
                except Exception as exc:  # a partial file was visible
                    self.errors.append(f"{path.name}: {exc!r}")


@pytest.mark.parametrize("fork", [False, True], ids=["in-process worker", "forking worker"])
def test_a_sigkilled_worker_job_completes_after_recovery(api, dataset, settings, tmp_path, fork):
    job_id = start_slow_job(api, dataset, tmp_path)
    outputs = settings.data_dir / "datasets" / dataset / "labelsets" / "sp"
    checker = VisibleFileChecker(outputs)
    checker.start()
    mode = ["--fork"] if fork else []
    victim = start_worker(settings, "--name", "victim", *mode, log=tmp_path / "victim.log", SOFTLABEL_LEASE_TTL_S=LEASE_TTL_S)
    wait_for_stage(api, job_id, "superpixels")
    family = descendants(victim.pid)
    os.kill(victim.pid, signal.SIGKILL)  # the worker first, so it cannot react to its horse's death
    for pid in family:
        os.kill(pid, signal.SIGKILL)
    victim.wait()

    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "started"  # nobody knows yet
    connection = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + 30
    while connection.exists(f"softlabel:lease:{job_id}") and time.monotonic() < deadline:
        time.sleep(0.1)  # the lease expires LEASE_TTL_S after the last renewal
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / ".big.partial-deadbeef.nii.gz").write_bytes(b"half a file from a dead writer")
    run_burst_workers(settings, log_dir=tmp_path / "rescuer", SOFTLABEL_LEASE_TTL_S=LEASE_TTL_S)
    checker.stop.set()
    checker.join()

    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "finished" and job["attempts"] == 2, job
    assert "requeued" in (tmp_path / "rescuer" / "worker-0.log").read_text()
    assert "victim" not in [worker.name for worker in Worker.all(connection=connection)]  # no longer registered as busy
    assert json.loads((outputs / "big.json").read_text())["attempt"] == 2
    assert nib.load(outputs / "big.nii.gz").shape == BIG + (CLASSES,)
    assert checker.errors == [] and checker.checked > 0
    assert sorted(p.name for p in outputs.iterdir()) == ["big.json", "big.nii.gz", "big_preview.png", "big_superpixels.nii.gz"]


@pytest.mark.parametrize("fork", [False, True], ids=["in-process worker", "forking worker"])
def test_sigterm_lets_the_running_job_finish(api, dataset, settings, tmp_path, fork):
    job_id = start_slow_job(api, dataset, tmp_path)
    worker = start_worker(settings, *(["--fork"] if fork else []), log=tmp_path / "worker.log")
    wait_for_stage(api, job_id, "superpixels")
    worker.send_signal(signal.SIGTERM)  # what `docker stop` and Kubernetes send
    assert worker.wait(90) == 0
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "finished" and job["attempts"] == 1, job
    log = (tmp_path / "worker.log").read_text()
    assert "warm shut down requested" in log
    assert f"backend cpu, {'forking' if fork else 'non-forking'} worker" in log


def test_queued_jobs_survive_a_redis_restart(tmp_path):
    with EmbeddedRedis(tmp_path / "redis") as server:
        settings = Settings(data_dir=tmp_path / "data", admin_token=ADMIN, redis_url=server.url, queue="restart")
        headers = {"Authorization": f"Bearer {ADMIN}"}
        with TestClient(create_app(settings), headers=headers) as api:
            api.post("/v1/datasets", json=dataset_body("d1"))
            for index in range(3):
                parts, data = multipart(write_tiny_study(tmp_path / "in", f"c{index}", seed=index))
                api.post("/v1/datasets/d1/studies", files=parts, data=data)
            reader = api.post("/v1/tokens", json={"name": "reader", "scopes": ["read"]}).json()["token"]
            assert api.post("/v1/datasets/d1/labelsets", json={"name": "sp", "params": {"n_segments": 30}}).json()["enqueued"] == 3

            server.stop()
            assert api.get("/v1/datasets/d1/labelsets/sp").status_code == 503  # Redis down: a clear 503
            server.start()  # same folder: the append-only file is replayed

            state = api.get("/v1/datasets/d1/labelsets/sp", headers={"Authorization": f"Bearer {reader}"})
            assert state.status_code == 200 and state.json()["counts"]["queued"] == 3
            run_burst_workers(settings, log_dir=tmp_path / "workers")
            assert api.get("/v1/datasets/d1/labelsets/sp").json()["counts"]["finished"] == 3
