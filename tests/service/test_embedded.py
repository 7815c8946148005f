"""The embedded stack's worker restarts, without processes: the limit and the give-up."""

from __future__ import annotations

import signal

import pytest

from softlabel.service import embedded
from softlabel.service.embedded import WORKER_RESTART_LIMIT, WORKER_RESTART_WINDOW_S, EmbeddedStack, RestartLimit, exit_reason


class ExitedChild:
    """A child process that has already exited with ``returncode``."""

    def __init__(self, returncode: int) -> None:
        self.returncode, self.pid = returncode, 999_999

    def poll(self) -> int:
        return self.returncode


class RunningChild(ExitedChild):
    def poll(self) -> None:  # type: ignore[override]
        return None


def test_restart_limit_allows_so_many_restarts_in_any_window():
    limit = RestartLimit(limit=2, window_s=10)
    assert limit.allow(0) and limit.allow(5)
    assert not limit.allow(9.9)  # a third within 10 s; refused, and not counted
    assert limit.allow(10)  # the restart at 0 left the window
    assert not limit.allow(14.9)
    assert limit.allow(15)


def test_exit_reason_names_signals():
    assert exit_reason(-signal.SIGKILL) == "signal SIGKILL" and exit_reason(1) == "exit code 1"
    assert exit_reason(0) == "exit code 0"


@pytest.fixture
def stack(tmp_path, monkeypatch) -> EmbeddedStack:
    """A stack whose API runs and whose one worker has been SIGKILLed, as have its successors."""
    stack = EmbeddedStack(data_dir=tmp_path, workers=1)
    stack.api, stack.workers, stack._restarts = RunningChild(0), [ExitedChild(-9)], [RestartLimit()]
    monkeypatch.setattr(stack, "_start_worker", lambda index: ExitedChild(-9))
    monkeypatch.setattr(embedded, "_end_group", lambda pgid: None)
    return stack


def test_a_worker_that_keeps_dying_is_restarted_up_to_the_limit_then_the_stack_gives_up(stack):
    lines: list[str] = []
    for _ in range(WORKER_RESTART_LIMIT):
        assert stack.supervise(lines.append) is None
    assert lines == ["worker 0 exited (signal SIGKILL); restarted it"] * WORKER_RESTART_LIMIT
    gone = stack.supervise(lines.append)
    assert gone == f"worker 0 (signal SIGKILL, after {WORKER_RESTART_LIMIT} restarts within {WORKER_RESTART_WINDOW_S:g} s)"
    assert len(lines) == WORKER_RESTART_LIMIT


def test_no_restart_during_shutdown_and_the_api_exiting_is_fatal(stack):
    stack.stop_workers()
    assert stack.supervise(pytest.fail) is None  # exited because we stopped it: not restarted
    stack.api = ExitedChild(3)
    assert stack.supervise(pytest.fail) == "the API (exit code 3)"


@pytest.mark.parametrize(("workers", "cpus", "threads"), [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 16, 8), (0, 4, 4)])
def test_workers_share_the_cpus_between_their_threads(monkeypatch, workers, cpus, threads):
    monkeypatch.setattr(embedded.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert embedded.worker_threads(workers) == threads


@pytest.mark.parametrize("preset", [None, "3"])
def test_each_worker_gets_its_share_unless_omp_num_threads_is_set(tmp_path, monkeypatch, preset):
    monkeypatch.setattr(embedded.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    stack = EmbeddedStack(data_dir=tmp_path, workers=2)
    stack._env = {"PATH": "/bin"} | ({"OMP_NUM_THREADS": preset} if preset else {})
    spawned: list[dict[str, str]] = []
    monkeypatch.setattr(stack, "_spawn", lambda command, env, log_name: spawned.append(env))
    stack._start_worker(0)
    assert spawned[0]["OMP_NUM_THREADS"] == (preset or "2")
