"""Job payloads for the job-side tests."""

from __future__ import annotations

from pathlib import Path

from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.jobs.contract import JobOutputs, SoftenJobPayload


def job_payload(study: dict, out: Path) -> SoftenJobPayload:
    """A superpixel job (20 segments) for a ``write_small_study`` study, its outputs in ``out``."""
    outputs = JobOutputs(
        soft=str(out / "case.nii.gz"), superpixels=str(out / "case_superpixels.nii.gz"),
        preview=str(out / "case_preview.png"), provenance=str(out / "case.json"),
    )  # fmt: skip
    return SoftenJobPayload(
        dataset_id="d1", labelset="sp", case_id="case", num_classes=study["K"], config=SofteningConfig(n_segments=20),
        image_paths=[str(p) for p in study["images"]], label_path=str(study["label"]), outputs=outputs,
    )  # fmt: skip
