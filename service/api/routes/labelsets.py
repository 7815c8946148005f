"""``/v1/datasets/{id}/labelsets``: create (queues jobs), progress, manifest, result downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from ... import labelsets as ls
from ... import layout
from ...datasets import case_ids
from ...errors import ApiError
from ...locks import dataset_lock
from ...schemas import (
    LabelsetCreate,
    LabelsetPublic,
    LabelsetsPublic,
    LabelsetStudiesPublic,
    ManifestPublic,
)
from ...storage import Storage
from ...studies import MAX_PAGE_SIZE, get_study
from ..deps import (
    CaseId,
    DatasetDep,
    LabelsetName,
    PageToken,
    QueueDep,
    ReadScope,
    RedisDep,
    SettingsDep,
    StorageDep,
    WriteScope,
)
from ..files import FILE_RESPONSE, PNG_RESPONSE, file_response
from ..responses import BODY, PATH_IDS, errors

router = APIRouter(prefix="/datasets/{dataset_id}/labelsets", tags=["labelsets"])


@router.post(
    "", response_model=LabelsetPublic, status_code=202, dependencies=[WriteScope], responses=errors(*BODY, *PATH_IDS, 409)
)
def create_labelset(
    dataset: DatasetDep,
    body: LabelsetCreate,
    storage: StorageDep,
    queue: QueueDep,
    settings: SettingsDep,
) -> LabelsetPublic:
    """Queue one job per study (202). Re-posting the same configuration queues only what is neither
    finished nor running; results of a labelset with the same parameters are reused. ``params``
    takes the parameters of ``method`` only (``method`` defaults to superpixel)."""
    return ls.create_labelset(storage, queue, settings, dataset, body)


@router.get("", response_model=LabelsetsPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def list_labelsets(dataset: DatasetDep, storage: StorageDep, connection: RedisDep) -> LabelsetsPublic:
    data = [ls.to_public(storage, connection, labelset) for labelset in ls.list_labelsets(storage, dataset.id)]
    return LabelsetsPublic(data=data, count=len(data))


@router.get("/{name}", response_model=LabelsetPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def get_labelset(dataset: DatasetDep, name: LabelsetName, storage: StorageDep, connection: RedisDep) -> LabelsetPublic:
    """The configuration and how many studies are queued, running, finished or failed."""
    return ls.to_public(storage, connection, ls.get_labelset(storage, dataset.id, name))


@router.delete("/{name}", status_code=204, dependencies=[WriteScope], responses=errors(*PATH_IDS))
def delete_labelset(dataset: DatasetDep, name: LabelsetName, storage: StorageDep, connection: RedisDep) -> Response:
    """Discard the labelset's jobs (their records too) and delete its results."""
    with dataset_lock(connection, dataset.id):
        ls.get_labelset(storage, dataset.id, name)
        ls.discard_jobs(connection, dataset.id, [name], case_ids(storage, dataset.id))
        storage.delete(layout.labelset_meta(dataset.id, name))
        storage.delete(layout.labelset_dir(dataset.id, name))
    return Response(status_code=204)


@router.get("/{name}/studies", response_model=LabelsetStudiesPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def list_labelset_studies(
    dataset: DatasetDep,
    name: LabelsetName,
    storage: StorageDep,
    connection: RedisDep,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    page_token: PageToken = None,
) -> LabelsetStudiesPublic:
    """Each study's state in this labelset, with its job id, attempts, progress and error."""
    labelset = ls.get_labelset(storage, dataset.id, name)
    return ls.studies_page(storage, connection, labelset, page_size=page_size, page_token=page_token)


@router.get("/{name}/manifest", response_model=ManifestPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def get_manifest(dataset: DatasetDep, name: LabelsetName, storage: StorageDep, connection: RedisDep) -> ManifestPublic:
    """What a trainer reads: download URLs and sha256 of every study's images, label and soft label."""
    return ls.manifest(storage, connection, dataset, ls.get_labelset(storage, dataset.id, name))


def _output(storage: Storage, dataset_id: str, name: str, case_id: str) -> None:
    ls.get_labelset(storage, dataset_id, name)
    get_study(storage, dataset_id, case_id)


@router.get("/{name}/studies/{case_id}/soft", response_class=FileResponse, responses=FILE_RESPONSE, dependencies=[ReadScope])
def download_soft(dataset: DatasetDep, name: LabelsetName, case_id: CaseId, storage: StorageDep) -> FileResponse:
    """Soft labels, a 4D NIfTI (X, Y, Z, K); uint8 with scl_slope 1/255 unless dtype float32."""
    _output(storage, dataset.id, name, case_id)
    return file_response(storage, layout.soft(dataset.id, name, case_id), what="soft labels")


@router.get(
    "/{name}/studies/{case_id}/superpixels", response_class=FileResponse, responses=FILE_RESPONSE, dependencies=[ReadScope]
)
def download_superpixels(dataset: DatasetDep, name: LabelsetName, case_id: CaseId, storage: StorageDep) -> FileResponse:
    """The SLIC superpixel map (int32, X, Y, Z); superpixel method only."""
    _output(storage, dataset.id, name, case_id)
    return file_response(storage, layout.superpixels(dataset.id, name, case_id), what="superpixels")


@router.get(
    "/{name}/studies/{case_id}/preview.png", response_class=FileResponse, responses=PNG_RESPONSE, dependencies=[ReadScope]
)
def download_preview(dataset: DatasetDep, name: LabelsetName, case_id: CaseId, storage: StorageDep) -> FileResponse:
    """Image, superpixel boundaries, hard label and one class's soft label, side by side."""
    _output(storage, dataset.id, name, case_id)
    return file_response(storage, layout.preview(dataset.id, name, case_id), what="preview", media_type="image/png")


@router.get("/{name}/studies/{case_id}/provenance", dependencies=[ReadScope], responses=errors(*PATH_IDS))
def get_provenance(dataset: DatasetDep, name: LabelsetName, case_id: CaseId, storage: StorageDep) -> dict:
    """How the result was made: parameters, engine version, input sha256s, stage timings, backend."""
    _output(storage, dataset.id, name, case_id)
    record = storage.read_json(layout.provenance(dataset.id, name, case_id))
    if record is None:
        raise ApiError(404, "provenance not found (the study is not finished)", field="provenance")
    return record
