"""An upload decompresses each gzipped file once: the job it queues reads the uncompressed
copies the checks read, records the uploaded files as its inputs, and removes its copies."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers.service import CLASSES, LABELSET_PARAMS, multipart, run_burst_workers, write_tiny_study
from softlabel.service import layout
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.pipeline import soften_files

pytestmark = pytest.mark.redis


def upload(api, dataset: str, files) -> dict:
    parts, data = multipart(files)
    response = api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data)
    assert response.status_code == 201, response.text
    return response.json()


def copies_folder(settings, dataset: str, case: str) -> Path:
    return settings.data_dir / layout.decoded_inputs(dataset, "sp", case)


@pytest.mark.slow
def test_the_job_reads_the_uploads_uncompressed_copies(api, dataset, settings, tmp_path):
    assert api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS}).status_code == 202
    files = write_tiny_study(tmp_path / "in", "c001", seed=3)
    uploaded = upload(api, dataset, files)
    folder = copies_folder(settings, dataset, "c001")
    sources = [*files.images, files.label]
    assert sorted(p.name for p in folder.iterdir()) == ["image_0000.nii", "image_0001.nii", "label.nii"]
    for source, copy in zip(sources, sorted(folder.iterdir())):
        assert copy.read_bytes() == gzip.decompress(source.read_bytes())

    run_burst_workers(settings, log_dir=tmp_path)
    record = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/c001/provenance").json()
    assert record["read_decoded_copies"] is True
    assert [i["sha256"] for i in record["inputs"]["images"]] == [i["sha256"] for i in uploaded["images"]]
    assert record["inputs"]["label"]["sha256"] == uploaded["label"]["sha256"]
    assert not folder.exists()
    (tmp_path / "service.nii.gz").write_bytes(api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/c001/soft").content)
    soften_files(
        files.images, files.label, tmp_path / "engine.nii.gz", config=SofteningConfig(**LABELSET_PARAMS),
        num_classes=CLASSES, backend="cpu",
    )  # fmt: skip
    ours, theirs = nib.load(tmp_path / "service.nii.gz"), nib.load(tmp_path / "engine.nii.gz")
    assert np.array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))


def test_no_copies_without_a_labelset_and_none_left_by_a_deleted_study(api, dataset, settings, tmp_path):
    upload(api, dataset, write_tiny_study(tmp_path / "a", "c001"))
    assert not (settings.data_dir / layout.labelsets_dir(dataset)).exists()
    assert api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS}).status_code == 202
    assert not copies_folder(settings, dataset, "c001").exists()  # queued later: the job reads the gzipped files

    upload(api, dataset, write_tiny_study(tmp_path / "b", "c002", seed=1))
    assert copies_folder(settings, dataset, "c002").is_dir()
    assert api.delete(f"/v1/datasets/{dataset}/studies/c002").status_code == 204
    assert not copies_folder(settings, dataset, "c002").exists()


def test_a_cancelled_queued_job_removes_its_copies(api, dataset, settings, tmp_path):
    """Cancelled before any worker took it, the job will not run: nothing reads the copies."""
    assert api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS}).status_code == 202
    job_id = upload(api, dataset, write_tiny_study(tmp_path / "in", "c001"))["jobs"][0]["job_id"]
    assert copies_folder(settings, dataset, "c001").is_dir()
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 202
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "canceled"
    assert not copies_folder(settings, dataset, "c001").exists()
