"""Service fixtures: settings on a temporary data dir and the app under TestClient."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from helpers.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)
from helpers.service import ADMIN, dataset_body
from softlabel.service.app import create_app
from softlabel.service.settings import Settings

with warnings.catch_warnings():  # Starlette 1.x warns that TestClient still wraps httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", admin_token=ADMIN, redis_url=redis_url, queue="softlabel-test")


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The app over HTTP semantics (TestClient), authenticated as the admin."""
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client


@pytest.fixture
def anon(settings: Settings) -> Iterator[TestClient]:
    """The same app without a token."""
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def dataset(api: TestClient) -> str:
    response = api.post("/v1/datasets", json=dataset_body())
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """uvicorn serving the app on a free port; yields the API root URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)
