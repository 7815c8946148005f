"""Where the browser tests put their screenshots (git-ignored)."""

from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
