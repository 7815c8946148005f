"""Per-channel intensity normalisation for superpixels (SPEC section 1, step 1)."""

from __future__ import annotations

from typing import Any

from worker.backend import array_module, backend_of

LOW_PERCENTILE = 0.5  # percent
HIGH_PERCENTILE = 99.5  # percent


def normalize_channels(image: Any, *, low_pct: float = LOW_PERCENTILE, high_pct: float = HIGH_PERCENTILE) -> Any:
    """Clip each channel to its [low_pct, high_pct] percentiles and rescale it to [0, 1].

    image: (X, Y[, Z], C) array, channels last (NumPy or CuPy; the result stays on its device).
    Returns float32 of the same shape. A constant channel becomes 0.
    """
    if not 0 <= low_pct < high_pct <= 100:
        raise ValueError(f"percentiles: expected 0 <= low < high <= 100, got {low_pct}, {high_pct}")
    xp = array_module(backend_of(image))
    out = xp.empty(image.shape, dtype=xp.float32)
    scaled = xp.empty(image.shape[:-1], dtype=xp.float32)  # one channel, contiguous
    for ch in range(image.shape[-1]):
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
