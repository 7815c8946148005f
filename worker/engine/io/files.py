"""File bookkeeping for jobs: sha256 records, and leftovers of a killed attempt."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

HASH_CHUNK_BYTES = 1 << 20  # bytes read at a time when hashing


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: str | Path, *, sha256: str | None = None) -> dict[str, Any]:
    """``{"file": name, "sha256": hex, "bytes": size}`` of a local file; ``sha256``: its hash
    when already known (the file is not read then)."""
    path = Path(path)
    return {"file": path.name, "sha256": sha256 or file_sha256(path), "bytes": path.stat().st_size}


def remove_partials(paths: list[str | Path]) -> None:
    """Delete hidden temporary files (``worker.engine.io.atomic`` naming) left for these outputs by a
    process that died while writing them."""
    for path in map(Path, paths):
        suffix = "".join(path.suffixes)
        stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
        for leftover in path.parent.glob(f".{stem}.partial-*{suffix}"):
            leftover.unlink(missing_ok=True)
