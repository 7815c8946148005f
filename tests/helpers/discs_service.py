"""The real service (embedded stack: Redis, the API, one CPU worker) holding tiny disc datasets
for the trainer's tests: the trainer reaches it over HTTP, as it reaches a deployment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from softlabel.service.client import SoftlabelClient
from softlabel.service.embedded import EmbeddedStack, admin_token

DISC_LABELS = {"background": 0, "ring": 1, "core": 2}
AFFINE = np.diag([1.5, 1.0, 2.0, 1.0])  # spacing (1.5, 1.0, 2.0) mm
SUPERPIXEL_PARAMS = {"n_segments": 20}
WAIT_S = 300  # seconds for a tiny labelset on a loaded 2-core machine


@dataclass(frozen=True)
class DiscsService:
    """A running service: its URL, an admin token and the clean truth of each dataset."""

    api: str
    token: str
    truth_dirs: dict[str, Path]  # dataset id -> folder of <case>.nii.gz


def write_discs(folder: Path, *, n: int, shape: tuple[int, ...], seed: int = 0) -> Path:
    """``n`` studies of concentric discs (classes 0, 1, 2) and a noisy T1, as nnU-Net files
    (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``); the labels are the truth."""
    rng = np.random.default_rng(seed)
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).astype(float)
    for k in range(n):
        case_id = f"case{k:02d}"
        centre = np.array([(s - 1) / 2 for s in shape]) + np.append(rng.normal(0, 1.5, 2), [0] * (len(shape) - 2))
        radius = np.sqrt(((grid - centre.reshape(-1, *[1] * len(shape))) ** 2).sum(0))
        label = np.where(radius < 3.5, 2, np.where(radius < 6.0, 1, 0)).astype(np.uint8)
        image = (100.0 * label + rng.normal(0, 20.0, shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(image, AFFINE), folder / "imagesTr" / f"{case_id}_0000.nii.gz")
        nib.save(nib.Nifti1Image(label, AFFINE), folder / "labelsTr" / f"{case_id}.nii.gz")
    return folder / "labelsTr"


def upload_discs(client: SoftlabelClient, folder: Path, dataset_id: str) -> None:
    """Create the dataset and upload every study of a :func:`write_discs` folder."""
    client.create_dataset(
        dataset_id=dataset_id, name="discs", labels=DISC_LABELS, channel_names={"0": "T1"}, ignore_classes=[0]
    )
    for label in sorted((folder / "labelsTr").glob("*.nii.gz")):
        case = label.name.removesuffix(".nii.gz")
        client.upload_study(dataset_id, images=[folder / "imagesTr" / f"{case}_0000.nii.gz"], label=label, case_id=case)


@contextmanager
def discs_service(root: Path, datasets: dict[str, dict], *, pending: str | None = None) -> Iterator[DiscsService]:
    """The embedded stack with one disc dataset per entry of ``datasets`` (id -> ``write_discs``
    keywords), each with a ``hard`` and an ``sp`` (superpixel) labelset computed by the worker.
    ``pending``: one more dataset of 6 2D studies whose ``sp`` labelset is queued after the
    worker stopped, so none of its studies is finished."""
    env_token = os.environ.pop("SOFTLABEL_ADMIN_TOKEN", None)  # the stack's own token, not the caller's
    try:
        with EmbeddedStack(data_dir=root / "service", port=0, workers=1, backend="cpu", log_dir=root / "logs") as stack:
            token = admin_token(root / "service")
            truth_dirs = {}
            with SoftlabelClient(stack.api_url, token=token) as client:
                for dataset_id, shape in datasets.items():
                    truth_dirs[dataset_id] = write_discs(root / dataset_id, **shape)
                    upload_discs(client, root / dataset_id, dataset_id)
                    client.create_labelset(dataset_id, "hard", method="hard")
                    client.create_labelset(dataset_id, "sp", params=SUPERPIXEL_PARAMS)
                for dataset_id in datasets:
                    for name in ("hard", "sp"):
                        counts = client.watch(dataset_id, name, poll_s=0.2, timeout_s=WAIT_S)["counts"]
                        assert counts["finished"] == counts["total"], (dataset_id, name, counts)
                if pending is not None:
                    stack.stop_workers()
                    for worker in stack.workers:
                        worker.wait(60)
                    truth_dirs[pending] = write_discs(root / pending, n=6, shape=(16, 16, 1))
                    upload_discs(client, root / pending, pending)
                    client.create_labelset(pending, "sp", params=SUPERPIXEL_PARAMS)
            yield DiscsService(api=stack.api_url, token=token, truth_dirs=truth_dirs)
    finally:
        if env_token is not None:
            os.environ["SOFTLABEL_ADMIN_TOKEN"] = env_token
