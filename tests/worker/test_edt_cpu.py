"""The Numba distance transform against SciPy's on odd, anisotropic shapes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from worker.edt_cpu import distance_transform_edt


@pytest.mark.parametrize(
    ("shape", "sampling", "density"),
    [((1,), None, 0.5), ((9,), None, 0.3), ((31, 17), None, 0.05), ((31, 17), (0.7, 1.9), 0.05),
     ((23, 19, 11), None, 0.01), ((23, 19, 11), (1.2, 0.9, 2.5), 0.01), ((40, 3, 5), (3.0, 1.0, 1.0), 0.002)],
)  # fmt: skip
def test_matches_scipy(shape: tuple[int, ...], sampling: tuple | None, density: float) -> None:
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    features_absent = rng.random(shape) > density
    features_absent.flat[rng.integers(features_absent.size)] = False  # at least one feature
    ours = distance_transform_edt(features_absent, sampling)
    expected = ndimage.distance_transform_edt(features_absent, sampling=sampling)
    if sampling is None:
        np.testing.assert_array_equal(ours, expected)
    else:
        np.testing.assert_allclose(ours, expected, rtol=1e-14, atol=0)


def test_no_feature_gives_inf_and_bad_sampling_is_rejected() -> None:
    assert np.isinf(distance_transform_edt(np.ones((3, 4), bool))).all()
    with pytest.raises(ValueError, match="sampling: expected 2 values"):
        distance_transform_edt(np.ones((3, 4), bool), (1.0,))
