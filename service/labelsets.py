"""Labelsets: a named softening configuration over a dataset, its jobs, progress and manifest.

A study is finished in a labelset when its provenance file exists (the job writes it last).
Queuing skips finished studies and studies whose job is still active, and a study already
finished by another labelset with the same ``output_key`` is copied instead of recomputed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue
from rq.job import Job, JobStatus

from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.jobs.contract import InputFile, JobOutputs, SoftenJobPayload

from . import layout
from . import queue as jobs
from .datasets import Dataset, case_ids, get_dataset, labelset_names, utc_now
from .errors import conflict, not_found
from .locks import dataset_lock
from .schemas import (
    JobPublic,
    LabelsetCounts,
    LabelsetCreateBase,
    LabelsetPublic,
    ManifestDataset,
    ManifestFile,
    ManifestLabelset,
    ManifestPublic,
    ManifestStudy,
    LabelsetStudiesPublic,
    LabelsetStudyPublic,
    StudyStatus,
)
from .settings import Settings
from .storage import Storage
from .studies import Study, get_study, page_of_cases


@dataclass(frozen=True)
class Labelset:
    """A named configuration; its outputs live in ``labelsets/<name>/``."""

    dataset_id: str
    name: str
    config: SofteningConfig
    created_at: str

    @property
    def params(self) -> dict[str, Any]:
        """The parameters that determine the output, without the method."""
        return {k: v for k, v in self.config.output_params().items() if k != "method"}

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id, "name": self.name, "config": self.config.model_dump(mode="json"),
            "output_key": self.config.output_key(), "created_at": self.created_at,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Labelset":
        config = SofteningConfig(**data["config"])
        return cls(dataset_id=data["dataset_id"], name=data["name"], config=config, created_at=data["created_at"])


@dataclass(frozen=True)
class StudyState:
    case_id: str
    status: StudyStatus
    job_id: str
    job: Job | None


def get_labelset(storage: Storage, dataset_id: str, name: str) -> Labelset:
    data = storage.read_json(layout.labelset_meta(dataset_id, name)) if layout.is_valid_id(name) else None
    if data is None:
        raise not_found("labelset", name)
    return Labelset.from_json(data)


def list_labelsets(storage: Storage, dataset_id: str) -> list[Labelset]:
    return [get_labelset(storage, dataset_id, name) for name in labelset_names(storage, dataset_id)]


def save_labelset(storage: Storage, labelset: Labelset) -> None:
    storage.write_json(layout.labelset_meta(labelset.dataset_id, labelset.name), labelset.to_json())


def new_labelset(dataset: Dataset, name: str, config: SofteningConfig) -> Labelset:
    return Labelset(dataset_id=dataset.id, name=name, config=config, created_at=utc_now())


def finished_cases(storage: Storage, dataset_id: str, name: str) -> set[str]:
    """Cases whose provenance file exists: the job's last write."""
    files = storage.list(layout.labelset_dir(dataset_id, name))
    return {f[: -len(".json")] for f in files if f.endswith(".json")}


def payload_for(storage: Storage, dataset: Dataset, labelset: Labelset, study: Study, settings: Settings) -> SoftenJobPayload:
    """The job's JSON payload: ids, absolute paths and the configuration."""
    ds, name, case = dataset.id, labelset.name, study.case_id
    path = storage.local_path
    return SoftenJobPayload(
        dataset_id=ds, labelset=name, case_id=case, num_classes=dataset.num_classes, config=labelset.config,
        image_paths=[str(path(f.key)) for f in study.images], label_path=str(path(study.label.key)),
        outputs=JobOutputs(
            soft=str(path(layout.soft(ds, name, case))), superpixels=str(path(layout.superpixels(ds, name, case))),
            preview=str(path(layout.preview(ds, name, case))), provenance=str(path(layout.provenance(ds, name, case))),
        ),
        max_voxels=settings.max_voxels,
        decoded_inputs=str(path(decoded)) if storage.exists(decoded := layout.decoded_inputs(ds, name, case)) else None,
        input_files=[InputFile(sha256=f.sha256, bytes=f.bytes) for f in [*study.images, study.label]],
    )  # fmt: skip


def _copy_outputs(storage: Storage, source: Labelset, target: Labelset, case: str) -> None:
    """Reuse a finished result of a labelset with the same output key (provenance last)."""
    sources = layout.study_outputs(source.dataset_id, source.name, case)
    targets = layout.study_outputs(target.dataset_id, target.name, case)
    for src, dst in zip(sources[:-1], targets[:-1]):
        storage.copy(src, dst)
    record = storage.read_json(sources[-1]) or {}
    storage.write_json(targets[-1], record | {"labelset": target.name, "reused_from": source.name})


def queue_studies(
    storage: Storage, queue: Queue, settings: Settings, dataset: Dataset, labelset: Labelset, cases: list[str]
) -> tuple[list[str], int]:
    """Queue the given cases unless finished, active or reusable; returns (job ids, reused count).

    Call under the dataset lock, so two requests never queue the same study.
    """
    finished = finished_cases(storage, dataset.id, labelset.name)
    todo = [case for case in cases if case not in finished]
    key = labelset.config.output_key()
    twins = [o for o in list_labelsets(storage, dataset.id) if o.name != labelset.name and o.config.output_key() == key]
    twin_done = [(twin, finished_cases(storage, dataset.id, twin.name)) for twin in twins]
    current = jobs.fetch_jobs(queue.connection, [jobs.job_id_for(dataset.id, labelset.name, c) for c in todo])
    if any(job is not None and job.get_status(refresh=False) == JobStatus.FINISHED for job in current.values()):
        # A job that finished after the listing above has written its result: list again (as
        # study_states reads jobs before results) rather than compute it once more.
        finished = finished_cases(storage, dataset.id, labelset.name)
    payloads, reused = [], 0
    for case, job in zip(todo, current.values()):
        if jobs.is_active(job) or case in finished:
            continue
        twin = next((twin for twin, done in twin_done if case in done), None)
        if twin is not None:
            _copy_outputs(storage, twin, labelset, case)
            reused += 1
            continue
        payloads.append(payload_for(storage, dataset, labelset, get_study(storage, dataset.id, case), settings))
    return jobs.enqueue(queue, payloads, settings), reused


def study_states(storage: Storage, connection: redis.Redis, labelset: Labelset, cases: list[str]) -> list[StudyState]:
    """The state of each case in this labelset (one Redis round trip).

    The jobs are read before the results are listed: a job writes its result before RQ records
    it as finished, so a job read as finished always has its result in the later listing. The
    other order counted a study whose job finished in between as missing.
    """
    ids = [jobs.job_id_for(labelset.dataset_id, labelset.name, case) for case in cases]
    current = jobs.fetch_jobs(connection, ids)
    finished = finished_cases(storage, labelset.dataset_id, labelset.name)
    return [
        StudyState(case, jobs.study_status(finished=case in finished, job=current[job_id]), job_id, current[job_id])
        for case, job_id in zip(cases, ids)
    ]


def all_states(storage: Storage, connection: redis.Redis, labelset: Labelset) -> list[StudyState]:
    """Every study's state: one listing of the results, one Redis round trip."""
    return study_states(storage, connection, labelset, case_ids(storage, labelset.dataset_id))


def to_public(
    storage: Storage, connection: redis.Redis, labelset: Labelset, *, enqueued: int | None = None, reused: int | None = None
) -> LabelsetPublic:
    return public_of(labelset, all_states(storage, connection, labelset), enqueued=enqueued, reused=reused)


def public_of(
    labelset: Labelset, states: list[StudyState], *, enqueued: int | None = None, reused: int | None = None
) -> LabelsetPublic:
    """The labelset with the counts of ``states`` (every study's, from :func:`all_states`)."""
    tally = Counter(state.status for state in states)
    return LabelsetPublic(
        dataset_id=labelset.dataset_id, name=labelset.name, method=labelset.config.method, params=labelset.params,
        output_key=labelset.config.output_key(), created_at=labelset.created_at,
        counts=LabelsetCounts(**tally, total=len(states)), enqueued=enqueued, reused=reused,
    )  # fmt: skip


def output_url(labelset: Labelset, case: str, what: str) -> str:
    """Download URL relative to the API root; ``what`` is soft, superpixels or preview.png."""
    return f"/v1/datasets/{labelset.dataset_id}/labelsets/{labelset.name}/studies/{case}/{what}"


def manifest(storage: Storage, connection: redis.Redis, dataset: Dataset, labelset: Labelset) -> ManifestPublic:
    """Every study's download URLs with sha256s, shape and spacing (soft null until finished)."""
    studies = []
    for state in study_states(storage, connection, labelset, case_ids(storage, dataset.id)):
        study = get_study(storage, dataset.id, state.case_id)
        soft = None
        if state.status == "finished":
            record = storage.read_json(layout.provenance(dataset.id, labelset.name, state.case_id)) or {}
            soft = ManifestFile(url=output_url(labelset, state.case_id, "soft"), sha256=record["outputs"]["soft"]["sha256"])
        base = f"/v1/datasets/{dataset.id}/studies/{study.case_id}"
        studies.append(
            ManifestStudy(
                case_id=study.case_id, shape=study.shape, spacing_mm=study.spacing_mm,
                images=[ManifestFile(url=f"{base}/images/{i}", sha256=f.sha256) for i, f in enumerate(study.images)],
                label=ManifestFile(url=f"{base}/label", sha256=study.label.sha256), soft=soft, status=state.status,
            )  # fmt: skip
        )
    return ManifestPublic(
        dataset=ManifestDataset(
            id=dataset.id, name=dataset.name, labels=dataset.labels, num_classes=dataset.num_classes,
            channel_names=dataset.channel_names, ignore_classes=dataset.ignore_classes,
        ),
        labelset=ManifestLabelset(name=labelset.name, method=labelset.config.method, params=labelset.params),
        studies=studies,
    )  # fmt: skip


def discard_jobs(connection: redis.Redis, dataset_id: str, names: list[str], cases: list[str]) -> None:
    """The jobs of these cases in these labelsets, whose data is being deleted: cancel the
    queued ones and delete their records, stop the running ones (their records then expire
    with ``SOFTLABEL_FAILURE_TTL_S``), and delete the records of the ended ones, which would
    otherwise stay in Redis for ``SOFTLABEL_RESULT_TTL_S`` or ``SOFTLABEL_FAILURE_TTL_S``."""
    ids = [jobs.job_id_for(dataset_id, name, case) for name in names for case in cases]
    for job in jobs.fetch_jobs(connection, ids).values():
        if job is None:
            continue
        if job.get_status(refresh=False) == JobStatus.STARTED:  # fetched just now, with the others
            jobs.cancel(connection, job)
        else:
            job.delete(remove_from_queue=True)


def create_labelset(
    storage: Storage, queue: Queue, settings: Settings, dataset: Dataset, body: LabelsetCreateBase
) -> LabelsetPublic:
    """Save the configuration (or find the same one under that name) and queue one job per study.

    Posting an existing labelset's configuration again queues only its failed, canceled and
    missing studies ("retry all failed"); other parameters under an existing name are a 409.
    """
    config = body.config()
    with dataset_lock(queue.connection, dataset.id):
        existing = storage.read_json(layout.labelset_meta(dataset.id, body.name))
        if existing is None:
            labelset = new_labelset(dataset, body.name, config)
            save_labelset(storage, labelset)
        else:
            labelset = Labelset.from_json(existing)
            if labelset.config.output_key() != config.output_key():
                raise conflict(
                    f"labelset {body.name!r} exists with other parameters {labelset.config.output_params()}; "
                    "choose another name or delete it", field="name",
                )  # fmt: skip
        ids, reused = queue_studies(storage, queue, settings, dataset, labelset, case_ids(storage, dataset.id))
    return to_public(storage, queue.connection, labelset, enqueued=len(ids), reused=reused)


def is_settled(counts: LabelsetCounts) -> bool:
    """No study queued or running: the counts change only when someone acts (retry, upload)."""
    return counts.queued == 0 and counts.running == 0


def studies_page(
    storage: Storage, connection: redis.Redis, labelset: Labelset, *, page_size: int, page_token: str | None
) -> LabelsetStudiesPublic:
    """One page of the labelset's studies: status, job id, attempts, progress and error."""
    cases, next_token = page_of_cases(case_ids(storage, labelset.dataset_id), page_size=page_size, page_token=page_token)
    return LabelsetStudiesPublic(data=_rows(study_states(storage, connection, labelset, cases)), next_page_token=next_token)


def page_of_states(states: list[StudyState], *, page_size: int, page_token: str | None) -> LabelsetStudiesPublic:
    """:func:`studies_page` from every study's states, already fetched (:func:`all_states`)."""
    cases, next_token = page_of_cases([s.case_id for s in states], page_size=page_size, page_token=page_token)
    on_page = set(cases)
    return LabelsetStudiesPublic(data=_rows([s for s in states if s.case_id in on_page]), next_page_token=next_token)


def _rows(states: list[StudyState]) -> list[LabelsetStudyPublic]:
    data = []
    for s in states:
        public = jobs.to_public(s.job) if s.job is not None else None
        data.append(
            LabelsetStudyPublic(
                case_id=s.case_id, status=s.status, job_id=s.job_id if s.job is not None else None,
                job_status=public.status if public else None, attempts=public.attempts if public else 0,
                progress=public.progress if public and s.status == "running" else None,
                error=public.error if public and s.status == "failed" else None,
            )  # fmt: skip
        )
    return data


def job_or_404(connection: redis.Redis, job_id: str) -> Job:
    job = jobs.fetch_job(connection, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


def retry_job(storage: Storage, queue: Queue, settings: Settings, job_id: str) -> JobPublic:
    """Queue a failed, stopped or canceled job again (a fresh job with the same id); 409 otherwise."""
    job = job_or_404(queue.connection, job_id)
    if jobs.is_active(job) or job.get_status(refresh=False) == JobStatus.FINISHED:
        status = job.get_status(refresh=False).value
        raise conflict(f"job {job_id!r} is {status}; only failed, stopped or canceled jobs can be retried", field="job_id")
    meta = job.meta
    dataset = get_dataset(storage, meta["dataset_id"])
    labelset = get_labelset(storage, dataset.id, meta["labelset"])
    get_study(storage, dataset.id, meta["case_id"])
    with dataset_lock(queue.connection, dataset.id):
        queue_studies(storage, queue, settings, dataset, labelset, [meta["case_id"]])
    return jobs.to_public(job_or_404(queue.connection, job_id))


def stop_job(connection: redis.Redis, job_id: str) -> JobPublic:
    """Cancel a queued job, or stop a running one (at once on a forking worker, else at its next checkpoint)."""
    job = job_or_404(connection, job_id)
    if not jobs.is_active(job):
        raise conflict(f"job {job_id!r} already ended ({job.get_status(refresh=False).value})", field="job_id")
    jobs.cancel(connection, job)
    return jobs.to_public(job_or_404(connection, job_id))
