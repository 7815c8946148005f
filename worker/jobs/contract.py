"""The contract between the service (which queues jobs) and the RQ workers (which run them).

The service imports this module and nothing else of the job side: the job function's name, the
JSON payload and its outputs, and the Redis keys both sides read or write. Ids, absolute paths
and the softening configuration only; no Redis or RQ import.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..engine.config import SofteningConfig

SOFTEN_JOB = "softlabel.worker.jobs.soften.soften_study"  # the job function, enqueued by name
# The names queues filled by softlabel 0.1.0 hold; workers run such jobs as SOFTEN_JOB (docs/deploy.md).
LEGACY_SOFTEN_JOBS = ("worker.jobs.soften_study",)

# Stop requests: the service sets the key, the job checks it at stages and checkpoints (jobs/stop.py).
STOP_KEY = "softlabel:stop:{job_id}"
STOP_TTL_S = 24 * 3600  # a request outlives any job; enqueueing the id again clears it

# Liveness of running jobs: the job's process renews its lease (jobs/recovery.py).
LEASE_KEY = "softlabel:lease:{job_id}"
RECOVERING_KEY = "softlabel:recovering:{job_id}"  # one worker recovers a given job at a time
IN_TRANSIT_KEY = "softlabel:in-transit:{job_id}"  # when a scan first saw the job dequeued but not started

# Stage durations: workers add to one hash, the API's /metrics reads it. One field per counter:
#     <stage>|<backend>|bucket|<le>   observations in (previous le, le], not cumulative
#     <stage>|<backend>|count         observations
#     <stage>|<backend>|sum           seconds, summed
JOB_STAGE_KEY = "softlabel:metrics:v1:job_stage_seconds"  # bump the version if BUCKETS_S change
# Upper bounds in seconds (+Inf is implicit): a 2D slice takes well under a second on a GPU, a
# 512^3 study minutes on a CPU; the job timeout defaults to 3600 s.
BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
STAGE_FIELD_SEPARATOR = "|"

# Uncompressed copies of a study's inputs, made by the upload that decompressed them to check
# them, in one folder per job (``SoftenJobPayload.decoded_inputs``): image channels, then label.
DECODED_IMAGE = "image_{channel:04d}.nii"
DECODED_LABEL = "label.nii"


def decoded_paths(folder: Path, *, channels: int) -> list[Path]:
    """The uncompressed copies' names in their folder: the image channels in order, then the label."""
    return [folder / DECODED_IMAGE.format(channel=c) for c in range(channels)] + [folder / DECODED_LABEL]


def format_le(bound: float) -> str:
    """A bucket bound as Prometheus writes it: ``0.5``, ``10.0``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class JobOutputs(BaseModel):
    """Absolute paths the job writes, each atomically; provenance last (it marks the study done)."""

    soft: str
    superpixels: str
    preview: str
    provenance: str


class InputFile(BaseModel):
    """An input file as the upload recorded it: its sha256 (hex) and size in bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


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
    decoded_inputs: str | None = Field(
        None, description="absolute path of a folder of uncompressed copies of the inputs (DECODED_IMAGE, DECODED_LABEL) "
        "made at upload; the job reads them when all are there, records the gzipped files as its inputs; its worker "
        "removes the folder once RQ has recorded the job's end (finished, failed for good, stopped)",
    )
    input_files: list[InputFile] | None = Field(
        None, description="sha256 and size of the image files then the label, as the upload recorded them; the job "
        "records these as its inputs, without hashing the files again, when each file still has its recorded size",
    )

    @classmethod
    def of_job(cls, func_name: str, args: Sequence[Any]) -> SoftenJobPayload | None:
        """The payload of an RQ job (its function's name and arguments) that runs the soften job;
        None for another function, or a payload that does not parse (such a job wrote nothing)."""
        if func_name not in (SOFTEN_JOB, *LEGACY_SOFTEN_JOBS) or not args:
            return None
        try:
            return cls.model_validate(args[0])
        except ValueError:
            return None

    def remove_decoded_inputs(self) -> None:
        """Remove this job's links to the uncompressed input copies (the job will not run again)."""
        if self.decoded_inputs is not None:
            shutil.rmtree(self.decoded_inputs, ignore_errors=True)

    def decoded_paths(self) -> tuple[list[Path], Path] | None:
        """The copies' paths (images, label) when the payload names a folder of them, else None."""
        if self.decoded_inputs is None:
            return None
        copies = decoded_paths(Path(self.decoded_inputs), channels=len(self.image_paths))
        return copies[:-1], copies[-1]
