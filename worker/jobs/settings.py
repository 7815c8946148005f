"""RQ worker settings from environment variables (the same names the service reads).

Documented in ``docs/configuration.md``. The worker reads no service module: it shares only
the environment and the JSON payload contract (``worker.jobs.contract``).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..engine.config import Backend

BACKEND_ENV = "SOFTLABEL_WORKER_BACKEND"  # the backend a worker resolved, read by jobs it runs


class WorkerSettings(BaseSettings):
    """``softlabel worker`` configuration; command-line options override these."""

    model_config = SettingsConfigDict(env_prefix="SOFTLABEL_", extra="ignore", frozen=True)

    redis_url: str = Field("redis://localhost:6379/0", validation_alias="REDIS_URL")
    queue: str = "softlabel"  # queue listened to when --queues is not given
    worker_backend: Backend = "auto"  # auto | cpu | gpu, when --backend is not given
    lease_ttl_s: int = Field(30, ge=2)  # seconds a running job's lease outlives its last renewal
    max_recoveries: int = Field(3, ge=0)  # times a job is requeued after its worker died, then failed
    maintenance_interval_s: int = Field(60, ge=1)  # seconds between RQ registry cleanups
    # Stops (worker.jobs.stop, worker.jobs.restart): seconds between a running job's Redis reads
    # at the engine's checkpoints, and seconds a stopped job has to reach one before an
    # in-process worker restarts itself in place to end it.
    stop_check_interval_s: float = Field(0.25, gt=0)
    stop_grace_s: float = Field(2.0, gt=0)
