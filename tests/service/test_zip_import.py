"""Zip imports are checked from the archive's central directory before anything is written:
bombs, duplicate names, a missing nnU-Net layout and oversized entries are refused quickly,
and the data directory is left as it was."""

from __future__ import annotations

import contextlib
import json
import time
import zipfile
from pathlib import Path

import pytest

from helpers.service import nnunet_folder

pytestmark = pytest.mark.redis


def bytes_written() -> int:
    """Bytes this process has passed to write() (Linux /proc; the app runs in-process under TestClient)."""
    line = next(line for line in Path("/proc/self/io").read_text().splitlines() if line.startswith("wchar:"))
    return int(line.split()[1])


def post_zip(api, path: Path):
    with path.open("rb") as fh:
        return api.post("/v1/datasets/import", files={"file": (path.name, fh, "application/zip")})


def dataset_entries(tmp_path: Path) -> dict[str, bytes]:
    folder = nnunet_folder(tmp_path / "Dataset009_Zip", 1)
    return {f"D/{p.relative_to(folder)}": p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def write_zip(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, content in entries:
            zf.writestr(name, content)
    return path


def test_a_zip_bomb_without_labels_is_refused_before_extraction(api, settings, tmp_path: Path) -> None:
    """300 MB of zeros in 0.3 MB, beside a dataset.json but no labelsTr/ (the probe's bomb was 3 GiB)."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("D/dataset.json", b"{}")
        with zf.open("D/imagesTr/zeros_0000.nii", "w", force_zip64=True) as entry:
            for _ in range(300):
                entry.write(bytes(1 << 20))
    assert bomb.stat().st_size < 1 << 20
    before, start = bytes_written(), time.monotonic()
    response = post_zip(api, bomb)
    assert response.status_code == 422 and "labelsTr/" in response.json()["detail"], response.text
    assert bytes_written() - before < 10 << 20, "extracted before checking"  # the upload itself is 0.3 MB
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(("change", "status", "says"), [
    ("duplicate", 422, "each entry name once"),
    ("no images", 422, "imagesTr/ and labelsTr/"),
    ("image without label", 422, "with a labelsTr/<case> file"),
    ("ratio", 422, "compressed at most 500:1"),
    ("huge json", 413, "at most 1048576 bytes"),
])  # fmt: skip
def test_malformed_archives_are_refused_from_the_central_directory(api, settings, tmp_path, change, status, says) -> None:
    entries = list(dataset_entries(tmp_path).items())
    if change == "duplicate":
        entries.append(entries[0])
    elif change == "no images":
        entries = [(name, content) for name, content in entries if "/imagesTr/" not in name]
    elif change == "image without label":
        entries.append(("D/imagesTr/orphan_0000.nii.gz", entries[0][1]))
    elif change == "ratio":
        entries.append(("D/imagesTr/case_000_0009.nii", bytes(50 << 20)))
    elif change == "huge json":
        entries = [(n, c + b" " * (2 << 20) if n.endswith("dataset.json") else c) for n, c in entries]
    archive = tmp_path / "bad.zip"
    with pytest.warns(UserWarning, match="Duplicate name") if change == "duplicate" else contextlib.nullcontext():
        write_zip(archive, entries)
    before = sorted(p.name for p in (settings.data_dir / "datasets").iterdir()) if (settings.data_dir / "datasets").exists() else []
    response = post_zip(api, archive)
    assert response.status_code == status and says in response.json()["detail"], response.text
    after = sorted(p.name for p in (settings.data_dir / "datasets").iterdir()) if (settings.data_dir / "datasets").exists() else []
    assert after == before


def test_a_well_formed_archive_still_imports(api, tmp_path: Path) -> None:
    response = post_zip(api, write_zip(tmp_path / "good.zip", list(dataset_entries(tmp_path).items())))
    assert response.status_code == 201 and response.json()["num_studies"] == 1, response.text



def test_a_dataset_json_the_service_refuses_names_its_field(api, tmp_path: Path) -> None:
    """A name the engine reads but the service's dataset rules refuse (at most 200 characters)."""
    entries = dataset_entries(tmp_path)
    entries["D/dataset.json"] = json.dumps(json.loads(entries["D/dataset.json"]) | {"name": "x" * 201}).encode()
    response = post_zip(api, write_zip(tmp_path / "name.zip", list(entries.items())))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "dataset.json.name", response.json()
    assert response.json()["detail"].startswith("dataset.json.name: String should have at most 200 characters"), response.json()
