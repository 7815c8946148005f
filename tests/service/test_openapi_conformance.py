"""The OpenAPI schema tells the truth: ``schemathesis run`` with every check, a bounded number of
examples per operation and a fixed seed, against the real app (uvicorn) on real Redis and a
scratch data directory, finds no failure.

Its phases: examples, coverage (each boundary and each way to break a schema), fuzzing and
stateful (sequences linked by the ids one answer gives the next; they create and delete only in
this test's data directory). The app holds a seeded dataset, study and labelset whose job a
real worker finished, so reads reach their 200 answers and downloads their files
(``schemathesis.toml`` beside this file says how generated ids use them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers.service import ADMIN, dataset_body, multipart, run_burst_workers, write_tiny_study

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 25  # per operation and phase: about 20 s of schemathesis on 2 idle cores
SEED = 18  # issue 18
RUN_TIMEOUT_S = 600  # about 40 s on an idle machine; far more when other work starves it


def seed(server: str, settings, tmp_path: Path) -> str:
    """Dataset d1 with study case_000 and labelset sp, computed by a burst worker, and an empty
    dataset "scratch" to delete; returns the job id."""
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as client:
        for dataset_id in ("d1", "scratch"):
            assert client.post("/v1/datasets", json=dataset_body(dataset_id)).status_code == 201
        files, data = multipart(write_tiny_study(tmp_path / "in", "case_000"))
        assert client.post("/v1/datasets/d1/studies", files=files, data=data).status_code == 201
        assert client.post("/v1/datasets/d1/labelsets", json={"name": "sp", "params": {"n_segments": 30}}).status_code == 202
        run_burst_workers(settings, 1, log_dir=tmp_path / "logs")
        study = client.get("/v1/datasets/d1/labelsets/sp/studies").json()["data"][0]
        assert study["status"] == "finished", study
        return study["job_id"]


def test_schemathesis_finds_no_failure(server: str, settings, tmp_path: Path) -> None:
    job_id = seed(server, settings, tmp_path)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.read_text().replace("${SEEDED_JOB_ID}", job_id))
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{server}/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--header", f"Authorization: Bearer {ADMIN}",
    ]  # fmt: skip
    start = time.monotonic()
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        env=dict(os.environ, NO_COLOR="1", SCHEMATHESIS_HOOKS=""),
    )  # fmt: skip
    summary = run.stdout[run.stdout.find("SUMMARY") :] if "SUMMARY" in run.stdout else run.stdout[-3000:]
    print(f"schemathesis: {time.monotonic() - start:.0f} s\n{summary}")
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
