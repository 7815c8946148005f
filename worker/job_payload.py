"""The JSON payload of a soften job: the contract between the service (which builds it) and
the RQ worker (which runs it). Ids, absolute paths and the softening configuration only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from worker.config import SofteningConfig

SOFTEN_JOB = "worker.jobs.soften_study"  # the job function, enqueued by name


class JobOutputs(BaseModel):
    """Absolute paths the job writes, each atomically; provenance last (it marks the study done)."""

    soft: str
    superpixels: str
    preview: str
    provenance: str


class SoftenJobPayload(BaseModel):
    """Everything a worker needs to soften one study of one labelset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_id: str
    labelset: str
    case_id: str
    num_classes: int = Field(ge=2)
    config: SofteningConfig
    image_paths: list[str] = Field(min_length=1, description="absolute paths, one per channel, in order")
    label_path: str
    outputs: JobOutputs
    max_voxels: int | None = Field(None, gt=0, description="voxels per image file, checked on the header")
