"""The web UI for the labeling team, under ``/ui/`` of the API's own app (docs/ui.md).

``install_ui(app)`` adds the pages, the vendored scripts (``/ui/static``, no network at run
time), the security headers of every UI answer, and HTML error pages for the UI's paths.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from softlabel.worker.engine.errors import InputError

from ..errors import ApiError
from .auth import SignInRequired
from .messages import error_message
from .pages import TEMPLATES, router

PREFIX = "/ui"
STATIC = Path(__file__).parent / "static"
# Only the app's own scripts and styles; NiiVue draws with WebGL and reads volumes with fetch.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the CSP and its companions to every answer under ``/ui`` (pages, scripts, errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _as_page(request: Request, response: Response) -> Response:
    """A JSON error answer to a UI path as the HTML error page, with a plain sentence where one
    fits (JSON still for the UI's scripts, which ask for it, and for the API)."""
    wants_json = "application/json" in request.headers.get("accept", "")
    if not request.url.path.startswith(PREFIX + "/") or wants_json:
        return response
    body = json.loads(bytes(response.body))
    context = {"status": response.status_code, "error": body, "message": error_message(response.status_code, body)}
    page = TEMPLATES.TemplateResponse(request, "error.html", context | {"user": None}, status_code=response.status_code)
    for name in ("www-authenticate",):
        if name in response.headers:
            page.headers[name] = response.headers[name]
    return page


def _html_errors(api_handler: Handler) -> Handler:
    """Errors on UI paths as an HTML page (:func:`_as_page`)."""

    async def handle(request: Request, exc: Exception) -> Response:
        return _as_page(request, await api_handler(request, exc))

    return handle


def refused_form(request: Request, exc: ApiError) -> Response:
    """``AuthenticateFirst``'s answer to a UI form sent without a session (signed out in another
    tab, the session ended): the error page, which tells the user to sign in again."""
    return _as_page(request, JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers))


async def _sign_in(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request"):  # htmx polling after the session ended: reload into the sign-in page
        return Response(status_code=401, headers={"HX-Redirect": "/ui/login"})
    return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)


def install_ui(app: FastAPI) -> None:
    """Mount the UI on ``app`` (after ``install_error_handlers``, whose handlers it wraps)."""
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(router)
    app.add_middleware(SecurityHeaders)
    for exc_type in (ApiError, InputError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(exc_type, _html_errors(app.exception_handlers[exc_type]))  # type: ignore[arg-type]
    app.add_exception_handler(SignInRequired, _sign_in)
