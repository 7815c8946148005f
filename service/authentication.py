"""Authentication before work: the bearer token of every protected request is checked before
the app reads a byte of its body.

:class:`AuthenticateFirst` is a pure ASGI middleware in front of the routes under
:data:`PROTECTED_PREFIXES`: a request without a valid token is answered 401 from its headers
alone, whatever its body (an 800 MiB JSON body with no token grew the API process to 2 GB when
the token was checked by a route dependency, after the body was parsed). A browser signed in to
the web UI may also read (GET and HEAD only) with its session cookie: the viewer downloads files
this way; every other method needs the bearer token. A valid token's record is left in the
request's state for the routes' scope checks (403), which need no second lookup.

The web UI's forms (``/ui/`` requests other than GET and HEAD, the sign-in form excepted) need
a signed-in session before their body is read in the same way; the session is left in the
request's state for the form's CSRF and scope checks.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from . import sessions, tokens
from .errors import ApiError
from .settings import Settings
from .tokens import TokenRecord

PROTECTED_PREFIXES = ("/v1/", "/metrics")  # everything but /healthz, /readyz and the docs
STATE_KEY = "token"  # request.state.token: the authenticated TokenRecord
UI_PREFIX = "/ui/"
UI_OPEN_FORMS = ("/ui/login",)  # the one form sent without a session
UI_STATE_KEY = "ui_session"  # request.state.ui_session: signed_in_session's result for a UI form
READS = ("GET", "HEAD")


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, f"authorization: {detail}", field="authorization", headers={"WWW-Authenticate": "Bearer"})


def token_for_secret(settings: Settings, connection: redis.Redis, secret: str) -> TokenRecord:
    """The token a secret names: 401 when unknown or revoked (the API and the UI's sign-in)."""
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    record = tokens.env_admin(admin, secret) or tokens.token_store(connection, settings.data_dir).lookup(secret)
    if record is None:
        raise unauthorized("expected a valid API token, got an unknown one")
    if record.revoked_at:
        raise unauthorized(f"expected a valid API token, got one revoked at {record.revoked_at}")
    return record


def signed_in_session(
    request: Request, settings: Settings, connection: redis.Redis
) -> tuple[str, sessions.Session, TokenRecord] | None:
    """The UI session in the request's cookie (its id, the session, its token), if it is signed
    in and its token is not revoked."""
    session_id = request.cookies.get(sessions.COOKIE, "")
    session = sessions.load(connection, session_id)
    if session is None:
        return None
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    token = sessions.token_of(tokens.token_store(connection, settings.data_dir), session, admin_token=admin)
    return None if token is None else (session_id, session, token)


def authenticate(request: Request, settings: Settings, connection: redis.Redis) -> TokenRecord:
    """The caller's token: the bearer token of the ``Authorization`` header, or for GET and HEAD
    without one, a signed-in UI session's; 401 when missing, unknown or revoked."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() == "bearer" and secret:
        return token_for_secret(settings, connection, secret)
    found = signed_in_session(request, settings, connection) if request.method in READS else None
    if found is None:
        raise unauthorized("expected 'Bearer <token>', got no bearer token")
    return found[2]


class AuthenticateFirst:
    """Answer 401 to protected requests without a valid token before the app sees them."""

    def __init__(
        self, app: ASGIApp, *, settings: Callable[[], Settings], redis_for: Callable[[str], redis.Redis],
        ui_refusal: Callable[[Request, ApiError], Response] | None = None,
    ) -> None:  # fmt: skip
        """``ui_refusal``: the answer to a UI form without a session (the UI's error page);
        JSON when None."""
        self.app = app
        self.settings = settings
        self.redis_for = redis_for
        self.ui_refusal = ui_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        api = path.startswith(PROTECTED_PREFIXES)
        ui_form = path.startswith(UI_PREFIX) and scope.get("method") not in READS and path not in UI_OPEN_FORMS
        if not (api or ui_form):
            await self.app(scope, receive, send)
            return
        settings = self.settings()
        connection = self.redis_for(settings.redis_url)
        try:
            if api:
                key, found = STATE_KEY, await run_in_threadpool(authenticate, Request(scope), settings, connection)
            else:
                key, found = UI_STATE_KEY, await run_in_threadpool(signed_in_session, Request(scope), settings, connection)
                if found is None:
                    raise ApiError(401, "session: expected a signed-in session, got none (sign in at /ui/login)", field="session")
        except ApiError as exc:
            if ui_form and self.ui_refusal is not None:
                await self.ui_refusal(Request(scope), exc)(scope, receive, send)
            else:
                await JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)(scope, receive, send)
            return
        except redis.RedisError as exc:
            body = {"detail": f"the token store (Redis) is unreachable: {exc}"}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        scope.setdefault("state", {})[key] = found
        await self.app(scope, receive, send)
