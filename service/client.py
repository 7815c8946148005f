"""A small Python client for the softlabel API (httpx only), used by the CLI and the trainer.

    client = SoftlabelClient("http://127.0.0.1:8000", token="sl_...")
    client.create_dataset(name="Brain", labels={"background": 0, "CSF": 1}, channel_names={"0": "T1"})
    client.upload_study("brain", images=["c1_0000.nii.gz"], label="c1.nii.gz")
    client.create_labelset("brain", "sp2000", params={"n_segments": 2000})
    client.watch("brain", "sp2000")
    manifest = client.manifest("brain", "sp2000")
    client.download(manifest["studies"][0]["soft"]["url"], "c1_soft.nii.gz", sha256=...)

Downloads resume with HTTP Range from a ``.part`` file and are checked against their sha256.
Errors raise :class:`ApiError` carrying the server's JSON message.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

DEFAULT_TIMEOUT_S = 300.0  # seconds per request (uploads and downloads of large studies)
DOWNLOAD_CHUNK_BYTES = 1 << 20  # bytes written at a time


class ApiError(Exception):
    """An HTTP error answered by the service: ``status`` and the JSON ``body`` it sent."""

    def __init__(self, status: int, body: dict[str, Any], method: str, url: str) -> None:
        self.status = status
        self.body = body
        self.detail = str(body.get("detail") or body)
        super().__init__(f"{method} {url}: {status}: {self.detail}")


class ChecksumError(Exception):
    """A downloaded file's sha256 differs from the expected one."""


def _raise_for_status(response: httpx.Response, method: str, url: str) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    raise ApiError(response.status_code, body if isinstance(body, dict) else {"detail": body}, method, url)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class SoftlabelClient:
    """Typed calls to ``/v1``; ``base_url`` is the API root, ``token`` a bearer token."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "SoftlabelClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)
        _raise_for_status(response, method, url)
        return response

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self._request(method, url, **kwargs).json()

    # --- service ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def ready(self) -> dict[str, Any]:
        return self._json("GET", "/readyz")

    # --- datasets --------------------------------------------------------------------------

    def create_dataset(
        self, *, name: str, labels: dict[str, int], channel_names: dict[str, str],
        ignore_classes: Sequence[int] = (), dataset_id: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        body = {"name": name, "labels": labels, "channel_names": channel_names, "ignore_classes": list(ignore_classes)}
        if dataset_id is not None:
            body["id"] = dataset_id
        return self._json("POST", "/v1/datasets", json=body)

    def list_datasets(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/datasets")["data"]

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    def import_dataset(self, archive: str | Path, *, dataset_id: str | None = None, name: str | None = None) -> dict[str, Any]:
        """Create a dataset from an nnU-Net raw dataset zip."""
        data = {k: v for k, v in {"dataset_id": dataset_id, "name": name}.items() if v is not None}
        with Path(archive).open("rb") as fh:
            return self._json("POST", "/v1/datasets/import", files={"file": (Path(archive).name, fh)}, data=data)

    # --- studies ---------------------------------------------------------------------------

    def upload_study(
        self, dataset_id: str, *, images: Sequence[str | Path], label: str | Path, case_id: str | None = None
    ) -> dict[str, Any]:
        """Upload one study: one file per channel in order (or one 4D file) and its label."""
        with ExitStack() as stack:
            files = [("images", (Path(p).name, stack.enter_context(Path(p).open("rb")))) for p in images]
            files.append(("label", (Path(label).name, stack.enter_context(Path(label).open("rb")))))
            data = {"case_id": case_id} if case_id else {}
            return self._json("POST", f"/v1/datasets/{dataset_id}/studies", files=files, data=data)

    def upload_folder(
        self, dataset_id: str, folder: str | Path, *, labels_dir: str = "labelsTr",
        on_study: Callable[[str], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Upload every case of an nnU-Net-style folder (``imagesTr/<case>_XXXX.nii.gz``,
        ``<labels_dir>/<case>.nii.gz``) that the dataset does not have yet."""
        folder = Path(folder)
        existing = {s["case_id"] for s in self.iter_studies(dataset_id)}
        uploaded = []
        for label in sorted((folder / labels_dir).glob("*.nii*")):
            case = label.name.split(".")[0]
            if case in existing:
                continue
            images = sorted((folder / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9].nii*"))
            uploaded.append(self.upload_study(dataset_id, images=images, label=label, case_id=case))
            if on_study:
                on_study(case)
        return uploaded

    def list_studies(self, dataset_id: str, *, page_size: int = 100, page_token: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"page_size": page_size} | ({"page_token": page_token} if page_token else {})
        return self._json("GET", f"/v1/datasets/{dataset_id}/studies", params=params)

    def iter_studies(self, dataset_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every study, following ``next_page_token``."""
        token = None
        while True:
            page = self.list_studies(dataset_id, page_size=page_size, page_token=token)
            yield from page["data"]
            token = page["next_page_token"]
            if not token:
                return

    def get_study(self, dataset_id: str, case_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{dataset_id}/studies/{case_id}")

    def delete_study(self, dataset_id: str, case_id: str) -> None:
        self._request("DELETE", f"/v1/datasets/{dataset_id}/studies/{case_id}")

    # --- labelsets and jobs ----------------------------------------------------------------

    def create_labelset(
        self, dataset_id: str, name: str, *, method: str = "superpixel", params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "method": method, "params": params or {}}
        return self._json("POST", f"/v1/datasets/{dataset_id}/labelsets", json=body)

    def labelset(self, dataset_id: str, name: str) -> dict[str, Any]:
        """The labelset with its counts of queued, running, finished and failed studies."""
        return self._json("GET", f"/v1/datasets/{dataset_id}/labelsets/{name}")

    def labelset_studies(self, dataset_id: str, name: str) -> list[dict[str, Any]]:
        """Every study's state in the labelset (all pages)."""
        out, token = [], None
        while True:
            params = {"page_size": 1000} | ({"page_token": token} if token else {})
            page = self._json("GET", f"/v1/datasets/{dataset_id}/labelsets/{name}/studies", params=params)
            out += page["data"]
            token = page["next_page_token"]
            if not token:
                return out

    def watch(
        self, dataset_id: str, name: str, *, poll_s: float = 1.0, timeout_s: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Poll the labelset until no study is queued or running; returns its last state."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            state = self.labelset(dataset_id, name)
            if on_update:
                on_update(state)
            counts = state["counts"]
            if counts["queued"] == 0 and counts["running"] == 0:
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"labelset {name!r}: still {counts['queued']} queued, {counts['running']} running")
            time.sleep(poll_s)

    def manifest(self, dataset_id: str, name: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{dataset_id}/labelsets/{name}/manifest")

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def retry_job(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{job_id}/retry")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/jobs/{job_id}")

    # --- tokens ----------------------------------------------------------------------------

    def create_token(self, name: str, scopes: Sequence[str]) -> dict[str, Any]:
        """A new token (admin); the response's ``token`` is the secret, shown once."""
        return self._json("POST", "/v1/tokens", json={"name": name, "scopes": list(scopes)})

    def list_tokens(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/tokens")["data"]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/tokens/{token_id}")

    # --- downloads -------------------------------------------------------------------------

    def download(self, url: str, dest: str | Path, *, sha256: str | None = None) -> Path:
        """Download ``url`` (relative to the API root) to ``dest``, resuming a ``.part`` file
        with an HTTP Range request; verified against ``sha256`` when given. A ``dest`` that
        already has this sha256 is not downloaded again."""
        dest = Path(dest)
        if sha256 and dest.exists() and sha256_of(dest) == sha256:
            return dest
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self.http.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:  # the part file is already complete
                pass
            elif response.status_code >= 400:
                response.read()
                _raise_for_status(response, "GET", url)
            else:
                mode = "ab" if response.status_code == 206 else "wb"
                with part.open(mode) as out:
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                        out.write(chunk)
        if sha256 and sha256_of(part) != sha256:
            part.unlink()
            raise ChecksumError(f"{dest.name}: sha256: expected {sha256}, got another; the partial file was removed")
        os.replace(part, dest)
        return dest

    def download_labelset(
        self, dataset_id: str, name: str, out_dir: str | Path, *, what: Sequence[str] = ("soft",),
        on_file: Callable[[Path], None] | None = None,
    ) -> list[Path]:  # fmt: skip
        """Download the finished studies' outputs (``soft``, ``superpixels``, ``preview.png``)."""
        out_dir = Path(out_dir)
        paths = []
        for study in self.manifest(dataset_id, name)["studies"]:
            if study["soft"] is None:
                continue
            case = study["case_id"]
            for item in what:
                base = f"/v1/datasets/{dataset_id}/labelsets/{name}/studies/{case}/{item}"
                if item == "soft":
                    path = self.download(study["soft"]["url"], out_dir / f"{case}.nii.gz", sha256=study["soft"]["sha256"])
                elif item == "preview.png":
                    path = self.download(base, out_dir / f"{case}_preview.png")
                else:
                    path = self.download(base, out_dir / f"{case}_{item}.nii.gz")
                paths.append(path)
                if on_file:
                    on_file(path)
        return paths
