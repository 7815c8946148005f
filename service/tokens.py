"""Bearer API tokens with scopes ``read``, ``write`` and ``admin``, kept in Redis as hashes only.

Scopes nest: ``admin`` allows everything, ``write`` also allows ``read``. The first admin
token comes from ``SOFTLABEL_ADMIN_TOKEN`` and is never stored; admins mint and revoke the
others through ``/v1/tokens``. Redis holds, per token, its sha256 and its record (id, name,
scopes, dates); the secret is shown once, when minted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Literal

import redis

Scope = Literal["read", "write", "admin"]
SCOPE_RANK = {"read": 1, "write": 2, "admin": 3}
TOKEN_PREFIX = "sl_"
RECORDS_KEY = "softlabel:tokens"  # hash: token id -> JSON record
BY_HASH_KEY = "softlabel:token-hashes"  # hash: sha256 of the secret -> token id
ENV_ADMIN_ID = "env-admin"


@dataclass(frozen=True)
class TokenRecord:
    """What the service knows about a token (never its secret)."""

    id: str
    name: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None = None

    def allows(self, scope: Scope) -> bool:
        """Whether one of this token's scopes includes ``scope`` (admin > write > read)."""
        return max((SCOPE_RANK[s] for s in self.scopes), default=0) >= SCOPE_RANK[scope]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def env_admin(admin_token: str | None, secret: str) -> TokenRecord | None:
    """The admin identity when ``secret`` equals the configured admin token (constant time)."""
    if admin_token and hmac.compare_digest(_digest(secret), _digest(admin_token)):
        return TokenRecord(id=ENV_ADMIN_ID, name="SOFTLABEL_ADMIN_TOKEN", scopes=["admin"], created_at="")
    return None


def mint(connection: redis.Redis, *, name: str, scopes: list[str]) -> tuple[str, TokenRecord]:
    """A new token: returns (secret, record); only the secret's sha256 is stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(id=secrets.token_hex(8), name=name, scopes=sorted(set(scopes)), created_at=_now())
    with connection.pipeline() as pipe:
        pipe.hset(RECORDS_KEY, record.id, json.dumps(asdict(record) | {"sha256": _digest(secret)}))
        pipe.hset(BY_HASH_KEY, _digest(secret), record.id)
        pipe.execute()
    return secret, record


def _record(raw: bytes | str | None) -> TokenRecord | None:
    if raw is None:
        return None
    data = json.loads(raw)
    data.pop("sha256", None)
    return TokenRecord(**data)


def lookup(connection: redis.Redis, secret: str) -> TokenRecord | None:
    """The record of a minted token (revoked ones included), or None when unknown."""
    token_id = connection.hget(BY_HASH_KEY, _digest(secret))
    return None if token_id is None else _record(connection.hget(RECORDS_KEY, token_id))


def get(connection: redis.Redis, token_id: str) -> TokenRecord | None:
    """The record of a minted token by id (revoked ones included), or None."""
    return _record(connection.hget(RECORDS_KEY, token_id))


def list_tokens(connection: redis.Redis) -> list[TokenRecord]:
    """Every minted token, revoked ones included, oldest first."""
    records = [_record(raw) for raw in connection.hvals(RECORDS_KEY)]
    return sorted((r for r in records if r is not None), key=lambda r: (r.created_at, r.id))


def revoke(connection: redis.Redis, token_id: str) -> TokenRecord | None:
    """Mark a token revoked (kept for audit); None when there is no such token."""
    raw = connection.hget(RECORDS_KEY, token_id)
    if raw is None:
        return None
    data = json.loads(raw)
    data["revoked_at"] = data.get("revoked_at") or _now()
    connection.hset(RECORDS_KEY, token_id, json.dumps(data))
    return _record(json.dumps(data))
