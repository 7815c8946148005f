"""``/v1/tokens`` (admin): mint, list and revoke API tokens."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from ...errors import not_found
from ...schemas import TokenCreate, TokenCreated, TokenPublic, TokensPublic
from ..deps import AdminScope, TokensDep
from ..responses import BODY, PATH_IDS, errors

router = APIRouter(prefix="/tokens", tags=["tokens"], dependencies=[AdminScope])


@router.post("", response_model=TokenCreated, status_code=201, responses=errors(*BODY))
def create_token(body: TokenCreate, store: TokensDep) -> TokenCreated:
    """A new token; the response holds its secret, which is not stored and not shown again."""
    secret, record = store.mint(name=body.name, scopes=list(body.scopes))
    return TokenCreated(**asdict(record), token=secret)


@router.get("", response_model=TokensPublic)
def list_tokens(store: TokensDep) -> TokensPublic:
    data = [TokenPublic(**asdict(record)) for record in store.list_tokens()]
    return TokensPublic(data=data, count=len(data))


@router.delete("/{token_id}", response_model=TokenPublic, responses=errors(*PATH_IDS))
def revoke_token(token_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")], store: TokensDep) -> TokenPublic:
    """Revoke a token: requests with it get 401 from now on."""
    record = store.revoke(token_id)
    if record is None:
        raise not_found("token", token_id)
    return TokenPublic(**asdict(record))
