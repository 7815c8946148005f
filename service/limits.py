"""Request body size limits (413), enforced before and while the body is read.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused before
anything is read; a chunked body is counted as it streams and cut off at the limit. JSON
bodies get their own small limit (``max_json_bytes``); multipart uploads the study limit, and
the zip import its own.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError
from .settings import Settings

IMPORT_PATHS = ("/v1/datasets/import", "/ui/datasets/import")  # the routes whose body limit is max_import_bytes


def body_limit(scope: Scope, settings: Settings) -> int:
    """Bytes a request may send: the import's limit, the upload limit for multipart forms, and
    ``max_json_bytes`` for everything else (JSON, the UI's urlencoded forms, any other type)."""
    if scope["path"] in IMPORT_PATHS:
        return settings.max_import_bytes
    content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
    return settings.max_upload_bytes if content_type == b"multipart/form-data" else settings.max_json_bytes


def too_large(limit: int, got: str) -> ApiError:
    """The 413 error for a body over ``limit`` bytes."""
    return ApiError(
        413, f"request body: expected at most {limit} bytes, got {got}", field="request body",
        expected=f"at most {limit} bytes", got=got,
    )  # fmt: skip


class BodySizeLimit:
    """Refuse request bodies larger than ``limit_for(scope)`` bytes with 413 JSON."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _respond(too_large(limit, f"{int(declared)} bytes declared"), scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit, f"more than {limit} bytes sent")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ApiError as exc:  # raised outside the app's own handlers
            if started:
                raise
            await _respond(exc, scope, receive, send)


async def _respond(exc: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse(exc.body, status_code=exc.status_code)(scope, receive, send)
