"""Count the files renamed into a folder, as the kernel reports them (Linux inotify, via ctypes).

The counting happens in the observing process, so it survives whatever happens to the processes
that write: every ``os.replace`` onto a name in the folder is one ``IN_MOVED_TO`` event, queued
by the kernel until read. A reader thread drains the queue; an overflow of the kernel's queue
(``/proc/sys/fs/inotify/max_queued_events``) is recorded, since counts are then incomplete.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import threading
from collections import Counter
from pathlib import Path

IN_MOVED_TO = 0x00000080  # linux/inotify.h
IN_Q_OVERFLOW = 0x00004000
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name, NUL-padded)
READ_BYTES = 1 << 16
POLL_S = 0.1  # seconds the reader waits for events before checking whether to stop


class RenameCounter:
    """Count renames onto each name in ``folder`` (not recursive) from ``start()`` to ``stop()``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.counts: Counter[str] = Counter()
        self.overflowed = False
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="rename-counter", daemon=True)

    def start(self) -> "RenameCounter":
        self._fd = self._libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if self._libc.inotify_add_watch(self._fd, os.fsencode(self.folder), IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {self.folder}")
        self._thread.start()
        return self

    def stop(self) -> Counter[str]:
        """Read what is queued, stop, and return the counts by file name."""
        self._stop.set()
        self._thread.join()
        os.close(self._fd)
        return self.counts

    def _read_loop(self) -> None:
        while True:
            stopping = self._stop.is_set()  # read once more after stop() so nothing queued is missed
            ready, _, _ = select.select([self._fd], [], [], 0 if stopping else POLL_S)
            if ready:
                self._parse(os.read(self._fd, READ_BYTES))
            elif stopping:
                return

    def _parse(self, buffer: bytes) -> None:
        offset = 0
        while offset < len(buffer):
            _, mask, _, length = EVENT_HEADER.unpack_from(buffer, offset)
            offset += EVENT_HEADER.size
            name = buffer[offset : offset + length].rstrip(b"\0").decode()
            offset += length
            if mask & IN_Q_OVERFLOW:
                self.overflowed = True
            elif mask & IN_MOVED_TO:
                self.counts[name] += 1
