"""Request and response bodies of the ``/v1`` API (``XCreate`` in, ``XPublic``/``XsPublic`` out)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from softlabel.worker.engine.config import Method, SofteningConfig

from .layout import ID_PATTERN
from .tokens import Scope

IdStr = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
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
    """A dataset: its classes in nnU-Net ``labels`` form (which gives K) and its image channels."""

    model_config = ConfigDict(extra="forbid")

    id: IdStr | None = Field(None, description="folder name; generated when omitted")
    name: str = Field(min_length=1, max_length=200)
    labels: dict[str, int] = Field(description='class name -> id, ids 0..K-1 each once, e.g. {"background": 0, "CSF": 1}')
    channel_names: dict[str, str] = Field(description='channel index -> name, e.g. {"0": "T1", "1": "FLAIR"}')
    ignore_classes: list[int] = Field(default_factory=list, description="class ids left out of evaluation")

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


class LabelsetCreate(BaseModel):
    """A named softening configuration: the method and its parameters (``SofteningConfig``)."""

    model_config = ConfigDict(extra="forbid")

    name: IdStr
    method: Method = "superpixel"
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="SofteningConfig fields other than method: n_segments, compactness, max_num_iter, slic, "
        "sigma, eps, distance, normalize, dtype",
    )

    def config(self) -> SofteningConfig:
        """The validated configuration (raises pydantic's ValidationError naming the parameter)."""
        if "method" in self.params:
            raise ValueError("params.method: expected the method at the top level, got it inside params")
        return SofteningConfig(method=self.method, **self.params)


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
    model_config = ConfigDict(extra="forbid")

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
