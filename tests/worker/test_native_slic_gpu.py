"""Native SLIC on the GPU (CuPy kernels) against the CPU twin, step by step.

Skipped, with the reason, where CuPy or a CUDA device is missing. Expected
agreement: the assignment is bit-identical given the same centres; centre
counts and coordinates are exact and colours within one float32 ulp (float64
atomics add in any order); the connectivity pass (union-find kernels plus the
vectorised merge) equals the CPU passes exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from helpers.slic_cases import TWO_CELLS, float32_oracle, midway_state, permuted_pairs, phantom, scrambled
from softlabel.worker.engine.superpixels.native_slic import connectivity, cpu, native_slic, reference
from softlabel.worker.engine.superpixels.native_slic.driver import run_kmeans

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cp():
    """The cupy module, or a skip saying why the GPU tests cannot run."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed: GPU tests need cupy and a CUDA device")
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        pytest.skip(f"CuPy finds no usable CUDA device: {exc}")
    if n_devices == 0:
        pytest.skip("CuPy finds no CUDA device")
    return cupy


@pytest.fixture(scope="module")
def gpu(cp):
    from softlabel.worker.engine.superpixels.native_slic import gpu as gpu_module
    return gpu_module


STATES = [  # shape, channels, spacing, n_segments, mask
    ((17, 23, 11), 3, (1.0, 0.8, 2.5), 40, False),
    ((17, 23, 11), 1, (1.0, 1.0, 1.0), 40, True),
    ((61, 47), 2, (0.7, 1.3), 50, True),
    ((48, 96, 80), 3, (3.0, 0.96, 0.96), 400, False),
]


@pytest.mark.parametrize("scramble", [False, True], ids=["midway", "scrambled"])
@pytest.mark.parametrize("shape, channels, spacing, n_segments, use_mask", STATES)
def test_steps_match_the_twin(cp, gpu, shape, channels, spacing, n_segments, use_mask, scramble):
    image, mask, grid, weight, centres, labels = midway_state(shape, channels, spacing, n_segments, use_mask)
    if scramble:
        centres = scrambled(centres, grid, seed=n_segments)
    d_image, d_centres = cp.asarray(image), cp.asarray(centres)
    d_mask = None if mask is None else cp.asarray(mask)
    expected = labels.copy()
    expected_changed = cpu.assign(image, mask, centres, grid, weight, expected)
    d_labels = cp.asarray(labels)
    changed = gpu.assign(d_image, d_mask, d_centres, grid, weight, d_labels)
    np.testing.assert_array_equal(d_labels.get(), expected)
    assert changed == expected_changed
    sums = gpu.centre_sums(d_image, cp.asarray(expected), len(centres)).get()
    ref_sums = cpu.centre_sums(image, expected, len(centres))
    np.testing.assert_array_equal(sums[:, :4], ref_sums[:, :4])
    np.testing.assert_allclose(sums[:, 4:], ref_sums[:, 4:], rtol=1e-12)
    np.testing.assert_array_max_ulp(gpu.update_centres(d_image, cp.asarray(expected), d_centres).get(),
                                    cpu.update_centres(image, expected, centres), maxulp=1)


def test_rounding_decides_ties_identically(cp, gpu):
    for image, centres in permuted_pairs(300, seed=0):
        labels = cp.full(TWO_CELLS.shape, -1, dtype=cp.int32)
        gpu.assign(cp.asarray(image), None, cp.asarray(centres), TWO_CELLS, np.float32(0.7), labels)
        np.testing.assert_array_equal(labels.get(), float32_oracle(image, centres, TWO_CELLS, np.float32(0.7)))


def partition_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of voxels in the best-matching label of ``b`` for each label of ``a``.

    1.0 for the same partition under any renumbering; a connectivity renumbering
    after one flipped voxel barely moves it, unlike ``(a == b).mean()``.
    """
    pairs, counts = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_counts=True)
    best = {}
    for label, count in zip(pairs[0], counts):
        best[label] = max(best.get(label, 0), count)
    return sum(best.values()) / a.size


def test_kmeans_loop_matches_the_twin(cp, gpu):
    image, mask, grid, weight, *_ = midway_state((48, 96, 80), 3, (3.0, 0.96, 0.96), 400, False, iterations=0)
    expected = run_kmeans(cpu, image, mask, grid, weight, 10)
    got = run_kmeans(gpu, cp.asarray(image), mask, grid, weight, 10).get()
    assert (got == expected).mean() >= 0.99  # one-ulp centre colours may flip near-ties


@pytest.mark.parametrize("shape, n_labels", [((9, 12, 7), 4), ((1, 1, 300), 3), ((64, 70, 3), 2), ((40, 90, 80), 30)])
def test_connectivity_equals_the_cpu_pass(cp, gpu, shape, n_labels):
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.random(shape), 1.0)
    labels = np.digitize(noise, np.quantile(noise, np.linspace(0, 1, n_labels + 1)[1:-1])).astype(np.int32)
    labels[rng.random(shape) < 0.05] = -1
    np.testing.assert_array_equal(gpu.components(cp.asarray(labels)).get(), reference.components(labels))
    for min_size in (1, 5, 200):
        got = gpu.enforce_connectivity(cp.asarray(labels), min_size)
        assert isinstance(got, cp.ndarray)
        np.testing.assert_array_equal(got.get(), connectivity.enforce_connectivity(labels, min_size))


def test_connectivity_on_superpixels(cp, gpu):
    image, mask, grid, weight, *_ = midway_state((48, 96, 80), 3, (3.0, 0.96, 0.96), 400, False, iterations=0)
    labels = run_kmeans(cpu, image, mask, grid, weight, 10)
    got = gpu.enforce_connectivity(cp.asarray(labels), 50).get()
    np.testing.assert_array_equal(got, connectivity.enforce_connectivity(labels, 50))


@pytest.mark.parametrize("spatial", [(17, 23, 11), (61, 47)])
def test_native_slic_on_the_gpu(cp, spatial):
    image = phantom(spatial, 2, seed=3)
    mask = ndimage.gaussian_filter(np.random.default_rng(2).random(spatial), 2) > 0.45
    kwargs = dict(n_segments=40, compactness=0.1, mask=mask)
    expected = native_slic(image, **kwargs)
    got = native_slic(cp.asarray(image), backend="gpu", **(kwargs | {"mask": cp.asarray(mask)}))
    assert isinstance(got, cp.ndarray) and got.dtype == cp.int32 and got.shape == spatial
    got = got.get()
    assert (got[~mask] == -1).all()
    np.testing.assert_array_equal(np.unique(got[mask]), np.arange(got.max() + 1))
    assert partition_agreement(got, expected) >= 0.99


def test_gpu_argument_errors(cp):
    image = cp.zeros((8, 9, 1), dtype=cp.float32)
    with pytest.raises(TypeError, match="expected mask on the same device as image"):
        native_slic(image, n_segments=4, compactness=0.1, backend="gpu", mask=np.ones((8, 9), bool))
    with pytest.raises(TypeError, match="expected a numpy.ndarray image for backend 'cpu'"):
        native_slic(image, n_segments=4, compactness=0.1, backend="cpu")
