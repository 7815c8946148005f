"""The pages under ``/ui/``: server-rendered (Jinja2), with htmx for the live labelset counts.

Every page and form calls the functions the ``/v1`` routes call (or the route function
itself), so the UI has the API's validation, errors, locks and scopes, and no logic of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from softlabel.worker.engine.config import METHOD_PARAMS, SofteningConfig

from .. import datasets as ds
from .. import labelsets as ls
from .. import layout, sessions
from .. import studies as st
from ..api.deps import (
    CaseId, DatasetDep, LabelsetName, QueueDep, RedisDep, SettingsDep, StorageDep, TokensDep, token_for_secret,
)
from ..api.routes import datasets as dataset_routes
from ..api.routes import studies as study_routes
from ..api.routes import tokens as token_routes
from ..errors import ApiError
from ..layout import JOB_ID_PATTERN
from ..schemas import LABELSET_CREATE, DatasetCreate, StudyPublic, TokenCreate
from ..tokens import TokenStore
from . import messages
from .auth import Admin, AdminAction, MaybeUser, Reader, SignedIn, UiUser, Writer

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
LOGIN_CSRF_COOKIE = "softlabel_login_csrf"  # double-submit secret of the sign-in form (no session yet)
STUDIES_PER_PAGE = 25  # studies per page on the dataset page
LABELSET_ROWS_PER_PAGE = 50  # studies per page on the labelset page
POLL_S = 1  # seconds between the labelset page's live updates
STOP_POLLING = 286  # htmx swaps this answer in, then stops polling
FORM_FIELDS = {method: (*params, "dtype") for method, params in METHOD_PARAMS.items()}  # a method's form fields

router = APIRouter(prefix="/ui", include_in_schema=False)


def render(request: Request, template: str, user: UiUser | None, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page with the signed-in user and the session's CSRF secret for its forms."""
    csrf = user.session.csrf if user else ""
    context |= {"user": user, "csrf": csrf, "csrf_field": sessions.CSRF_FIELD, "poll_s": POLL_S}
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def validated(
    model: type[BaseModel] | TypeAdapter, *, parse_text: bool = False, field_prefix: str = "", **data: Any
) -> Any:
    """``model(**data)`` (a model or a type adapter's type), with a validation error as the API's
    422 naming the field (after ``field_prefix``); ``parse_text``: form text is parsed by the
    field types even where the model is strict."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data, strict=False if parse_text else None)
        return model.model_validate(data, strict=False) if parse_text else model(**data)
    except ValidationError as exc:
        raise ApiError.from_validation_error(exc, field_prefix=field_prefix) from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _int_list(field: str, text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise ApiError(422, f"{field}: expected class ids separated by commas, got {text!r}", field=field) from None


def param_bounds() -> dict[str, dict[str, Any]]:
    """The API's bounds of each numeric SofteningConfig field, as HTML min/max attributes."""
    bounds: dict[str, dict[str, Any]] = {}
    for name, info in SofteningConfig.model_fields.items():
        attrs: dict[str, Any] = {"value": info.default}
        for rule in info.metadata:
            for key, attr in (("ge", "min"), ("gt", "min"), ("le", "max"), ("lt", "max")):
                if getattr(rule, key, None) is not None:
                    attrs[attr] = getattr(rule, key)
        bounds[name] = attrs
    return bounds


# --- sign-in -------------------------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    return see_other("/ui/datasets")


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a UI path only (no open redirect)."""
    return target if target and target.startswith("/ui/") and not target.startswith("//") else "/ui/datasets"


@router.get("/login")
def login_page(request: Request, user: MaybeUser, next: str | None = None, error: str | None = None) -> HTMLResponse:
    """The sign-in form; ``error`` is a code of :data:`messages.SIGN_IN` (other values show nothing)."""
    return _sign_in_form(request, user, next=next, error=error)


def _sign_in_form(
    request: Request, user: UiUser | None, *, next: str | None, error: str | None, status_code: int = 200
) -> HTMLResponse:
    """The sign-in page with a fresh form secret (its cookie set on the answer)."""
    csrf = sessions.new_secret()
    response = render(
        request, "login.html", None, status_code=status_code, next=_safe_next(next), login_csrf=csrf,
        error=messages.sign_in_message(error), signed_in=user,
    )  # fmt: skip
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/ui/login"
    )
    return response


@router.post("/login")
def login(
    request: Request,
    settings: SettingsDep,
    connection: RedisDep,
    token: Annotated[str, Form(max_length=500)],
    csrf_token: Annotated[str | None, Form()] = None,
    next: Annotated[str | None, Form()] = None,
) -> Response:
    """Exchange a pasted API token for a session; the token itself is not kept anywhere.

    A form whose secret is not the sign-in cookie's (another sign-in page opened since, or a
    forged post) gets the form again, 403, and signs nobody in."""
    if not sessions.same_secret(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _sign_in_form(request, None, next=next, error="stale-form", status_code=403)
    try:
        record = token_for_secret(settings, connection, token.strip())
    except ApiError:
        return see_other(f"/ui/login?error=bad-token&next={quote(_safe_next(next))}")
    response = see_other(_safe_next(next))
    response.set_cookie(
        sessions.COOKIE, sessions.create(connection, record), max_age=sessions.SESSION_TTL_S, httponly=True,
        samesite="strict", secure=request.url.scheme == "https", path="/",
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login", httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(user: SignedIn, connection: RedisDep) -> Response:
    """End the session in Redis; the cookie is cleared too, but is worthless from now on."""
    sessions.end(connection, user.session_id)
    response = see_other("/ui/login")
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return response


# --- datasets ------------------------------------------------------------------------------


@router.get("/datasets")
def datasets_page(request: Request, user: Reader, storage: StorageDep) -> HTMLResponse:
    data = [ds.to_public(storage, dataset) for dataset in ds.list_datasets(storage)]
    return render(request, "datasets.html", user, datasets=data)


@router.post("/datasets")
def create_dataset(
    _: Writer,
    storage: StorageDep,
    name: Annotated[str, Form()],
    classes: Annotated[str, Form(description="class names in id order, comma-separated")],
    channels: Annotated[str, Form(description="channel names in order, comma-separated")],
    dataset_id: Annotated[str, Form()] = "",
    ignore: Annotated[str, Form()] = "",
) -> Response:
    body = validated(
        DatasetCreate, id=dataset_id.strip() or None, name=name.strip(),
        labels={label: i for i, label in enumerate(_names(classes))},
        channel_names={str(i): channel for i, channel in enumerate(_names(channels))},
        ignore_classes=_int_list("ignore", ignore),
    )  # fmt: skip
    created = dataset_routes.create_dataset(body, storage)
    return see_other(f"/ui/datasets/{created.id}")


@router.post("/datasets/import")
def import_dataset(
    _: Writer,
    storage: StorageDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    dataset_id: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """The API's zip import (``POST /v1/datasets/import``)."""
    imported = dataset_routes.import_dataset(
        file, storage, settings, dataset_id=validated_id(dataset_id), name=name.strip() or None
    )
    return see_other(f"/ui/datasets/{imported.id}")


def validated_id(value: str) -> str | None:
    """An optional dataset id from a form: blank is None; otherwise the API's id rule applies."""
    value = value.strip()
    if value and not layout.is_valid_id(value):
        raise ApiError(422, f"dataset_id: expected letters, digits, '_' or '-' (at most 128), got {value!r}",
                       field="dataset_id", expected=layout.ID_PATTERN, got=value)  # fmt: skip
    return value or None


@router.get("/datasets/{dataset_id}")
def dataset_page(
    request: Request, user: Reader, dataset: DatasetDep, storage: StorageDep, connection: RedisDep,
    page_token: Annotated[str | None, Query()] = None,
) -> HTMLResponse:  # fmt: skip
    studies = st.list_page(storage, dataset.id, page_size=STUDIES_PER_PAGE, page_token=page_token)
    labelsets = [ls.to_public(storage, connection, labelset) for labelset in ls.list_labelsets(storage, dataset.id)]
    return render(
        request, "dataset.html", user, dataset=ds.to_public(storage, dataset), studies=studies, labelsets=labelsets,
        methods=list(FORM_FIELDS), method_params=FORM_FIELDS, bounds=param_bounds(), page_token=page_token,
    )  # fmt: skip


@router.post("/datasets/{dataset_id}/studies", status_code=201)
def upload_study(
    _: Writer,
    dataset: DatasetDep,
    images: Annotated[list[UploadFile], File()],
    label: Annotated[UploadFile, File()],
    storage: StorageDep,
    queue: QueueDep,
    settings: SettingsDep,
    case_id: Annotated[str, Form()] = "",
) -> StudyPublic:
    """The API's upload (``POST /v1/datasets/{id}/studies``); the page's script shows its JSON."""
    return study_routes.upload_study(dataset, images, label, storage, queue, settings, case_id=case_id.strip() or None)


@router.post("/datasets/{dataset_id}/labelsets")
async def create_labelset(
    request: Request, _: Writer, dataset: DatasetDep, storage: StorageDep, queue: QueueDep, settings: SettingsDep
) -> Response:
    form = await request.form()
    method = str(form.get("method", "superpixel"))
    fields = FORM_FIELDS.get(method, ())
    text = {field: form.get(field) for field in fields if form.get(field) not in (None, "")}
    if "normalize" in fields:
        text["normalize"] = form.get("normalize") == "on"
    # A form sends text: parse it by the configuration's field types (the configuration itself is
    # strict, so the API refuses "2000" for a count), with its ranges and messages.
    typed = validated(SofteningConfig, **{"method": method, **text}, parse_text=True, field_prefix="params")
    params = {field: getattr(typed, field) for field in text}
    body = validated(LABELSET_CREATE, name=str(form.get("name", "")).strip(), method=method, params=params)
    # In a thread: it waits for the dataset lock, lists folders, copies reused results and
    # enqueues, which would hold up every other request on the event loop.
    await run_in_threadpool(ls.create_labelset, storage, queue, settings, dataset, body)
    return see_other(f"/ui/datasets/{dataset.id}/labelsets/{body.name}")


# --- labelsets -----------------------------------------------------------------------------


@router.get("/datasets/{dataset_id}/labelsets/{name}")
@router.get("/datasets/{dataset_id}/labelsets/{name}/live")
def labelset_page(
    request: Request, user: Reader, dataset: DatasetDep, name: LabelsetName, storage: StorageDep, connection: RedisDep,
    page_token: Annotated[str | None, Query()] = None,
) -> HTMLResponse:  # fmt: skip
    """The labelset page; ``/live`` is its counts and study table alone, which htmx polls until
    no study is queued or running (then it answers 286, htmx's "stop polling")."""
    labelset = ls.get_labelset(storage, dataset.id, name)
    states = ls.all_states(storage, connection, labelset)  # once per poll: the counts and the page come from it
    public = ls.public_of(labelset, states)
    rows = ls.page_of_states(states, page_size=LABELSET_ROWS_PER_PAGE, page_token=page_token)
    settled = ls.is_settled(public.counts)
    live = request.url.path.endswith("/live")
    return render(
        request, "_labelset_live.html" if live else "labelset.html", user,
        status_code=STOP_POLLING if live and settled else 200, dataset=dataset, labelset=public, rows=rows,
        page_token=page_token, has_superpixels=labelset.config.method == "superpixel", poll=not settled,
    )  # fmt: skip


@router.post("/datasets/{dataset_id}/labelsets/{name}/retry-failed")
def retry_failed(
    _: Writer, dataset: DatasetDep, name: LabelsetName, storage: StorageDep, queue: QueueDep, settings: SettingsDep
) -> Response:
    """Re-post the labelset's own configuration: the API then queues its failed, stopped,
    canceled and missing studies, and nothing else."""
    labelset = ls.get_labelset(storage, dataset.id, name)
    body = LABELSET_CREATE.validate_python({"name": name, "method": labelset.config.method, "params": labelset.params})
    ls.create_labelset(storage, queue, settings, dataset, body)
    return see_other(f"/ui/datasets/{dataset.id}/labelsets/{name}")


JobIdParam = Annotated[str, PathParam(pattern=JOB_ID_PATTERN)]


def _back_to_labelset(job: Any) -> RedirectResponse:
    return see_other(f"/ui/datasets/{job.dataset_id}/labelsets/{job.labelset}")


@router.post("/jobs/{job_id}/retry")
def retry_job(_: Writer, job_id: JobIdParam, storage: StorageDep, queue: QueueDep, settings: SettingsDep) -> Response:
    return _back_to_labelset(ls.retry_job(storage, queue, settings, job_id))


@router.post("/jobs/{job_id}/stop")
def stop_job(_: Writer, job_id: JobIdParam, connection: RedisDep) -> Response:
    return _back_to_labelset(ls.stop_job(connection, job_id))


# --- the viewer ----------------------------------------------------------------------------


@router.get("/datasets/{dataset_id}/studies/{case_id}")
def viewer_page(
    request: Request, user: Reader, dataset: DatasetDep, case_id: CaseId, storage: StorageDep, connection: RedisDep,
    labelset: Annotated[str | None, Query()] = None, compare: Annotated[str | None, Query()] = None,
) -> HTMLResponse:  # fmt: skip
    """NiiVue: the image with one class's soft label, the hard label and superpixel boundaries
    as toggles, and a second labelset side by side. Files come from the ``/v1`` downloads."""
    study = st.get_study(storage, dataset.id, case_id)
    names = ds.labelset_names(storage, dataset.id)
    panes = []
    for name in [n for n in (labelset or (names[0] if names else None), compare) if n]:
        chosen = ls.get_labelset(storage, dataset.id, name)
        (state,) = ls.study_states(storage, connection, chosen, [case_id])
        panes.append({
            "name": name, "method": chosen.config.method, "status": state.status,
            "soft": ls.output_url(chosen, case_id, "soft") if state.status == "finished" else "",
            "superpixels": ls.output_url(chosen, case_id, "superpixels")
            if state.status == "finished" and chosen.config.method == "superpixel" else "",
        })  # fmt: skip
    classes = sorted(dataset.labels.items(), key=lambda item: item[1])
    return render(
        request, "viewer.html", user, dataset=dataset, study=study, labelsets=names, panes=panes, classes=classes,
        image_url=st.file_url(dataset.id, case_id, "images/0"), label_url=st.file_url(dataset.id, case_id, "label"),
        selected=labelset or (names[0] if names else ""), compare=compare or "",
    )  # fmt: skip


# --- tokens (admin) -------------------------------------------------------------------------


def _tokens_page(request: Request, user: UiUser, store: TokenStore, **extra: Any) -> HTMLResponse:
    return render(request, "tokens.html", user, tokens=store.list_tokens(), **extra)


@router.get("/tokens")
def tokens_page(request: Request, user: Admin, store: TokensDep) -> HTMLResponse:
    return _tokens_page(request, user, store)


@router.post("/tokens")
def mint_token(
    request: Request, user: AdminAction, store: TokensDep, name: Annotated[str, Form()],
    scope: Annotated[str, Form()],
) -> HTMLResponse:  # fmt: skip
    """Mint a token; this answer is the only place its secret ever appears."""
    minted = token_routes.create_token(validated(TokenCreate, name=name.strip(), scopes=[scope]), store)
    return _tokens_page(request, user, store, minted=minted)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(_: AdminAction, token_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")], store: TokensDep) -> Response:
    token_routes.revoke_token(token_id, store)
    return see_other("/ui/tokens")
