"""Read-ahead: decompress a study's gzipped NIfTI files in threads while the engine imports.

A ``softlabel soften`` run spends about 0.2 s importing NumPy, nibabel and the kernels on one
core before it can read anything, and decompressing its inputs is about 0.1 s of CPU (the
11-class study, docs/performance.md). The decompression releases the GIL, so started first it
runs on the other cores during the imports; ``worker.nifti_io`` then parses the bytes it holds
instead of the files. What it reads is the same bytes either way.

Nothing here judges the files: a file it cannot read whole (missing, corrupt, several gzip
members, past ``limit_bytes``) is simply not held, and the reader opens it from disk, where
the usual checks name the problem.
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
LIMIT_BYTES = 1 << 31  # largest decompressed file held (2 GiB); larger ones are read from disk


def _cpus() -> int:
    """CPUs this process may run on. The read-ahead leaves one of them to the import it overlaps."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class ReadAhead:
    """Decompressed bytes of some ``.nii.gz`` files, decompressing in threads from creation.

    ``open(path)`` gives a file object over a held file's bytes (waiting for them if needed) and
    lets go of them; None for a file that is not held. Use as a context manager, or call
    ``close`` to wait for the threads and drop what was not used.
    """

    def __init__(self, paths: Sequence[str | Path], *, limit_bytes: int = LIMIT_BYTES) -> None:
        gzipped = list(dict.fromkeys(Path(p).resolve() for p in paths if str(p).endswith(".gz")))
        self._limit = limit_bytes
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
        with self._lock:
            pending = self._pending.pop(Path(path).resolve(), None)
        data = None if pending is None else pending.result()
        return None if data is None else io.BytesIO(data)

    def close(self) -> None:
        """Wait for the threads and drop the bytes nobody opened."""
        with self._lock:
            self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
