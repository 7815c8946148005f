"""File bookkeeping for jobs: sha256 records, and leftovers of a killed attempt."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

HASH_CHUNK_BYTES = 1 << 20  # bytes read at a time when hashing


def file_record(path: str | Path) -> dict[str, Any]:
    """``{"file": name, "sha256": hex, "bytes": size}`` of a local file."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return {"file": path.name, "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def remove_partials(paths: list[str | Path]) -> None:
    """Delete hidden temporary files (``worker.atomic`` naming) left for these outputs by a
    process that died while writing them."""
    for path in map(Path, paths):
        suffix = "".join(path.suffixes)
        stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
        for leftover in path.parent.glob(f".{stem}.partial-*{suffix}"):
            leftover.unlink(missing_ok=True)
