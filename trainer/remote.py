"""The trainer's writes to the service, through ``service.client``: uploading the benchmark
as a dataset, and creating labelsets and waiting for their workers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from softlabel.service.client import ApiError, SoftlabelClient


def upload_benchmark(client: SoftlabelClient, folder: Path, *, dataset_id: str, labels_dir: str = "labelsTr",
                     log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Create ``dataset_id`` from a ``make-benchmark`` folder's ``dataset.json`` (unless it
    exists) and upload the cases it does not have: ``imagesTr`` with the perturbed
    ``labelsTr``. The clean truth (``labelsTr_clean``) stays local, for evaluation, unless
    ``labels_dir="labelsTr_clean"`` uploads it as the labels of an oracle dataset."""
    spec = json.loads((Path(folder) / "dataset.json").read_text())
    try:
        client.create_dataset(name=spec["name"], labels=spec["labels"], channel_names=spec["channel_names"], dataset_id=dataset_id)
        log(f"created dataset {dataset_id}")
    except ApiError as exc:
        if exc.status != 409:
            raise
        log(f"dataset {dataset_id} exists; uploading the cases it lacks")
    uploaded = client.upload_folder(dataset_id, folder, labels_dir=labels_dir)
    log(f"uploaded {len(uploaded)} studies to {dataset_id}")
    return client.get_dataset(dataset_id)


def ensure_labelset(
    client: SoftlabelClient, dataset_id: str, name: str, *, method: str, params: dict, timeout_s: float,
    log: Callable[[str], None] = print,
) -> dict:  # fmt: skip
    """Create (or re-post, which queues only what is missing) a labelset and wait until no
    study is queued or running. Any failed, canceled or missing study is an error."""
    client.create_labelset(dataset_id, name, method=method, params=params)
    state = client.watch(dataset_id, name, timeout_s=timeout_s)
    counts = state["counts"]
    if counts["finished"] != counts["total"]:
        bad = {k: counts[k] for k in ("failed", "canceled", "missing") if counts[k]}
        raise ValueError(f"{dataset_id}/{name}: studies: expected all {counts['total']} finished, got {counts['finished']} ({bad})")
    log(f"labelset {name}: {counts['finished']} studies finished")
    return state
