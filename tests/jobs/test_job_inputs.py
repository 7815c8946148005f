"""The job records its inputs from the upload's records (no second hash) when the files still
have their recorded sizes, and hashes the files otherwise."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.jobs import job_payload

from softlabel.worker.engine.io.files import file_record
from softlabel.worker.jobs.contract import InputFile
from softlabel.worker.jobs.soften import run_soften_job

RECORDED = "ab" * 32  # a hash no file here has: seen only if the job took the upload's record


def _run(study: dict, out: Path, input_files: list[InputFile]) -> dict:
    out.mkdir()
    spec = job_payload(study, out).model_copy(update={"input_files": input_files})
    run_soften_job(spec, backend="cpu")
    return json.loads((out / "case.json").read_text())["inputs"]


def test_the_job_takes_the_upload_records_of_files_of_the_recorded_size(small_study: dict, tmp_path: Path) -> None:
    paths = [*small_study["images"], small_study["label"]]
    inputs = _run(small_study, tmp_path / "out", [InputFile(sha256=RECORDED, bytes=Path(p).stat().st_size) for p in paths])
    assert [r["sha256"] for r in [*inputs["images"], inputs["label"]]] == [RECORDED] * len(paths)
    label = Path(small_study["label"])
    assert inputs["label"] == {"file": label.name, "sha256": RECORDED, "bytes": label.stat().st_size}


def test_the_job_hashes_a_file_whose_size_differs_from_its_record(small_study: dict, tmp_path: Path) -> None:
    paths = [*small_study["images"], small_study["label"]]
    records = [InputFile(sha256=RECORDED, bytes=Path(p).stat().st_size) for p in paths]
    records[-1] = InputFile(sha256=RECORDED, bytes=records[-1].bytes + 1)  # the label was replaced since
    inputs = _run(small_study, tmp_path / "out", records)
    assert inputs["label"] == file_record(small_study["label"])
    assert [r["sha256"] for r in inputs["images"]] == [RECORDED] * (len(paths) - 1)
