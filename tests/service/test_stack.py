"""``softlabel demo`` on a fresh folder and ``softlabel up`` with Ctrl-C, as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import pytest
from service_helpers import LABELSET_PARAMS, dataset_body, write_tiny_study

from service.client import SoftlabelClient
from service.embedded import STATE_FILE, TOKEN_FILE

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
    assert processes_using(data) == []
    assert (data / "redis" / "appendonly.aof").exists()
