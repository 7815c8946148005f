"""Datasets, studies and pages over HTTP (TestClient), with a real Redis."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import pytest

from helpers.service import CLASSES, SHAPE, dataset_body, multipart, write_tiny_study

pytestmark = pytest.mark.redis


def test_healthz_needs_no_token_and_readyz_checks_redis_and_storage(anon, api):
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "redis": "ok", "storage": "ok"}


def test_dataset_folder_is_a_valid_nnunet_raw_dataset(api, dataset, tmp_path, settings):
    files = write_tiny_study(tmp_path / "in", "c001")
    parts, data = multipart(files)
    created = api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data)
    assert created.status_code == 201, created.text
    study = created.json()
    assert study["case_id"] == "c001"  # from the label file's name
    assert study["shape"] == list(SHAPE)
    assert study["spacing_mm"] == pytest.approx([3.0, 0.96, 0.96])

    root = settings.data_dir / "datasets" / dataset
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["numTraining"] == 1 and meta["file_ending"] == ".nii.gz"
    assert meta["labels"]["background"] == 0 and len(meta["labels"]) == CLASSES
    assert meta["channel_names"] == {"0": "A", "1": "B"}
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == ["c001_0000.nii.gz", "c001_0001.nii.gz"]
    assert sorted(p.name for p in (root / "labelsTr").iterdir()) == ["c001.nii.gz"]
    # Per-channel gzipped uploads are stored byte for byte.
    assert (root / "imagesTr" / "c001_0001.nii.gz").read_bytes() == files.images[1].read_bytes()
    from softlabel.worker.engine.io.raw_dataset import scan_dataset

    assert [c.case_id for c in scan_dataset(root).cases] == ["c001"]

    got = api.get(study["images"][1]["url"])
    assert got.status_code == 200 and got.content == files.images[1].read_bytes()
    assert api.get(study["label"]["url"]).content == files.label.read_bytes()

    summary = api.get(f"/v1/datasets/{dataset}").json()
    assert summary["num_studies"] == 1 and summary["num_classes"] == CLASSES and summary["ignore_classes"] == [0]
    assert [d["id"] for d in api.get("/v1/datasets").json()["data"]] == [dataset]


def test_a_4d_upload_is_split_into_channel_files(api, dataset, tmp_path, settings):
    files = write_tiny_study(tmp_path / "in", "c4d")
    stacked = nib.Nifti1Image(files.study.image, files.study.affine)
    path = tmp_path / "both.nii"  # uncompressed, 4D
    nib.save(stacked, path)
    parts = [("images", (path.name, path.read_bytes())), ("label", ("seg.nii.gz", files.label.read_bytes()))]
    response = api.post(f"/v1/datasets/{dataset}/studies", files=parts, data={"case_id": "c4d"})
    assert response.status_code == 201, response.text
    images = settings.data_dir / "datasets" / dataset / "imagesTr"
    for channel in range(2):
        stored = nib.load(images / f"c4d_{channel:04d}.nii.gz")
        assert stored.shape == SHAPE
        assert (stored.get_fdata(dtype="float32") == files.study.image[..., channel]).all()


def test_studies_are_paged_with_tokens(api, dataset, tmp_path):
    for index in range(5):
        parts, data = multipart(write_tiny_study(tmp_path / "in", f"case{index}", seed=index))
        assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201
    seen, token = [], None
    while True:
        params = {"page_size": 2} | ({"page_token": token} if token else {})
        page = api.get(f"/v1/datasets/{dataset}/studies", params=params).json()
        seen.append([s["case_id"] for s in page["data"]])
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == [["case0", "case1"], ["case2", "case3"], ["case4"]]
    bad = api.get(f"/v1/datasets/{dataset}/studies", params={"page_token": "not-a-token!"})
    assert bad.status_code == 422 and bad.json()["field"] == "page_token"


def test_deleting_a_study_removes_its_files_and_updates_num_training(api, dataset, tmp_path, settings):
    parts, data = multipart(write_tiny_study(tmp_path / "in", "gone"))
    api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data)
    assert api.delete(f"/v1/datasets/{dataset}/studies/gone").status_code == 204
    root = settings.data_dir / "datasets" / dataset
    assert list((root / "imagesTr").iterdir()) == [] and list((root / "labelsTr").iterdir()) == []
    assert json.loads((root / "dataset.json").read_text())["numTraining"] == 0
    assert api.get(f"/v1/datasets/{dataset}/studies/gone").status_code == 404


def test_dataset_declarations_are_validated(api):
    body = dataset_body("bad") | {"labels": {"background": 0, "x": 2}}
    response = api.post("/v1/datasets", json=body)
    assert response.status_code == 422
    assert "labels" in response.json()["detail"] and "0..K-1" in response.json()["detail"]
    body = dataset_body("bad") | {"channel_names": {"1": "T1"}}
    assert "channel_names" in api.post("/v1/datasets", json=body).json()["detail"]
    body = dataset_body("bad") | {"ignore_classes": [9]}
    assert "ignore_classes" in api.post("/v1/datasets", json=body).json()["detail"]
    assert api.post("/v1/datasets", json=dataset_body("../x")).status_code == 422


def test_duplicate_dataset_ids_conflict_and_delete_removes_the_folder(api, dataset, settings):
    again = api.post("/v1/datasets", json=dataset_body(dataset))
    assert again.status_code == 409 and again.json()["field"] == "id"
    assert api.delete(f"/v1/datasets/{dataset}").status_code == 204
    assert not (settings.data_dir / "datasets" / dataset).exists()
    assert api.get(f"/v1/datasets/{dataset}").status_code == 404


def test_openapi_documents_every_route_and_the_error_body(api):
    schema = api.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/v1/datasets", "/v1/datasets/import", "/v1/datasets/{dataset_id}/studies",
        "/v1/datasets/{dataset_id}/labelsets/{name}/manifest", "/v1/jobs/{job_id}/retry", "/v1/tokens",
    ):  # fmt: skip
        assert path in paths
    upload = paths["/v1/datasets/{dataset_id}/studies"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorPublic")
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_case_ids_default_to_the_label_name_and_are_generated_otherwise(api, dataset, tmp_path):
    files = write_tiny_study(tmp_path / "in", "weird name")
    label = Path(files.label)
    parts = [("images", (p.name, p.read_bytes())) for p in files.images] + [("label", ("a b.nii.gz", label.read_bytes()))]
    response = api.post(f"/v1/datasets/{dataset}/studies", files=parts)
    assert response.status_code == 201
    assert response.json()["case_id"].startswith("case-")
