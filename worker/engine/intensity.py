"""Per-channel intensity rescaling to [0, 1] for superpixels (SPEC section 1, step 1)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .backend import array_module, backend_of, cpu_threads
from .checkpoint import Checkpoint, for_each, no_checkpoint
from .intensity_cpu import clip_rescale_into, order_statistics

LOW_PERCENTILE = 0.5  # percent
HIGH_PERCENTILE = 99.5  # percent


def rescale_intensities(
    image: Any, *, low_pct: float = LOW_PERCENTILE, high_pct: float = HIGH_PERCENTILE, checkpoint: Checkpoint = no_checkpoint
) -> Any:
    """Clip each channel to its [low_pct, high_pct] percentiles and rescale it to [0, 1].

    image: (X, Y[, Z], C) array, channels last (NumPy or CuPy; the result stays on its device).
    Returns float32 of the same shape: ``(clip(x, lo, hi) - lo) / (hi - lo)`` in float32, with lo,
    hi the channel's percentiles (linear interpolation) and the span rounded to float32 (so the
    top can land 1 ulp above 1). A constant channel becomes 0.
    On the CPU the percentiles come from a compiled radix select and the channels run in
    threads, with the same numbers as :func:`rescale_intensities_by_arrays`. checkpoint: called
    before each channel (:mod:`softlabel.worker.engine.checkpoint`).
    """
    if not 0 <= low_pct < high_pct <= 100:
        raise ValueError(f"percentiles: expected 0 <= low < high <= 100, got {low_pct}, {high_pct}")
    if backend_of(image) == "cpu":
        return _rescale_cpu(image, low_pct, high_pct, checkpoint)
    return rescale_intensities_by_arrays(image, low_pct=low_pct, high_pct=high_pct, checkpoint=checkpoint)


def rescale_intensities_by_arrays(
    image: Any, *, low_pct: float = LOW_PERCENTILE, high_pct: float = HIGH_PERCENTILE, checkpoint: Checkpoint = no_checkpoint
) -> Any:
    """:func:`rescale_intensities` as NumPy/CuPy array operations: the GPU's path, and on the
    CPU the reference the compiled path is tested against (the same numbers)."""
    xp = array_module(backend_of(image))
    out = xp.empty(image.shape, dtype=xp.float32)
    scaled = xp.empty(image.shape[:-1], dtype=xp.float32)  # one channel, contiguous
    for ch in range(image.shape[-1]):
        checkpoint()
        channel = image[..., ch].astype(xp.float32, copy=False)
        lo, hi = (float(v) for v in xp.percentile(channel, [low_pct, high_pct]))
        if hi <= lo:
            out[..., ch] = 0
            continue
        # (clip(x, lo, hi) - lo) / (hi - lo) in float32, in place: no full-size temporaries.
        xp.clip(channel, lo, hi, out=scaled)
        scaled -= lo
        scaled /= hi - lo
        out[..., ch] = scaled
    return out


def _rescale_cpu(image: np.ndarray, low_pct: float, high_pct: float, checkpoint: Checkpoint) -> np.ndarray:
    """The CPU path: :func:`rescale_channel_into` per channel, the channels in threads."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    out = np.empty(image.shape, dtype=np.float32)
    n_channels, threads = image.shape[-1], cpu_threads()
    workers = min(n_channels, threads)  # channels at once; each gets a share of the threads

    def one_channel(ch: int) -> None:
        rescale_channel_into(image, ch, out, low_pct=low_pct, high_pct=high_pct, threads=threads // workers)

    for_each(one_channel, range(n_channels), threads=workers, checkpoint=checkpoint)
    return out


def rescale_channel_into(
    image: np.ndarray, channel: int, out: np.ndarray, *, low_pct: float = LOW_PERCENTILE,
    high_pct: float = HIGH_PERCENTILE, threads: int = 0,
) -> None:  # fmt: skip
    """Channel ``channel`` of :func:`rescale_intensities` (CPU), written into ``out[..., channel]``.

    image, out: float32 (X, Y[, Z], C), C order. The percentiles come from exact order
    statistics (``threads`` OpenMP threads; 0: the runtime's count), then one compiled
    clip-and-rescale pass. Releases the GIL while it computes.
    """
    flat, flat_out = image.reshape(-1, image.shape[-1]), out.reshape(-1, out.shape[-1])
    lo, hi = (float(v) for v in channel_percentiles(flat, channel, (low_pct, high_pct), threads=threads))
    if hi <= lo:
        flat_out[:, channel] = 0
    else:  # float32 bounds and span, as NumPy casts the Python floats in the array code
        clip_rescale_into(flat, channel, np.float32(lo), np.float32(hi), np.float32(hi - lo), flat_out)


class ChannelRescaler:
    """:func:`rescale_intensities` one channel at a time, as the channels become available.

    Called as ``rescaler(image, channel)`` (``worker.engine.io.nifti.read_study``'s ``on_channel``),
    from any thread, once per channel of the same float32 (X, Y[, Z], C) C-ordered image;
    ``output`` then holds the rescaled image: the same numbers as ``rescale_intensities``.
    """

    def __init__(self, *, low_pct: float = LOW_PERCENTILE, high_pct: float = HIGH_PERCENTILE) -> None:
        self._low_pct, self._high_pct = low_pct, high_pct
        self._out: np.ndarray | None = None
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, channel: int) -> None:
        with self._lock:  # the first channel to arrive allocates the output
            if self._out is None:
                self._out = np.empty(image.shape, dtype=np.float32)
        rescale_channel_into(image, channel, self._out, low_pct=self._low_pct, high_pct=self._high_pct, threads=1)

    @property
    def output(self) -> np.ndarray:
        if self._out is None:
            raise ValueError("rescaler: expected at least one channel, got none")
        return self._out


def channel_percentiles(flat: np.ndarray, channel: int, percents: tuple[float, ...], *, threads: int = 0) -> np.ndarray:
    """``np.percentile(flat[:, channel], percents)`` (linear method), float64, the same numbers.

    flat: (voxels, C) float32, C order. NumPy copies the channel and partitions it once per
    index; here the two order statistics around each percentile come from the compiled radix
    select (``threads`` OpenMP threads, 0: the runtime's count), and the interpolation is
    NumPy's own (``numpy.lib._function_base_impl._quantile`` and ``_lerp`` of NumPy 2.4), step
    for step. tests/worker/test_intensity.py holds the two equal on the installed NumPy.
    """
    n = flat.shape[0]
    virtual = (n - 1) * np.true_divide(np.asarray(percents, dtype=np.float64), 100)
    previous = np.floor(virtual)
    following = previous + 1
    previous[virtual >= n - 1] = following[virtual >= n - 1] = -1  # the maximum
    previous[virtual < 0] = following[virtual < 0] = 0
    previous, following = previous.astype(np.intp), following.astype(np.intp)
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    ranks = np.concatenate((previous, following)) % n
    values = order_statistics(flat, channel, ranks, threads)
    a, b = values[: len(percents)], values[len(percents) :]
    diff_b_a = b - a
    lerp = np.add(a, diff_b_a * gamma)
    np.subtract(b, diff_b_a * (1 - gamma), out=lerp, where=gamma >= 0.5, casting="unsafe", dtype=type(lerp.dtype))
    return lerp
