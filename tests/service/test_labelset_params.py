"""Labelset parameters out of range or of the wrong type are refused with 422 before anything
is queued: strict types, finite numbers, the engine configuration's ranges."""

from __future__ import annotations

import pytest
import redis
from rq import Queue

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("params_json", [
    '{"compactness": Infinity}',
    '{"compactness": NaN}',
    '{"compactness": 1e308}',
    '{"n_segments": true}',
    '{"normalize": "yes"}',
    '{"sigma": 1000000}',
    '{"max_num_iter": 1000}',
    '{"n_segments": 2000, "colour": 1}',
])  # fmt: skip
def test_bad_parameters_are_refused_before_anything_is_queued(api, dataset, settings, params_json: str) -> None:
    body = '{"name": "sp", "method": "superpixel", "params": ' + params_json + "}"
    response = api.post(f"/v1/datasets/{dataset}/labelsets", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert api.get(f"/v1/datasets/{dataset}/labelsets/sp").status_code == 404
    assert Queue(settings.queue, connection=redis.Redis.from_url(settings.redis_url)).count == 0


def test_svls_is_a_labelset_method(api, dataset) -> None:
    response = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "svls", "method": "svls", "params": {"sigma": 1.0}})
    assert response.status_code == 202, response.text
    assert response.json()["method"] == "svls" and response.json()["params"] == {"sigma": 1.0, "normalize": False, "dtype": "uint8"}
