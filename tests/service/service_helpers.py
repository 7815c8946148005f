"""Helpers for the service tests: tiny studies, multipart bodies, real RQ worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from service.settings import Settings
from worker.demo_data import DemoStudy, synthetic_study, write_study

ADMIN = "test-admin-token-0123456789abcdefghij"
SHAPE = (24, 28, 20)  # voxels of the tiny studies
CLASSES = 5
CHANNELS = 2
LABELSET_PARAMS = {"n_segments": 30}  # small SLIC for tiny studies
WORKER_TIMEOUT_S = 120


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
    command = [sys.executable, "-m", "worker.queue_worker", "--backend", "cpu", *args]
    return subprocess.Popen(command, env=worker_env(settings, **env), stdout=output, stderr=output, start_new_session=True)


def run_burst_workers(settings: Settings, count: int = 1, *, log_dir: Path, **env: str) -> list[str]:
    """Run ``count`` burst workers side by side until the queue is empty; returns their logs."""
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [log_dir / f"worker-{i}.log" for i in range(count)]
    procs = [start_worker(settings, "--burst", "--name", f"test-{i}", log=path, **env) for i, path in enumerate(logs)]
    for proc in procs:
        assert proc.wait(WORKER_TIMEOUT_S) == 0
    return [path.read_text() for path in logs]
