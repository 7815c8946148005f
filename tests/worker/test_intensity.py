"""Intensity normalisation on the CPU: the threaded, compiled path gives the array code's numbers."""

from __future__ import annotations

import numpy as np
import pytest

from softlabel.worker.engine.intensity import (
    ChannelRescaler,
    channel_percentiles,
    rescale_intensities,
    rescale_intensities_by_arrays,
)
from softlabel.worker.engine.intensity_cpu import clip_rescale_into, order_statistics


@pytest.mark.parametrize("shape", [(17, 19, 11, 3), (40, 30, 2), (1000, 1), (5, 6, 7, 4)])
@pytest.mark.parametrize("kind", ["normal", "int16", "ties", "negative", "constant channel"])
def test_same_numbers_as_the_array_code(shape: tuple[int, ...], kind: str) -> None:
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
    out = rescale_intensities(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(out.view(np.uint32), rescale_intensities_by_arrays(image).view(np.uint32))
    assert out.min() >= 0 and out.max() <= 1 + 1e-6  # hi - lo is rounded to float32: 1 ulp over 1 happens
    if kind == "constant channel":
        assert not out[..., 0].any()


def test_percentiles_are_checked() -> None:
    with pytest.raises(ValueError, match="percentiles"):
        rescale_intensities(np.zeros((4, 4, 1), np.float32), low_pct=50, high_pct=50)


def test_kernel_rejects_mismatched_output() -> None:
    image = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="expected out of shape"):
        clip_rescale_into(image, 0, np.float32(0), np.float32(1), np.float32(1), np.zeros((9, 2), np.float32))
    with pytest.raises(ValueError, match="channel in"):
        clip_rescale_into(image, 2, np.float32(0), np.float32(1), np.float32(1), np.zeros((10, 2), np.float32))


@pytest.mark.parametrize("seed", range(40))
def test_percentiles_equal_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = [1, 2, 3, 200, 70_000, 300_001][seed % 6]
    flat = (rng.normal(size=(n, 2)) * [1, 1000, 1e-3, 1e6][seed % 4]).astype(np.float32)
    if seed % 5 == 1:
        flat = np.round(flat * 2).astype(np.float32) + 0.0  # ties, zeros all +0.0
    percents = [(0.5, 99.5), (0.0, 100.0), (25.0, 50.0, 75.0), (33.3,), (99.99, 0.01)][seed % 5]
    for channel in (0, 1):
        expected = np.percentile(flat[:, channel], percents)
        got = channel_percentiles(flat, channel, percents)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_order_statistics_are_the_sorted_entries() -> None:
    rng = np.random.default_rng(7)
    flat = np.concatenate([rng.normal(size=(5000, 1)), np.full((3000, 1), -0.0), [[np.inf], [-np.inf]]]).astype(np.float32)
    ranks = [0, 1, 4999, 5000, 6500, 8001]
    expected = np.sort(flat[:, 0])[ranks]
    got = order_statistics(flat, 0, ranks)
    np.testing.assert_array_equal(got, expected)  # -0.0 comes back as +0.0, equal
    assert not np.signbit(got[np.asarray(expected) == 0]).any()


def test_a_channel_with_nan_gives_nan_like_numpy() -> None:
    flat = np.arange(20, dtype=np.float32).reshape(10, 2)
    flat[3, 1] = np.nan
    assert np.isnan(channel_percentiles(flat, 1, (0.5, 99.5))).all()
    assert not np.isnan(channel_percentiles(flat, 0, (0.5, 99.5))).any()


def test_order_statistics_check_their_arguments() -> None:
    flat = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="ranks in"):
        order_statistics(flat, 0, [10])
    with pytest.raises(ValueError, match="channel in"):
        order_statistics(flat, 2, [0])


@pytest.mark.parametrize("threads", ["1", "3"])
def test_thread_count_changes_no_number(threads: str, tmp_path) -> None:
    """Channels in a thread pool and radix histograms in OpenMP threads: the same output."""
    import os
    import subprocess
    import sys

    image = np.random.default_rng(3).normal(size=(300_001, 3)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    code = ("import sys, numpy as np; from softlabel.worker.engine.intensity import rescale_intensities; "
            "np.save(sys.argv[1] + '/out.npy', rescale_intensities(np.load(sys.argv[1] + '/image.npy')))")  # fmt: skip
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=dict(os.environ, OMP_NUM_THREADS=threads), check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy").view(np.uint32), rescale_intensities_by_arrays(image).view(np.uint32))


def test_signed_zeros_come_out_as_numpy_gives_them() -> None:
    """A background of +0.0 and -0.0 makes the low percentile 0: NumPy's clip keeps a voxel
    equal to the bound as it is (-0.0 stays -0.0), and so does the compiled pass."""
    rng = np.random.default_rng(11)
    image = np.abs(rng.normal(size=(40, 30, 20, 2))).astype(np.float32)
    image[:10] = 0.0
    image[:5] = -0.0
    out = rescale_intensities(image)
    np.testing.assert_array_equal(out.view(np.uint32), rescale_intensities_by_arrays(image).view(np.uint32))
    assert np.signbit(out[:5]).all() and not np.signbit(out[5:10]).any()


def test_channel_by_channel_from_threads_equals_all_at_once() -> None:
    """ChannelRescaler, fed one channel at a time from several threads in any order, gives
    rescale_intensities' numbers; a constant channel becomes 0."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    image = (rng.gamma(2.0, 50.0, size=(21, 17, 13, 4))).astype(np.float32)
    image[..., 2] = 7.0
    rescaler = ChannelRescaler()
    with pytest.raises(ValueError, match="at least one channel"):
        rescaler.output
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda c: rescaler(image, c), [3, 1, 0, 2]))
    np.testing.assert_array_equal(rescaler.output, rescale_intensities(image))
    assert (rescaler.output[..., 2] == 0).all()
