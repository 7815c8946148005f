"""Studies: per-case metadata (shape, spacing, sha256 of each stored file), pages and URLs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import layout
from .datasets import case_ids
from .errors import ApiError, not_found
from .schemas import FilePublic, QueuedJobPublic, StudiesPublic, StudyPublic
from .storage import Storage

MAX_PAGE_SIZE = 1000  # studies per page


@dataclass(frozen=True)
class StoredFile:
    """A file in storage with its sha256 and size in bytes."""

    key: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Study:
    """One uploaded study; its metadata file appears last, once every file is in place."""

    dataset_id: str
    case_id: str
    shape: list[int]
    spacing_mm: list[float]
    images: list[StoredFile]
    label: StoredFile
    uploaded_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Study":
        files = {"images": [StoredFile(**f) for f in data["images"]], "label": StoredFile(**data["label"])}
        return cls(**(data | files))


def get_study(storage: Storage, dataset_id: str, case_id: str) -> Study:
    """The study, or 404."""
    data = storage.read_json(layout.study_meta(dataset_id, case_id)) if layout.is_valid_id(case_id) else None
    if data is None:
        raise not_found("study", case_id)
    return Study.from_json(data)


def page_of_cases(all_ids: list[str], *, page_size: int, page_token: str | None) -> tuple[list[str], str | None]:
    """One page of sorted ids after the token, and the token of the next page (None on the last).

    A token is the last case id of the previous page, so any case id is one (the page starts
    after it, whether or not that study still exists); 422 for anything else."""
    if page_token is not None and not layout.is_valid_id(page_token):
        raise ApiError(422, f"page_token: expected a case id (next_page_token of a previous page), got {page_token!r}",
                       field="page_token", expected=layout.ID_PATTERN, got=page_token)  # fmt: skip
    ids = [case for case in all_ids if page_token is None or case > page_token]
    page = ids[:page_size]
    return page, page[-1] if len(ids) > page_size else None


def file_url(dataset_id: str, case_id: str, what: str) -> str:
    """Download URL relative to the API root: ``what`` is ``label`` or ``images/<channel>``."""
    return f"/v1/datasets/{dataset_id}/studies/{case_id}/{what}"


def to_public(study: Study, *, jobs: list[QueuedJobPublic] | None = None) -> StudyPublic:
    def public(stored: StoredFile, what: str) -> FilePublic:
        return FilePublic(url=file_url(study.dataset_id, study.case_id, what), sha256=stored.sha256, bytes=stored.bytes)

    return StudyPublic(
        dataset_id=study.dataset_id, case_id=study.case_id, shape=study.shape, spacing_mm=study.spacing_mm,
        images=[public(f, f"images/{i}") for i, f in enumerate(study.images)], label=public(study.label, "label"),
        uploaded_at=study.uploaded_at, jobs=jobs or [],
    )  # fmt: skip


def list_page(storage: Storage, dataset_id: str, *, page_size: int, page_token: str | None) -> StudiesPublic:
    ids, next_token = page_of_cases(case_ids(storage, dataset_id), page_size=page_size, page_token=page_token)
    studies = [get_study(storage, dataset_id, case) for case in ids]
    return StudiesPublic(data=[to_public(s) for s in studies], next_page_token=next_token)


def delete_study_files(storage: Storage, study: Study, labelsets: list[str]) -> None:
    """Remove a study: its metadata first (it disappears at once), then its files and outputs."""
    storage.delete(layout.study_meta(study.dataset_id, study.case_id))
    for stored in [*study.images, study.label]:
        storage.delete(stored.key)
    for name in labelsets:
        case = study.case_id
        for key in [*layout.study_outputs(study.dataset_id, name, case), layout.decoded_inputs(study.dataset_id, name, case)]:
            storage.delete(key)
