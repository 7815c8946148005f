"""SLIC superpixels over all image channels jointly (SPEC section 1, step 2).

Two implementations behind one call: scikit-image's ``slic`` (CPU only; the reference) and
ours, ``native`` (``worker.engine.superpixels.native_slic``: a compiled CPU version and a CuPy kernel).

Both can be abandoned at a checkpoint (:mod:`softlabel.worker.engine.checkpoint`). Ours calls it
between its steps. scikit-image runs every round in one compiled call (minutes on a
48x240x240 study at the largest allowed parameters) that no checkpoint can enter, so when a
checkpoint is given it runs in a spawned child process, which is killed if the checkpoint
raises: spawned, not forked, because CUDA and the OpenMP runtime do not survive ``fork()``.
The child costs a Python start and a copy of the image each way (about a second); without a
checkpoint (the CLI, benchmarks) scikit-image runs in this process.
"""

from __future__ import annotations

import multiprocessing
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
    seconds while it runs; the child is killed when the checkpoint (or anything else) raises."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_skimage_slic_to_pipe, args=(send, image, args), daemon=True)
    child.start()
    send.close()  # the child holds the only writing end: its death ends the wait below
    try:
        while not receive.poll(CHILD_POLL_S):
            checkpoint()
        try:
            outcome, value = receive.recv()
        except EOFError:
            child.join()
            raise RuntimeError(f"scikit-image's SLIC: its child process died (exit code {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if outcome == "error":
        raise value
    return value


def _skimage_slic_to_pipe(send: Connection, image: np.ndarray, args: dict[str, Any]) -> None:
    """The child's side: ("labels", int32 labels) or ("error", the exception) into ``send``."""
    try:
        send.send(("labels", _skimage_slic(image, **args)))
    except Exception as exc:
        send.send(("error", exc))
    finally:
        send.close()
