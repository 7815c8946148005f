"""Helpers for the service tests: tiny studies, multipart bodies, real RQ worker processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from softlabel.service.settings import Settings
from softlabel.worker.engine.demo_data import DemoStudy, synthetic_study, write_dataset_json, write_study

ADMIN = "test-admin-token-0123456789abcdefghij"
SHAPE = (24, 28, 20)  # voxels of the tiny studies
CLASSES = 5
CHANNELS = 2
LABELSET_PARAMS = {"n_segments": 30}  # small SLIC for tiny studies
WORKER_TIMEOUT_S = 120
# A study whose job runs for over a second even with native SLIC on an idle machine (its
# superpixel stage about 1 s of the 1.3 s), long enough to interrupt mid-stage.
BIG = (64, 128, 128)  # voxels
SLOW_PARAMS = {"n_segments": 300, "max_num_iter": 100}
# A study whose SLIC never settles: noise channels keep moving voxels between superpixels, so
# native SLIC runs all NOISY_PARAMS' 100 rounds, about 19 s on an idle machine (0.2 s a round).
NOISY = (64, 256, 256)  # voxels
NOISY_PARAMS = {"n_segments": 20000, "max_num_iter": 100}


@dataclass(frozen=True)
class StudyFiles:
    """A tiny study written as nnU-Net files."""

    case_id: str
    images: list[Path]
    label: Path
    study: DemoStudy


def write_tiny_study(folder: Path, case_id: str, *, seed: int = 0, shape: tuple[int, int, int] = SHAPE) -> StudyFiles:
    study = synthetic_study(shape, channels=CHANNELS, classes=CLASSES, seed=seed)
    images, label = write_study(study, folder, case_id)
    return StudyFiles(case_id=case_id, images=images, label=label, study=study)


def write_noisy_study(folder: Path, case_id: str, *, seed: int = 0) -> StudyFiles:
    """A NOISY study: int16 noise channels (small files that still decode to float32) and a
    label of CLASSES slabs."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 1000, size=NOISY + (CHANNELS,), dtype=np.int16)
    label = (np.arange(NOISY[0]) * CLASSES // NOISY[0]).astype(np.uint8)[:, None, None] * np.ones(NOISY, np.uint8)
    study = DemoStudy(image=image, label=label, affine=np.eye(4), classes={f"c{i}": i for i in range(CLASSES)})
    images, label_path = write_study(study, folder, case_id)
    return StudyFiles(case_id=case_id, images=images, label=label_path, study=study)


def nnunet_folder(root: Path, cases: int) -> Path:
    """An nnU-Net raw dataset folder of ``cases`` tiny studies (imagesTr, labelsTr, dataset.json)."""
    for index in range(cases):
        files = write_tiny_study(root, f"case_{index:03d}", seed=index)
    write_dataset_json(files.study, root, num_training=cases, channel_names=["A", "B"])
    return root


def multipart(files: StudyFiles, *, case_id: str | None = None) -> tuple[list, dict]:
    """``files=`` and ``data=`` arguments for a study upload."""
    parts = [("images", (p.name, p.read_bytes())) for p in files.images]
    parts.append(("label", (files.label.name, files.label.read_bytes())))
    return parts, ({"case_id": case_id} if case_id else {})


def dataset_body(dataset_id: str = "d1") -> dict:
    return {
        "id": dataset_id, "name": "Tiny phantoms", "labels": {"background": 0} | {f"c{i}": i for i in range(1, CLASSES)},
        "channel_names": {"0": "A", "1": "B"}, "ignore_classes": [0],
    }  # fmt: skip


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return dict(os.environ, REDIS_URL=settings.redis_url, SOFTLABEL_QUEUE=settings.queue, **extra)


def start_worker(settings: Settings, *args: str, log: Path | None = None, **env: str) -> subprocess.Popen:
    """A real ``softlabel worker`` process on the CPU backend, in its own process group."""
    output = log.open("ab") if log else subprocess.DEVNULL
    command = [sys.executable, "-m", "softlabel.worker.jobs.rq_worker", "--backend", "cpu", *args]
    return subprocess.Popen(command, env=worker_env(settings, **env), stdout=output, stderr=output, start_new_session=True)


def run_burst_workers(settings: Settings, count: int = 1, *, log_dir: Path, **env: str) -> list[str]:
    """Run ``count`` burst workers side by side until the queue is empty; returns their logs."""
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [log_dir / f"worker-{i}.log" for i in range(count)]
    procs = [start_worker(settings, "--burst", "--name", f"test-{i}", log=path, **env) for i, path in enumerate(logs)]
    for proc in procs:
        assert proc.wait(WORKER_TIMEOUT_S) == 0
    return [path.read_text() for path in logs]


def start_slow_job(api: Any, dataset: str, tmp_path: Path) -> str:
    """Upload a BIG study as case "big" and create labelset "sp" with SLOW_PARAMS; returns its job id."""
    parts, data = multipart(write_tiny_study(tmp_path / "in", "big", shape=BIG))
    assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": SLOW_PARAMS})
    return api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies").json()["data"][0]["job_id"]


def wait_for_stage(api: Any, job_id: str, stage: str, timeout_s: float = 90) -> dict:
    """Poll the job until it runs ``stage``; returns the job as the API showed it then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "started" and job["progress"]["stage"] == stage:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job never reached {stage}: {job}")


def wait_for_end(api: Any, job_id: str, timeout_s: float = 90) -> dict:
    """Poll the job until it is no longer queued or running; returns it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "started", "scheduled", "deferred"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still active after {timeout_s} s: {job}")


def raw_request(server: str, head: str, body_start: bytes) -> tuple[str, float]:
    """Send the request line, headers and the first body bytes only; return the status line and
    how long the answer took (the rest of the body is never sent)."""
    url = urlparse(server)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body_start)
        answer = sock.recv(65536).decode("latin-1")
        return answer.splitlines()[0], time.monotonic() - start
