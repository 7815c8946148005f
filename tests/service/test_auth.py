"""The auth matrix: no token, a wrong token, a read token on a write endpoint, a revoked
token, and admin-only token management. Only /healthz is open."""

from __future__ import annotations

import pytest

from helpers.service import ADMIN, dataset_body

pytestmark = pytest.mark.redis

# (method, path, json body, scope needed)
ENDPOINTS = [
    ("GET", "/readyz", None, "read"),
    ("GET", "/v1/datasets", None, "read"),
    ("GET", "/v1/datasets/d1", None, "read"),
    ("GET", "/v1/datasets/d1/studies", None, "read"),
    ("GET", "/v1/datasets/d1/labelsets/x/manifest", None, "read"),
    ("GET", "/v1/jobs/soften-abc", None, "read"),
    ("POST", "/v1/datasets", dataset_body("d2"), "write"),
    ("POST", "/v1/datasets/d1/labelsets", {"name": "x"}, "write"),
    ("DELETE", "/v1/datasets/d1/studies/c1", None, "write"),
    ("POST", "/v1/jobs/soften-abc/retry", None, "write"),
    ("GET", "/v1/tokens", None, "admin"),
    ("POST", "/v1/tokens", {"name": "t", "scopes": ["read"]}, "admin"),
]


def _call(client, method, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers)


@pytest.fixture
def minted(api, dataset):
    """A token per scope, and one revoked write token."""
    out = {scope: api.post("/v1/tokens", json={"name": scope, "scopes": [scope]}).json() for scope in ("read", "write")}
    revoked = api.post("/v1/tokens", json={"name": "old", "scopes": ["write"]}).json()
    assert api.delete(f"/v1/tokens/{revoked['id']}").json()["revoked_at"]
    out["revoked"] = revoked
    return {name: record["token"] for name, record in out.items()}


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_auth_matrix(anon, minted, method, path, body, scope):
    for token, why in ((None, "no bearer token"), ("sl_wrong", "unknown"), (minted["revoked"], "revoked")):
        response = _call(anon, method, path, body, token)
        assert response.status_code == 401, (token, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert why in response.json()["detail"]
    allowed = {"read": ["read", "write"], "write": ["write"], "admin": []}[scope]
    for name in ("read", "write"):
        response = _call(anon, method, path, body, minted[name])
        if name in allowed:
            assert response.status_code not in (401, 403), response.text
        else:
            assert response.status_code == 403, response.text
            assert f"'{scope}' scope" in response.json()["detail"]
    assert _call(anon, method, path, body, ADMIN).status_code not in (401, 403)


def test_tokens_are_stored_as_hashes_only(api, redis_url):
    import redis

    created = api.post("/v1/tokens", json={"name": "ci", "scopes": ["write"]})
    assert created.status_code == 201
    secret = created.json()["token"]
    connection = redis.Redis.from_url(redis_url)
    dump = b"".join(connection.dump(key) or b"" for key in connection.keys("softlabel:token*"))
    assert secret.encode() not in dump
    listed = api.get("/v1/tokens").json()["data"]
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]


def test_unknown_scopes_and_tokens_are_rejected(api):
    assert api.post("/v1/tokens", json={"name": "x", "scopes": ["root"]}).status_code == 422
    assert api.delete("/v1/tokens/0123456789abcdef").status_code == 404
