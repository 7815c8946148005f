"""A stop request ends a running job within 5 s, in the middle of a long stage (issue 18).

Before the engine's checkpoints, a job run in its worker's process checked for a stop request
only between stages, so the NOISY study's 19 s SLIC stage ran to its end (and scikit-image's,
minutes long, too). A forking worker kills the job's horse; it must also leave nothing behind.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from helpers.service import NOISY_PARAMS, multipart, start_worker, wait_for_end, wait_for_stage, write_noisy_study

pytestmark = [pytest.mark.redis, pytest.mark.slow]
STOP_WITHIN_S = 5.0  # the bound, from the request to the job's end


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


def _descendants(pid: int) -> list[str]:
    """Command lines of the processes below ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    below, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        below += children
        frontier = children
    lines = []
    for child in below:
        try:
            lines.append((Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return lines
