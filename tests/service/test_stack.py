"""``softlabel demo`` on a fresh folder, ``softlabel up`` with Ctrl-C, and the embedded stack
restarting a worker killed mid-job, as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nibabel as nib
import pytest
import redis
from rq import Queue, Worker

from helpers.service import LABELSET_PARAMS, dataset_body, start_slow_job, wait_for_end, wait_for_stage, write_tiny_study
from softlabel.service.client import SoftlabelClient
from softlabel.service.embedded import STATE_FILE, TOKEN_FILE, EmbeddedStack, admin_token

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SOFTLABEL = str(Path(sys.executable).parent / "softlabel")


def clean_env() -> dict[str, str]:
    """This environment without service settings: what a fresh machine has."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SOFTLABEL_") and k != "REDIS_URL"}


def processes_using(data_dir: Path) -> list[str]:
    """Command lines of live processes started for ``data_dir`` (by argument or environment)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(data_dir) in cmdline or f"SOFTLABEL_DATA_DIR={data_dir}".encode() in environ:
            if int(proc.name) != os.getpid():
                found.append(cmdline)
    return found


def process_group(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_demo_runs_the_main_job_on_a_fresh_machine(tmp_path):
    data = tmp_path / "softlabel-data"
    started = time.monotonic()
    demo = subprocess.run([SOFTLABEL, "demo"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    first_run_s = time.monotonic() - started
    out = tmp_path / "softlabel-demo"
    assert sorted(p.name for p in out.iterdir()) == [
        "mni152_001.nii.gz", "mni152_001_preview.png", "mni152_001_superpixels.nii.gz",
    ]  # fmt: skip
    soft = nib.load(out / "mni152_001.nii.gz")
    assert soft.shape == (197, 233, 189, 4)
    assert "mni152_001_preview.png" in demo.stderr and (data / TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    assert "/ui/datasets/mni152-demo/studies/mni152_001?labelset=demo" in demo.stderr  # its study in the viewer
    assert not (data / STATE_FILE).exists() and processes_using(data) == []

    again = subprocess.run([SOFTLABEL, "demo"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "reused" in again.stderr, again.stderr[-3000:]
    assert first_run_s < 240


def test_up_serves_the_api_and_workers_and_stops_on_ctrl_c(tmp_path):
    data = tmp_path / "data"
    up = subprocess.Popen(
        [SOFTLABEL, "up", "--port", "0", "--data-dir", str(data), "--workers", "2"], cwd=tmp_path, env=clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (data / STATE_FILE).exists():
            assert up.poll() is None and time.monotonic() < deadline, up.stdout.read() if up.poll() is not None else "timeout"
            time.sleep(0.2)
        api_url = json.loads((data / STATE_FILE).read_text())["api_url"]
        with SoftlabelClient(api_url, (data / TOKEN_FILE).read_text().strip()) as client:
            body = dataset_body("d1")
            client.create_dataset(name=body["name"], labels=body["labels"], channel_names=body["channel_names"], dataset_id="d1")
            files = write_tiny_study(tmp_path / "in", "c1")
            client.upload_study("d1", images=files.images, label=files.label)
            client.create_labelset("d1", "sp", params=LABELSET_PARAMS)
            assert client.watch("d1", "sp", poll_s=0.2, timeout_s=60)["counts"]["finished"] == 1
        assert len(processes_using(data)) >= 4  # Redis, the API, two workers
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "stopped" in output and not (data / STATE_FILE).exists()
    assert f"{api_url}/ui/" in output  # the web UI's address
    assert processes_using(data) == []
    assert (data / "redis" / "appendonly.aof").exists()


def test_the_stack_restarts_a_worker_killed_mid_job_and_the_job_finishes(tmp_path, monkeypatch):
    for name in [k for k in os.environ if k.startswith("SOFTLABEL_") or k == "REDIS_URL"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SOFTLABEL_LEASE_TTL_S", "2")  # the dead worker's job is requeued within seconds
    restarts: list[str] = []
    with EmbeddedStack(data_dir=tmp_path / "data", port=0, backend="cpu", log_dir=tmp_path / "logs") as stack:
        assert stack.redis is not None
        queue = Queue("softlabel", connection=redis.Redis.from_url(stack.redis.url))
        headers = {"Authorization": f"Bearer {admin_token(stack.data_dir)}"}
        with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as api:
            assert api.post("/v1/datasets", json=dataset_body("d1")).status_code == 201
            job_id = start_slow_job(api, "d1", tmp_path)
            victim = stack.workers[0]
            wait_for_stage(api, job_id, "superpixels")
            (old,) = Worker.all(queue=queue)
            assert old.pid == victim.pid and process_group(victim.pid) != [victim.pid]  # and RQ's scheduler
            victim.kill()  # SIGKILL, as the out-of-memory killer sends: the job dies with its worker
            victim.wait()

            deadline = time.monotonic() + 10
            while stack.workers[0] is victim and time.monotonic() < deadline:
                assert stack.supervise(restarts.append) is None
                time.sleep(0.1)
            assert restarts == ["worker 0 exited (signal SIGKILL); restarted it"]
            successor = stack.workers[0]
            assert successor.poll() is None and successor.pid != victim.pid
            deadline = time.monotonic() + 60
            while successor.pid not in [w.pid for w in Worker.all(queue=queue)]:
                assert successor.poll() is None and time.monotonic() < deadline, "the new worker never registered"
                time.sleep(0.2)
            # The killed worker stays registered until its key expires; the new one is there too.
            assert Worker.count(queue=queue) == 2 and old.name in [w.name for w in Worker.all(queue=queue)]
            deadline = time.monotonic() + 10
            while process_group(victim.pid) and time.monotonic() < deadline:
                time.sleep(0.1)  # what the killed worker left (RQ's scheduler) was stopped
            assert process_group(victim.pid) == []

            job = wait_for_end(api, job_id, timeout_s=120)
            assert job["status"] == "finished" and job["attempts"] == 2, job
            assert stack.supervise(restarts.append) is None and len(restarts) == 1
    assert "requeued" in (tmp_path / "logs" / "worker-0.log").read_text()  # by the new worker, in the same log


@pytest.mark.slow
def test_the_stack_ends_when_softlabel_up_is_killed(tmp_path):
    """SIGKILL leaves `softlabel up` no chance to stop its children: the kernel does (PR_SET_PDEATHSIG)."""
    data = tmp_path / "data"
    up = subprocess.Popen([SOFTLABEL, "up", "--port", "0", "--data-dir", str(data), "--workers", "1"], cwd=tmp_path,
                          env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (data / STATE_FILE).exists():
            assert up.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert len(processes_using(data)) >= 3  # Redis, the API, a worker
    finally:
        up.kill()
        up.wait()
    deadline = time.monotonic() + 30
    while processes_using(data) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_using(data) == []
