"""Bearer API tokens with scopes ``read``, ``write`` and ``admin``, kept as hashes only.

Scopes nest: ``admin`` allows everything, ``write`` also allows ``read``. The first admin
token comes from ``SOFTLABEL_ADMIN_TOKEN`` and is never stored; admins mint and revoke the
others through ``/v1/tokens``. Per token the service keeps its record (id, name, scopes,
dates) and the sha256 of its secret; the secret is shown once, when minted.

**The token file is authoritative; Redis is its cache.** ``<data dir>/tokens.json`` (mode
0600, :data:`softlabel.service.layout.TOKENS`) holds every record, so the data directory alone
restores the tokens. Mint and revoke rewrite it (atomically, under the Redis lock
:func:`softlabel.service.locks.tokens_lock`, so API processes on any host take turns), then
replace Redis's copy with it. Lookups read Redis only: :data:`RESTORED_KEY` says Redis holds
the file's tokens; when it is missing (Redis was flushed or lost its files), the first lookup
loads the file into Redis again under the same lock. Without a file yet (a data directory
from before the file existed), the tokens Redis holds are written to it first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import redis

from softlabel.worker.engine.io.atomic import atomic_path

from .layout import TOKENS
from .locks import tokens_lock

Scope = Literal["read", "write", "admin"]
SCOPE_RANK = {"read": 1, "write": 2, "admin": 3}
TOKEN_PREFIX = "sl_"
RECORDS_KEY = "softlabel:tokens"  # hash: token id -> JSON record (with the secret's sha256)
BY_HASH_KEY = "softlabel:token-hashes"  # hash: sha256 of the secret -> token id
RESTORED_KEY = "softlabel:tokens-restored"  # string: present while Redis holds the token file's tokens
ENV_ADMIN_ID = "env-admin"
FILE_MODE = 0o600  # the token file: hashes only, still nobody else's business

Entries = dict[str, dict[str, Any]]  # token id -> record fields + "sha256"


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


def _record(entry: bytes | str | dict[str, Any] | None) -> TokenRecord | None:
    if entry is None:
        return None
    data = dict(entry) if isinstance(entry, dict) else json.loads(entry)
    data.pop("sha256", None)
    return TokenRecord(**data)


def env_admin(admin_token: str | None, secret: str) -> TokenRecord | None:
    """The admin identity when ``secret`` equals the configured admin token (constant time)."""
    if admin_token and hmac.compare_digest(_digest(secret), _digest(admin_token)):
        return TokenRecord(id=ENV_ADMIN_ID, name="SOFTLABEL_ADMIN_TOKEN", scopes=["admin"], created_at="")
    return None


class TokenStore:
    """The minted tokens: the file at ``path`` (authoritative) and Redis (its cache)."""

    def __init__(self, connection: redis.Redis, path: Path) -> None:
        self.connection = connection
        self.path = path

    # --- reads: Redis, restored from the file first when it lost the tokens ----------------

    def lookup(self, secret: str) -> TokenRecord | None:
        """The record of a minted token (revoked ones included), or None when unknown."""
        token_id = self._cached(lambda c: c.hget(BY_HASH_KEY, _digest(secret)))
        return None if token_id is None else _record(self.connection.hget(RECORDS_KEY, token_id))

    def get(self, token_id: str) -> TokenRecord | None:
        """The record of a minted token by id (revoked ones included), or None."""
        return _record(self._cached(lambda c: c.hget(RECORDS_KEY, token_id)))

    def list_tokens(self) -> list[TokenRecord]:
        """Every minted token, revoked ones included, oldest first."""
        records = [_record(raw) for raw in self._cached(lambda c: c.hvals(RECORDS_KEY))]
        return sorted((r for r in records if r is not None), key=lambda r: (r.created_at, r.id))

    def _cached(self, read: Callable[[Any], Any]) -> Any:
        """``read`` on Redis, in the same round trip as the check that Redis holds the tokens."""
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.exists(RESTORED_KEY)
            read(pipe)
            restored, value = pipe.execute()
        if restored:
            return value
        self.restore()
        return read(self.connection)

    # --- writes: the file first, then Redis --------------------------------------------------

    def mint(self, *, name: str, scopes: list[str]) -> tuple[str, TokenRecord]:
        """A new token: returns (secret, record); only the secret's sha256 is stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(id=secrets.token_hex(8), name=name, scopes=sorted(set(scopes)), created_at=_now())
        with tokens_lock(self.connection):
            entries = self._authoritative()
            entries[record.id] = asdict(record) | {"sha256": _digest(secret)}
            self._save(entries)
        return secret, record

    def revoke(self, token_id: str) -> TokenRecord | None:
        """Mark a token revoked (kept for audit); None when there is no such token."""
        with tokens_lock(self.connection):
            entries = self._authoritative()
            entry = entries.get(token_id)
            if entry is None:
                return None
            entry["revoked_at"] = entry.get("revoked_at") or _now()
            self._save(entries)
        return _record(entry)

    def restore(self) -> None:
        """Load the token file into Redis, unless another process just did (under the lock)."""
        with tokens_lock(self.connection):
            if self.connection.exists(RESTORED_KEY):
                return
            entries = self._authoritative()
            if not self.path.exists():
                self._write_file(entries)  # adopt the tokens of a Redis that predates the file
            self._publish(entries)

    def _authoritative(self) -> Entries:
        """The file's tokens; Redis's when there is no file yet (call under the lock)."""
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {key.decode(): json.loads(raw) for key, raw in self.connection.hgetall(RECORDS_KEY).items()}
        except ValueError as exc:
            raise ValueError(f"{self.path}: expected the token file's JSON, got invalid JSON ({exc})") from None
        tokens = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, dict) and {"id", "sha256"} <= t.keys() for t in tokens):
            raise ValueError(f"{self.path}: expected {{'tokens': [records with 'id' and 'sha256']}}, got something else")
        return {entry["id"]: entry for entry in tokens}

    def _save(self, entries: Entries) -> None:
        self._write_file(entries)
        self._publish(entries)

    def _write_file(self, entries: Entries) -> None:
        """Replace the file atomically (mode 0600, flushed to disk before the rename)."""
        ordered = sorted(entries.values(), key=lambda e: (e["created_at"], e["id"]))
        text = json.dumps({"tokens": ordered}, indent=2, sort_keys=True) + "\n"
        with atomic_path(self.path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())

    def _publish(self, entries: Entries) -> None:
        """Make Redis's copy equal to ``entries`` in one transaction, and mark it restored."""
        with self.connection.pipeline(transaction=True) as pipe:
            pipe.delete(RECORDS_KEY, BY_HASH_KEY)
            if entries:
                pipe.hset(RECORDS_KEY, mapping={token_id: json.dumps(e) for token_id, e in entries.items()})
                pipe.hset(BY_HASH_KEY, mapping={e["sha256"]: token_id for token_id, e in entries.items()})
            pipe.set(RESTORED_KEY, "1")
            pipe.execute()


def token_store(connection: redis.Redis, data_dir: Path) -> TokenStore:
    """The token store of the data directory ``data_dir``, cached in ``connection``'s Redis."""
    return TokenStore(connection, data_dir / TOKENS)
