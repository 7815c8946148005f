"""FastAPI dependencies as ``Annotated`` aliases: settings, storage, Redis, the queue, auth.

Nothing is created at import time: each factory is cached on its settings value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import redis
from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from rq import Queue

from .. import queue as jobs
from ..authentication import STATE_KEY, authenticate
from ..authentication import signed_in_session, token_for_secret  # noqa: F401 (the UI's sign-in and pages use them from here)
from ..datasets import Dataset, get_dataset
from ..errors import ApiError
from ..layout import ID_PATTERN
from ..settings import Settings, get_settings
from ..storage import LocalStorage, Storage
from ..tokens import Scope, TokenRecord, TokenStore, token_store

REDIS_CONNECT_TIMEOUT_S = 5  # seconds to open a connection (readiness fails fast)
REDIS_SOCKET_TIMEOUT_S = 30  # seconds one Redis command may take

SettingsDep = Annotated[Settings, Depends(get_settings)]


@functools.cache
def _local_storage(root: Path) -> LocalStorage:
    return LocalStorage(root)


@functools.cache
def redis_for(url: str) -> redis.Redis:
    """One connection pool per Redis URL for the whole process."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S, socket_timeout=REDIS_SOCKET_TIMEOUT_S, health_check_interval=30
    )


def get_storage(settings: SettingsDep) -> Storage:
    return _local_storage(settings.data_dir)


def get_redis(settings: SettingsDep) -> redis.Redis:
    return redis_for(settings.redis_url)


StorageDep = Annotated[Storage, Depends(get_storage)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]


def get_job_queue(connection: RedisDep, settings: SettingsDep) -> Queue:
    return jobs.get_queue(connection, settings)


QueueDep = Annotated[Queue, Depends(get_job_queue)]


def get_tokens(connection: RedisDep, settings: SettingsDep) -> TokenStore:
    return token_store(connection, settings.data_dir)


TokensDep = Annotated[TokenStore, Depends(get_tokens)]

bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer <token>`")


def current_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    settings: SettingsDep,
    connection: RedisDep,
) -> TokenRecord:
    """The caller's token: the one :class:`AuthenticateFirst` checked before the body was read,
    or (outside its prefixes) checked here; 401 when missing, unknown or revoked. A browser
    signed in to the UI may read (GET and HEAD only) with its session cookie; writes always
    need the bearer token (``credentials`` documents the scheme in the OpenAPI)."""
    checked = getattr(request.state, STATE_KEY, None)
    if checked is not None:
        return checked
    return authenticate(request, settings, connection)


CurrentToken = Annotated[TokenRecord, Depends(current_token)]


def require(scope: Scope) -> Callable[[TokenRecord], TokenRecord]:
    """A dependency that lets through tokens whose scopes include ``scope`` (403 otherwise)."""

    def check(token: CurrentToken) -> TokenRecord:
        if not token.allows(scope):
            raise ApiError(
                403, f"authorization: expected a token with the '{scope}' scope, got scopes {token.scopes}",
                field="authorization", expected=scope, got=",".join(token.scopes),
            )  # fmt: skip
        return token

    return check


ReadScope = Depends(require("read"))
WriteScope = Depends(require("write"))
AdminScope = Depends(require("admin"))

DatasetId = Annotated[str, PathParam(pattern=ID_PATTERN, description="dataset id")]
CaseId = Annotated[str, PathParam(pattern=ID_PATTERN, description="case id")]
LabelsetName = Annotated[str, PathParam(pattern=ID_PATTERN, description="labelset name")]
PageToken = Annotated[
    str | None, Query(pattern=ID_PATTERN, description="next_page_token of the previous page: the page starts after that case id")
]


def dataset_dep(dataset_id: DatasetId, storage: StorageDep) -> Dataset:
    return get_dataset(storage, dataset_id)


DatasetDep = Annotated[Dataset, Depends(dataset_dep)]
