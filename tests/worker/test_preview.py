"""The preview shows the foreground class with the most softened voxels, in either stored form."""

from __future__ import annotations

import numpy as np
import pytest

from softlabel.worker.engine.preview import pick_class, pick_slice, render_preview


def soft_labels(counts: dict[int, int], shape=(9, 8, 7), num_classes=5, seed=0) -> np.ndarray:
    """uint8 (shape, K) one-hot of class 0 with ``counts[c]`` voxels softened between 0 and c."""
    rng = np.random.default_rng(seed)
    soft = np.zeros(shape + (num_classes,), np.uint8)
    soft[..., 0] = 255
    voxels = rng.permutation(np.prod(shape))
    start = 0
    for c, n in counts.items():
        where = np.unravel_index(voxels[start : start + n], shape)
        soft[where + (0,)], soft[where + (c,)] = 155, 100
        start += n
    return soft


def softened_by_count(soft: np.ndarray, top: float) -> np.ndarray:
    return np.array([np.count_nonzero((soft[..., c] > 0) & (soft[..., c] < top)) for c in range(soft.shape[-1])])


@pytest.mark.parametrize("counts, expected", [({1: 5, 3: 40, 4: 39}, 3), ({2: 1}, 2), ({}, 1)])
def test_the_class_with_most_softened_voxels_is_chosen_in_both_forms(counts, expected) -> None:
    soft = soft_labels(counts)
    assert pick_class(soft) == expected
    assert pick_class(soft.astype(np.float32) / 255) == expected
    assert pick_class(soft[..., [0, *range(1, soft.shape[-1])]].copy(order="F")) == expected  # any memory order
    if counts:
        assert softened_by_count(soft, 255)[expected] == max(counts.values())


def test_a_fully_certain_class_0_or_255_is_not_softened() -> None:
    soft = soft_labels({4: 3})
    soft[0, 0, 0, :] = [0, 255, 0, 0, 0]  # certain voxels count for nobody
    assert pick_class(soft) == 4 and pick_slice(soft[..., 4]) in range(soft.shape[2])


def test_render_preview_writes_a_png_of_the_chosen_class(tmp_path) -> None:
    soft = soft_labels({2: 30})
    label = soft.argmax(-1).astype(np.uint8)
    image = np.random.default_rng(1).random(label.shape + (1,)).astype(np.float32)
    shown = render_preview(image, label, soft, tmp_path / "p.png")
    assert shown[0] == 2 and (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
