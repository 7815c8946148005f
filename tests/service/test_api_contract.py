"""What the OpenAPI schema says, the server does: the defects schemathesis found (issue 18), one
test each, quick enough for every run (the full schemathesis run is in test_openapi_conformance)."""

from __future__ import annotations

import pytest

from helpers.service import multipart, write_tiny_study

pytestmark = pytest.mark.redis


def test_405_allow_lists_every_method_of_the_path(api, dataset) -> None:
    for path, methods in {
        f"/v1/datasets/{dataset}": "DELETE, GET",  # two routes: Starlette's Allow named the first only
        "/v1/datasets": "GET, POST",
        "/v1/datasets/import": "POST",  # concrete before templated, as in OpenAPI: not the dataset "import"
        f"/v1/datasets/{dataset}/labelsets/sp/studies/c/soft": "GET",
    }.items():  # fmt: skip
        response = api.request("PUT", path)
        assert response.status_code == 405 and response.headers["allow"] == methods, (path, response.headers)


def test_every_status_a_route_answers_is_documented(api, anon, dataset) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert anon.get("/readyz").status_code == 401 and "401" in paths["/readyz"]["get"]["responses"]
    assert anon.get("/metrics").status_code == 401 and "401" in paths["/metrics"]["get"]["responses"]
    garbage = {"Content-Type": "application/json"}
    assert api.post("/v1/tokens", content=b"\xc3", headers=garbage).status_code == 400  # not UTF-8
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path.startswith(("/v1/", "/metrics", "/readyz")):
                assert {"401", "403", "413", "503"} <= codes, (method, path)
            if "requestBody" in operation:
                assert {"400", "422"} <= codes, (method, path)
            if "{" in path:
                assert {"404", "422"} <= codes, (method, path)


@pytest.mark.parametrize("body", [
    {"name": "g", "method": "gaussian", "params": {"n_segments": 30}},  # another method's parameter
    {"name": "h", "method": "hard", "params": {"normalize": False}},
    {"name": "s", "params": {"colour": 1}},
    {"name": "s", "method": "watershed"},
])  # fmt: skip
def test_labelset_params_are_those_of_the_method(api, dataset, body) -> None:
    response = api.post(f"/v1/datasets/{dataset}/labelsets", json=body)
    assert response.status_code == 422, response.text
    assert api.get(f"/v1/datasets/{dataset}/labelsets").json()["count"] == 0


def test_a_labelset_body_with_no_known_method_names_the_method(api, dataset) -> None:
    unknown = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "x", "method": "watershed"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "method", unknown.text
    assert unknown.json()["detail"] == "method: expected one of superpixel, gaussian, svls, smoothing, hard, got 'watershed'"
    listed = api.post(f"/v1/datasets/{dataset}/labelsets", json=[1])
    assert listed.status_code == 422 and listed.json()["detail"] == "request body: expected a JSON object, got an array"


def test_labelset_field_names_and_integral_numbers(api, dataset) -> None:
    bad = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": {"n_segments": 2.5}})
    assert bad.status_code == 422 and bad.json()["field"] == "params.n_segments"
    # JSON Schema's integer 30.0 is 30, as JSON has one number type
    good = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": {"n_segments": 30.0}})
    assert good.status_code == 202 and good.json()["params"]["n_segments"] == 30


def test_a_page_token_is_any_case_id(api, dataset, tmp_path) -> None:
    parts, data = multipart(write_tiny_study(tmp_path / "in", "b"))
    assert api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data).status_code == 201
    assert [s["case_id"] for s in api.get(f"/v1/datasets/{dataset}/studies", params={"page_token": "a"}).json()["data"]] == ["b"]
    assert api.get(f"/v1/datasets/{dataset}/studies", params={"page_token": "zz"}).json()["data"] == []
    schema = api.get("/openapi.json").json()["paths"][f"/v1/datasets/{{dataset_id}}/studies"]["get"]
    token = next(p for p in schema["parameters"] if p["name"] == "page_token")
    assert token["schema"]["anyOf"][0]["pattern"]


def test_request_bodies_refuse_what_their_schema_refuses(api) -> None:
    body = {"name": "x", "labels": {}, "channel_names": {"0": "T1"}}
    assert api.post("/v1/datasets", json=body).status_code == 422  # empty labels
    body = {"name": "x", "labels": {"a": 0, "b": True}, "channel_names": {"0": "T1"}}
    assert api.post("/v1/datasets", json=body).status_code == 422  # a bool for an id
    assert api.post("/v1/tokens", json={"name": "t", "scopes": ["read"], "x": 1}).status_code == 422
