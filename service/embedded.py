"""The embedded stack of ``softlabel up`` and ``softlabel demo``: Redis (embedded unless
``REDIS_URL`` is set), the API under uvicorn and N workers, each a child process.

The stack records itself in ``<data dir>/embedded.json`` while it runs, so ``softlabel demo``
and the client commands find it. The admin token is ``SOFTLABEL_ADMIN_TOKEN`` or, if unset,
a random one kept in ``<data dir>/admin-token`` (mode 0600).

Workers run jobs in their own process, so a job that crashes (out of memory, a segfault) takes
its worker with it. :meth:`EmbeddedStack.supervise` starts such a worker again, and crash
recovery requeues the job once its lease expires; a worker that exits more than
``WORKER_RESTART_LIMIT`` times within ``WORKER_RESTART_WINDOW_S`` is left down, and the stack
stops, as it does when the API or Redis exits.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from .embedded_redis import EmbeddedRedis, child_of_this_process, terminate

STATE_FILE = "embedded.json"
TOKEN_FILE = "admin-token"
API_START_TIMEOUT_S = 60  # seconds for the API to answer /healthz
API_STOP_TIMEOUT_S = 15  # seconds for uvicorn to stop before it is killed
# A job that crashes its worker every time is failed after SOFTLABEL_MAX_RECOVERIES requeues,
# 4 crashes by default, at least a lease TTL apart: that alone does not use up the restarts.
WORKER_RESTART_LIMIT = 5  # restarts of one worker within the window; one more exit stops the stack
WORKER_RESTART_WINDOW_S = 600.0  # seconds


@dataclass(frozen=True)
class RunningStack:
    """What a running embedded stack wrote about itself."""

    api_url: str
    pid: int
    data_dir: Path


def admin_token(data_dir: Path) -> str:
    """``SOFTLABEL_ADMIN_TOKEN``, else the stack's own token (created on first use)."""
    if os.environ.get("SOFTLABEL_ADMIN_TOKEN"):
        return os.environ["SOFTLABEL_ADMIN_TOKEN"]
    path = data_dir / TOKEN_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stack(data_dir: Path) -> RunningStack | None:
    """The stack serving ``data_dir``, if one is running and answers."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(int(state["pid"])):
        return None
    try:
        httpx.get(f"{state['api_url']}/healthz", timeout=2).raise_for_status()
    except httpx.HTTPError:
        return None
    return RunningStack(api_url=state["api_url"], pid=int(state["pid"]), data_dir=data_dir)


class RestartLimit:
    """At most ``limit`` restarts within any ``window_s`` seconds."""

    def __init__(self, limit: int = WORKER_RESTART_LIMIT, window_s: float = WORKER_RESTART_WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Whether a restart at ``now`` (monotonic seconds) is allowed; counts it if so."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


def exit_reason(code: int) -> str:
    """``exit code 1`` or ``signal SIGKILL`` for a Popen return code."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def worker_threads(workers: int) -> int:
    """CPU kernel threads (OpenMP) per embedded worker: this process's CPUs shared out, so that N workers do
    not run N x CPUs threads (docs/performance.md: 2 workers on 2 cores, 1 thread each)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // max(1, workers))


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _end_group(pgid: int) -> None:
    """SIGTERM what is left of a dead child's process group (each child leads its own)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


class EmbeddedStack:
    """Start and stop Redis, the API and the workers together.

    ``log_dir`` None lets the children write to this terminal; otherwise each gets a log file.
    """

    def __init__(
        self, *, data_dir: Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        backend: str = "auto", log_dir: Path | None = None,
    ) -> None:  # fmt: skip
        self.data_dir = data_dir.resolve()
        self.host, self.port, self.n_workers, self.backend = host, port, workers, backend
        self.log_dir = log_dir
        self.redis: EmbeddedRedis | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._restarts: list[RestartLimit] = []
        self._env: dict[str, str] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._stopping = False

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def _spawn(self, command: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        output: IO[bytes] | None = None
        if self.log_dir is not None:
            if log_name not in self._logs:  # a restarted worker appends to its predecessor's log
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self._logs[log_name] = (self.log_dir / log_name).open("ab")
            output = self._logs[log_name]
        # A terminal's Ctrl-C reaches only us, and we stop the children in order; they end with us.
        return subprocess.Popen(command, env=env, stdout=output, stderr=output, **child_of_this_process())

    def start(self) -> "EmbeddedStack":
        """Start everything and wait until the API answers; stops what started on failure."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            redis_url = os.environ.get("REDIS_URL")
            if not redis_url:
                self.redis = EmbeddedRedis(self.data_dir / "redis").start()
                redis_url = self.redis.url
            self.port = self.port or free_port(self.host)
            env = dict(os.environ, SOFTLABEL_DATA_DIR=str(self.data_dir), REDIS_URL=redis_url)
            env["SOFTLABEL_ADMIN_TOKEN"] = admin_token(self.data_dir)
            self._env = env
            self.api = self._spawn(
                [sys.executable, "-m", "uvicorn", "--factory", "softlabel.service.app:create_app", "--host", self.host,
                 "--port", str(self.port), "--log-level", "warning"], env, "api.log",
            )  # fmt: skip
            for index in range(self.n_workers):
                self.workers.append(self._start_worker(index))
                self._restarts.append(RestartLimit())
            self._wait_for_api()
            (self.data_dir / STATE_FILE).write_text(json.dumps({"api_url": self.api_url, "pid": os.getpid()}))
        except BaseException:
            self.stop()
            raise
        return self

    def _start_worker(self, index: int) -> subprocess.Popen[bytes]:
        """Worker ``index``, under a fresh name: RQ keeps a dead worker's name registered a while."""
        name = f"embedded-{index}-{uuid.uuid4().hex[:6]}"
        command = [sys.executable, "-m", "softlabel.worker.jobs.rq_worker", "--backend", self.backend, "--name", name]
        env = dict(self._env)
        env.setdefault("OMP_NUM_THREADS", str(worker_threads(self.n_workers)))
        return self._spawn(command, env, f"worker-{index}.log")

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.api is not None and self.api.poll() is not None:
                raise RuntimeError(f"the API exited with code {self.api.returncode} (port {self.port} in use?)")
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API did not answer at {self.api_url} within {API_START_TIMEOUT_S} s")

    def supervise(self, on_restart: Callable[[str], None]) -> str | None:
        """Restart workers that exited on their own; say which child stopped for good, if any.

        Call it every second or so. A restarted worker keeps its command and log file, and
        ``on_restart`` gets a line saying so. The API or Redis exiting, or a worker exiting once
        more after WORKER_RESTART_LIMIT restarts within WORKER_RESTART_WINDOW_S, is returned.
        """
        if self.redis is not None and self.redis.process is not None and self.redis.process.poll() is not None:
            return f"Redis ({exit_reason(self.redis.process.returncode)})"
        if self.api is not None and self.api.poll() is not None:
            return f"the API ({exit_reason(self.api.returncode)})"
        for index, worker in enumerate(self.workers):
            code = worker.poll()
            if code is None or self._stopping:
                continue
            _end_group(worker.pid)  # RQ's scheduler, forked by the worker, outlives a SIGKILL
            restarts = self._restarts[index]
            if not restarts.allow(time.monotonic()):
                return f"worker {index} ({exit_reason(code)}, after {restarts.limit} restarts within {restarts.window_s:g} s)"
            self.workers[index] = self._start_worker(index)
            on_restart(f"worker {index} exited ({exit_reason(code)}); restarted it")
        return None

    def stop_workers(self) -> None:
        """Warm shutdown: SIGTERM; each worker finishes its current job, then exits."""
        self._stopping = True
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Stop workers (waiting for their jobs), then the API, then Redis."""
        self.stop_workers()
        for worker in self.workers:
            worker.wait()
        if self.api is not None:
            terminate(self.api, timeout_s=API_STOP_TIMEOUT_S)
        if self.redis is not None:
            self.redis.close()
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        for log in self._logs.values():
            log.close()

    def __enter__(self) -> "EmbeddedStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
