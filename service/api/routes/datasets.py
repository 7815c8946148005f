"""``/v1/datasets``: create, list, read, delete, and import an nnU-Net raw dataset zip."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from ... import datasets as ds
from ... import layout
from ...datasets import case_ids, labelset_names
from ...imports import import_zip
from ...labelsets import discard_jobs
from ...locks import dataset_lock
from ...schemas import DatasetCreate, DatasetPublic, DatasetsPublic
from ...uploads import UploadedFile
from ..deps import DatasetDep, ReadScope, RedisDep, SettingsDep, StorageDep, WriteScope
from ..responses import BODY, PATH_IDS, errors

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", response_model=DatasetPublic, status_code=201, dependencies=[WriteScope], responses=errors(*BODY, 409))
def create_dataset(body: DatasetCreate, storage: StorageDep) -> DatasetPublic:
    """A new, empty dataset; its classes give K for every study and labelset."""
    dataset = ds.new_dataset(body)
    ds.create_dataset(storage, dataset)
    return ds.to_public(storage, dataset)


@router.get("", response_model=DatasetsPublic, dependencies=[ReadScope])
def list_datasets(storage: StorageDep) -> DatasetsPublic:
    data = [ds.to_public(storage, dataset) for dataset in ds.list_datasets(storage)]
    return DatasetsPublic(data=data, count=len(data))


@router.post(
    "/import", response_model=DatasetPublic, status_code=201, dependencies=[WriteScope], responses=errors(*BODY, 409)
)
def import_dataset(
    file: Annotated[UploadFile, File(description="zip of an nnU-Net raw dataset: dataset.json, imagesTr, labelsTr")],
    storage: StorageDep,
    settings: SettingsDep,
    dataset_id: Annotated[str | None, Form(pattern=layout.ID_PATTERN, description="id (default: from its name)")] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> DatasetPublic:
    """Create a dataset from a zip; every case is validated before anything is stored."""
    upload = UploadedFile(field="file", filename=file.filename or "dataset.zip", stream=file.file)
    dataset = import_zip(
        storage, upload, dataset_id=dataset_id, name=name, max_bytes=settings.max_import_bytes,
        max_voxels=settings.max_voxels,
    )  # fmt: skip
    return ds.to_public(storage, dataset)


@router.get("/{dataset_id}", response_model=DatasetPublic, dependencies=[ReadScope], responses=errors(*PATH_IDS))
def get_dataset(dataset: DatasetDep, storage: StorageDep) -> DatasetPublic:
    return ds.to_public(storage, dataset)


@router.delete("/{dataset_id}", status_code=204, dependencies=[WriteScope], responses=errors(*PATH_IDS))
def delete_dataset(dataset: DatasetDep, storage: StorageDep, connection: RedisDep) -> Response:
    """Discard the dataset's jobs (their records too) and delete its folder (studies, labelsets, results)."""
    with dataset_lock(connection, dataset.id):
        discard_jobs(connection, dataset.id, labelset_names(storage, dataset.id), case_ids(storage, dataset.id))
        storage.delete(layout.dataset_dir(dataset.id))
    return Response(status_code=204)
