"""nnU-Net's folder variables and dataset names, with errors in softlabel's form (ValueError)."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def nnunet_folder(variable: str) -> Path:
    """The folder an nnU-Net environment variable names (nnunetv2 reads them at each use)."""
    values = {  # read by name, so that the configuration scan (tests/deploy) sees each variable
        "nnUNet_raw": os.environ.get("nnUNet_raw"),
        "nnUNet_preprocessed": os.environ.get("nnUNet_preprocessed"),
        "nnUNet_results": os.environ.get("nnUNet_results"),
    }
    if variable not in values:
        raise ValueError(f"variable: expected one of {FOLDER_VARIABLES}, got {variable!r}")
    value = values[variable]
    if not value:
        raise ValueError(f"{variable}: expected the environment variable set to nnU-Net's folder, got it unset")
    return Path(value)


def dataset_name(dataset: str | int) -> str:
    """``Dataset<XXX>_<name>`` of an nnU-Net dataset id or name, found in nnU-Net's folders."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset if str(dataset).startswith("Dataset") else int(dataset))
    except (RuntimeError, ValueError):
        raise ValueError(f"dataset: expected an nnU-Net dataset id or Dataset<XXX>_<name> present in $nnUNet_raw or "
                         f"$nnUNet_preprocessed, got {dataset!r}") from None
