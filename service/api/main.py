"""The ``/v1`` router: every resource router, behind the token check (its error responses in OpenAPI)."""

from __future__ import annotations

from fastapi import APIRouter

from .responses import AUTHENTICATED, errors
from .routes import datasets, jobs, labelsets, studies, tokens

api_router = APIRouter(prefix="/v1", responses=errors(*AUTHENTICATED))
for module in (datasets, studies, labelsets, jobs, tokens):
    api_router.include_router(module.router)
