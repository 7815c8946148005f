"""Liveness (no auth) and readiness (Redis and storage reachable)."""

from __future__ import annotations

import os

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...schemas import ErrorPublic, HealthPublic, ReadyPublic
from ..deps import ReadScope, RedisDep, SettingsDep
from ..responses import AUTHENTICATED, ERRORS, errors

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, responses=errors(413))
def healthz() -> HealthPublic:
    """The process is up. Needs no token."""
    return HealthPublic(status="ok")


@router.get(
    "/readyz", response_model=ReadyPublic, dependencies=[ReadScope],
    responses=errors(*AUTHENTICATED) | {503: {"model": ReadyPublic | ErrorPublic, "description": f"not ready; or {ERRORS[503]}"}},
)  # fmt: skip
def readyz(connection: RedisDep, settings: SettingsDep) -> ReadyPublic | JSONResponse:
    """Redis answers and the data directory is writable; 503 naming what is not."""
    try:
        connection.ping()
        redis_state = "ok"
    except redis.RedisError as exc:
        redis_state = f"unreachable: {exc}"
    root = settings.data_dir
    storage_state = "ok" if root.is_dir() and os.access(root, os.W_OK) else f"not a writable folder: {root}"
    ready = redis_state == storage_state == "ok"
    body = ReadyPublic(status="ready" if ready else "unavailable", redis=redis_state, storage=storage_state)
    return body if ready else JSONResponse(body.model_dump(), status_code=503)
