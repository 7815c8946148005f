"""The error responses of the OpenAPI schema, in one table: each route names the statuses it can answer.

Every route behind the token check (``/v1``, ``/metrics``, ``/readyz``) may answer
:data:`AUTHENTICATED`: 401 before the route runs, 403 for a token without the route's scope,
413 from the body size middleware (whatever the route: a GET may carry a body too) and 503
when Redis is down. The rest depends on the route: :data:`BODY` for a request body (JSON or
multipart), :data:`PATH_IDS` for ids in the path, 409 for conflicts, and a download's range
answers (:func:`download`).
"""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorPublic

ERRORS: dict[int, str] = {
    400: "the body cannot be parsed: not JSON, not UTF-8, or a malformed multipart form",
    401: "no bearer token, an unknown one or a revoked one (WWW-Authenticate: Bearer)",
    403: "the token lacks the scope this endpoint needs",
    404: "no such dataset, study, labelset, job, token or file",
    409: "conflicts with what exists: a duplicate id, a labelset name with other parameters, a job in another state",
    413: "request body over its limit, or a NIfTI header claiming more voxels than the limit",
    422: "an invalid request field or input file; names the field or file",
    503: "Redis unreachable, or the dataset or the token file busy",
}
AUTHENTICATED = (401, 403, 413, 503)  # every route behind the token check
BODY = (400, 422)  # every route with a request body (JSON or multipart)
PATH_IDS = (404, 422)  # every route with ids in its path: 422 for a malformed one


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for these error statuses, each with the ``ErrorPublic`` body."""
    return {status: {"model": ErrorPublic, "description": ERRORS[status]} for status in statuses}


def download(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` of a file download (Starlette's ``FileResponse``): the file (200),
    the bytes a Range header asks for (206; several ranges as multipart/byteranges), a malformed
    Range (400) or one outside the file (416, with ``Content-Range: bytes */<size>``) in plain
    text, and :data:`PATH_IDS` (404 also while the file is not there yet)."""
    text = {"content": {"text/plain": {}}}
    return errors(*PATH_IDS) | {
        200: {"description": description, "content": {media_type: {}}},
        206: {"description": "the bytes the Range header asked for", "content": {media_type: {}, "multipart/byteranges": {}}},
        400: {"description": "a malformed Range header", **text},
        416: {"description": "the Range header names no byte of the file", **text},
    }  # fmt: skip
