"""Fixtures for the offline deployment checks (helpers live in ``deploy_helpers``)."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_helpers import K8S, OVERLAYS, kustomize


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered once per session: {overlay: [resources]}."""
    return {overlay: kustomize(K8S / "overlays" / overlay) for overlay in OVERLAYS}
