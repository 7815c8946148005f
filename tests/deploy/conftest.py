"""Fixtures for the offline deployment checks (helpers live in ``helpers.deploy``), and a real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.deploy import K8S, OVERLAYS, kustomize
from helpers.redis_server import redis_server, redis_url  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered once per session: {overlay: [resources]}."""
    return {overlay: kustomize(K8S / "overlays" / overlay) for overlay in OVERLAYS}
