"""The application factory: ``uvicorn --factory service.app:create_app``.

Extend it in one place: add a middleware or a route (e.g. ``/metrics``) after ``create_app``
builds the app, or inside it beside the body size limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from softlabel.worker import __version__

from .api.deps import ReadScope, redis_for
from .api.main import api_router
from .api.responses import AUTHENTICATED, errors
from .api.routes import health
from .authentication import AuthenticateFirst
from .errors import install_error_handlers
from .limits import BodySizeLimit, body_limit
from .metrics import install_metrics
from .settings import Settings, get_settings
from .ui import install_ui, refused_form

DESCRIPTION = """Superpixel-guided soft labels for medical image segmentation.

Upload studies (NIfTI, one file per channel plus a label map), define labelsets (a softening
method and its parameters), and download soft labels computed by RQ workers. Every endpoint
except `/healthz` needs `Authorization: Bearer <token>` with the `read`, `write` or `admin` scope.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings`` replaces the environment's (tests, embedded stacks)."""

    def current() -> Settings:
        return settings or get_settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        current().data_dir.mkdir(parents=True, exist_ok=True)
        yield

    app = FastAPI(title="softlabel", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    if settings is not None:
        app.dependency_overrides[get_settings] = current
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, limit_for=lambda scope: body_limit(scope, current()))
    app.add_middleware(
        AuthenticateFirst, settings=current, redis_for=redis_for, ui_refusal=refused_form
    )  # outside the body limit: 401 first
    app.include_router(health.router)
    app.include_router(api_router)
    install_ui(app)  # the web UI under /ui/ (docs/ui.md)
    install_metrics(
        app, redis_factory=lambda: redis_for(current().redis_url), queue_names=lambda: [current().queue],
        dependencies=[ReadScope], responses=errors(*AUTHENTICATED),
    )  # fmt: skip
    return app
