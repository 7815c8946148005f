"""Where datasets live: one small interface, and the local-filesystem implementation.

Keys are POSIX paths relative to the storage root, such as
``datasets/brain/imagesTr/c001_0000.nii.gz`` (``service.layout`` builds them). Routes and
service modules only use :class:`Storage`, so an S3-compatible backend can be added later
by implementing it; the worker receives absolute paths from :meth:`Storage.local_path`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from softlabel.worker.engine.io.atomic import atomic_path, write_json_atomic
from softlabel.worker.engine.io.files import file_sha256


class Storage(Protocol):
    """Files and JSON documents addressed by key; writes are atomic, hidden names are private."""

    def read_json(self, key: str) -> Any | None:
        """The JSON document at ``key``, or None when there is none."""

    def write_json(self, key: str, payload: Any) -> None:
        """Write a JSON document atomically (readers see the old or the new one)."""

    def exists(self, key: str) -> bool:
        """Whether a file or folder exists at ``key``."""

    def list(self, prefix: str) -> list[str]:
        """Sorted names directly under ``prefix`` (hidden scratch entries excluded; [] when absent)."""

    def put(self, key: str, source: Path) -> None:
        """Move a finished local file or folder (from :meth:`scratch`) to ``key``, atomically.

        A file replaces any file at ``key``; a folder raises FileExistsError when ``key`` exists.
        """

    def copy(self, source: str, target: str) -> None:
        """Copy the file at ``source`` to ``target``, atomically (a hard link where possible)."""

    def put_copy(self, key: str, source: Path) -> None:
        """Copy a local folder of files (from :meth:`scratch`) to ``key``, replacing any folder
        there; the files are hard links where possible and ``source`` stays. The folder appears
        whole (staged under a hidden name, then renamed), and a failed copy leaves nothing."""

    def delete(self, key: str) -> None:
        """Remove the file or the whole folder at ``key`` (no error when absent)."""

    def local_path(self, key: str) -> Path:
        """An absolute local path for ``key``, for downloads and job payloads."""

    def sha256(self, key: str) -> str:
        """Hex sha256 of the file at ``key``."""

    def scratch(self, prefix: str) -> contextlib.AbstractContextManager[Path]:
        """A private, empty local folder beside ``prefix``, removed on exit whatever happens."""


def _check_key(key: str) -> list[str]:
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"storage key: expected a relative path without empty, '.' or '..' parts, got {key!r}")
    return parts


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the filesystem allows, else a copy: stored files are never rewritten in
    place, so sharing the inode is safe."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


class LocalStorage:
    """:class:`Storage` on a local (or network-mounted) folder, shared with the workers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def local_path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key))

    def read_json(self, key: str) -> Any | None:
        try:
            return json.loads(self.local_path(key).read_text())
        except FileNotFoundError:
            return None

    def write_json(self, key: str, payload: Any) -> None:
        write_json_atomic(self.local_path(key), payload)

    def exists(self, key: str) -> bool:
        return self.local_path(key).exists()

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(self.local_path(prefix)) if not entry.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def put(self, key: str, source: Path) -> None:
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            try:
                os.rename(source, target)  # fails on a non-empty target: never merges
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise FileExistsError(errno.EEXIST, "already exists", key) from None
                raise
        else:
            os.replace(source, target)

    def copy(self, source: str, target: str) -> None:
        src, dst = self.local_path(source), self.local_path(target)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            _link_or_copy(src, tmp)

    def put_copy(self, key: str, source: Path) -> None:
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".staged-{target.name}-{uuid.uuid4().hex[:8]}")
        staged.mkdir()
        try:
            for file in source.iterdir():
                _link_or_copy(file, staged / file.name)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        self.delete(key)
        os.rename(staged, target)

    def delete(self, key: str) -> None:
        path = self.local_path(key)
        if path.is_dir():
            # Rename first so readers never see a half-deleted folder.
            doomed = path.with_name(f".deleted-{path.name}-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(path, doomed)
            except FileNotFoundError:
                return
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def sha256(self, key: str) -> str:
        return file_sha256(self.local_path(key))

    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        parent = self.local_path(prefix)
        parent.mkdir(parents=True, exist_ok=True)
        folder = parent / f".scratch-{uuid.uuid4().hex}"
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
