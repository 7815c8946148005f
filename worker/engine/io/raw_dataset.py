"""nnU-Net raw dataset folders: ``dataset.json``, ``imagesTr/<case>_XXXX<ext>``, ``labelsTr/<case><ext>``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class DatasetCase:
    """One case of a raw dataset: its channel files in order and its label file."""

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path


@dataclass(frozen=True)
class RawDataset:
    """The parts of ``dataset.json`` the engine needs, and the cases found on disk."""

    root: Path
    labels: dict[str, int]
    channel_names: dict[str, str]
    file_ending: str
    cases: tuple[DatasetCase, ...]

    @property
    def num_classes(self) -> int:
        """K = max label id + 1 (nnU-Net ids are consecutive from 0; region labels are not supported)."""
        return max(self.labels.values()) + 1


def read_dataset_json(root: Path) -> dict:
    """Parse ``dataset.json``; raises InputError naming the missing or malformed field."""
    path = root / "dataset.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(file=path, field="file", expected="an nnU-Net dataset.json", got="no such file") from None
    except json.JSONDecodeError as exc:
        raise InputError(file=path, field="file", expected="valid JSON", got=str(exc)) from None
    for key in ("labels", "channel_names"):
        if not isinstance(meta.get(key), dict) or not meta[key]:
            raise InputError(file=path, field=key, expected="a non-empty object", got=repr(meta.get(key)))
    ids = meta["labels"].values()
    if not all(isinstance(v, int) for v in ids):
        raise InputError(file=path, field="labels", expected="integer class ids (region labels are not supported)", got=repr(meta["labels"]))
    if sorted(ids) != list(range(len(meta["labels"]))):
        raise InputError(file=path, field="labels", expected="ids 0..K-1, each once", got=str(sorted(ids)))
    return meta


def scan_dataset(root: str | Path) -> RawDataset:
    """Read ``dataset.json`` and pair every label in ``labelsTr`` with its channel files."""
    root = Path(root)
    meta = read_dataset_json(root)
    ending = meta.get("file_ending", ".nii.gz")
    n_channels = len(meta["channel_names"])
    cases = []
    for label_path in sorted((root / "labelsTr").glob(f"*{ending}")):
        case_id = label_path.name[: -len(ending)]
        images = tuple(root / "imagesTr" / f"{case_id}_{ch:04d}{ending}" for ch in range(n_channels))
        missing = [p.name for p in images if not p.exists()]
        if missing:
            raise InputError(file=label_path, field="channel files", expected=f"{n_channels} files in imagesTr", got=f"missing {missing}")
        cases.append(DatasetCase(case_id=case_id, image_paths=images, label_path=label_path))
    if not cases:
        raise InputError(file=root / "labelsTr", field="cases", expected=f"label files ending in {ending}", got="none")
    return RawDataset(
        root=root, labels=dict(meta["labels"]), channel_names=dict(meta["channel_names"]), file_ending=ending, cases=tuple(cases)
    )
