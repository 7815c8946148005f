"""The ``/v1`` router: every resource router, with the error responses they share in OpenAPI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..schemas import ErrorPublic
from .routes import datasets, jobs, labelsets, studies, tokens

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "no token, an unknown one or a revoked one"},
    403: {"model": ErrorPublic, "description": "the token lacks the scope this endpoint needs"},
    404: {"model": ErrorPublic, "description": "no such dataset, study, labelset, job or file"},
    409: {"model": ErrorPublic, "description": "conflicts with what exists (duplicate id, other parameters)"},
    413: {"model": ErrorPublic, "description": "upload or header voxel count over the configured limit"},
    422: {"model": ErrorPublic, "description": "invalid request or input file; names the field or file"},
    503: {"model": ErrorPublic, "description": "Redis unreachable or the dataset is busy"},
}

api_router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
for module in (datasets, studies, labelsets, jobs, tokens):
    api_router.include_router(module.router)
