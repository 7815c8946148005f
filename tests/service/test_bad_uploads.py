"""The bad-input corpus: each kind gets the right 4xx, a message naming the field or file, and
leaves nothing in storage (no study, no stray file, no scratch folder)."""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers.service import ADMIN, SHAPE, StudyFiles, dataset_body, write_tiny_study
from softlabel.service.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.redis

MAX_UPLOAD_BYTES = 150_000  # a tiny study is ~100 kB
MAX_VOXELS = 10**6


@dataclass(frozen=True)
class Bad:
    """One bad upload: multipart parts, form data, where to post, and what must come back."""

    parts: list
    data: dict
    status: int
    says: tuple[str, ...]
    url: str = "/v1/datasets/d1/studies"


def nifti_bytes(array: np.ndarray, affine: np.ndarray, folder: Path, name: str) -> bytes:
    path = folder / name
    nib.save(nib.Nifti1Image(array, affine), path)
    return path.read_bytes()


def part(name: str, filename: str, content: bytes) -> tuple:
    return (name, (filename, content))


def good_parts(files: StudyFiles) -> list:
    return [part("images", p.name, p.read_bytes()) for p in files.images] + [part("label", "seg.nii.gz", files.label.read_bytes())]


def corpus(files: StudyFiles, folder: Path) -> dict[str, Bad]:
    study, affine = files.study, files.study.affine
    t1, t2 = (p.read_bytes() for p in files.images)
    label = files.label.read_bytes()

    def with_image(index: int, content: bytes, filename: str = "bad.nii.gz") -> list:
        parts = good_parts(files)
        parts[index] = part("images", filename, content)
        return parts

    def with_label(content: bytes, filename: str = "bad_label.nii.gz") -> list:
        return good_parts(files)[:-1] + [part("label", filename, content)]

    odd = np.zeros((24, 28, 21), np.float32) + np.arange(21, dtype=np.float32)
    high = study.label.copy()
    high[0, 0, 0] = 7
    nan = study.image[..., 1].copy()
    nan[3, 4, 5] = np.nan
    bomb = nib.Nifti1Header()
    bomb.set_data_shape((10_000, 10_000, 10_000))
    bomb["vox_offset"] = 352
    moved = affine.copy()
    moved[0, 3] += 5.0
    fractional = study.label.astype(np.float32)
    fractional[1, 1, 1] = 0.5
    return {
        "wrong image shape": Bad(with_image(1, nifti_bytes(odd, affine, folder, "t2_odd.nii.gz"), "t2_odd.nii.gz"), {},
                                 422, ("t2_odd.nii.gz", "shape", "(24, 28, 20)")),
        "wrong label shape": Bad(with_label(nifti_bytes(odd.astype(np.uint8), affine, folder, "l.nii.gz")), {},
                                 422, ("bad_label.nii.gz", "shape")),
        "wrong channel count": Bad([part("images", "t1.nii.gz", t1), part("label", "seg.nii.gz", label)], {},
                                   422, ("images", "2 channel(s)", "got 1")),
        "labels >= K": Bad(with_label(nifti_bytes(high, affine, folder, "h.nii.gz")), {}, 422, ("label values", "[0, 5)", "max 7")),
        "not a NIfTI file": Bad(with_image(0, b"patient notes, not an image\n" * 20, "notes.txt"), {},
                                422, ("notes.txt", "readable NIfTI")),
        "truncated gzip": Bad(with_image(1, t2[: len(t2) // 2], "t2.nii.gz"), {}, 422, ("t2.nii.gz",)),
        "header claims 10^12 voxels": Bad(with_image(0, gzip.compress(bomb.binaryblock + bytes(1004)), "bomb.nii.gz"), {},
                                          413, ("bomb.nii.gz", "voxel count", "1000000000000")),
        "oversize upload": Bad(with_image(1, t2 + bytes(MAX_UPLOAD_BYTES)), {}, 413, ("request body", str(MAX_UPLOAD_BYTES))),
        "path traversal case id": Bad(good_parts(files), {"case_id": "../../etc/passwd"}, 422, ("case_id",)),
        "reserved case id suffix": Bad(good_parts(files), {"case_id": "c9_preview"}, 422, ("case_id", "_preview")),
        "unknown dataset": Bad(good_parts(files), {}, 404, ("dataset", "nope"), url="/v1/datasets/nope/studies"),
        "hidden-folder dataset id": Bad(good_parts(files), {}, 422, ("dataset_id",), url="/v1/datasets/.scratch-x/studies"),
        "duplicate case id": Bad(good_parts(files), {"case_id": "dup"}, 409, ("case_id", "dup", "already exists")),
        "NaN voxels": Bad(with_image(1, nifti_bytes(nan, affine, folder, "n.nii.gz"), "t2_nan.nii.gz"), {},
                          422, ("t2_nan.nii.gz", "NaN")),
        "empty label": Bad(with_label(nifti_bytes(np.zeros(SHAPE, np.uint8), affine, folder, "e.nii.gz")), {},
                           422, ("label values", "foreground")),
        "affine mismatch": Bad(with_image(1, nifti_bytes(study.image[..., 1], moved, folder, "m.nii.gz"), "t2_moved.nii.gz"),
                               {}, 422, ("t2_moved.nii.gz", "affine")),
        "4D label": Bad(with_label(nifti_bytes(study.image.astype(np.uint8), affine, folder, "4d.nii.gz")), {},
                        422, ("dimensions",)),
        "constant image": Bad(with_image(0, nifti_bytes(np.ones(SHAPE, np.float32), affine, folder, "c.nii.gz"), "flat.nii.gz"),
                              {}, 422, ("flat.nii.gz", "non-constant")),
        "non-integer label": Bad(with_label(nifti_bytes(fractional, affine, folder, "f.nii.gz")), {}, 422, ("integers", "0.5")),
        "missing label": Bad(good_parts(files)[:-1], {}, 422, ("label", "Field required")),
    }  # fmt: skip


def stored_files(root: Path) -> list[str]:
    """Every file and folder under the data dir, hidden ones included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(params=[False, True], ids=["no labelset", "a labelset"])
def small_api(settings, request) -> TestClient:
    """With a labelset, uploads check the voxels in the uncompressed copies they keep for its jobs."""
    limited = settings.model_copy(update={"max_upload_bytes": MAX_UPLOAD_BYTES, "max_voxels": MAX_VOXELS})
    with TestClient(create_app(limited), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        assert client.post("/v1/datasets", json=dataset_body("d1")).status_code == 201
        if request.param:
            assert client.post("/v1/datasets/d1/labelsets", json={"name": "sp"}).status_code == 202
        yield client


def test_bad_input_corpus(small_api: TestClient, settings, tmp_path: Path):
    files = write_tiny_study(tmp_path / "in", "c001")
    assert small_api.post("/v1/datasets/d1/studies", files=good_parts(files), data={"case_id": "dup"}).status_code == 201
    before = stored_files(settings.data_dir)
    cases = corpus(files, tmp_path)
    assert len(cases) >= 12
    for name, bad in cases.items():
        response = small_api.post(bad.url, files=bad.parts, data=bad.data)
        assert response.status_code == bad.status, (name, response.text)
        body = response.json()
        for fragment in bad.says:
            assert fragment in body["detail"], (name, body)
        assert str(settings.data_dir) not in response.text, (name, "server paths leak")
        assert stored_files(settings.data_dir) == before, name
    assert small_api.get("/v1/datasets/d1").json()["num_studies"] == 1


def test_chunked_oversize_upload_is_cut_off(small_api: TestClient, settings):
    before = stored_files(settings.data_dir)

    def body() -> Callable:
        yield b"--x\r\nContent-Disposition: form-data; name=\"label\"; filename=\"l.nii.gz\"\r\n\r\n"
        for _ in range(40):
            yield bytes(10_000)

    response = small_api.post(
        "/v1/datasets/d1/studies", content=body(), headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 413 and "request body" in response.json()["detail"]
    assert stored_files(settings.data_dir) == before
