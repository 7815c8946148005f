"""hard, smoothing, gaussian and SVLS softeners, per-voxel normalisation and the config."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from helpers.studies import random_label
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.softening.softeners import soften_label, svls_kernel

SPACING_3D = (1.5, 1.0, 3.0)


def test_hard_is_one_hot() -> None:
    label = np.array([[0, 2], [1, 2]])
    soft = soften_label(label, config=SofteningConfig(method="hard"), num_classes=4, spacing_mm=(1, 1))
    expected = np.array([[[1, 0, 0, 0], [0, 0, 1, 0]], [[0, 1, 0, 0], [0, 0, 1, 0]]], dtype=np.float32)
    np.testing.assert_array_equal(soft, expected)


def test_smoothing_by_hand() -> None:
    label = np.array([[0, 1, 2]])
    soft = soften_label(label, config=SofteningConfig(method="smoothing", eps=0.3), num_classes=3, spacing_mm=(1, 1))
    # (1 - 0.3) * onehot + 0.3 / 3: 0.8 on the true class, 0.1 elsewhere
    np.testing.assert_allclose(soft[0, 1], [0.1, 0.8, 0.1], rtol=1e-6)
    np.testing.assert_allclose(soft.sum(-1), 1, rtol=1e-6)


def test_gaussian_in_voxels_matches_scipy_and_sums_to_one() -> None:
    label = random_label((19, 16, 9), 4, seed=0)
    soft = soften_label(label, config=SofteningConfig(method="gaussian", sigma=1.5), num_classes=5, spacing_mm=SPACING_3D)
    expected = ndimage.gaussian_filter((label == 2).astype(np.float32), 1.5, mode="nearest", truncate=4.0)
    np.testing.assert_allclose(soft[..., 2], expected, atol=1e-6)
    np.testing.assert_allclose(soft.sum(-1), 1, atol=1e-5)
    assert not soft[..., 4].any()  # absent class stays 0


def test_gaussian_sigma_in_mm_scales_per_axis() -> None:
    label = random_label((19, 16, 9), 3, seed=1)
    config = SofteningConfig(method="gaussian", sigma=3.0, distance="mm")
    soft = soften_label(label, config=config, num_classes=3, spacing_mm=SPACING_3D)
    sigma_vox = [3.0 / s for s in SPACING_3D]
    expected = ndimage.gaussian_filter((label == 1).astype(np.float32), sigma_vox, mode="nearest", truncate=4.0)
    np.testing.assert_allclose(soft[..., 1], expected, atol=1e-6)


def svls_by_hand(label: np.ndarray, num_classes: int, sigma: float) -> np.ndarray:
    """SVLS written out voxel by voxel: each voxel's 3^d neighbourhood (edge voxels repeated),
    Gaussian weights with the centre set to the others' sum, normalised; float64."""
    ndim = label.ndim
    offsets = [np.array(o) - 1 for o in np.ndindex((3,) * ndim)]
    raw = {tuple(o): np.exp(-(o**2).sum() / (2 * sigma**2)) for o in offsets}
    centre = (0,) * ndim
    raw[centre] = sum(w for o, w in raw.items() if o != centre)
    total = sum(raw.values())
    soft = np.zeros(label.shape + (num_classes,))
    for index in np.ndindex(label.shape):
        for offset, weight in raw.items():
            neighbour = tuple(min(max(i + o, 0), n - 1) for i, o, n in zip(index, offset, label.shape))
            soft[index + (label[neighbour],)] += weight / total
    return soft


def test_svls_kernel_by_hand() -> None:
    kernel = svls_kernel(2, 1.0)
    side, corner = np.exp(-0.5), np.exp(-1.0)  # 4 of each around the centre
    others = 4 * side + 4 * corner
    np.testing.assert_allclose(kernel[1, 1], others / (2 * others))  # the centre keeps half
    np.testing.assert_allclose(kernel[0, 1], side / (2 * others))
    np.testing.assert_allclose(kernel[0, 0], corner / (2 * others))
    assert svls_kernel(3, 1.0).shape == (3, 3, 3) and np.isclose(svls_kernel(3, 2.0).sum(), 1)


@pytest.mark.parametrize(("shape", "sigma"), [((9, 7), 1.0), ((7, 6, 5), 1.0), ((6, 5, 4), 2.0)])
def test_svls_equals_the_direct_reference(shape: tuple[int, ...], sigma: float) -> None:
    label = random_label(shape, 4, seed=len(shape))
    soft = soften_label(label, config=SofteningConfig(method="svls", sigma=sigma), num_classes=5, spacing_mm=(1.0,) * len(shape))
    assert soft.dtype == np.float32
    np.testing.assert_allclose(soft, svls_by_hand(label, 5, sigma), atol=1e-6)
    np.testing.assert_allclose(soft.sum(-1), 1, atol=1e-5)
    assert not soft[..., 4].any()


def test_svls_uses_sigma_and_normalize_only() -> None:
    config = SofteningConfig(method="svls", sigma=1.5, n_segments=10, distance="mm")
    assert config.output_params() == {"method": "svls", "dtype": "uint8", "sigma": 1.5, "normalize": False}


def test_normalize_divides_by_sum() -> None:
    label = np.array([[0, 0, 1, 1, 1]])
    superpixels = np.zeros_like(label)
    raw = soften_label(label, config=SofteningConfig(), num_classes=2, spacing_mm=(1, 1), superpixels=superpixels)
    normed = soften_label(
        label, config=SofteningConfig(normalize=True), num_classes=2, spacing_mm=(1, 1), superpixels=superpixels
    )
    np.testing.assert_allclose(normed, raw / raw.sum(-1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(normed.sum(-1), 1, rtol=1e-6)


def test_superpixel_method_needs_superpixels() -> None:
    with pytest.raises(ValueError, match="expected a superpixel map"):
        soften_label(np.zeros((2, 2), int), config=SofteningConfig(), num_classes=2, spacing_mm=(1, 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "blur"}, "method"),
        ({"n_segments": 0}, "n_segments"),
        ({"compactness": 0}, "compactness"),
        ({"eps": 1.5}, "eps"),
        ({"sigma": -1}, "sigma"),
        ({"distance": "cm"}, "distance"),
        ({"dtype": "int16"}, "dtype"),
        ({"method": "hard", "normalize": True}, "normalize"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_config_rejects_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        SofteningConfig(**kwargs)


def test_output_key_ignores_other_methods_parameters() -> None:
    a = SofteningConfig(method="gaussian", sigma=2.0, n_segments=100)
    b = SofteningConfig(method="gaussian", sigma=2.0, n_segments=3000)
    c = SofteningConfig(method="gaussian", sigma=2.5)
    assert a.output_key() == b.output_key() != c.output_key()


@pytest.mark.parametrize(
    ("config", "stored_dtype"),
    [
        (SofteningConfig(method="superpixel"), np.uint8),
        (SofteningConfig(method="hard"), np.uint8),
        (SofteningConfig(method="superpixel", dtype="float32"), np.float32),
        (SofteningConfig(method="superpixel", normalize=True), np.float32),
        (SofteningConfig(method="smoothing", eps=0.1), np.float32),
    ],
)
def test_as_stored_gives_uint8_straight_away_only_where_it_is_exact(config: SofteningConfig, stored_dtype) -> None:
    from softlabel.worker.engine.io.nifti import quantize_soft_labels

    label = random_label((14, 12, 9), 4, seed=7)
    superpixels = (np.indices(label.shape) // 3).sum(axis=0).astype(np.int32)
    kwargs = dict(config=config, num_classes=4, spacing_mm=(1.0, 1.0, 2.0), superpixels=superpixels)
    stored = soften_label(label, as_stored=True, **kwargs)
    assert stored.dtype == stored_dtype
    expected = quantize_soft_labels(soften_label(label, **kwargs), config.dtype)
    np.testing.assert_array_equal(quantize_soft_labels(stored, config.dtype), expected)
