"""The token is checked before any body byte is read: without a valid token the answer is 401,
whatever the body; JSON bodies have their own small size limit."""

from __future__ import annotations

import pytest

from helpers.service import ADMIN, dataset_body, raw_request

pytestmark = pytest.mark.redis
GIB = 1 << 30


@pytest.mark.parametrize(("path", "content_type"), [
    ("/v1/datasets", "application/json"),
    ("/v1/datasets", "multipart/form-data; boundary=x"),
    ("/ui/datasets/import", "multipart/form-data; boundary=x"),  # the UI's forms need a session first
    ("/ui/datasets/d1/studies", "multipart/form-data; boundary=x"),
])  # fmt: skip
def test_no_token_is_401_before_the_body_is_read(server: str, path: str, content_type: str) -> None:
    """An 800 MiB body with no token or session: the server answers from the headers, without
    waiting for the body."""
    head = (f"POST {path} HTTP/1.1\nHost: test\nContent-Type: {content_type}\n"
            f"Content-Length: {800 << 20}\n")  # fmt: skip
    status, elapsed = raw_request(server, head, b'{"id": "')
    assert status.split()[1] == "401" and elapsed < 5, status


def test_a_bad_token_is_401_even_with_invalid_json(anon) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        response = anon.post("/v1/datasets", content=b"{not json", headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer", response.text


def test_protected_routes_answer_401_and_open_ones_do_not(anon) -> None:
    assert anon.get("/v1/datasets").status_code == 401
    assert anon.get("/metrics").status_code == 401
    assert anon.get("/healthz").status_code == 200


def test_json_bodies_have_their_own_small_limit(api, settings) -> None:
    big = dataset_body("big") | {"name": "x" * (settings.max_json_bytes + 1)}
    response = api.post("/v1/datasets", json=big)
    assert response.status_code == 413 and str(settings.max_json_bytes) in response.json()["detail"], response.text
    assert settings.max_json_bytes < settings.max_upload_bytes
    assert api.post("/v1/datasets", json=dataset_body("small")).status_code == 201


def test_a_valid_token_still_reaches_the_routes(anon) -> None:
    response = anon.get("/v1/datasets", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200
