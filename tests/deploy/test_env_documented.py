"""Every environment variable the code reads is documented, and set by docker-compose.yml and
by every k8s overlay; nothing those set under our prefix is a variable the code ignores.

Reads are found in the source (AST), not by importing it:

- pydantic-settings classes: ``env_prefix`` + field name, or the field's ``validation_alias``;
- ``os.environ.get(X)``, ``os.environ[X]``, ``os.getenv(X)``, ``X in os.environ``;
- ``typer.Option(..., envvar=X)``;

where X is a string literal or a module-level string constant. ``os.environ.setdefault`` and
assignments set variables for libraries and are not reads.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.deploy import COMPOSE_FILE, ENV_EXAMPLE, OVERLAYS, REPO, compose_config, config_map_data, read_env_file

PACKAGES = ("service", "worker", "trainer", "cli")
EXTRA_FILES = ("docker/probe.py",)
DOCS = ("docs/configuration.md", "docs/deploy.md")
OUR_PREFIXES = ("SOFTLABEL_", "REDIS_URL")
# Variables read only by the trainer need no k8s manifest: the trainer is a batch job run
# beside the stack (docker compose run trainer), not a part of it.
K8S_EXEMPT_PACKAGES = ("trainer",)
# Client-side variables (the `softlabel` client commands, the trainer): compose sets them for
# its trainer service; no pod of the k8s stack is a client. {variable: why}
CLIENT_ONLY = {
    "SOFTLABEL_API_URL": "root URL of the API, for client commands",
    "SOFTLABEL_TOKEN": "bearer token of a client",
}
# nnU-Net v2's own variables, read by `softlabel nnunet` and set by its user as for any nnU-Net
# run: documented, but no container of the stack sets them. {variable: why}
NNUNET_OWN = {
    "nnUNet_raw": "nnU-Net's raw datasets folder",
    "nnUNet_preprocessed": "nnU-Net's preprocessed data folder",
    "nnUNet_results": "nnU-Net's trained models folder",
}


@dataclass
class EnvReads:
    found: dict[str, set[str]] = field(default_factory=dict)  # variable -> {"path:line"}
    unresolved: list[str] = field(default_factory=list)  # "path:line: expression"

    def add(self, name: str, where: str) -> None:
        self.found.setdefault(name, set()).add(where)


def python_files() -> list[Path]:
    files = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    return files + [REPO / f for f in EXTRA_FILES if (REPO / f).exists()]


def string_constants(trees: dict[Path, ast.Module]) -> dict[str, set[str]]:
    """Module-level ``NAME = "literal"`` across all files: {NAME: {values}}."""
    constants: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            value = getattr(node, "value", None)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                for target in targets:
                    if isinstance(target, ast.Name):
                        constants.setdefault(target.id, set()).add(value.value)
    return constants


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def is_environ(node: ast.AST) -> bool:
    return dotted(node) in ("os.environ", "environ")


def settings_classes(trees: dict[Path, ast.Module]) -> list[tuple[Path, ast.ClassDef, str]]:
    """(file, class, env_prefix) of every BaseSettings subclass, inheriting prefixes."""
    classes = {node.name: (path, node) for path, tree in trees.items() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    prefixes: dict[str, str] = {}

    def own_prefix(node: ast.ClassDef) -> str | None:
        for stmt in node.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and "model_config" in ast.unparse(stmt).split("=")[0]:
                call = stmt.value
                for kw in getattr(call, "keywords", []):
                    if kw.arg == "env_prefix" and isinstance(kw.value, ast.Constant):
                        return kw.value.value
                if isinstance(call, ast.Dict):
                    for key, value in zip(call.keys, call.values):
                        if isinstance(key, ast.Constant) and key.value == "env_prefix" and isinstance(value, ast.Constant):
                            return value.value
        return None

    def resolve(name: str, seen: frozenset = frozenset()) -> str | None:
        if name in prefixes:
            return prefixes[name]
        if name not in classes or name in seen:
            return None
        _, node = classes[name]
        bases = [dotted(b).rsplit(".", 1)[-1] for b in node.bases]
        if "BaseSettings" in bases:
            prefixes[name] = own_prefix(node) or ""
            return prefixes[name]
        for base in bases:
            inherited = resolve(base, seen | {name})
            if inherited is not None:
                prefixes[name] = own_prefix(node) or inherited
                return prefixes[name]
        return None

    return [(path, node, resolve(name)) for name, (path, node) in classes.items() if resolve(name) is not None]


def scan() -> EnvReads:
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in python_files()}
    constants = string_constants(trees)
    reads = EnvReads()

    def names_of(node: ast.AST, where: str) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [name for item in node.elts for name in names_of(item, where)]
        key = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if key in constants and len(constants[key]) == 1:
            return list(constants[key])
        reads.unresolved.append(f"{where}: {ast.unparse(node)}")
        return []

    for path, tree in trees.items():
        rel = path.relative_to(REPO)
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            args: list[ast.AST] = []
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr == "get" and is_environ(func.value):
                    args = node.args[:1]
                elif dotted(func) in ("os.getenv", "getenv"):
                    args = node.args[:1]
                for kw in node.keywords:
                    if kw.arg == "envvar" and dotted(func).endswith("Option"):
                        args.append(kw.value)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
                args = [node.slice]
            elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                if any(is_environ(c) for c in node.comparators):
                    args = [node.left]
            for arg in args:
                for name in names_of(arg, where):
                    reads.add(name, where)

    for path, node, prefix in settings_classes(trees):
        rel = path.relative_to(REPO)
        for stmt in node.body:
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            name = stmt.target.id
            if name.startswith("_") or name == "model_config" or "ClassVar" in ast.unparse(stmt.annotation):
                continue
            aliases = []
            if isinstance(stmt.value, ast.Call) and dotted(stmt.value.func).endswith("Field"):
                for kw in stmt.value.keywords:
                    if kw.arg in ("validation_alias", "alias"):
                        aliases = names_of(kw.value, f"{rel}:{stmt.lineno}") if not isinstance(kw.value, ast.Call) else [
                            a.value for a in kw.value.args if isinstance(a, ast.Constant)
                        ]
            for env_name in aliases or [f"{prefix}{name}"]:
                reads.add(env_name.upper(), f"{rel}:{stmt.lineno}")
    return reads


READS = scan()


def stack_variables() -> set[str]:
    """Variables read by code that runs in the deployed stack (API and workers)."""
    return {
        name
        for name, places in READS.found.items()
        if name not in CLIENT_ONLY and any(not place.startswith(K8S_EXEMPT_PACKAGES) for place in places)
    }


def test_the_scan_finds_the_known_variables_and_resolves_every_read() -> None:
    assert {"SOFTLABEL_DATA_DIR", "SOFTLABEL_ADMIN_TOKEN", "REDIS_URL", "SOFTLABEL_MAX_UPLOAD_BYTES"} <= READS.found.keys()
    assert not READS.unresolved, "environment reads whose variable name is not a literal or constant:\n" + "\n".join(
        READS.unresolved
    )


def test_the_scan_sees_every_kind_of_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = tmp_path / "service"
    sample.mkdir()
    (sample / "sample.py").write_text(
        "import os\nfrom pydantic import Field\nfrom pydantic_settings import BaseSettings, SettingsConfigDict\n"
        "NAME = 'X_CONST'\n"
        "class S(BaseSettings):\n    model_config = SettingsConfigDict(env_prefix='P_')\n"
        "    alpha: int = 1\n    beta: str = Field('b', validation_alias='X_ALIAS')\n"
        "class T(S):\n    gamma: int = 2\n"
        "a = os.environ.get('X_GET')\nb = os.getenv(NAME)\nc = os.environ['X_ITEM']\nd = 'X_IN' in os.environ\n"
        "os.environ['X_WRITE'] = '1'\nos.environ.setdefault('X_DEFAULT', '1')\n"
        "def f(v=typer.Option(1, envvar='X_TYPER')): pass\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    monkeypatch.setattr(f"{__name__}.EXTRA_FILES", ())
    found = set(scan().found)
    assert found == {"P_ALPHA", "X_ALIAS", "P_GAMMA", "X_GET", "X_CONST", "X_ITEM", "X_IN", "X_TYPER"}


@pytest.mark.parametrize("variable", sorted(READS.found))
def test_variable_is_documented(variable: str) -> None:
    texts = [(REPO / doc).read_text() for doc in DOCS if (REPO / doc).exists()]
    assert texts, f"expected one of {DOCS}"
    assert any(re.search(rf"\b{re.escape(variable)}\b", text) for text in texts), (
        f"{variable} (read at {sorted(READS.found[variable])}) is not documented in {' or '.join(DOCS)}"
    )


def compose_environment() -> set[str]:
    services = compose_config("cpu", "gpu", "train")["services"]
    return {name for service in services.values() for name in service.get("environment", {})}


def k8s_environment(docs: list[dict]) -> set[str]:
    names = set()
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                names |= {var["name"] for var in container.get("env", [])}
                for source in container.get("envFrom", []):
                    if "configMapRef" in source:
                        names |= set(config_map_data(docs, source["configMapRef"]["name"]))
    return names


def test_every_variable_is_set_in_the_compose_file() -> None:
    missing = set(READS.found) - compose_environment() - set(NNUNET_OWN)
    assert not missing, f"read by the code but set by no service in {COMPOSE_FILE.name}: {sorted(missing)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_stack_variable_is_set_in_the_manifests(rendered: dict, overlay: str) -> None:
    missing = stack_variables() - k8s_environment(rendered[overlay])
    assert not missing, f"read by the code but set nowhere in k8s/overlays/{overlay}: {sorted(missing)}"


def ours(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith(OUR_PREFIXES)}


def test_compose_and_manifests_set_no_variable_the_code_ignores(rendered: dict) -> None:
    stale = ours(compose_environment()) - set(READS.found)
    for overlay in OVERLAYS:
        stale |= ours(k8s_environment(rendered[overlay])) - set(READS.found)
    assert not stale, f"set for the containers but read by no code (a typo?): {sorted(stale)}"


def test_every_env_example_entry_feeds_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text()
    for key in read_env_file(ENV_EXAMPLE):
        assert key.startswith("COMPOSE_") or "${" + key in text, f".env.example sets {key}, which docker-compose.yml never reads"
