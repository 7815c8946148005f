"""RQ job functions (enqueued by name with JSON payloads; see ``worker.jobs.contract``).

``soften_study`` runs the engine's :func:`worker.engine.pipeline.soften_files` on one study, the
same call as ``softlabel soften``, then writes the preview and a provenance JSON. Every
output is written to a hidden temporary name and renamed, provenance last, so a reader never
sees a partial file and "provenance exists" means "finished". Progress goes to the RQ job's
meta as ``{"stage": ..., "fraction": ...}``. A stop request ends the job at the next stage
boundary or engine checkpoint (``worker.jobs.stop``), and the job then removes its outputs.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rq import get_current_job
from rq.job import Job

from .. import __version__
from ..engine.backend import device_pool_bytes, release_device_memory, resolve_backend, to_host
from ..engine.checkpoint import Checkpoint, no_checkpoint
from ..engine.errors import InputError
from ..engine.io.atomic import write_json_atomic
from ..engine.io.files import file_record, remove_partials
from ..engine.pipeline import ProgressFn, SoftenResult, soften_files
from ..engine.preview import render_preview
from ..engine.softening.distance_transform import gpu_edt_info
from .contract import SoftenJobPayload
from .metrics import record_job_timings
from .recovery import job_lease
from .settings import BACKEND_ENV, WorkerSettings
from .stop import JobStopped, StopCheck

ENGINE_SHARE = 0.95  # fraction of a job's progress given to soften_files; the preview takes the rest


class _Reporter:
    """Progress, attempts and errors in the RQ job's meta, and stop requests (a no-op outside RQ)."""

    def __init__(self, job: Job | None, *, stop_check_interval_s: float) -> None:
        self.job = job
        self.stop_check = StopCheck(job.connection, job.id, interval_s=stop_check_interval_s) if job is not None else None
        if job is not None:
            job.meta["attempts"] = int(job.meta.get("attempts", 0)) + 1
            job.meta.pop("error", None)
            job.meta["progress"] = {"stage": "started", "fraction": 0.0}
            job.save_meta()

    @property
    def checkpoint(self) -> Checkpoint:
        """The engine's checkpoint: raises JobStopped once someone asked the job to stop."""
        return self.stop_check if self.stop_check is not None else no_checkpoint

    def progress(self, stage: str, fraction: float) -> None:
        """Record the stage reached; raises JobStopped if someone asked the job to stop."""
        if self.job is not None and self.stop_check is not None:
            self.stop_check.stage = stage
            # "done" comes after the provenance record: the job has finished, too late to stop.
            if stage != "done":
                self.stop_check.check()
            self.job.meta["progress"] = {"stage": stage, "fraction": round(fraction, 4)}
            self.job.save_meta()

    def fail(self, message: str, *, retry: bool) -> None:
        if self.job is not None:
            self.job.meta["error"] = message
            self.job.save_meta()
            if not retry:
                self.job.retries_left = 0  # bad input fails the same way every time


def soften_study(payload: dict[str, Any]) -> dict[str, Any]:
    """The RQ job: soften one study of one labelset; returns a JSON summary."""
    spec = SoftenJobPayload.model_validate(payload)
    job = get_current_job()
    settings = WorkerSettings()
    reporter = _Reporter(job, stop_check_interval_s=settings.stop_check_interval_s)
    with job_lease(job, ttl_s=settings.lease_ttl_s):
        try:
            summary = run_soften_job(
                spec, backend=os.environ.get(BACKEND_ENV, "auto"), progress=reporter.progress,
                checkpoint=reporter.checkpoint, job_id=job.id if job else None,
                attempt=int(job.meta["attempts"]) if job else 1,
            )  # fmt: skip
        except (InputError, JobStopped) as exc:
            reporter.fail(str(exc), retry=False)
            raise
        except Exception as exc:
            reporter.fail(f"{type(exc).__name__}: {exc}", retry=True)
            raise
    if job is not None and not summary.get("reused") and not summary.get("discarded"):
        record_job_timings(summary["timings_s"], backend=summary["backend"], connection=job.connection)
    return summary


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def run_soften_job(
    spec: SoftenJobPayload,
    *,
    backend: str = "auto",
    progress: ProgressFn | None = None,
    checkpoint: Checkpoint = no_checkpoint,
    job_id: str | None = None,
    attempt: int = 1,
) -> dict[str, Any]:
    """Soften, preview and record one study; skips the work when an identical result exists.

    progress: called as each stage starts and ends; checkpoint: the engine's, within the
    stages. Either may raise JobStopped, which removes every output and is raised again.
    """
    out = spec.outputs
    report = progress or (lambda stage, fraction: None)
    remove_partials([out.soft, out.superpixels, out.preview, out.provenance])
    inputs = _input_records(spec)
    params = spec.config.output_params()
    previous = _read_record(out.provenance)
    if previous and previous.get("params") == params and previous.get("inputs") == inputs:
        report("done", 1.0)
        return _summary(previous, reused=True)
    started_at, start = _now(), time.perf_counter()
    with_superpixels = spec.config.method == "superpixel"
    decoded = _decoded_copies(spec)
    read_images, read_label = decoded or (spec.image_paths, spec.label_path)
    try:
        result = soften_files(
            read_images, read_label, out.soft, config=spec.config, num_classes=spec.num_classes,
            superpixels_out=out.superpixels if with_superpixels else None, backend=backend,
            max_voxels=spec.max_voxels, progress=lambda stage, fraction: report(stage, fraction * ENGINE_SHARE),
            checkpoint=checkpoint,
        )  # fmt: skip
        timings = dict(result.timings_s)
        report("preview", ENGINE_SHARE)
        preview_start = time.perf_counter()
        _write_preview(spec, result)
        timings["preview"] = time.perf_counter() - preview_start
    except JobStopped:
        discard_outputs(spec)  # none of them is a result without this run's provenance record
        release_device_memory(resolve_backend(backend))  # the stopped run's arrays are garbage now
        raise
    except InputError as exc:
        if decoded is None or exc.file is None:
            raise
        uploaded = dict(zip(map(str, [*decoded[0], decoded[1]]), [*spec.image_paths, spec.label_path]))
        # Name the file the user uploaded, not the copy read in its place.
        raise InputError(file=uploaded.get(exc.file, exc.file), field=exc.field, expected=exc.expected, got=exc.got) from None
    ran_on = result.backend
    del result  # drop the device arrays before the pool is emptied
    release_device_memory(ran_on)
    if not Path(spec.label_path).exists():  # the study was deleted while this job ran
        discard_outputs(spec)
        return {"discarded": True}
    timings["total"] = time.perf_counter() - start
    outputs = {"soft": file_record(out.soft), "preview": file_record(out.preview)}
    if with_superpixels:
        outputs["superpixels"] = file_record(out.superpixels)
    record = {
        "dataset_id": spec.dataset_id, "labelset": spec.labelset, "case_id": spec.case_id,
        "job_id": job_id, "attempt": attempt, "worker": f"{socket.gethostname()}:{os.getpid()}",
        "engine_version": __version__, "method": spec.config.method, "params": params,
        "config": spec.config.model_dump(mode="json"), "num_classes": spec.num_classes, "backend": ran_on,
        "inputs": inputs, "read_decoded_copies": decoded is not None, "outputs": outputs,
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "started_at": started_at, "finished_at": _now(),
    }  # fmt: skip
    if ran_on == "gpu":
        record["device_pool_bytes"] = device_pool_bytes(ran_on)  # after the release: 0 unless something leaks
        if spec.config.method == "superpixel":
            record["edt"] = gpu_edt_info()  # cuCIM's transform, or CuPy's where cuCIM did not import
    write_json_atomic(out.provenance, record)
    report("done", 1.0)
    return _summary(record, reused=False)


def _input_records(spec: SoftenJobPayload) -> dict[str, Any]:
    """The inputs' ``file_record``s (images, label), with the sha256 the upload recorded for a
    file that still has its recorded size; else hashed from the files. (A stored file is never
    rewritten in place: replacing a study deletes it first, and its jobs with it.)"""
    paths = [*spec.image_paths, spec.label_path]
    known = spec.input_files if spec.input_files is not None and len(spec.input_files) == len(paths) else [None] * len(paths)
    records = [
        file_record(path, sha256=record.sha256 if record is not None and Path(path).stat().st_size == record.bytes else None)
        for path, record in zip(paths, known)
    ]  # fmt: skip
    return {"images": records[:-1], "label": records[-1]}


def _decoded_copies(spec: SoftenJobPayload) -> tuple[list[Path], Path] | None:
    """The upload's uncompressed copies of the inputs (images, label) when they are all there."""
    decoded = spec.decoded_paths()
    if decoded is not None and all(p.is_file() for p in [*decoded[0], decoded[1]]):
        return decoded
    return None


def discard_outputs(spec: SoftenJobPayload) -> None:
    """Delete this study's outputs, a stale provenance record and temporary files included."""
    out = spec.outputs
    paths = [out.soft, out.superpixels, out.preview, out.provenance]
    for path in paths:
        Path(path).unlink(missing_ok=True)
    remove_partials(paths)


def _read_record(path: str) -> dict[str, Any] | None:
    """A previous provenance record, or None."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _summary(record: dict[str, Any], *, reused: bool) -> dict[str, Any]:
    return {
        "soft_sha256": record["outputs"]["soft"]["sha256"], "backend": record["backend"],
        "timings_s": record["timings_s"], "reused": reused,
    }  # fmt: skip


def _write_preview(spec: SoftenJobPayload, result: SoftenResult) -> None:
    """Channel 0, the label, the soft labels and superpixels of the most softened slice."""
    study = result.study  # as soften_files read it: no second read of the inputs
    soft = to_host(result.soft)
    spatial3d = soft.shape[:-1] if soft.ndim == 4 else soft.shape[:-1] + (1,)
    superpixels = to_host(result.superpixels).reshape(spatial3d) if result.superpixels is not None else None
    render_preview(
        study.image[..., :1].reshape(spatial3d + (1,)), study.label.reshape(spatial3d), soft.reshape(spatial3d + (-1,)),
        spec.outputs.preview, superpixels=superpixels,
    )  # fmt: skip
