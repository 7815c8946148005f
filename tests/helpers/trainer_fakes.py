"""Test doubles for the trainer: a fake softlabel service (httpx.MockTransport) and tiny studies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np

from softlabel.service.client import SoftlabelClient
from softlabel.trainer.data_cache import DataCache

API = "http://service.test"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Interrupting(httpx.SyncByteStream):
    """Sends ``data[:cut]`` and then fails like a dropped connection."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut = data, cut

    def __iter__(self):
        yield self.data[: self.cut]
        raise httpx.ReadError("connection dropped")


class FakeService:
    """Serves ``files`` (url path -> bytes) and ``manifests`` (url path -> JSON) with HTTP Range
    support, and logs (path, Range header) of every request."""

    def __init__(self, files=None, manifests=None, *, honour_range=True, cut_first=None):
        self.files = files or {}
        self.manifests = manifests or {}
        self.honour_range = honour_range
        self.cut_first = cut_first  # bytes sent before the first full download fails
        self.requests = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((path, request.headers.get("range")))
        if path in self.manifests:
            return httpx.Response(200, json=self.manifests[path])
        if path not in self.files:
            return httpx.Response(404, json={"detail": "not found"})
        data = self.files[path]
        rng = request.headers.get("range")
        if rng and self.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return httpx.Response(416)
            headers = {"content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return httpx.Response(206, content=data[start:], headers=headers)
        if self.cut_first is not None:
            cut, self.cut_first = self.cut_first, None
            return httpx.Response(200, stream=Interrupting(data, cut))
        return httpx.Response(200, content=data)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=API, transport=httpx.MockTransport(self), **kwargs)

    def cache(self, root, **kwargs) -> DataCache:
        client = SoftlabelClient(API)
        client.http = self.client()
        return DataCache(root, api=API, client=client, **kwargs)


def _nifti_bytes(data: np.ndarray, affine: np.ndarray, *, slope: float | None = None) -> bytes:
    img = nib.Nifti1Image(data, affine)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    return img.to_bytes()


def tiny_dataset(tmp: Path, *, n: int = 6, shape=(16, 16, 1), seed: int = 0, dataset_id: str = "d1", labelset: str = "sp"):
    """``n`` studies of concentric discs (classes 0, 1, 2), served as an uncompressed-NIfTI labelset.

    Returns (FakeService, truth_dir): the manifest at the service's manifest URL, soft labels
    as (X, Y, Z, 3) uint8 with slope 1/255, and the clean truth (equal to the labels) on disk.
    """
    rng = np.random.default_rng(seed)
    affine = np.diag([1.5, 1.0, 2.0, 1.0])
    truth_dir = tmp / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    files, studies = {}, []
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).astype(float)
    for k in range(n):
        case_id = f"case{k:02d}"
        centre = np.array([(s - 1) / 2 for s in shape]) + np.append(rng.normal(0, 1.5, 2), [0] * (len(shape) - 2))
        radius = np.sqrt(((grid - centre.reshape(-1, *[1] * len(shape))) ** 2).sum(0))
        label = np.where(radius < 3.5, 2, np.where(radius < 6.0, 1, 0)).astype(np.uint8)
        image = (100.0 * label + rng.normal(0, 20.0, shape)).astype(np.float32)
        soft = np.clip(np.moveaxis(np.eye(3)[label], -1, 0), 0.1, 0.9)
        soft_u8 = np.round(np.moveaxis(soft, 0, -1) * 255).astype(np.uint8)
        entry = {"case_id": case_id, "shape": list(shape), "spacing_mm": [1.5, 1.0, 2.0], "status": "finished"}
        for key, blob in (("images", _nifti_bytes(image, affine)), ("label", _nifti_bytes(label, affine)),
                          ("soft", _nifti_bytes(soft_u8, affine, slope=1 / 255))):
            url = f"/v1/datasets/{dataset_id}/studies/{case_id}/{key}"
            files[url] = blob
            ref = {"url": url, "sha256": sha(blob)}
            entry[key] = [ref] if key == "images" else ref
        studies.append(entry)
        nib.save(nib.Nifti1Image(label, affine), truth_dir / f"{case_id}.nii.gz")
    manifest = {
        "dataset": {"id": dataset_id, "name": "discs", "labels": {"background": 0, "ring": 1, "core": 2},
                    "num_classes": 3, "channel_names": {"0": "T1"}, "ignore_classes": [0]},
        "labelset": {"name": labelset, "method": "superpixel", "params": {}},
        "studies": studies,
    }
    manifest_url = f"/v1/datasets/{dataset_id}/labelsets/{labelset}/manifest"
    return FakeService(files, {manifest_url: manifest}), truth_dir
