"""SLIC superpixels over all image channels jointly (SPEC section 1, step 2).

Two implementations behind one call: scikit-image's ``slic`` (CPU only; the reference) and
ours, ``native`` (``worker.engine.superpixels.native_slic``: a compiled CPU version and a CuPy kernel).

Both can be abandoned at a checkpoint (:mod:`softlabel.worker.engine.checkpoint`). Ours calls it
between its steps. scikit-image runs every round in one compiled call (minutes on a
48x240x240 study at the largest allowed parameters) that no checkpoint can enter, so when a
checkpoint is given it runs in a spawned child process, which is killed if the checkpoint
raises: spawned, not forked, because CUDA and the OpenMP runtime do not survive ``fork()``.
The child costs a Python start and a copy of the image and the labels through pipes (about a
second); without a checkpoint (the CLI, benchmarks) scikit-image runs in this process.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ..backend import backend_of, to_host
from ..checkpoint import Checkpoint, no_checkpoint
from .native_slic import native_slic

CHILD_POLL_S = 0.1  # seconds between checkpoints while scikit-image's SLIC runs in its child


def compute_superpixels(
    image: Any,
    *,
    n_segments: int,
    compactness: float,
    spacing: Sequence[float] | None,
    slic: str = "native",
    max_num_iter: int = 10,
    checkpoint: Checkpoint = no_checkpoint,
) -> Any:
    """SLIC superpixels of a multi-channel image rescaled to [0, 1].

    image: float32 (X, Y[, Z], C), channels last, each channel in [0, 1] (see
    ``worker.engine.intensity``); NumPy or CuPy. spacing: voxel size per spatial axis (mm), so
    superpixels are compact in physical space. Returns int32 (X, Y[, Z]) labels 0..M-1 on the
    device the chosen implementation ran on: scikit-image always runs on the CPU, ``native``
    runs on the image's device. checkpoint: called while it runs; raising abandons it (see the
    module docstring).
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"image: expected (X, Y[, Z], C) with 2 or 3 spatial axes, got shape {image.shape}")
    if slic == "skimage":
        args = {"n_segments": n_segments, "compactness": compactness, "spacing": spacing, "max_num_iter": max_num_iter}
        if checkpoint is no_checkpoint:
            return _skimage_slic(to_host(image), **args)
        return _skimage_slic_in_child(to_host(image), args, checkpoint)
    if slic == "native":
        return native_slic(
            image,
            n_segments=n_segments,
            compactness=compactness,
            spacing=tuple(spacing) if spacing is not None else None,
            max_num_iter=max_num_iter,
            backend=backend_of(image),
            checkpoint=checkpoint,
        )
    raise ValueError(f"slic: expected 'skimage' or 'native', got {slic!r}")


def _skimage_slic(
    image: np.ndarray, *, n_segments: int, compactness: float, spacing: Sequence[float] | None, max_num_iter: int
) -> np.ndarray:
    """scikit-image's SLIC with ``convert2lab=False``: with exactly 3 channels it would
    otherwise treat MRI sequences as RGB and convert them to Lab colour."""
    from skimage.segmentation import slic

    labels = slic(
        image,
        n_segments=n_segments,
        compactness=compactness,
        max_num_iter=max_num_iter,
        spacing=None if spacing is None else np.asarray(spacing, dtype=np.float64),
        channel_axis=-1,
        convert2lab=False,
        enforce_connectivity=True,
        start_label=0,
    )
    return labels.astype(np.int32, copy=False)


def _skimage_slic_in_child(image: np.ndarray, args: dict[str, Any], checkpoint: Checkpoint) -> np.ndarray:
    """:func:`_skimage_slic` in a spawned process, calling ``checkpoint`` every :data:`CHILD_POLL_S`
    seconds from its start to its end; the child is killed when the checkpoint (or anything
    else) raises, which leaves nothing behind (no file, no shared memory).

    The image goes to the child through a pipe, from a thread, once the child runs: passed as
    the child's argument, it would be written inside ``start()``, which then waits, with no
    checkpoint, for the child to start Python and read it (seconds on a loaded machine).
    """
    context = multiprocessing.get_context("spawn")
    image_in, image_out = context.Pipe(duplex=False)
    labels_in, labels_out = context.Pipe(duplex=False)
    child = context.Process(target=_skimage_slic_child, args=(image_in, labels_out, args), daemon=True)
    child.start()
    image_in.close()
    labels_out.close()  # the child holds the only writing end: its death ends the wait below
    sender = threading.Thread(target=_send_until_closed, args=(image_out, image), daemon=True)
    sender.start()
    try:
        while not labels_in.poll(CHILD_POLL_S):
            checkpoint()
        try:
            outcome, value = labels_in.recv()
        except EOFError:
            child.join()
            raise RuntimeError(f"scikit-image's SLIC: its child process died (exit code {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.kill()  # a sender still writing then gets a broken pipe
        child.join()
        sender.join()
        image_out.close()
        labels_in.close()
    if outcome == "error":
        raise value
    return value


def _send_until_closed(connection: Connection, image: np.ndarray) -> None:
    """Send the image to the child; a child killed meanwhile is no error."""
    try:
        connection.send(image)
    except (BrokenPipeError, ConnectionResetError):
        pass


def _skimage_slic_child(image_in: Connection, labels_out: Connection, args: dict[str, Any]) -> None:
    """The child's side: reads the image, sends ("labels", int32 labels) or ("error", the exception)."""
    try:
        labels_out.send(("labels", _skimage_slic(image_in.recv(), **args)))
    except Exception as exc:
        labels_out.send(("error", exc))
    finally:
        labels_out.close()
