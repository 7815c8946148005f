"""Read-ahead: decompress a study's gzipped NIfTI files in threads while the engine imports.

A ``softlabel soften`` run spends about 0.2 s importing NumPy, nibabel and the kernels on one
core before it can read anything, and decompressing its inputs is about 0.1 s of CPU (the
11-class study, docs/performance.md). The decompression releases the GIL, so started first it
runs on the other cores during the imports; ``worker.nifti_io`` then parses the bytes it holds
instead of the files. What it reads is the same bytes either way.

Memory: it holds at most ``budget_bytes`` (1 GiB) of decompressed files, the sum their gzip
trailers state; a larger study is not read ahead. Nothing here judges the files: a file it
cannot read whole (missing, corrupt, several gzip members, larger than it said) is simply not
held, and the reader opens it from disk, where the usual checks name the problem.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

try:  # the same codec as worker.nifti_io: ISA-L where installed
    from isal.isal_zlib import decompressobj
except ImportError:  # pragma: no cover - isal is a core dependency
    from zlib import decompressobj

GZIP_WBITS = 31  # a gzip header and trailer around the deflate stream
BUDGET_BYTES = 1 << 30  # most decompressed bytes held at once (1 GiB); a larger study is read from disk


def _resolved(path: str | Path) -> Path | None:
    """The absolute path without symlinks, or None where that cannot be had (a symlink loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return None


def _gzip_size(path: Path) -> int | None:
    """The decompressed size a gzip file's trailer states (ISIZE: the size modulo 2**32), or
    None when the file cannot be read. Only a budget estimate: _decompress checks the real size."""
    try:
        with path.open("rb") as f:
            f.seek(-4, 2)
            return int.from_bytes(f.read(4), "little")
    except OSError:
        return None


def _cpus() -> int:
    """CPUs this process may run on. The read-ahead leaves one of them to the import it overlaps."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class ReadAhead:
    """Decompressed bytes of some ``.nii.gz`` files, decompressing in threads from creation.

    ``open(path)`` gives a file object over a held file's bytes (waiting for them if needed) and
    lets go of them; None for a file that is not held. Use as a context manager, or call
    ``close`` to wait for the threads and drop what was not used.
    """

    def __init__(self, paths: Sequence[str | Path], *, budget_bytes: int = BUDGET_BYTES) -> None:
        gzipped = list(dict.fromkeys(p for p in map(_resolved, paths) if p is not None and p.name.endswith(".gz")))
        sizes = [_gzip_size(p) for p in gzipped]
        if None in sizes or sum(sizes) > budget_bytes:  # type: ignore[arg-type]
            gzipped = []  # too big to hold beside the image (or unreadable): read from disk
        self._limit = budget_bytes
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(len(gzipped), _cpus() - 1)))
        self._pending: dict[Path, Future[bytes | None]] = {p: self._pool.submit(self._decompress, p) for p in gzipped}

    def _decompress(self, path: Path) -> bytes | None:
        """The file's decompressed bytes, or None unless it is one whole gzip member within the limit."""
        try:
            compressed = path.read_bytes()
            stream = decompressobj(wbits=GZIP_WBITS)
            data = stream.decompress(compressed, self._limit + 1)
        except Exception:  # unreadable here: the reader's own open reports it
            return None
        if not stream.eof or stream.unused_data or len(data) > self._limit:
            return None
        return data

    def open(self, path: str | Path) -> BinaryIO | None:
        """A file object over ``path``'s decompressed bytes, or None when they are not held."""
        key = _resolved(path)
        with self._lock:
            pending = None if key is None else self._pending.pop(key, None)
        data = None if pending is None else pending.result()
        return None if data is None else io.BytesIO(data)

    def close(self) -> None:
        """Drop the bytes nobody opened; cancel the files not started and wait for the rest."""
        with self._lock:
            self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
