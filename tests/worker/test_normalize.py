"""Intensity normalisation on the CPU: the threaded, compiled path gives the array code's numbers."""

from __future__ import annotations

import numpy as np
import pytest

from worker.normalize import normalize_channels
from worker.normalize_cpu import clip_rescale_into


def array_code(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """The normalisation as NumPy array operations (the GPU path's code, on NumPy)."""
    out = np.empty(image.shape, dtype=np.float32)
    for ch in range(image.shape[-1]):
        channel = image[..., ch].astype(np.float32)
        lo, hi = (float(v) for v in np.percentile(channel, [low_pct, high_pct]))
        if hi <= lo:
            out[..., ch] = 0
            continue
        scaled = np.clip(channel, lo, hi)
        scaled -= lo
        scaled /= hi - lo
        out[..., ch] = scaled
    return out


@pytest.mark.parametrize("shape", [(17, 19, 11, 3), (40, 30, 2), (1000, 1), (5, 6, 7, 4)])
@pytest.mark.parametrize("kind", ["normal", "int16", "ties", "negative", "constant channel"])
@pytest.mark.parametrize("threads", ["1", "4"])
def test_same_numbers_as_the_array_code(shape: tuple[int, ...], kind: str, threads: str, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    rng = np.random.default_rng(len(shape) * 7 + len(kind))
    image = rng.normal(size=shape).astype(np.float32) * 1000
    if kind == "int16":
        image = rng.integers(-50, 3000, size=shape).astype(np.int16)
    elif kind == "ties":
        image = np.round(image / 300).astype(np.float32)
    elif kind == "negative":
        image = -np.abs(image) - 1e-3
    elif kind == "constant channel":
        image[..., 0] = 7
    out = normalize_channels(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(out.view(np.uint32), array_code(image).view(np.uint32))
    assert out.min() >= 0 and out.max() <= 1 + 1e-6  # hi - lo is rounded to float32: 1 ulp over 1 happens
    if kind == "constant channel":
        assert not out[..., 0].any()


def test_percentiles_are_checked() -> None:
    with pytest.raises(ValueError, match="percentiles"):
        normalize_channels(np.zeros((4, 4, 1), np.float32), low_pct=50, high_pct=50)


def test_kernel_rejects_mismatched_output() -> None:
    image = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="expected out of shape"):
        clip_rescale_into(image, 0, np.float32(0), np.float32(1), np.float32(1), np.zeros((9, 2), np.float32))
    with pytest.raises(ValueError, match="channel in"):
        clip_rescale_into(image, 2, np.float32(0), np.float32(1), np.float32(1), np.zeros((10, 2), np.float32))
