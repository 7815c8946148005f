"""Datasets: their ``dataset.json`` (nnU-Net v2 plus a ``softlabel`` section) in storage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from softlabel.worker.engine.io.atomic import write_json_atomic

from . import layout
from .errors import ApiError, not_found
from .schemas import DatasetCreate, DatasetPublic
from .storage import Storage


def utc_now() -> str:
    """ISO 8601 UTC timestamp, second precision."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Dataset:
    """One dataset's declaration: classes (K), channels and evaluation settings."""

    id: str
    name: str
    labels: dict[str, int]
    channel_names: dict[str, str]
    ignore_classes: list[int]
    created_at: str

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    def dataset_json(self, num_training: int) -> dict[str, Any]:
        """nnU-Net v2 ``dataset.json``; the service's own fields sit under ``softlabel``."""
        return {
            "name": self.name,
            "channel_names": self.channel_names,
            "labels": self.labels,
            "numTraining": num_training,
            "file_ending": layout.FILE_ENDING,
            "softlabel": {"id": self.id, "ignore_classes": self.ignore_classes, "created_at": self.created_at},
        }

    @classmethod
    def from_dataset_json(cls, data: dict[str, Any]) -> "Dataset":
        own = data["softlabel"]
        return cls(
            id=own["id"], name=data["name"], labels=data["labels"], channel_names=data["channel_names"],
            ignore_classes=own["ignore_classes"], created_at=own["created_at"],
        )  # fmt: skip


def new_dataset(body: DatasetCreate) -> Dataset:
    """A dataset record from a validated request (the id is generated when omitted)."""
    return Dataset(
        id=body.id or uuid.uuid4().hex[:12], name=body.name, labels=dict(body.labels),
        channel_names=dict(body.channel_names), ignore_classes=sorted(set(body.ignore_classes)), created_at=utc_now(),
    )  # fmt: skip


def create_dataset(storage: Storage, dataset: Dataset) -> None:
    """Create an empty nnU-Net dataset folder; 409 when the id is taken."""
    with storage.scratch(layout.DATASETS) as tmp:
        folder = tmp / dataset.id
        for sub in ("imagesTr", "labelsTr"):
            (folder / sub).mkdir(parents=True)
        write_dataset_json(folder / "dataset.json", dataset, num_training=0)
        try:
            storage.put(layout.dataset_dir(dataset.id), folder)
        except FileExistsError:
            if storage.exists(layout.dataset_json(dataset.id)):
                raise ApiError(409, f"dataset {dataset.id!r} already exists", field="id") from None
            # Leftovers of a deleted dataset (a job that was finishing): clear them and retry once.
            storage.delete(layout.dataset_dir(dataset.id))
            storage.put(layout.dataset_dir(dataset.id), folder)


def write_dataset_json(path: Path, dataset: Dataset, *, num_training: int) -> None:
    """Write a ``dataset.json`` to a local path (for folders being built in scratch space)."""
    write_json_atomic(path, dataset.dataset_json(num_training))


def get_dataset(storage: Storage, dataset_id: str) -> Dataset:
    """The dataset, or 404."""
    data = storage.read_json(layout.dataset_json(dataset_id)) if layout.is_valid_id(dataset_id) else None
    if data is None:
        raise not_found("dataset", dataset_id)
    return Dataset.from_dataset_json(data)


def list_datasets(storage: Storage) -> list[Dataset]:
    """Every dataset, by id."""
    found = (storage.read_json(layout.dataset_json(name)) for name in storage.list(layout.DATASETS))
    return [Dataset.from_dataset_json(data) for data in found if data is not None]


def case_ids(storage: Storage, dataset_id: str) -> list[str]:
    """Sorted case ids of the dataset's complete studies (their metadata is written last)."""
    return [name[: -len(".json")] for name in storage.list(layout.studies_dir(dataset_id)) if name.endswith(".json")]


def labelset_names(storage: Storage, dataset_id: str) -> list[str]:
    """Sorted names of the dataset's labelsets."""
    names = storage.list(layout.labelsets_dir(dataset_id))
    return [name[: -len(".json")] for name in names if name.endswith(".json")]


def refresh_num_training(storage: Storage, dataset: Dataset) -> None:
    """Rewrite ``numTraining`` after studies were added or removed (call under the dataset lock)."""
    storage.write_json(layout.dataset_json(dataset.id), dataset.dataset_json(len(case_ids(storage, dataset.id))))


def to_public(storage: Storage, dataset: Dataset) -> DatasetPublic:
    return DatasetPublic(
        id=dataset.id, name=dataset.name, labels=dataset.labels, num_classes=dataset.num_classes,
        channel_names=dataset.channel_names, ignore_classes=dataset.ignore_classes,
        num_studies=len(case_ids(storage, dataset.id)), labelsets=labelset_names(storage, dataset.id),
        created_at=dataset.created_at,
    )  # fmt: skip
