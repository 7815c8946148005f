"""Errors as JSON: every 4xx/5xx body has a one-line ``detail`` naming the field or file.

Body shape (``ErrorPublic`` in the OpenAPI schema)::

    {"detail": "t2.nii.gz: shape: expected (24, 28, 20) like t1.nii.gz, got (24, 28, 21)",
     "field": "shape", "file": "t2.nii.gz", "expected": "...", "got": "..."}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from softlabel.worker.engine.errors import InputError


VOXEL_COUNT_FIELD = "voxel count"  # InputError field of the header bomb guard: 413, not 422


class ApiError(StarletteHTTPException):
    """An HTTP error with a JSON body; raise it from routes, dependencies and service modules.

    It is a Starlette ``HTTPException`` so FastAPI passes it through body parsing unchanged.
    """

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        field: str | None = None,
        file: str | None = None,
        expected: str | None = None,
        got: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers)
        self.body: dict[str, Any] = {"detail": detail, "field": field, "file": file, "expected": expected, "got": got}

    @classmethod
    def from_input_error(cls, exc: InputError, *, hide: Path | None = None) -> "ApiError":
        """422 for bad content, 413 when a header claims too many voxels.

        Paths under ``hide`` (server scratch space) are cut down to file names.
        """
        info = exc.to_dict()
        status = 413 if exc.field == VOXEL_COUNT_FIELD else 422
        got = _strip_paths(exc.got, hide)
        return cls(status, _strip_paths(str(exc), hide), field=exc.field, file=info["file"], expected=exc.expected, got=got)

    @classmethod
    def from_validation_error(cls, exc: ValidationError, *, field_prefix: str = "") -> "ApiError":
        """422 naming the first invalid field, under ``field_prefix`` (e.g. ``params``) when given."""
        name, message = field_and_message(exc.errors()[0])
        field = f"{field_prefix}.{name}" if field_prefix and name != "request" else field_prefix or name
        return cls(422, f"{field}: {message}", field=field)


def _strip_paths(text: str, folder: Path | None) -> str:
    if folder is None:
        return text
    return re.sub(re.escape(str(folder)) + r"/(?:[^/\s\"']+/)*", "", text)


def not_found(what: str, name: str) -> ApiError:
    return ApiError(404, f"{what} {name!r} not found", field=what)


def conflict(detail: str, *, field: str) -> ApiError:
    return ApiError(409, detail, field=field)


METHOD_TAG = "method="  # union tags of schemas.LabelsetCreate: "method=gaussian"; left out of field names


def field_name(loc: tuple[Any, ...]) -> str:
    """The field a validation error names: ``params.sigma``, without the request part (body,
    query...) or a union's tag (``method=gaussian``: which body it was read as)."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header") and not str(p).startswith(METHOD_TAG)]
    return ".".join(parts) or "request"


JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def field_and_message(error: Any) -> tuple[str, str]:
    """The field one pydantic error names and its message. A labelset body's method (the union
    tag of ``schemas.LabelsetCreate``, error type ``method``) is named with the value sent."""
    if error["type"] != "method":
        return field_name(error["loc"]), error["msg"]
    body = error.get("input")
    if isinstance(body, dict):
        return "method", f"{error['msg']}, got {body.get('method')!r}"
    return "request body", f"expected a JSON object, got {JSON_TYPES.get(type(body), 'null')}"


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)


async def _input_error(_: Request, exc: InputError) -> JSONResponse:
    return await _api_error(_, ApiError.from_input_error(exc))


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [dict(zip(("field", "message"), field_and_message(e))) for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    body = {"detail": detail, "field": errors[0]["field"] if errors else None, "errors": errors}
    return JSONResponse(body, status_code=422)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")  # the ones a 405's Allow may list


def _documented_methods(request: Request) -> list[str] | None:
    """The methods the app's OpenAPI schema documents for the request's path, concrete paths
    matched before templated ones as OpenAPI says (``/v1/datasets/import`` is not the dataset
    ``import``); None for a path it does not describe (the web UI)."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    path = request.scope["path"]
    templated = [p for p in paths if "{" in p]
    for template in [p for p in paths if "{" not in p] + templated:
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            return sorted(method.upper() for method in paths[template] if method.upper() in HTTP_METHODS)
    return None


def allowed_methods(request: Request) -> list[str]:
    """The methods of the request's path, for a 405's Allow. Starlette's own names the methods
    of the first route whose path matched only, while e.g. GET and DELETE of one path are two
    routes: this lists the methods the OpenAPI schema documents for the path, or, for paths it
    does not describe, every method some route serves there (each tried against every route)."""
    documented = _documented_methods(request)
    if documented is not None:
        return documented
    routes = request.app.router.routes
    return [
        method for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]  # fmt: skip


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=headers or None)


async def _redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
    return JSONResponse({"detail": f"the job queue (Redis) is unreachable: {exc}"}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on an app."""
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(InputError, _input_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(redis.ConnectionError, _redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(redis.TimeoutError, _redis_down)  # type: ignore[arg-type]
