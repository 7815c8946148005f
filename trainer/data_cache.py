"""Local cache of the service's files, keyed by sha256; the trainer's only way to get data.

Everything comes over HTTP through the service's client (``service.client``): the labelset
manifest and the relative file URLs it lists. Files are stored under
``<root>/blobs/<sha[:2]>/<sha>.nii[.gz]`` once their sha256 is verified; an interrupted
download stays beside them as ``<sha>.part`` and resumes with an HTTP Range request.
Manifests are kept under ``<root>/manifests/<dataset>/<labelset>.json``, so that training
runs offline once everything is cached.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import httpx

from softlabel.service.client import ApiError, ChecksumError, SoftlabelClient

from .datasets import CaseFiles

GZIP_MAGIC = b"\x1f\x8b"


class DataCache:
    """Content-addressed cache in front of the service at ``api``.

    Parameters
    ----------
    root : cache folder.
    api : service root URL, e.g. ``http://127.0.0.1:8000``.
    offline : never touch the network; a missing file or manifest is an error.
    token : bearer token with the ``read`` scope.
    client : a ``SoftlabelClient`` to use instead of one built from ``api`` and ``token``.
    retries : attempts per file; each attempt resumes where the last one stopped.

    Errors are ``ValueError`` naming the URL or file (HTTP errors and checksum mismatches
    included), so that the CLI reports them in one way.
    """

    def __init__(
        self,
        root: Path,
        *,
        api: str,
        offline: bool = False,
        token: str | None = None,
        client: SoftlabelClient | None = None,
        retries: int = 3,
    ) -> None:
        self.root = Path(root)
        self.offline = offline
        self.retries = retries
        self.client = client or SoftlabelClient(api, token=token)

    def _blob(self, sha256: str) -> Path | None:
        for suffix in (".nii.gz", ".nii"):
            path = self.root / "blobs" / sha256[:2] / f"{sha256}{suffix}"
            if path.exists():
                return path
        return None

    def manifest(self, dataset_id: str, labelset: str) -> dict:
        """The labelset manifest from the service, or its cached copy when offline or unreachable."""
        path = self.root / "manifests" / dataset_id / f"{labelset}.json"
        if not self.offline:
            try:
                data = self.client.manifest(dataset_id, labelset)
            except ApiError as exc:
                raise ValueError(str(exc)) from None
            except httpx.TransportError as exc:
                if not path.exists():
                    raise ValueError(f"{self.client.http.base_url}: service: expected a reachable service, got {exc}") from None
                warnings.warn(f"service unreachable ({exc}); using the cached manifest {path}", stacklevel=2)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=2))
                os.replace(tmp, path)
                return data
        if not path.exists():
            raise ValueError(f"{path}: manifest: expected a cached manifest (offline), got none")
        return json.loads(path.read_text())

    def fetch(self, url: str, sha256: str) -> Path:
        """Local path of the file at ``url`` whose content has digest ``sha256`` (hex).

        Downloads it unless cached (resuming a partial download, retrying a dropped
        connection) and verifies the digest; the suffix follows the content (gzip or not).
        """
        sha256 = sha256.lower()
        cached = self._blob(sha256)
        if cached is not None:
            return cached
        if self.offline:
            raise ValueError(f"{url}: cache: expected a cached file with sha256 {sha256} (offline), got none")
        raw = self.root / "blobs" / sha256[:2] / sha256
        for attempt in range(self.retries):
            try:
                self.client.download(url, raw, sha256=sha256)
                break
            except (ApiError, ChecksumError) as exc:
                raise ValueError(f"{url}: {exc}") from None
            except httpx.TransportError as exc:
                if attempt + 1 == self.retries:
                    raise ValueError(f"{url}: download: expected the file after {self.retries} attempts, got {exc}") from None
        with open(raw, "rb") as fh:
            magic = fh.read(2)
        dest = raw.with_name(f"{sha256}{'.nii.gz' if magic == GZIP_MAGIC else '.nii'}")
        os.replace(raw, dest)
        return dest


def study_is_2d(study: dict) -> bool:
    """A study is 2D when its spatial shape is (X, Y) or (X, Y, 1)."""
    shape = study["shape"]
    return len(shape) == 2 or (len(shape) == 3 and shape[2] == 1)


def fetch_labelset(
    cache: DataCache,
    dataset_id: str,
    labelset: str,
    *,
    spatial_dims: int,
    with_soft: bool,
    truth_dir: Path | None = None,
) -> tuple[dict, list[CaseFiles]]:
    """Fetch the manifest and the files of the studies with ``spatial_dims`` spatial axes.

    Studies of the other dimensionality are left out (the manifest still lists them). Soft
    labels are fetched only ``with_soft``, and then every study must be ``finished``. With
    ``truth_dir``, each case's evaluation truth is ``<truth_dir>/<case_id>.nii.gz``.
    """
    manifest = cache.manifest(dataset_id, labelset)
    studies = [s for s in manifest["studies"] if study_is_2d(s) == (spatial_dims == 2)]
    if not studies:
        raise ValueError(f"{dataset_id}/{labelset}: studies: expected {spatial_dims}D studies, got none of {len(manifest['studies'])}")
    if with_soft:
        unfinished = [s["case_id"] for s in studies if s.get("status") != "finished" or not s.get("soft")]
        if unfinished:
            raise ValueError(f"{dataset_id}/{labelset}: soft labels: expected every study finished, got unfinished {unfinished[:5]}")
    cases = []
    for s in studies:
        truth = None
        if truth_dir is not None:
            truth = Path(truth_dir) / f"{s['case_id']}.nii.gz"
            if not truth.exists():
                raise ValueError(f"{truth}: file: expected the clean truth of {s['case_id']}, got no such file")
        cases.append(CaseFiles(
            case_id=s["case_id"],
            images=tuple(cache.fetch(i["url"], i["sha256"]) for i in s["images"]),
            label=cache.fetch(s["label"]["url"], s["label"]["sha256"]),
            soft=cache.fetch(s["soft"]["url"], s["soft"]["sha256"]) if with_soft else None,
            truth=truth,
        ))
    return manifest, cases
