"""``softlabel worker``: an RQ worker for soften jobs, with crash recovery.

Workers run jobs in their own process (RQ's ``SimpleWorker``) by default, after loading the
engine once: CUDA does not survive ``fork()``, and on the CPU a forked work horse pays for the
fork and for starting its threads on every job. ``--fork`` selects RQ's forking
``Worker`` on the CPU, which isolates each job in a work horse. Either way a job that kills
its process is requeued by crash recovery (``worker.jobs.recovery``), and a running job can
be stopped (``worker.jobs.stop``): the in-process worker's job stops itself at its next
checkpoint, the forking worker kills the horse and removes what it left; a job that reaches
no checkpoint within the stop grace is ended by the stop deadline (:class:`StopDeadline`). Jobs and results are JSON (``JSONSerializer``); a scheduler
runs in one worker to release delayed retries.

Shutdown: the first SIGTERM or SIGINT is a warm shutdown: the running job finishes, then the
worker exits. A second one within the job is a cold shutdown: the job is abandoned and
requeued by crash recovery once its lease expires.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import redis
import typer
from rq import Queue, SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import import_attribute

from ..engine.backend import gpu_unavailable_reason, resolve_backend
from .contract import LEASE_KEY, LEGACY_SOFTEN_JOBS, SOFTEN_JOB, SoftenJobPayload
from .recovery import requeue_abandoned, start_recovery_loop
from .restart import finish_stop, restart_in_place
from .settings import BACKEND_ENV, WorkerSettings
from .soften import discard_outputs
from .stop import stop_requested

WARM_UP_SHAPE = (12, 14, 10)  # voxels of the phantom run once before the first job
PUBSUB_POLL_S = 1.0  # seconds the pub/sub thread blocks at most (bounds the shutdown wait)
STOP_WATCH_S = 0.5  # seconds between a running job's looks for its stop request (the stop deadline)

app = typer.Typer(add_completion=False)
log = logging.getLogger("softlabel.worker")


def warm_up(*, fork: bool, backend: str) -> None:
    """Import the engine and, in a worker that runs jobs itself, run it and the preview once on a
    tiny phantom on ``backend``, so the first job finds everything imported, compiled and
    initialised (on the GPU: the SLIC and connectivity kernels built by NVRTC, the distance
    transform, the memory pool).

    A forking worker only imports, so that each work horse inherits the modules: the CPU kernels
    run on GNU OpenMP threads, and GNU OpenMP hangs in a child forked from a process that has
    started them, so the parent of the work horses must never run a kernel (loading the
    library starts no thread; each horse starts its own at its first parallel loop).
    """
    import tempfile

    import numpy as np

    from ..engine.backend import release_device_memory, to_host
    from ..engine.config import SofteningConfig
    from ..engine.pipeline import soften_arrays
    from ..engine.preview import render_preview

    if fork:
        return
    rng = np.random.default_rng(0)
    image = rng.random(WARM_UP_SHAPE + (1,), dtype=np.float32)
    label = np.zeros(WARM_UP_SHAPE, dtype=np.uint8, order="F")  # as read from NIfTI
    label[3:9, 4:10, 2:8] = 1
    result = soften_arrays(
        image, label, config=SofteningConfig(n_segments=8), num_classes=2, spacing_mm=(1.0, 1.0, 1.0), backend=backend
    )
    soft, superpixels = to_host(result.soft), to_host(result.superpixels)
    del result
    release_device_memory(backend)
    with tempfile.TemporaryDirectory() as tmp:
        render_preview(image, label, soft, Path(tmp) / "warm-up.png", superpixels=superpixels)


class SoftlabelJob(Job):
    """RQ's ``Job``, resolving the job function names of earlier releases
    (:data:`.contract.LEGACY_SOFTEN_JOBS`, queued by softlabel 0.1.0 as ``worker.jobs.soften_study``)
    to today's :data:`.contract.SOFTEN_JOB` when the job runs: an upgrade needs no drain and no
    rewrite of the queue."""

    @property
    def func(self):  # type: ignore[override]
        if self.func_name in LEGACY_SOFTEN_JOBS:
            return import_attribute(SOFTEN_JOB)
        return super().func


class PromptShutdown:
    """Mixin: the pub/sub thread (RQ's commands: stop a job, shut down) wakes every
    :data:`PUBSUB_POLL_S` seconds instead of RQ 3's 60.

    RQ 3 reads the worker's channel in a thread blocked for up to 60 s, and a warm shutdown
    unsubscribes from it: the unsubscribe waited on that read, so a worker took up to a minute
    to exit after SIGTERM with no job running (seen under load: "unsubscribing from channel",
    then nothing for 60 s). The body is RQ's ``Worker.subscribe`` with the shorter poll.
    """

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_POLL_S, daemon=True, exception_handler=self._pubsub_exception_handler
        )


class ReleasesInputCopies:
    """Mixin: once RQ has recorded a soften job's end (finished, failed for good, stopped), the
    upload's uncompressed input copies its payload names are removed; a job RQ retries keeps
    them for its next run. Here, after RQ's decision, rather than in the job, which cannot know
    it: a horse killed or dead, a failure while a stop was requested."""

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry, execution=None):
        super().handle_job_success(job, queue, started_job_registry, execution)
        _release_input_copies(job)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry=None, exc_string="", execution=None):
        super().handle_job_failure(
            job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
        )
        if job.get_status(refresh=False) in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED):
            _release_input_copies(job)


def _release_input_copies(job: Job) -> None:
    if (spec := SoftenJobPayload.of_job(job.func_name, job.args)) is not None:
        spec.remove_decoded_inputs()


class StopDeadline:
    """Mixin: the stop deadline. While a job runs, a thread looks for its stop request every
    :data:`STOP_WATCH_S` seconds (in Redis: RQ's stop-job command goes over pub/sub, which
    delivers at most once, so a command published while the worker's subscription was down is
    lost); once one is there, the job has ``stop_grace_s`` to stop at a checkpoint
    before the worker ends it (:meth:`_deadline`'s ``end``)."""

    def __init__(self, *args, stop_grace_s: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop_grace_s = WorkerSettings().stop_grace_s if stop_grace_s is None else stop_grace_s

    @contextlib.contextmanager
    def _deadline(self, job_id: str, end: Callable[[], None]) -> Iterator[None]:
        """Call ``end`` from a watcher thread if the body still runs ``stop_grace_s`` after the
        job's stop request appeared; ``end`` checks that the job it ends is still the one."""
        ended = threading.Event()

        def watch() -> None:
            while not ended.wait(STOP_WATCH_S):
                try:
                    if stop_requested(self.connection, job_id):
                        break
                except redis.RedisError:  # Redis restarting: look again
                    continue
            else:
                return
            if not ended.wait(self.stop_grace_s):
                end()

        threading.Thread(target=watch, name=f"stop-deadline-{job_id}", daemon=True).start()
        try:
            yield
        finally:
            ended.set()


class ForkingWorker(ReleasesInputCopies, StopDeadline, PromptShutdown, Worker):
    """RQ's forking ``Worker`` (a work horse per job), shutting down promptly, with a deadline
    on stops, and cleaning up after a horse killed by a stop request.

    RQ kills the horse (SIGKILL) as soon as the stop-job command arrives, so the job cannot
    remove its own outputs: a horse killed while writing leaves a hidden temporary file, or an
    output without its provenance record. Once the horse is dead, the worker removes them and
    the job's uncompressed input copies before it records the job as stopped. When the command
    was lost and the job reaches no checkpoint in time, the stop deadline kills the horse the
    same way.
    """

    def monitor_work_horse(self, job: Job, queue: Queue, execution) -> None:
        horse = self.horse_pid  # the watcher thread starts after the fork, in this process only
        try:
            with self._deadline(job.id, lambda: self._kill_stopped_horse(job.id, horse)):
                super().monitor_work_horse(job, queue, execution)
        finally:
            if self._stopped_job_id == job.id:  # a stop that came as the horse finished: forget it
                self._stopped_job_id = None

    def _kill_stopped_horse(self, job_id: str, horse: int) -> None:
        """Kill the horse's process group (the horse leads it), not RQ's current horse: this one
        may have ended meanwhile, and RQ's ``kill_horse`` with no horse would signal our own group."""
        if not horse or self.horse_pid != horse:  # that horse has ended (RQ sets the pid to 0 then)
            return
        self.log.warning("job %s reached no checkpoint within %g s of its stop request; killing its horse", job_id, self.stop_grace_s)
        self._stopped_job_id = job_id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(horse, signal.SIGKILL)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry=None, exc_string="", execution=None):
        spec = SoftenJobPayload.of_job(job.func_name, job.args)
        if self._stopped_job_id == job.id and spec is not None:
            discard_outputs(spec)
            self.connection.delete(LEASE_KEY.format(job_id=job.id))  # the killed horse held it
            job.ended_at = job.ended_at or datetime.now(timezone.utc)  # RQ leaves a killed horse's job without one
        super().handle_job_failure(
            job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
        )


class InProcessWorker(ReleasesInputCopies, StopDeadline, PromptShutdown, SimpleWorker):
    """RQ's ``SimpleWorker``, shutting down promptly, with a deadline on stops, and forgetting a
    stop command once the job it named has ended.

    A job still running at the stop deadline is ended by restarting the worker in place
    (``worker.jobs.restart``): there is no horse to kill.

    RQ's stop-job command marks the job id to stop; it is cleared only when that job fails.
    A job that ended before it saw its stop request would leave the mark behind, and a later
    failure of the same (deterministic) job id on this worker would read as stopped.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._running_lock = threading.Lock()  # held from a restart's decision until the execve
        self._runs = 0  # jobs started by this worker: a retry of a stopped job is another run
        self._running: tuple[str, int] | None = None  # (job id, run) of the running job
        self._signals: int | None = None  # read end of the signal wakeup pipe

    def watch_shutdown_signals(self) -> None:
        """Have every signal this process handles also noted in a pipe (``signal.set_wakeup_fd``;
        call from the main thread). A SIGTERM that arrives during one long compiled call waits
        for Python's handler until the call returns; a restart in place would lose it, so the
        restart reads the pipe instead."""
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._signals = read

    def _shutdown_signalled(self) -> bool:
        """Whether a SIGTERM or SIGINT has arrived (handled by now or not)."""
        if self._signals is None:
            return False
        received = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._signals, 4096):
                received += chunk
        return bool({signal.SIGTERM, signal.SIGINT} & set(received))

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self._running_lock:
            self._runs += 1
            self._running = run = (job.id, self._runs)
        try:
            with self._deadline(job.id, lambda: self._restart_if_running(run)):
                super().execute_job(job, queue)
        finally:
            with self._running_lock:
                self._running = None
            if self._stopped_job_id == job.id:
                self._stopped_job_id = None

    def _restart_if_running(self, run: tuple[str, int]) -> None:
        """Restart in place if the stopped run is still running (not a retry of it since)."""
        job_id = run[0]
        with self._running_lock:  # the job cannot end in between: its thread waits here
            if self._running != run:
                return
            self.log.warning(
                "job %s reached no checkpoint within %g s of its stop request; restarting this worker to end it",
                job_id, self.stop_grace_s,
            )  # fmt: skip
            scheduler = self.scheduler._process if self.scheduler is not None else None
            if scheduler is not None and scheduler.is_alive():  # not already ended by a warm shutdown
                # RQ's forked scheduler would outlive the execve and keep its locks: end it and
                # release them here, so that the new image's scheduler takes them at once.
                scheduler.kill()
                scheduler.join(5)
                self.scheduler.release_locks()
            self.register_death()  # the new image registers afresh (the same --name too)
            restart_in_place(job_id, then_exit=self._stop_requested or self._shutdown_signalled())


def build_worker(
    connection: redis.Redis, queue_names: list[str], *, fork: bool, name: str | None, settings: WorkerSettings
) -> Worker:
    """An RQ worker on these queues: forking (``ForkingWorker``) or in-process (``InProcessWorker``)."""
    queues = [Queue(q, connection=connection, serializer=JSONSerializer) for q in queue_names]
    options = dict(
        connection=connection, serializer=JSONSerializer, name=name, job_class=SoftlabelJob,
        maintenance_interval=settings.maintenance_interval_s,
    )  # fmt: skip
    worker_class = ForkingWorker if fork else InProcessWorker
    return worker_class(queues, stop_grace_s=settings.stop_grace_s, **options)


@app.command("worker")
def worker_command(
    queues: Annotated[
        Optional[list[str]], typer.Option("--queues", "-q", help="queues to listen to, in priority order (default: SOFTLABEL_QUEUE)")
    ] = None,
    backend: Annotated[
        Optional[str], typer.Option("--backend", help="auto | cpu | gpu (default: SOFTLABEL_WORKER_BACKEND or auto)")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="exit once the queues are empty")] = False,
    fork: Annotated[
        Optional[bool], typer.Option("--fork/--no-fork", help="fork a work horse per job (CPU only; default: no)")
    ] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="worker name (default: random)")] = None,
) -> None:
    """Run an RQ worker that computes soft labels (REDIS_URL says where Redis is)."""
    settings = WorkerSettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    connection = redis.Redis.from_url(settings.redis_url)
    # First, before CUDA or the engine loads: a restart that ended a stopped job finishes it.
    stopped = finish_stop(connection, grace_s=settings.stop_grace_s, wait_s=settings.lease_ttl_s)
    if stopped is not None:
        log.warning("restarted to end job %s, stopped on request; removed its outputs", stopped[0])
        if stopped[1]:
            log.info("exiting: the worker was shutting down when it restarted")
            return
    if settings.stop_check_interval_s >= settings.stop_grace_s:
        log.warning(
            "SOFTLABEL_STOP_CHECK_INTERVAL_S (%g s) is not below SOFTLABEL_STOP_GRACE_S (%g s): a job will rarely see its "
            "stop request in time, and stops will end it by restarting the worker", settings.stop_check_interval_s,
            settings.stop_grace_s,
        )  # fmt: skip
    try:
        resolved = resolve_backend(backend or settings.worker_backend)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if fork and resolved == "gpu":
        typer.echo("error: --fork: expected --no-fork with the GPU backend (CUDA does not survive fork)", err=True)
        raise typer.Exit(1)
    use_fork = bool(fork)
    os.environ[BACKEND_ENV] = resolved
    requested = backend or settings.worker_backend
    if requested == "auto":
        reason = gpu_unavailable_reason()
        log.info("backend auto -> %s (%s)", resolved, "CuPy sees a CUDA device" if reason is None else reason)
    try:
        warm_up(fork=use_fork, backend=resolved)
    except Exception as exc:  # a broken CUDA toolchain, driver or kernel: refuse work rather than fail every job
        typer.echo(f"error: warm-up on the {resolved} backend failed, not starting: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    if resolved == "gpu":
        from ..engine.softening.distance_transform import gpu_edt_info

        log.info("GPU warm-up done (SLIC kernels compiled); distance transform: %s", gpu_edt_info())
    worker = build_worker(connection, queues or [settings.queue], fork=use_fork, name=name, settings=settings)
    recovered = requeue_abandoned(
        connection, worker.queues, lease_ttl_s=settings.lease_ttl_s, max_recoveries=settings.max_recoveries
    )
    if recovered:
        log.warning("requeued %d job(s) whose worker died: %s", len(recovered), ", ".join(recovered))
    stop = start_recovery_loop(
        connection, worker.queues, lease_ttl_s=settings.lease_ttl_s, max_recoveries=settings.max_recoveries
    )
    if isinstance(worker, InProcessWorker):
        worker.watch_shutdown_signals()
    log.info("backend %s, %s worker on %s", resolved, "forking" if use_fork else "non-forking", worker.queue_names())
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        stop.set()


if __name__ == "__main__":  # `python -m softlabel.worker.jobs.rq_worker`, used by `softlabel up`
    app(prog_name="softlabel worker")
