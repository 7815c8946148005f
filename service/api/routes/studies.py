"""``/v1/datasets/{id}/studies``: upload (multipart), list, read, delete, and file downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from ... import layout
from ... import studies as st
from ...datasets import labelset_names, refresh_num_training
from ...errors import not_found
from ...labelsets import discard_jobs
from ...locks import dataset_lock
from ...schemas import StudiesPublic, StudyPublic
from ...uploads import UploadedFile, add_study
from ..deps import CaseId, DatasetDep, PageToken, QueueDep, ReadScope, RedisDep, SettingsDep, StorageDep, WriteScope
from ..files import FILE_RESPONSE, file_response
from ..responses import BODY, PATH_IDS, errors

router = APIRouter(prefix="/datasets/{dataset_id}/studies", tags=["studies"])


@router.post(
    "", response_model=StudyPublic, status_code=201, dependencies=[WriteScope], responses=errors(*BODY, *PATH_IDS, 409)
)
def upload_study(
    dataset: DatasetDep,
    images: Annotated[
        list[UploadFile], File(min_length=1, description="image channels in order (nnU-Net _0000, _0001...) or one 4D file")
    ],
    label: Annotated[UploadFile, File(description="integer label map on the image grid, classes 0..K-1")],
    storage: StorageDep,
    queue: QueueDep,
    settings: SettingsDep,
    case_id: Annotated[
        str | None,
        Form(pattern=layout.ID_PATTERN, description="case id (default: the label file's name); not ending in _superpixels or _preview"),
    ] = None,
) -> StudyPublic:
    """Validate a study with the engine's checks, store it, and queue it for every labelset."""
    parts = [UploadedFile(f"images[{i}]", f.filename or f"image{i}", f.file) for i, f in enumerate(images)]
    label_part = UploadedFile("label", label.filename or "label", label.file)
    study, queued = add_study(
        storage, queue, settings, dataset, case_id=case_id, images=parts, label=label_part
    )
    return st.to_public(study, jobs=queued)


@router.get("", response_model=StudiesPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def list_studies(
    dataset: DatasetDep,
    storage: StorageDep,
    page_size: Annotated[int, Query(ge=1, le=st.MAX_PAGE_SIZE)] = 100,
    page_token: PageToken = None,
) -> StudiesPublic:
    """Studies sorted by case id, one page at a time."""
    return st.list_page(storage, dataset.id, page_size=page_size, page_token=page_token)


@router.get("/{case_id}", response_model=StudyPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def get_study(dataset: DatasetDep, case_id: CaseId, storage: StorageDep) -> StudyPublic:
    return st.to_public(st.get_study(storage, dataset.id, case_id))


@router.delete("/{case_id}", status_code=204, dependencies=[WriteScope], responses=errors(*PATH_IDS))
def delete_study(dataset: DatasetDep, case_id: CaseId, storage: StorageDep, connection: RedisDep) -> Response:
    """Discard the study's jobs (their records too), then delete its files and its results in every labelset."""
    with dataset_lock(connection, dataset.id):
        study = st.get_study(storage, dataset.id, case_id)
        names = labelset_names(storage, dataset.id)
        discard_jobs(connection, dataset.id, names, [case_id])
        st.delete_study_files(storage, study, names)
        refresh_num_training(storage, dataset)
    return Response(status_code=204)


@router.get("/{case_id}/images/{channel}", response_class=FileResponse, responses=FILE_RESPONSE, dependencies=[ReadScope])
def download_image(
    dataset: DatasetDep, case_id: CaseId, channel: Annotated[int, PathParam(ge=0)], storage: StorageDep
) -> FileResponse:
    """One image channel as stored (``imagesTr/<case>_<channel>.nii.gz``)."""
    study = st.get_study(storage, dataset.id, case_id)
    if not 0 <= channel < len(study.images):
        raise not_found("channel", str(channel))
    return file_response(storage, layout.image(dataset.id, case_id, channel), what="image")


@router.get("/{case_id}/label", response_class=FileResponse, responses=FILE_RESPONSE, dependencies=[ReadScope])
def download_label(dataset: DatasetDep, case_id: CaseId, storage: StorageDep) -> FileResponse:
    """The hard label (``labelsTr/<case>.nii.gz``)."""
    st.get_study(storage, dataset.id, case_id)
    return file_response(storage, layout.label(dataset.id, case_id), what="label")
