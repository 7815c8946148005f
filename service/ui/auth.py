"""Who is signed in to the UI, and what a page or a form lets them do.

Pages (GET) need a session and redirect to the sign-in page without one. Forms (POST) need
a session, the session's CSRF secret (form field ``csrf_token`` or header ``X-CSRF-Token``)
and the scope the matching API endpoint needs: the API's scopes, checked on the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .. import sessions
from ..api.deps import RedisDep, SettingsDep, require, signed_in_session
from ..authentication import UI_STATE_KEY
from ..errors import ApiError
from ..sessions import Session
from ..tokens import Scope, TokenRecord


class SignInRequired(Exception):
    """A page was asked for without a session: the UI answers with the sign-in page."""


@dataclass(frozen=True)
class UiUser:
    """A signed-in browser: its session and the token it signed in with."""

    session_id: str
    session: Session
    token: TokenRecord

    def can(self, scope: Scope) -> bool:
        return self.token.allows(scope)


def signed_in(request: Request, settings: SettingsDep, connection: RedisDep) -> UiUser | None:
    """The signed-in user: for a form, the session AuthenticateFirst found before the body was read."""
    found = getattr(request.state, UI_STATE_KEY, None) or signed_in_session(request, settings, connection)
    return None if found is None else UiUser(*found)


MaybeUser = Annotated[UiUser | None, Depends(signed_in)]


def page_user(scope: Scope = "read") -> Callable[[Request, UiUser | None], UiUser]:
    """A page's viewer: sign-in redirect without a session, 403 without the scope."""

    def check(request: Request, user: MaybeUser) -> UiUser:
        if user is None:
            raise SignInRequired()
        _require(user, scope)
        return user

    return check


def action_user(scope: Scope) -> Callable[[Request, UiUser | None], Awaitable[UiUser]]:
    """A form's sender: 401 without a session, 403 without the CSRF secret or the scope."""

    async def check(request: Request, user: MaybeUser) -> UiUser:
        if user is None:
            raise ApiError(401, "session: expected a signed-in session, got none (sign in at /ui/login)", field="session")
        sent = request.headers.get(sessions.CSRF_HEADER)
        if sent is None:
            sent = (await request.form()).get(sessions.CSRF_FIELD)
        if not sessions.csrf_matches(user.session, sent if isinstance(sent, str) else None):
            raise ApiError(
                403, f"{sessions.CSRF_FIELD}: expected this session's CSRF token, got {'another' if sent else 'none'}",
                field=sessions.CSRF_FIELD,
            )  # fmt: skip
        _require(user, scope)
        return user

    return check


def _require(user: UiUser, scope: Scope) -> None:
    require(scope)(user.token)  # the API's own check: 403 naming the scope


Reader = Annotated[UiUser, Depends(page_user("read"))]
Admin = Annotated[UiUser, Depends(page_user("admin"))]
Writer = Annotated[UiUser, Depends(action_user("write"))]
AdminAction = Annotated[UiUser, Depends(action_user("admin"))]
SignedIn = Annotated[UiUser, Depends(action_user("read"))]  # signing out needs only a session
