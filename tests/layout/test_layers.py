"""The installed namespace and the layers: one top-level package, contracts that a broken
import breaks, and engine tests that need no queue or web stack."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import PACKAGES, REPO, venv_tool


def test_the_layer_contracts_hold(run) -> None:
    result = run([venv_tool("lint-imports")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("worker/engine/config.py", "import rq", "The engine imports no queue, web or training library"),
    ("worker/engine/softening/softeners.py", "from ...jobs import contract", "The engine imports neither the job side"),
    ("trainer/metrics.py", "from softlabel.service import storage", "The trainer reaches the service only through its HTTP client"),
    ("service/datasets.py", "from softlabel.worker.engine import pipeline", "The service imports of the worker only"),
    ("service/api/deps.py", "from .. import ui", "The REST API does not depend on the web UI"),
    ("service/ui/pages.py", "from rq import Queue", "The web UI reaches the queue only through the service's functions"),
])  # fmt: skip
def test_a_broken_import_breaks_its_contract(run, tmp_path: Path, module: str, line: str, contract: str) -> None:
    """A copy of the packages, one import added, checked with the repository's contracts."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / "softlabel" / package, ignore=shutil.ignore_patterns("*.so", "*.c"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "softlabel" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = run([venv_tool("lint-imports")], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode != 0, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout


def test_engine_tests_collect_without_the_queue_or_web_stack(run) -> None:
    result = run([sys.executable, "-m", "pytest", "tests/worker", "--collect-only", "-q", "-p", "no:cacheprovider",
                  "-p", "helpers.import_guard"])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests collected" in result.stdout or " collected" in result.stdout


def test_the_suite_runs_from_any_working_directory(run, tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "pytest", str(REPO / "tests/worker/test_softeners.py"), "-q", "-p", "no:cacheprovider"],
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout + result.stderr


def test_softlabel_imports_from_anywhere_and_the_old_names_do_not(run, tmp_path: Path) -> None:
    result = run([sys.executable, "-c", "import softlabel.worker.engine, softlabel.service.app, softlabel.cli.main"], cwd=Path("/"))
    assert result.returncode == 0, result.stderr
    for old in PACKAGES:
        result = run([sys.executable, "-c", f"import {old}"], cwd=Path("/"))
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, (old, result.stderr)


def test_a_foreign_service_package_does_not_shadow_ours(run, tmp_path: Path) -> None:
    """Other distributions named service, worker, trainer or cli may sit beside softlabel."""
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("FOREIGN = True\n")
    code = ("import service, worker; assert service.FOREIGN and worker.FOREIGN; "
            "import softlabel.service.app, softlabel.worker.jobs.soften, softlabel.trainer.cli, softlabel.cli.main")
    result = run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_package(run, tmp_path: Path) -> None:
    """``pip wheel .`` of a copy of the sources (the C kernels compile: about a minute on 2 cores)."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv*", ".gpu", "build", "*.egg-info", "*.so",
                                                                "softlabel-data", "softlabel-demo", "bench"))  # fmt: skip
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
                 timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("softlabel-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = archive.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode().split()
    assert top_level == ["softlabel"]
    assert {name.split("/")[0] for name in names} == {"softlabel", next(n for n in names if ".dist-info/" in n).split("/")[0]}
    for package in PACKAGES:
        assert f"softlabel/{package}/__init__.py" in names
    ui_files = ["templates/viewer.html", "static/viewer.js", "static/upload.js", "static/app.css", "static/vendor/README.md",
                "static/vendor/htmx/htmx.min.js", "static/vendor/htmx/LICENSE", "static/vendor/niivue/niivue.umd.js",
                "static/vendor/niivue/LICENSE"]  # fmt: skip
    missing = [f for f in ui_files if f"softlabel/service/ui/{f}" not in names]
    assert missing == [], f"the web UI serves these with no network: {missing}"
    kernels = [name for name in names if name.endswith(".so")]
    assert len(kernels) == 4 and all(name.startswith("softlabel/worker/engine/") for name in kernels), kernels
