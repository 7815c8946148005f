"""Request and response bodies of the ``/v1`` API (``XCreate`` in, ``XPublic``/``XsPublic`` out)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)

from softlabel.worker.engine.config import METHOD_PARAMS, Method, SofteningConfig

from .errors import METHOD_TAG
from .layout import ID_PATTERN
from .tokens import Scope

IdStr = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def _integral(value: Any) -> Any:
    """JSON has one number type: 3.0 is the integer 3, as JSON Schema's "integer" says (a bool,
    a string or 3.5 is still refused by the strict int after this)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(_integral)]  # a strict int that takes 3.0 for 3
ClassId = Annotated[JsonInt, Field(ge=0)]
ChannelKey = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]*)$")]
# Request bodies: unknown fields refused, and strict types as JSON Schema has them (no "1" or
# true for an integer), so that their OpenAPI schema accepts exactly what the server accepts.
REQUEST = ConfigDict(extra="forbid", strict=True)
StudyStatus = Literal["queued", "running", "finished", "failed", "canceled", "missing"]


class ErrorPublic(BaseModel):
    """Every error body: a one-line message, plus what it is about when known."""

    detail: str
    field: str | None = None
    file: str | None = None
    expected: str | None = None
    got: str | None = None
    errors: list[dict[str, str]] | None = Field(None, description="each invalid request field, for 422")


# --- datasets -------------------------------------------------------------------------------


class DatasetCreate(BaseModel):
    """A dataset: its classes in nnU-Net ``labels`` form (which gives K) and its image channels.

    What JSON Schema cannot say is checked by the server (422): the ids are 0..K-1 each once,
    the channel keys 0..C-1, and the ignored classes among the ids."""

    model_config = REQUEST

    id: IdStr | None = Field(None, description="folder name; generated when omitted")
    name: str = Field(min_length=1, max_length=200)
    labels: dict[str, ClassId] = Field(
        min_length=2, description='class name -> id, ids 0..K-1 each once (K >= 2), e.g. {"background": 0, "CSF": 1}'
    )
    channel_names: dict[ChannelKey, str] = Field(
        min_length=1, description='channel index -> name, keys "0".."C-1", e.g. {"0": "T1", "1": "FLAIR"}'
    )
    ignore_classes: list[ClassId] = Field(default_factory=list, description="class ids (among labels) left out of evaluation")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, int]) -> dict[str, int]:
        ids = sorted(labels.values())
        if len(ids) < 2 or ids != list(range(len(ids))):
            raise ValueError(f"expected ids 0..K-1 (K >= 2), each once, got {ids}")
        return labels

    @field_validator("channel_names")
    @classmethod
    def _channels(cls, names: dict[str, str]) -> dict[str, str]:
        expected = [str(i) for i in range(len(names))]
        if not names or sorted(names, key=lambda k: (len(k), k)) != expected:
            raise ValueError(f"expected keys {expected or ['0']} (one per channel, from '0'), got {list(names)}")
        return {key: names[key] for key in expected}

    @model_validator(mode="after")
    def _ignored_exist(self) -> "DatasetCreate":
        unknown = sorted(set(self.ignore_classes) - set(self.labels.values()))
        if unknown:
            raise ValueError(f"ignore_classes: expected ids among labels, got unknown {unknown}")
        return self


class ManifestDataset(BaseModel):
    """What a trainer needs to know of a dataset: its classes and channels."""

    id: str
    name: str
    labels: dict[str, int]
    num_classes: int
    channel_names: dict[str, str]
    ignore_classes: list[int]


class DatasetPublic(ManifestDataset):
    num_studies: int
    labelsets: list[str]
    created_at: str


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


# --- studies --------------------------------------------------------------------------------


class FilePublic(BaseModel):
    """A stored file: where to download it (relative to the API root) and its sha256."""

    url: str
    sha256: str
    bytes: int


class QueuedJobPublic(BaseModel):
    labelset: str
    job_id: str


class StudyPublic(BaseModel):
    dataset_id: str
    case_id: str
    shape: list[int] = Field(description="spatial shape (X, Y[, Z]) in nibabel's axis order")
    spacing_mm: list[float]
    images: list[FilePublic] = Field(description="one per channel, in channel order")
    label: FilePublic
    uploaded_at: str
    jobs: list[QueuedJobPublic] = Field(default_factory=list, description="jobs queued by this upload")


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    next_page_token: str | None = Field(None, description="pass as page_token for the next page; null on the last")


# --- labelsets ------------------------------------------------------------------------------


DEFAULT_METHOD: Method = SofteningConfig.model_fields["method"].default


class LabelsetCreateBase(BaseModel):
    """A named softening configuration: the method and its parameters (``SofteningConfig``)."""

    model_config = ConfigDict(extra="forbid")

    name: IdStr
    method: Method
    params: BaseModel

    def config(self) -> SofteningConfig:
        """The configuration (its fields were validated with the same types and ranges)."""
        return SofteningConfig(method=self.method, **self.params.model_dump())


def _labelset_create(method: Method) -> type[LabelsetCreateBase]:
    """The request body of one method: its ``params`` are the SofteningConfig fields that
    determine the method's output (``METHOD_PARAMS``) and ``dtype``, each optional, with its
    type, range and default."""
    title = method.capitalize()
    fields = SofteningConfig.model_fields
    params = create_model(  # type: ignore[call-overload]
        f"{title}Params", __config__=ConfigDict(**SofteningConfig.model_config, title=f"{title}Params"),
        **{
            name: (JsonInt if fields[name].annotation is int else fields[name].annotation, fields[name])
            for name in (*METHOD_PARAMS[method], "dtype")
        },
    )  # fmt: skip
    method_field = Field(method) if method == DEFAULT_METHOD else Field()
    return create_model(  # type: ignore[call-overload]
        f"{title}LabelsetCreate", __base__=LabelsetCreateBase,
        method=(Literal[method], method_field), params=(params, Field(default_factory=params)),
    )  # fmt: skip


def _method_of(body: Any) -> Any:
    """The union tag of a labelset body: its method (the default one when left out)."""
    method = body.get("method", DEFAULT_METHOD) if isinstance(body, dict) else getattr(body, "method", None)
    return f"{METHOD_TAG}{method}"


LABELSET_BODIES = {method: _labelset_create(method) for method in METHOD_PARAMS}
LabelsetCreate = Annotated[
    Union[tuple(Annotated[model, Tag(f"{METHOD_TAG}{method}")] for method, model in LABELSET_BODIES.items())],
    Discriminator(
        _method_of, custom_error_type="method",
        custom_error_message=f"expected one of {', '.join(METHOD_PARAMS)}",
    ),
]  # fmt: skip
LABELSET_CREATE: TypeAdapter[LabelsetCreateBase] = TypeAdapter(LabelsetCreate)


class LabelsetCounts(BaseModel):
    queued: int = 0
    running: int = 0
    finished: int = 0
    failed: int = 0
    canceled: int = 0
    missing: int = Field(0, description="no result and no job (e.g. Redis lost its data): re-post the labelset")
    total: int = 0


class LabelsetPublic(BaseModel):
    dataset_id: str
    name: str
    method: str
    params: dict[str, Any] = Field(description="the parameters that determine the output")
    output_key: str = Field(description="hash of method and params; equal keys give equal soft labels")
    created_at: str
    counts: LabelsetCounts
    enqueued: int | None = Field(None, description="jobs queued by this request (POST only)")
    reused: int | None = Field(None, description="results reused instead of recomputed (POST only)")


class LabelsetsPublic(BaseModel):
    data: list[LabelsetPublic]
    count: int


class LabelsetStudyPublic(BaseModel):
    case_id: str
    status: StudyStatus
    job_id: str | None = Field(
        None, description="the study's job in this labelset (GET /v1/jobs/{job_id}); null when Redis holds none: "
        "a result reused from a labelset with the same parameters, or a job record that expired"
    )
    job_status: str | None = Field(None, description="RQ status of the study's job (stopped shows here); null without one")
    attempts: int = Field(0, description="times a worker started the study's job")
    progress: JobProgress | None = Field(None, description="stage and fraction while running")
    error: str | None = None


class LabelsetStudiesPublic(BaseModel):
    data: list[LabelsetStudyPublic]
    next_page_token: str | None = None


class ManifestFile(BaseModel):
    url: str
    sha256: str


class ManifestStudy(BaseModel):
    case_id: str
    shape: list[int]
    spacing_mm: list[float]
    images: list[ManifestFile]
    label: ManifestFile
    soft: ManifestFile | None = Field(description="null until the study is finished")
    status: StudyStatus


class ManifestLabelset(BaseModel):
    name: str
    method: str
    params: dict[str, Any]


class ManifestPublic(BaseModel):
    """What a trainer reads: every study's files with sha256s, and the dataset's classes."""

    dataset: ManifestDataset
    labelset: ManifestLabelset
    studies: list[ManifestStudy]


# --- jobs -----------------------------------------------------------------------------------


class JobProgress(BaseModel):
    stage: str | None = Field(None, description="started, read, rescale (GPU only), superpixels, soften, write, preview, done")
    fraction: float = Field(0.0, ge=0, le=1)


class JobPublic(BaseModel):
    id: str
    status: str = Field(description="RQ status: queued, scheduled, started, finished, failed, stopped, canceled")
    dataset_id: str | None = None
    labelset: str | None = None
    case_id: str | None = None
    progress: JobProgress
    attempts: int = Field(0, description="times a worker started this job")
    error: str | None = None
    enqueued_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


# --- tokens ---------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    model_config = REQUEST

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, description="read, write (includes read) or admin (everything)")


class TokenPublic(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None = None


class TokenCreated(TokenPublic):
    token: str = Field(description="the secret; shown once, only its sha256 is stored")


class TokensPublic(BaseModel):
    data: list[TokenPublic]
    count: int


# --- health ---------------------------------------------------------------------------------


class HealthPublic(BaseModel):
    status: Literal["ok"]


class ReadyPublic(BaseModel):
    status: Literal["ready", "unavailable"]
    redis: str
    storage: str
