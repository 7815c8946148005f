"""Native SLIC on the CPU: the compiled version equals the NumPy twin, bit for bit.

Also: the output contract, a hand-checked example, the tie rule, the
connectivity rule, argument errors, and the quality ratios against
scikit-image on a small phantom. The cases and oracles are in ``helpers.slic_cases``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import slic

from helpers.slic_cases import TWO_CELLS, blob_mask, float32_oracle, midway_state, permuted_pairs, phantom, scrambled
from softlabel.worker.engine.superpixels.native_slic import connectivity as compiled_connectivity
from softlabel.worker.engine.superpixels.native_slic import cpu, native_slic, reference
from softlabel.worker.engine.superpixels.native_slic.driver import run_kmeans, slic_with
from softlabel.worker.engine.superpixels.native_slic.grid import make_grid
from softlabel.worker.engine.superpixels.native_slic.quality import boundary_recall, undersegmentation_error

CASES = [  # shape, channels, spacing (mm), n_segments, compactness
    ((17, 23, 11), 3, (1.0, 0.8, 2.5), 40, 0.1),
    ((17, 23, 11), 1, (1.0, 0.8, 2.5), 12, 1.0),
    ((9, 31, 20), 2, None, 60, 0.05),
    ((31, 29), 3, (0.7, 1.3), 30, 0.1),
    ((40, 37), 1, None, 25, 3.0),
    ((5, 7, 3), 2, (2.0, 1.0, 1.0), 500, 0.1),  # more segments than voxels
]


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("connect", [False, True])
@pytest.mark.parametrize("shape, channels, spacing, n_segments, compactness", CASES)
def test_compiled_equals_reference(shape, channels, spacing, n_segments, compactness, use_mask, connect):
    image = phantom(shape, channels, seed=len(shape) * 7 + channels)
    mask = blob_mask(shape, seed=3) if use_mask else None
    kwargs = dict(n_segments=n_segments, compactness=compactness, spacing=spacing, mask=mask,
                  enforce_connectivity=connect)
    expected = slic_with(reference, image, **kwargs)
    got = native_slic(image, **kwargs)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("scramble", [False, True])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("shape, channels, spacing", [((17, 23, 11), 3, (1.0, 0.8, 2.5)), ((33, 26), 2, (1.0, 1.0)),
                                                      ((17, 23, 11), 1, (1.0, 1.0, 1.0)), ((9, 12, 10), 6, (1.0, 1.0, 1.0))])
def test_steps_equal_given_the_same_centres(shape, channels, spacing, use_mask, scramble):
    image, mask, grid, weight, centres, labels = midway_state(shape, channels, spacing, 30, use_mask)
    if scramble:
        centres = scrambled(centres, grid, seed=channels)
    ref_labels, cpu_labels = labels.copy(), labels.copy()
    ref_changed = reference.assign(image, mask, centres, grid, weight, ref_labels)
    cpu_changed = cpu.assign(image, mask, centres, grid, weight, cpu_labels)
    np.testing.assert_array_equal(cpu_labels, ref_labels)
    assert cpu_changed == ref_changed
    np.testing.assert_array_equal(cpu.centre_sums(image, ref_labels, len(centres)),
                                  reference.centre_sums(image, ref_labels, len(centres)))
    np.testing.assert_array_equal(cpu.update_centres(image, ref_labels, centres),
                                  reference.update_centres(image, ref_labels, centres))


@pytest.mark.parametrize("channels", [1, 4, 5])
def test_centre_sums_round_as_the_twin(channels):
    """Values over 30 orders of magnitude make float64 sums round, so only the same order of
    additions gives the same sums: with runs of equal labels and lone voxels, 1 to 5 channels,
    the compiled sums are the twin's bit for bit."""
    rng = np.random.default_rng(channels)
    shape = (6, 9, 40)
    image = (10.0 ** rng.uniform(-30, 0, size=shape + (channels,))).astype(np.float32)
    runs = rng.integers(0, 7, size=shape[:2] + (8,)).repeat(5, axis=2)
    labels = np.where(rng.random(shape) < 0.2, rng.integers(-1, 7, size=shape), runs).astype(np.int32)
    sums = cpu.centre_sums(image, labels, 7)
    np.testing.assert_array_equal(sums, reference.centre_sums(image, labels, 7))
    flat, colours = labels.reshape(-1), image.reshape(-1, channels).astype(np.float64)
    exact = [[math.fsum(colours[flat == k, c]) for c in range(channels)] for k in range(7)]
    assert not np.array_equal(sums[:, 4:], exact)  # the sums do round: their order matters


def test_assign_is_the_plain_nearest_candidate():
    """Oracle written out per voxel: min over the centres whose seed s lies within a grid step of
    it along each axis, ``-step <= i - s < step`` (or past the last seed): at most 8."""
    image, mask, grid, weight, centres, labels = midway_state((9, 12, 7), 2, (1.0, 0.8, 2.5), 20, False)
    got = labels.copy()
    reference.assign(image, mask, centres, grid, weight, got)
    g = grid.cell_centre.shape
    seeds = [range(a, a + s * n, s) for a, s, n in zip(grid.start, grid.step, g)]
    n_candidates = set()
    for idx in np.ndindex(grid.shape):
        best, best_k, n_cand = np.inf, -1, 0
        for q in np.ndindex(g):
            offsets = [i - seeds[a][qa] for a, (i, qa) in enumerate(zip(idx, q))]
            if not all(-t <= o < t or (qa == n - 1 and o >= 0) for o, t, qa, n in zip(offsets, grid.step, q, g)):
                continue
            n_cand += 1
            k = grid.cell_centre[tuple(q)]
            d_space = sum(((i - centres[k, a]) * grid.spacing_mm[a]) ** 2 for a, i in enumerate(idx))
            d = float(np.sum((image[idx] - centres[k, 3:]) ** 2)) + float(weight) * d_space
            if d < best - 1e-6:
                best, best_k = d, k
        n_candidates.add(n_cand)
        assert got[idx] == best_k, idx
    assert max(n_candidates) == 8 and min(n_candidates) < 8  # inner voxels and edges


def test_two_flat_halves():
    """Hand-checked: two seeds at columns 2 and 7; colour splits the image at column 4."""
    image = np.zeros((6, 8, 1), dtype=np.float32)
    image[:, 4:] = 1.0
    expected = np.zeros((6, 8), dtype=np.int32)
    expected[:, 4:] = 1
    for got in (slic_with(reference, image, n_segments=2, compactness=0.1), native_slic(image, n_segments=2, compactness=0.1)):
        np.testing.assert_array_equal(got, expected)
    sk = slic(image, n_segments=2, compactness=0.1, channel_axis=-1, convert2lab=False, start_label=0)
    np.testing.assert_array_equal(sk, expected)


def test_exact_ties_go_to_the_lowest_centre_index():
    """Centres 0 and 1 are mirror images around column 2 with the same colour."""
    image = np.full((1, 1, 5, 1), 0.5, dtype=np.float32)
    grid = make_grid((1, 5), (1.0, 1.0), 2)
    assert grid.cell_centre.tolist() == [[[0, 1]]]
    centres = np.array([[0, 0, 1, 0.5], [0, 0, 3, 0.5]], dtype=np.float32)
    for impl in (reference, cpu):
        labels = np.full((1, 1, 5), -1, dtype=np.int32)
        impl.assign(image, None, centres, grid, np.float32(0.01), labels)
        assert labels.ravel().tolist() == [0, 0, 0, 1, 1]


def test_rounding_decides_ties_identically():
    """Bit-identical arithmetic, not just close: any other order of additions fails here."""
    n_differ = 0
    for image, centres in permuted_pairs(300, seed=0):
        expected = float32_oracle(image, centres, TWO_CELLS, np.float32(0.7))
        n_differ += expected[0, 0, 0] == 1  # centre 1 strictly closer after rounding
        for impl in (reference, cpu):
            labels = np.full(TWO_CELLS.shape, -1, dtype=np.int32)
            impl.assign(image, None, centres, TWO_CELLS, np.float32(0.7), labels)
            np.testing.assert_array_equal(labels, expected)
    assert 10 < n_differ < 290  # the cases do exercise rounding both ways


def test_output_contract():
    shape = (17, 23, 11)
    image = phantom(shape, 2, seed=1)
    mask = blob_mask(shape, seed=2)
    labels = native_slic(image, n_segments=40, compactness=0.1, spacing=(1.0, 0.8, 2.5), mask=mask)
    assert labels.dtype == np.int32 and labels.shape == shape
    assert (labels[~mask] == -1).all() and (labels[mask] >= 0).all()
    np.testing.assert_array_equal(np.unique(labels[mask]), np.arange(labels.max() + 1))
    for k in range(labels.max() + 1):  # each superpixel is face-connected
        assert ndimage.label(labels == k)[1] == 1


def test_small_fragments_are_merged():
    shape = (24, 30, 16)
    image = phantom(shape, 3, seed=4)
    n_segments, min_size_factor = 50, 0.5
    labels = native_slic(image, n_segments=n_segments, compactness=0.05, min_size_factor=min_size_factor)
    grid = make_grid(shape, (1.0, 1.0, 1.0), n_segments)
    min_size = int(min_size_factor * labels.size / grid.n_centres)
    sizes = np.bincount(labels.ravel())
    # without a mask only the segment holding voxel 0 can lack an earlier neighbour
    assert (sizes[1:] >= min_size).all()


def test_connectivity_rule_by_hand():
    """1 x 1 x 7 labels: the lone '1' (size 1) joins its earlier neighbour."""
    labels = np.array([0, 0, 0, 1, 2, 2, 2], dtype=np.int32).reshape(1, 1, 7)
    for impl in (reference, compiled_connectivity):
        assert impl.enforce_connectivity(labels, 2).ravel().tolist() == [0, 0, 0, 0, 1, 1, 1]
        assert impl.enforce_connectivity(labels, 1).ravel().tolist() == [0, 0, 0, 1, 2, 2, 2]
    # a split label becomes two segments; the most-shared-faces neighbour wins
    labels = np.array([[0, 0, 1, 1], [2, 2, 2, 1], [0, 2, 2, 1]], dtype=np.int32)[None]
    for impl in (reference, compiled_connectivity):
        out = impl.enforce_connectivity(labels, 2)
        assert out[0].tolist() == [[0, 0, 1, 1], [2, 2, 2, 1], [2, 2, 2, 1]]


def test_connectivity_matches_on_random_label_maps():
    rng = np.random.default_rng(0)
    for _ in range(25):
        shape = tuple(int(s) for s in rng.integers(1, 12, size=3))
        labels = rng.integers(-1, int(rng.integers(1, 6)), size=shape).astype(np.int32)
        for min_size in (0, 1, 2, 4, 30):
            np.testing.assert_array_equal(compiled_connectivity.enforce_connectivity(labels, min_size),
                                          reference.enforce_connectivity(labels, min_size))


THREAD_CHECK = """
import sys
import numpy as np
from softlabel.worker.engine.superpixels.native_slic import native_slic, connectivity
image, labels = np.load(sys.argv[1] + "/image.npy"), np.load(sys.argv[1] + "/labels.npy")
np.save(sys.argv[1] + "/slic.npy", native_slic(image, n_segments=60, compactness=0.1, spacing=(1.0, 0.8, 2.5)))
np.save(sys.argv[1] + "/connected.npy", connectivity.enforce_connectivity(labels, 3))
"""


@pytest.mark.parametrize("threads", ["1", "3", "7"])
def test_compiled_results_do_not_depend_on_the_thread_count(threads: str, tmp_path) -> None:
    """The OpenMP splits (cell rows, connectivity slabs, reduction blocks) change no number."""
    import os
    import subprocess
    import sys

    image = phantom((23, 19, 13), 2, seed=5)
    labels = np.random.default_rng(5).integers(-1, 3, size=(23, 19, 13)).astype(np.int32)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "labels.npy", labels)
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    subprocess.run([sys.executable, "-c", THREAD_CHECK, str(tmp_path)], env=env, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "slic.npy"),
                                  native_slic(image, n_segments=60, compactness=0.1, spacing=(1.0, 0.8, 2.5)))
    np.testing.assert_array_equal(np.load(tmp_path / "connected.npy"), reference.enforce_connectivity(labels, 3))


def test_loop_stops_when_labels_settle():
    image, mask, grid, weight, *_ = midway_state((12, 10, 8), 1, (1.0, 1.0, 1.0), 8, False)
    once = run_kmeans(reference, image, mask, grid, weight, 50)
    again = run_kmeans(cpu, image, mask, grid, weight, 50)
    np.testing.assert_array_equal(once, again)
    centres = reference.update_centres(image, once, grid.initial_centres(1))  # fixed point
    labels = once.copy()
    assert not reference.assign(image, mask, centres, grid, weight, labels)


def test_gpu_backend_rejects_numpy_and_cpu_rejects_other_arrays():
    image = phantom((8, 9), 1, seed=0)
    with pytest.raises(TypeError, match="expected a cupy.ndarray image for backend 'gpu'"):
        native_slic(image, n_segments=4, compactness=0.1, backend="gpu")
    with pytest.raises(TypeError, match="expected a numpy.ndarray image for backend 'cpu'"):
        native_slic(image.tolist(), n_segments=4, compactness=0.1)


GOOD = dict(n_segments=4, compactness=0.1)
BAD_ARGUMENTS = [
    (np.zeros((8, 9), np.float32), {}, "expected image of shape"),
    (np.zeros((2, 3, 4, 5, 1), np.float32), {}, "expected image of shape"),
    (np.zeros((8, 9, 1), np.float32), {"spacing": (1.0, 1.0, 1.0)}, "expected spacing with 2 values"),
    (np.zeros((8, 9, 1), np.float32), {"spacing": (1.0, 0.0)}, "expected positive finite spacing"),
    (np.zeros((8, 9, 1), np.float32), {"n_segments": 0}, "expected integer n_segments >= 1"),
    (np.zeros((8, 9, 1), np.float32), {"n_segments": 2.5}, "expected integer n_segments >= 1"),
    (np.zeros((8, 9, 1), np.float32), {"compactness": 0.0}, "expected finite compactness > 0"),
    (np.zeros((8, 9, 1), np.float32), {"max_num_iter": 0}, "expected integer max_num_iter >= 1"),
    (np.zeros((8, 9, 1), np.float32), {"min_size_factor": -1.0}, "expected min_size_factor >= 0"),
    (np.zeros((8, 9, 1), np.float32), {"mask": np.ones((8, 8), bool)}, "expected mask of the spatial shape"),
    (np.zeros((8, 9, 1), np.float32), {"mask": np.zeros((8, 9), bool)}, "expected a mask with at least one"),
    (np.full((8, 9, 1), np.nan, np.float32), {}, "expected finite image values"),
    (np.zeros((8, 9, 1), np.float32), {"backend": "tpu"}, "expected backend in"),
]


@pytest.mark.parametrize("image, override, message", BAD_ARGUMENTS)
def test_bad_arguments(image, override, message):
    with pytest.raises(ValueError, match=message):
        native_slic(image, **(GOOD | override))


def test_bad_types():
    with pytest.raises(TypeError, match="expected a bool mask"):
        native_slic(np.zeros((8, 9, 1), np.float32), mask=np.ones((8, 9), np.uint8), **GOOD)
    with pytest.raises(TypeError, match="expected a real image dtype"):
        native_slic(np.zeros((8, 9, 1), np.complex64), **GOOD)


def test_quality_within_five_percent_of_skimage():
    """Boundary recall >= 0.95x and undersegmentation error <= 1.05x scikit-image's."""
    rng = np.random.default_rng(7)
    shape = (30, 48, 44)
    field = ndimage.gaussian_filter(rng.random(shape), 3.0)
    truth = np.digitize(field, np.quantile(field, [0.25, 0.5, 0.75]))
    means = rng.uniform(0.1, 0.9, size=(2, 4))
    image = np.stack([means[c][truth] for c in range(2)], -1)
    image = np.clip(ndimage.gaussian_filter(image, (0.7, 0.7, 0.7, 0)) + rng.normal(0, 0.04, image.shape), 0, 1)
    image = image.astype(np.float32)
    ours = native_slic(image, n_segments=300, compactness=0.1)
    theirs = slic(image, n_segments=300, compactness=0.1, channel_axis=-1, convert2lab=False, start_label=0)
    br_ratio = boundary_recall(ours, truth) / boundary_recall(theirs, truth)
    ue_ratio = undersegmentation_error(ours, truth) / undersegmentation_error(theirs, truth)
    assert br_ratio >= 0.95, br_ratio
    assert ue_ratio <= 1.05, ue_ratio


def test_quality_metrics_by_hand():
    truth = np.array([[0, 0, 1, 1]] * 3)
    perfect = np.array([[0, 0, 1, 1]] * 3)
    shifted = np.array([[0, 1, 1, 1]] * 3)  # one column of class 0 leaks into segment 1
    assert boundary_recall(perfect, truth) == 1.0
    assert undersegmentation_error(perfect, truth) == 0.0
    assert boundary_recall(shifted, truth) == 1.0  # within 1 voxel
    # segment 1 (9 voxels): min(3, 6) for class 0 + min(6, 3) for class 1 = 6 of 12 voxels
    assert undersegmentation_error(shifted, truth) == pytest.approx(6 / 12)
    far = np.array([[0, 0, 0, 0, 1, 1]] * 2)
    assert boundary_recall(np.zeros_like(far), far) == 0.0


class Abandon(Exception):
    """What a caller's checkpoint raises to abandon the computation."""


def recording_steps(log: list[str]) -> SimpleNamespace:
    """The compiled CPU steps, each logging its name before it runs."""

    def logged(name, step):
        def run(*args):
            log.append(name)
            return step(*args)

        return run

    return SimpleNamespace(assign=logged("assign", cpu.assign), update_centres=logged("update", cpu.update_centres),
                           enforce_connectivity=logged("connectivity", cpu.enforce_connectivity))


def test_a_checkpoint_comes_before_every_step():
    log: list[str] = []
    image = phantom((19, 17, 13), 2, seed=3)
    slic_with(recording_steps(log), image, n_segments=20, compactness=0.1, max_num_iter=5,
              checkpoint=lambda: log.append("checkpoint"))
    rounds = log.count("assign")
    assert rounds >= 2 and log[-1] == "connectivity"
    assert log[0::2] == ["checkpoint"] * (len(log) // 2)
    assert log[1::2] == ["assign", "update"] * (rounds - 1) + ["assign", "connectivity"]


def test_a_raising_checkpoint_abandons_the_loop_before_its_next_step():
    log: list[str] = []

    def checkpoint() -> None:
        log.append("checkpoint")
        if log.count("checkpoint") == 3:
            raise Abandon

    with pytest.raises(Abandon):
        slic_with(recording_steps(log), phantom((19, 17, 13), 2, seed=3), n_segments=20, compactness=0.1,
                  max_num_iter=5, checkpoint=checkpoint)
    assert log == ["checkpoint", "assign", "checkpoint", "update", "checkpoint"]
