"""Studies: per-case metadata (shape, spacing, sha256 of each stored file), pages and URLs."""

from __future__ import annotations

import base64
import binascii
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


def encode_page_token(last_case_id: str) -> str:
    return base64.urlsafe_b64encode(last_case_id.encode()).decode()


def decode_page_token(token: str) -> str:
    """The last case id of the previous page; 422 for a token this service did not issue."""
    try:
        value = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not layout.is_valid_id(value):
        raise ApiError(422, "page_token: expected a next_page_token from a previous page", field="page_token")
    return value


def page_of_cases(all_ids: list[str], *, page_size: int, page_token: str | None) -> tuple[list[str], str | None]:
    """One page of sorted ids after the token, and the token of the next page (None on the last)."""
    after = decode_page_token(page_token) if page_token else None
    ids = [case for case in all_ids if after is None or case > after]
    page = ids[:page_size]
    return page, encode_page_token(page[-1]) if len(ids) > page_size else None


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
        for key in layout.study_outputs(study.dataset_id, name, study.case_id):
            storage.delete(key)
