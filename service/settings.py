"""Service settings from environment variables (pydantic-settings), read once and cached.

Every setting is documented in ``docs/configuration.md``. Names are ``SOFTLABEL_<FIELD>``
except ``REDIS_URL``, which RQ tooling and hosting platforms already use.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Admin tokens that must never reach production (compared case-insensitively).
PLACEHOLDER_TOKENS = frozenset({"changethis", "changeme", "change-me", "admin", "secret", "token", "password", "test"})
MIN_PRODUCTION_TOKEN_CHARS = 32


class Settings(BaseSettings):
    """The service's configuration; defaults suit a laptop, production refuses placeholders."""

    model_config = SettingsConfigDict(env_prefix="SOFTLABEL_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("softlabel-data")
    admin_token: SecretStr | None = None
    redis_url: str = Field("redis://localhost:6379/0", validation_alias="REDIS_URL")
    max_upload_bytes: int = Field(1 << 30, gt=0)  # bytes per study upload request (413 above)
    max_json_bytes: int = Field(1 << 20, gt=0)  # bytes per JSON (or other non-upload) request body
    max_import_bytes: int = Field(20 << 30, gt=0)  # bytes per zip import, compressed and extracted
    max_voxels: int = Field(512**3, gt=0)  # voxels per image file, read from the header (413 above)
    queue: str = Field("softlabel", pattern=r"^[A-Za-z0-9_.:-]+$")
    job_timeout_s: int = Field(3600, gt=0)  # seconds one study may run before RQ stops it
    job_retries: int = Field(3, ge=0)  # retries after a failure, 10 s, 30 s then 60 s apart
    result_ttl_s: int = Field(7 * 86400, gt=0)  # seconds RQ keeps a finished job's record
    failure_ttl_s: int = Field(30 * 86400, gt=0)  # seconds RQ keeps a failed job's record

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check_admin_token(self) -> "Settings":
        token = self.admin_token.get_secret_value() if self.admin_token else None
        placeholder = token is not None and token.strip().lower() in PLACEHOLDER_TOKENS
        if self.env == "production":
            if token is None:
                raise ValueError("SOFTLABEL_ADMIN_TOKEN: expected a secret in production, got none")
            if placeholder or len(token) < MIN_PRODUCTION_TOKEN_CHARS:
                raise ValueError(
                    f"SOFTLABEL_ADMIN_TOKEN: expected a random secret of at least {MIN_PRODUCTION_TOKEN_CHARS} "
                    "characters in production (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), "
                    "got a placeholder or a short value"
                )
        elif placeholder:
            warnings.warn("SOFTLABEL_ADMIN_TOKEN is a placeholder; fine for development only", stacklevel=2)
        return self


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use (a FastAPI dependency)."""
    return Settings()
