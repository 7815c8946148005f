"""The softening configuration: strict types, finite numbers and documented ranges, checked
before any work; and one ``softlabel soften`` option for each of its fields."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from pydantic import ValidationError

from softlabel.worker.cli import app
from softlabel.worker.engine.config import MAX_COMPACTNESS, MAX_N_SEGMENTS, MAX_SIGMA, SofteningConfig
from softlabel.worker.engine.errors import InputError
from softlabel.worker.engine.pipeline import soften_arrays


@pytest.mark.parametrize(("field", "value", "message"), [
    ("n_segments", True, "valid integer"),  # a bool is no count
    ("n_segments", 2000.0, "valid integer"),
    ("n_segments", "2000", "valid integer"),
    ("n_segments", MAX_N_SEGMENTS + 1, "less than or equal"),
    ("normalize", "yes", "valid boolean"),
    ("normalize", 1, "valid boolean"),
    ("compactness", float("inf"), "finite number"),
    ("compactness", float("nan"), "finite number"),
    ("compactness", 1e308, "less than or equal"),
    ("compactness", 0, "greater than 0"),
    ("sigma", 1e6, "less than or equal"),
    ("eps", 1.5, "less than or equal"),
    ("max_num_iter", 1000, "less than or equal"),
])  # fmt: skip
def test_out_of_range_or_mistyped_parameters_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        SofteningConfig(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_json_with_non_finite_numbers_is_refused() -> None:
    with pytest.raises(ValidationError, match="finite number"):
        SofteningConfig.model_validate_json('{"compactness": Infinity}')
    assert SofteningConfig.model_validate_json('{"compactness": 1, "sigma": 2}').compactness == 1.0  # int for float is fine


def test_the_ranges_hold_the_defaults_and_their_edges() -> None:
    config = SofteningConfig(n_segments=MAX_N_SEGMENTS, compactness=MAX_COMPACTNESS, sigma=MAX_SIGMA, eps=0, max_num_iter=1)
    assert config.n_segments == MAX_N_SEGMENTS and SofteningConfig().n_segments <= MAX_N_SEGMENTS


def test_more_superpixels_than_voxels_is_bad_input() -> None:
    label = np.zeros((4, 5, 3), dtype=np.uint8)
    label[2:] = 1
    image = np.random.default_rng(0).random((4, 5, 3, 1), dtype=np.float32)
    with pytest.raises(InputError, match=r"n_segments: expected at most the study's 60 voxels, got 61"):
        soften_arrays(image, label, config=SofteningConfig(n_segments=61), num_classes=2, spacing_mm=(1.0, 1.0, 1.0),
                      backend="cpu")  # fmt: skip


def test_softlabel_soften_has_an_option_for_every_configuration_field() -> None:
    (soften,) = [command for command in app.registered_commands if command.callback.__name__ == "soften"]
    options = set(inspect.signature(soften.callback).parameters)
    assert set(SofteningConfig.model_fields) <= options, set(SofteningConfig.model_fields) - options
