"""File downloads with HTTP Range support (Starlette's FileResponse answers 206 for ranges)."""

from __future__ import annotations

from fastapi.responses import FileResponse

from ..errors import ApiError
from ..storage import Storage
from .responses import download

NIFTI_MEDIA_TYPE = "application/gzip"  # .nii.gz

# OpenAPI responses of the download routes.
FILE_RESPONSE = download(NIFTI_MEDIA_TYPE, "the file (HTTP Range supported)")
PNG_RESPONSE = download("image/png", "the preview picture (HTTP Range supported)")


def file_response(storage: Storage, key: str, *, what: str, media_type: str = NIFTI_MEDIA_TYPE) -> FileResponse:
    """Serve the file at ``key``; 404 naming ``what`` when it is not there (yet)."""
    path = storage.local_path(key)
    if not path.is_file():
        raise ApiError(404, f"{what} not found", field=what)
    return FileResponse(path, media_type=media_type, filename=path.name)
