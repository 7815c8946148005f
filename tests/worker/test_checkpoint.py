"""Checkpoints: the long stages call them within, and a raising one abandons the study promptly."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter

import numpy as np
import pytest

from helpers.studies import SPACING, image_from_label, random_label
from softlabel.worker.engine.checkpoint import for_each
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.intensity import rescale_intensities
from softlabel.worker.engine.pipeline import soften_arrays
from softlabel.worker.engine.superpixels.compute import compute_superpixels

K = 4


class Abandon(Exception):
    """What a caller's checkpoint raises to abandon the study."""


@pytest.fixture(scope="module")
def study() -> tuple[np.ndarray, np.ndarray]:
    label = random_label((17, 19, 11), K, seed=1)
    return image_from_label(label, 3, seed=2), label


@pytest.mark.parametrize(
    ("config", "stages"),
    [
        (SofteningConfig(n_segments=20), {"rescale": 3, "superpixels": None, "soften": K}),
        (SofteningConfig(n_segments=20, distance="mm"), {"rescale": 3, "superpixels": None, "soften": K}),
        (SofteningConfig(method="gaussian", sigma=2.0), {"soften": K}),
        (SofteningConfig(method="svls"), {"soften": K}),
    ],
    ids=["superpixel", "superpixel-mm", "gaussian", "svls"],
)
def test_the_long_stages_call_checkpoints_within(study, config, stages) -> None:
    """One checkpoint per channel, per SLIC step and per class, in the stage that loops."""
    image, label = study
    stage: list[str] = []
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def checkpoint() -> None:
        with lock:  # classes and channels call from threads
            seen[stage[-1]] += 1

    soften_arrays(image, label, config=config, num_classes=K, spacing_mm=SPACING, backend="cpu",
                  progress=lambda name, fraction: stage.append(name), checkpoint=checkpoint)  # fmt: skip
    assert set(seen) == set(stages)
    for name, count in stages.items():
        assert seen[name] >= 4 if count is None else seen[name] == count, (name, seen)


@pytest.mark.parametrize("method", ["superpixel", "gaussian", "svls"])
def test_a_raising_checkpoint_abandons_the_study(study, method) -> None:
    image, label = study
    calls: list[int] = []

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) >= 2:  # like the job's: once stopped, every later call raises
            raise Abandon

    with pytest.raises(Abandon):
        soften_arrays(image, label, config=SofteningConfig(method=method, n_segments=20), num_classes=K,
                      spacing_mm=SPACING, backend="cpu", checkpoint=checkpoint)  # fmt: skip


def test_for_each_drops_the_items_not_started_once_one_raises() -> None:
    started: list[int] = []
    checks: list[int] = []

    def checkpoint() -> None:
        checks.append(1)
        if len(checks) == 1:  # only the first call raises: the items after it must not wait for their turn
            raise Abandon

    def work(item: int) -> None:
        started.append(item)
        time.sleep(0.2)

    begin = time.monotonic()
    with pytest.raises(Abandon):
        for_each(work, range(20), threads=2, checkpoint=checkpoint)
    assert len(started) <= 3 and time.monotonic() - begin < 2.0, started  # all 20 would take 2 s on 2 threads


def test_for_each_runs_every_item_in_threads() -> None:
    done: list[int] = []
    for_each(done.append, range(7), threads=3, checkpoint=lambda: None)
    assert sorted(done) == list(range(7))


def test_scikit_image_slic_runs_in_a_child_that_a_checkpoint_can_kill(study) -> None:
    image, _ = study
    rescaled = rescale_intensities(image)
    args = dict(n_segments=20, compactness=0.1, spacing=SPACING, slic="skimage", max_num_iter=10)
    calls: list[int] = []
    in_child = compute_superpixels(rescaled, checkpoint=lambda: calls.append(1), **args)
    np.testing.assert_array_equal(in_child, compute_superpixels(rescaled, **args))  # same labels as in this process

    def abandon() -> None:
        raise Abandon

    with pytest.raises(Abandon):
        compute_superpixels(rescaled, checkpoint=abandon, **args)
    assert multiprocessing.active_children() == []  # killed and reaped


def test_a_failing_scikit_image_slic_raises_its_error_from_the_child(study) -> None:
    image, _ = study
    with pytest.raises(ValueError):  # scikit-image refuses a spacing of the wrong length
        compute_superpixels(rescale_intensities(image), n_segments=20, compactness=0.1, spacing=(1.0, 1.0),
                            slic="skimage", checkpoint=lambda: None)  # fmt: skip
