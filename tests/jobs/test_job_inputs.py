"""The job records its inputs from the upload's records (no second hash) when the files still
have their recorded sizes, and hashes the files otherwise; its errors name the uploaded files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.jobs import job_payload

from softlabel.worker.engine.errors import InputError
from softlabel.worker.engine.io.files import file_record
from softlabel.worker.engine.io.nifti import check_study
from softlabel.worker.jobs.contract import DECODED_IMAGE, DECODED_LABEL, InputFile
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


def test_an_error_in_a_copy_names_the_uploaded_file(small_study: dict, tmp_path: Path) -> None:
    """A job that reads the upload's uncompressed copies reports bad input under the uploaded
    file's name (here: a voxel limit lowered since the upload)."""
    copies = tmp_path / "copies"
    copies.mkdir()
    images, label = small_study["images"], small_study["label"]
    names = [copies / DECODED_IMAGE.format(channel=c) for c in range(len(images))] + [copies / DECODED_LABEL]
    check_study(images, label, num_classes=small_study["K"], copies=names)
    (tmp_path / "out").mkdir()
    spec = job_payload(small_study, tmp_path / "out").model_copy(update={"decoded_inputs": str(copies), "max_voxels": 10})
    with pytest.raises(InputError, match="voxel count") as raised:
        run_soften_job(spec, backend="cpu")
    assert raised.value.file == str(images[0]), raised.value
