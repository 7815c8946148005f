"""Authentication before work: the bearer token of every protected request is checked before
the app reads a byte of its body.

:class:`AuthenticateFirst` is a pure ASGI middleware in front of the routes under
:data:`PROTECTED_PREFIXES`: a request without a valid token is answered 401 from its headers
alone, whatever its body (an 800 MiB JSON body with no token grew the API process to 2 GB when
the token was checked by a route dependency, after the body was parsed). A valid token's record
is left in the request's state for the routes' scope checks (403), which need no second lookup.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from . import tokens
from .errors import ApiError
from .settings import Settings
from .tokens import TokenRecord

PROTECTED_PREFIXES = ("/v1/", "/metrics")  # everything but /healthz, /readyz and the docs
STATE_KEY = "token"  # request.state.token: the authenticated TokenRecord


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, f"authorization: {detail}", field="authorization", headers={"WWW-Authenticate": "Bearer"})


def authenticate(authorization: str | None, settings: Settings, connection: redis.Redis) -> TokenRecord:
    """The token named by an ``Authorization`` header: 401 when missing, unknown or revoked."""
    scheme, _, secret = (authorization or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise unauthorized("expected 'Bearer <token>', got no bearer token")
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    record = tokens.env_admin(admin, secret) or tokens.lookup(connection, secret)
    if record is None:
        raise unauthorized("expected a valid API token, got an unknown one")
    if record.revoked_at:
        raise unauthorized(f"expected a valid API token, got one revoked at {record.revoked_at}")
    return record


class AuthenticateFirst:
    """Answer 401 to protected requests without a valid token before the app sees them."""

    def __init__(self, app: ASGIApp, *, settings: Callable[[], Settings], redis_for: Callable[[str], redis.Redis]) -> None:
        self.app = app
        self.settings = settings
        self.redis_for = redis_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization")
        settings = self.settings()
        try:
            record = await run_in_threadpool(
                authenticate, header.decode("latin-1") if header else None, settings, self.redis_for(settings.redis_url)
            )
        except ApiError as exc:
            await JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)(scope, receive, send)
            return
        except redis.RedisError as exc:
            body = {"detail": f"the token store (Redis) is unreachable: {exc}"}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = record
        await self.app(scope, receive, send)
