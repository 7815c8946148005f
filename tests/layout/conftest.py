"""Layout checks: the installed namespace, the layer contracts, test packages that stand alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "worker", "service", "trainer")


@pytest.fixture
def run():
    """Run a command of this environment; returns the CompletedProcess (text, no check)."""

    def run_command(args: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300):
        return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    return run_command


def venv_tool(name: str) -> str:
    """A console script installed beside this Python (lint-imports, pytest)."""
    return str(Path(sys.executable).with_name(name))
