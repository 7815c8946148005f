"""A job stopped at a stage boundary removes every output it or an earlier run wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.jobs.contract import JobOutputs, SoftenJobPayload
from softlabel.worker.jobs.soften import run_soften_job
from softlabel.worker.jobs.stop import JobStopped


def payload(study: dict, out: Path) -> SoftenJobPayload:
    outputs = JobOutputs(
        soft=str(out / "case.nii.gz"), superpixels=str(out / "case_superpixels.nii.gz"),
        preview=str(out / "case_preview.png"), provenance=str(out / "case.json"),
    )  # fmt: skip
    return SoftenJobPayload(
        dataset_id="d1", labelset="sp", case_id="case", num_classes=study["K"], config=SofteningConfig(n_segments=20),
        image_paths=[str(p) for p in study["images"]], label_path=str(study["label"]), outputs=outputs,
    )  # fmt: skip


@pytest.mark.parametrize("stage", ["superpixels", "preview"])
def test_a_stopped_job_leaves_no_output(small_study, tmp_path, stage):
    out = tmp_path / "out"
    out.mkdir()
    (out / "case.json").write_text('{"attempt": 1}')  # a stale record of an earlier run with other inputs
    present_when_stopped: list[str] = []

    def progress(name: str, fraction: float) -> None:
        if name == stage:
            present_when_stopped.extend(sorted(p.name for p in out.iterdir()))
            raise JobStopped(f"stopped on request at stage {name!r}")

    with pytest.raises(JobStopped):
        run_soften_job(payload(small_study, out), backend="cpu", progress=progress)
    written = ["case.json", "case.nii.gz", "case_superpixels.nii.gz"] if stage == "preview" else ["case.json"]
    assert present_when_stopped == written
    assert sorted(p.name for p in out.iterdir()) == []
