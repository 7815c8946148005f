"""Checkpoints: the places where a caller may abandon a long computation.

The engine's long loops call a :data:`Checkpoint` between units of work: before each SLIC
assignment and centre update and before the connectivity pass, before each class's
softening (its distance transform, Gaussian or SVLS filter), and before each channel's
rescaling. The callback returns to go on, or raises to abandon the computation; the engine
lets the exception through and keeps no state behind. Why a caller stops is its own business:
the RQ job raises ``JobStopped`` once someone asked the job to stop (``softlabel.worker.jobs.stop``),
which is how a stop takes effect in a worker that cannot kill the job's process (every GPU
worker: CUDA does not survive ``fork()``).

A checkpoint may be called from the engine's threads (classes and channels run in thread
pools), so it must be thread-safe, and it is called often (several times a second on a large
study), so it must be cheap: rate-limit whatever it consults. The work between two calls is
one compiled call, whose time grows with the study's size; docs/performance.md#stopping-a-job
gives the measured longest stretches (``bench/stop_gaps.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

Checkpoint = Callable[[], None]
Item = TypeVar("Item")


def no_checkpoint() -> None:
    """The default checkpoint: never abandons."""


def for_each(work: Callable[[Item], None], items: Iterable[Item], *, threads: int, checkpoint: Checkpoint) -> None:
    """``work(item)`` for each item, after a checkpoint, in ``threads`` threads when there are several.

    The first exception (a checkpoint's included) cancels the items not yet started and is
    raised once the running ones have ended, so an abandoned loop ends within one unit of work.
    """
    items = list(items)

    def step(item: Item) -> None:
        checkpoint()
        work(item)

    if len(items) <= 1 or threads <= 1:
        for item in items:
            step(item)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(step, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [future for future in futures if future in done and future.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            raise failed[0].exception()  # type: ignore[misc]
