"""Tokens survive the loss of Redis: ``<data dir>/tokens.json`` is the authoritative copy, and
a fresh Redis is filled from it on first use."""

from __future__ import annotations

import json
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from helpers.service import ADMIN
from softlabel.service.app import create_app
from softlabel.service.embedded_redis import EmbeddedRedis
from softlabel.service.settings import Settings
from softlabel.service.tokens import RESTORED_KEY

with warnings.catch_warnings():  # Starlette 1.x warns that TestClient still wraps httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.redis

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def _app(data_dir: Path, redis_url: str) -> TestClient:
    settings = Settings(data_dir=data_dir, admin_token=ADMIN, redis_url=redis_url, queue="tokens-file")
    return TestClient(create_app(settings))


def _as(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_fresh_redis_on_the_same_data_dir_restores_minted_and_revoked_tokens(tmp_path):
    data = tmp_path / "data"
    with EmbeddedRedis(tmp_path / "redis-a") as first, _app(data, first.url) as api:
        kept = api.post("/v1/tokens", json={"name": "kept", "scopes": ["read"]}, headers=ADMIN_HEADERS).json()
        gone = api.post("/v1/tokens", json={"name": "gone", "scopes": ["write"]}, headers=ADMIN_HEADERS).json()
        assert api.delete(f"/v1/tokens/{gone['id']}", headers=ADMIN_HEADERS).status_code == 200
        assert api.get("/v1/datasets", headers=_as(kept["token"])).status_code == 200

    # The Redis files are lost: a new redis-server on an empty folder, a new app on the same data.
    with EmbeddedRedis(tmp_path / "redis-b") as second, _app(data, second.url) as api:
        assert api.get("/v1/datasets", headers=_as(kept["token"])).status_code == 200
        refused = api.get("/v1/datasets", headers=_as(gone["token"]))
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        listed = api.get("/v1/tokens", headers=ADMIN_HEADERS).json()["data"]
        assert sorted((t["name"], bool(t["revoked_at"])) for t in listed) == [("gone", True), ("kept", False)]

    path = data / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert kept["token"] not in text and gone["token"] not in text  # hashes only


def test_concurrent_mints_from_two_apps_all_reach_the_file(tmp_path, redis_url):
    data = tmp_path / "data"
    with _app(data, redis_url) as one, _app(data, redis_url) as two:
        clients = [one, two] * 6
        with ThreadPoolExecutor(len(clients)) as pool:
            answers = list(pool.map(
                lambda pair: pair[1].post("/v1/tokens", json={"name": f"t{pair[0]}", "scopes": ["read"]}, headers=ADMIN_HEADERS),
                enumerate(clients),
            ))  # fmt: skip
        assert [a.status_code for a in answers] == [201] * len(clients)
    on_disk = {entry["id"] for entry in json.loads((data / "tokens.json").read_text())["tokens"]}
    assert on_disk == {a.json()["id"] for a in answers}


def test_tokens_redis_held_before_the_file_existed_are_written_to_it(tmp_path, redis_url):
    data = tmp_path / "data"
    with _app(data, redis_url) as api:
        minted = api.post("/v1/tokens", json={"name": "old", "scopes": ["read"]}, headers=ADMIN_HEADERS).json()
        (data / "tokens.json").unlink()  # as a data directory from before the token file
        connection = redis.Redis.from_url(redis_url)
        connection.delete(RESTORED_KEY)
        assert api.get("/v1/datasets", headers=_as(minted["token"])).status_code == 200
    assert [entry["name"] for entry in json.loads((data / "tokens.json").read_text())["tokens"]] == ["old"]
