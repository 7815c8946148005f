"""Browser sessions of the web UI: a random id in a cookie, the session itself in Redis.

Signing in with an API token creates a session. The cookie holds only a random session id
(``secrets.token_urlsafe(32)``); Redis keeps, under the sha256 of that id, the token's id and
the session's CSRF secret, never the API token. Every request reads the token's record again,
so revoking the token ends its sessions at once and its scopes are the API's. Signing out
deletes the Redis key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import redis

from . import tokens
from .tokens import ENV_ADMIN_ID, TokenRecord, TokenStore

COOKIE = "softlabel_session"
CSRF_FIELD = "csrf_token"  # form field of every state-changing form
CSRF_HEADER = "X-CSRF-Token"  # the same secret, sent by the UI's scripts (uploads)
SESSION_TTL_S = 8 * 3600  # seconds a session lives after sign-in (one working day)
KEY = "softlabel:ui-session:{digest}"  # Redis string: JSON {token_id, csrf, created_at}


@dataclass(frozen=True)
class Session:
    """A signed-in browser: whose token it is and the secret its forms must send back."""

    token_id: str
    csrf: str


def _key(session_id: str) -> str:
    return KEY.format(digest=hashlib.sha256(session_id.encode()).hexdigest())


def create(connection: redis.Redis, record: TokenRecord) -> str:
    """A new session for ``record``'s token; returns the session id for the cookie."""
    session_id = new_secret()
    value = {"token_id": record.id, "csrf": new_secret()}
    connection.set(_key(session_id), json.dumps(value), ex=SESSION_TTL_S)
    return session_id


def load(connection: redis.Redis, session_id: str | None) -> Session | None:
    """The session behind a cookie value, or None when unknown, expired or ended."""
    if not session_id:
        return None
    raw = connection.get(_key(session_id))
    if raw is None:
        return None
    data = json.loads(raw)
    return Session(token_id=data["token_id"], csrf=data["csrf"])


def end(connection: redis.Redis, session_id: str | None) -> None:
    """Sign out: the session is gone server-side, whatever the browser keeps."""
    if session_id:
        connection.delete(_key(session_id))


def token_of(store: TokenStore, session: Session, *, admin_token: str | None) -> TokenRecord | None:
    """The session's token as it is now: None once revoked (or, for the configured admin
    token, once the service no longer has one)."""
    if session.token_id == ENV_ADMIN_ID:
        return tokens.env_admin(admin_token, admin_token) if admin_token else None
    record = store.get(session.token_id)
    return None if record is None or record.revoked_at else record


def new_secret() -> str:
    """A random secret for a form (the sign-in form's, which has no session yet)."""
    return secrets.token_urlsafe(32)


def same_secret(expected: str | None, sent: str | None) -> bool:
    """Whether ``sent`` is the non-empty ``expected`` secret (constant time)."""
    return bool(expected) and bool(sent) and hmac.compare_digest(str(expected).encode(), str(sent).encode())


def csrf_matches(session: Session, sent: str | None) -> bool:
    """Whether a form or header sent the session's CSRF secret."""
    return same_secret(session.csrf, sent)
