"""Stop requests for running jobs, honoured within the engine's stages.

Whoever stops a job (``DELETE /v1/jobs/{id}``, the UI's Stop button) sends RQ's stop-job
command and leaves ``softlabel:stop:<job id>`` in Redis (:data:`.contract.STOP_KEY`). A forking
worker (``--fork``, CPU only) kills the job's work horse at once on the command and then removes
what the horse may have left (``rq_worker.ForkingWorker``). A worker that runs jobs in its own
process (every GPU worker: CUDA does not survive ``fork()``; CPU workers by default) has no
process to kill, so the job itself stops: it checks the key as each engine stage starts and
ends (:meth:`StopCheck.check`) and at the engine's checkpoints within the stages
(:mod:`softlabel.worker.engine.checkpoint`: each SLIC step, each class, each channel), at most
every ``SOFTLABEL_STOP_CHECK_INTERVAL_S`` seconds (:meth:`StopCheck.__call__`), and raises
:class:`JobStopped`. The job then removes its outputs and RQ marks it ``stopped``. A job that
reaches no checkpoint within ``SOFTLABEL_STOP_GRACE_S`` (one compiled call longer than that,
on a very large study) is ended by its worker restarting itself in place
(``worker.jobs.restart``).

Why checkpoints rather than a child process per job: the engine's stages run in this process
on the GPU, where killing is not an option, and a child per job would pay a process start and
a copy of the study each way on every job; the checkpoints cost one Redis ``EXISTS`` per
quarter second. The one exception is scikit-image's SLIC, a single compiled call of minutes
at the largest parameters: it runs in a killable child only when a job asks for it
(``engine.superpixels.compute``).
"""

from __future__ import annotations

import threading
import time

import redis

from .contract import STOP_KEY


class JobStopped(Exception):
    """The job was asked to stop; it ends without output and is not retried."""


def stop_requested(connection: redis.Redis, job_id: str) -> bool:
    return bool(connection.exists(STOP_KEY.format(job_id=job_id)))


class StopCheck:
    """One running job's stop check: the engine's checkpoint, and the check at each stage.

    Thread-safe (the engine calls checkpoints from its thread pools). Once a stop has been
    seen, every later call raises at once, without reading Redis again.
    """

    def __init__(self, connection: redis.Redis, job_id: str, *, interval_s: float) -> None:
        self._connection, self._job_id, self._interval_s = connection, job_id, interval_s
        self._lock = threading.Lock()
        self._last_read = float("-inf")  # time.monotonic() of the last Redis read
        self._stopped = False
        self.stage = "started"  # named in the JobStopped message

    def __call__(self) -> None:
        """The engine's checkpoint: reads Redis if the last read is older than the interval."""
        self._read(force=False)

    def check(self) -> None:
        """Read Redis now (at a stage boundary); raises JobStopped if a stop was requested."""
        self._read(force=True)

    def _read(self, *, force: bool) -> None:
        with self._lock:  # held only to claim the read: the engine's other threads do not wait on Redis
            now = time.monotonic()
            due = not self._stopped and (force or now - self._last_read >= self._interval_s)
            if due:
                self._last_read = now
        if due:
            try:
                if stop_requested(self._connection, self._job_id):
                    self._stopped = True
            except redis.RedisError:  # Redis restarting: not known to be stopped; the next read, or the deadline, decides
                pass
        if self._stopped:
            raise JobStopped(f"stopped on request at stage {self.stage!r}")
