"""docker-compose.yml against the Compose spec (the real Compose binary's ``config -q``),
then the stack's rules: persistence, health-gated start, GPU reservation, warm shutdown."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.deploy import COMPOSE_FILE, ENV_EXAMPLE, compose, compose_config, read_env_file

WORKERS = ("worker-gpu", "worker-cpu")


def go_duration_s(text: str) -> float:
    """Seconds in a Go duration as Compose prints it (``1h5m0s``, ``45s``)."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_file_is_valid_for_every_profile() -> None:
    for profiles in ([], ["--profile", "cpu"], ["--profile", "gpu"], ["--profile", "train"]):
        result = compose(*profiles, "config", "-q")
        assert result.returncode == 0, result.stderr


def test_an_invalid_compose_file_fails(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("stop_grace_period: 45s", "stop_grace_perod: 45s"))
    result = compose("config", "-q", compose_file=broken)
    assert result.returncode != 0
    assert "stop_grace_perod" in result.stderr


def test_the_admin_token_is_required(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "SOFTLABEL_ADMIN_TOKEN" in result.stderr


def test_default_profile_runs_gpu_workers_and_cpu_profile_swaps_them() -> None:
    assert read_env_file(ENV_EXAMPLE)["COMPOSE_PROFILES"] == "gpu"
    assert set(compose_config()["services"]) == {"redis", "api", "worker-gpu"}
    assert set(compose_config("cpu")["services"]) == {"redis", "api", "worker-cpu"}


def test_redis_persists_with_aof_on_a_named_volume() -> None:
    model = compose_config()
    redis = model["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    mounts = {m["target"]: m for m in redis["volumes"]}
    assert mounts["/data"]["type"] == "volume" and mounts["/data"]["source"] in model["volumes"]
    assert "ping" in redis["healthcheck"]["test"]


def test_services_start_once_their_dependencies_are_healthy() -> None:
    services = compose_config("cpu", "gpu", "train")["services"]
    for name in ("api", *WORKERS):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert services["trainer"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "healthz" in " ".join(services["api"]["healthcheck"]["test"])


def test_api_and_workers_share_the_data_volume_at_the_data_dir() -> None:
    model = compose_config("cpu", "gpu")
    for name in ("api", *WORKERS):
        service = model["services"][name]
        data_dir = service["environment"]["SOFTLABEL_DATA_DIR"]
        mounts = {m["target"]: m for m in service["volumes"]}
        assert mounts[data_dir]["type"] == "volume" and mounts[data_dir]["source"] == "softlabel-data", name
    assert "softlabel-data" in model["volumes"]


def test_gpu_worker_reserves_an_nvidia_gpu_and_never_forks() -> None:
    service = compose_config()["services"]["worker-gpu"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert service["command"][:4] == ["softlabel", "worker", "--backend", "gpu"] and "--no-fork" in service["command"]
    assert service["environment"]["SOFTLABEL_WORKER_BACKEND"] == "gpu"


def test_workers_outlive_a_job_on_shutdown_and_hold_no_admin_token() -> None:
    env = read_env_file(ENV_EXAMPLE)
    services = compose_config("cpu", "gpu")["services"]
    for name in WORKERS:
        service = services[name]
        timeout_s = int(service["environment"]["SOFTLABEL_JOB_TIMEOUT_S"])
        assert timeout_s == int(env["SOFTLABEL_JOB_TIMEOUT_S"])
        assert go_duration_s(service["stop_grace_period"]) > timeout_s, name
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM"  # RQ's warm shutdown
        assert "SOFTLABEL_ADMIN_TOKEN" not in service["environment"], name
    assert services["api"]["environment"]["SOFTLABEL_ADMIN_TOKEN"] == env["SOFTLABEL_ADMIN_TOKEN"]


def test_redis_url_points_at_the_redis_service() -> None:
    services = compose_config("cpu", "gpu")["services"]
    for name in ("api", *WORKERS):
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://redis:6379/"), name
