"""The engine on the GPU against the CPU: same numbers from the same superpixel map.

Skipped, with the reason, where CuPy has no CUDA device. Tolerances: float32 soft labels
within 1e-5 (cuCIM's distance transform is float32, the CPU's float64); uint8 equal except
where 255 q lies within 1e-3 of a rounding tie (x.5), where the two may round apart by 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.studies import image_from_label, random_label
from softlabel.worker.engine.backend import gpu_unavailable_reason, release_device_memory
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.intensity import rescale_intensities
from softlabel.worker.engine.io.nifti import quantize_soft_labels
from softlabel.worker.engine.pipeline import soften_arrays

pytestmark = pytest.mark.gpu
SPACING = (1.2, 0.9, 2.0)


@pytest.fixture(scope="module")
def cp():
    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    import cupy

    return cupy


def _study(seed: int = 0, shape=(37, 29, 17), classes: int = 9):
    label = random_label(shape, classes, seed=seed)
    image = image_from_label(label, 3, seed=seed + 1)
    superpixels = (np.indices(shape) // np.array([5, 4, 3])[:, None, None, None]).sum(axis=0) % 97
    return image, label, superpixels.astype(np.int32)


@pytest.mark.parametrize(
    "config",
    [SofteningConfig(), SofteningConfig(distance="mm"), SofteningConfig(normalize=True),
     SofteningConfig(method="gaussian", sigma=1.5, distance="mm"), SofteningConfig(method="smoothing"),
     SofteningConfig(method="hard"), SofteningConfig(method="svls", sigma=1.5)],
)  # fmt: skip
def test_gpu_soft_labels_match_cpu(cp, config: SofteningConfig) -> None:
    image, label, superpixels = _study()
    kwargs = {"config": config, "num_classes": 10, "spacing_mm": SPACING, "superpixels": superpixels}
    cpu = soften_arrays(image, label, backend="cpu", **kwargs).soft
    gpu = soften_arrays(image, label, backend="gpu", **kwargs)
    assert gpu.backend == "gpu" and isinstance(gpu.soft, cp.ndarray)
    np.testing.assert_allclose(gpu.soft.get(), cpu, atol=1e-5, rtol=0)
    stored_cpu = quantize_soft_labels(cpu, "uint8").astype(int)
    stored_gpu = quantize_soft_labels(gpu.soft, "uint8").get().astype(int)
    near_tie = np.abs((cpu * 255) % 1 - 0.5) < 1e-3
    assert (np.abs(stored_gpu - stored_cpu) <= near_tie).all()


def test_gpu_intensity_rescaling_matches_cpu(cp) -> None:
    image, _, _ = _study(seed=3)
    np.testing.assert_allclose(rescale_intensities(cp.asarray(image)).get(), rescale_intensities(image), atol=1e-6)


def test_native_slic_pipeline_runs_on_the_device(cp) -> None:
    image, label, _ = _study(seed=5)
    config = SofteningConfig(slic="native", n_segments=60)
    result = soften_arrays(image, label, config=config, num_classes=10, spacing_mm=SPACING, backend="gpu")
    assert isinstance(result.superpixels, cp.ndarray) and isinstance(result.soft, cp.ndarray)
    assert set(result.timings_s) == {"rescale", "superpixels", "soften"}


def test_device_memory_is_released_between_studies(cp) -> None:
    image, label, superpixels = _study(seed=7)
    pool = cp.get_default_memory_pool()
    for _ in range(3):
        result = soften_arrays(image, label, config=SofteningConfig(), num_classes=10, spacing_mm=SPACING,
                               superpixels=superpixels, backend="gpu")  # fmt: skip
        del result
        release_device_memory("gpu")
        assert pool.total_bytes() == 0


def test_gpu_distances_are_float32_from_the_named_transform(cp) -> None:
    from softlabel.worker.engine.softening.distance_transform import distance_to_features, gpu_edt_info

    features_absent = cp.ones((9, 8, 7), dtype=bool)
    features_absent[4, 4, 3] = False
    distances = distance_to_features("gpu")(features_absent, (1.0, 1.0, 2.0))
    assert distances.dtype == cp.float32
    assert float(distances[4, 4, 5]) == pytest.approx(4.0) and float(distances[0, 4, 3]) == pytest.approx(4.0)
    info = gpu_edt_info()
    assert info["name"] in ("cucim", "cupyx") and info["version"]
