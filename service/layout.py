"""The data directory's layout: storage keys of the token file, datasets, studies and labelsets.

::

    tokens.json                                     minted API tokens: records and sha256 hashes (service.tokens)
    datasets/<dataset>/dataset.json                 nnU-Net v2 dataset.json (+ a "softlabel" section)
    datasets/<dataset>/imagesTr/<case>_0000.nii.gz  one file per channel
    datasets/<dataset>/labelsTr/<case>.nii.gz       hard label
    datasets/<dataset>/studies/<case>.json          shape, spacing, sha256 of each file
    datasets/<dataset>/labelsets/<name>.json        the labelset's softening configuration
    datasets/<dataset>/labelsets/<name>/<case>.nii.gz              soft labels (X, Y, Z, K)
    datasets/<dataset>/labelsets/<name>/<case>_superpixels.nii.gz  superpixel map
    datasets/<dataset>/labelsets/<name>/<case>_preview.png         preview picture
    datasets/<dataset>/labelsets/<name>/<case>.json                provenance, written last
    datasets/<dataset>/labelsets/<name>/.inputs/<case>/            the upload's uncompressed copies of the inputs,
                                                                   until the job has run (hard links, one set per labelset)

Each dataset folder is a valid nnU-Net raw dataset. Ids, names and case ids match
:data:`ID_PATTERN`, so no key can leave its folder.
"""

from __future__ import annotations

import re

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"  # dataset ids, labelset names, case ids
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
RESERVED_CASE_SUFFIXES = ("_superpixels", "_preview")  # would collide with labelset outputs
FILE_ENDING = ".nii.gz"

_ID_RE = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    """Letters, digits, ``_`` and ``-``, starting with a letter or digit, at most 128 characters."""
    return bool(_ID_RE.fullmatch(value))


TOKENS = "tokens.json"
DATASETS = "datasets"


def dataset_dir(dataset_id: str) -> str:
    return f"{DATASETS}/{dataset_id}"


def dataset_json(dataset_id: str) -> str:
    return f"{DATASETS}/{dataset_id}/dataset.json"


def image(dataset_id: str, case_id: str, channel: int) -> str:
    return f"{DATASETS}/{dataset_id}/imagesTr/{case_id}_{channel:04d}{FILE_ENDING}"


def label(dataset_id: str, case_id: str) -> str:
    return f"{DATASETS}/{dataset_id}/labelsTr/{case_id}{FILE_ENDING}"


def studies_dir(dataset_id: str) -> str:
    return f"{DATASETS}/{dataset_id}/studies"


def study_meta(dataset_id: str, case_id: str) -> str:
    return f"{DATASETS}/{dataset_id}/studies/{case_id}.json"


def labelsets_dir(dataset_id: str) -> str:
    return f"{DATASETS}/{dataset_id}/labelsets"


def labelset_meta(dataset_id: str, name: str) -> str:
    return f"{DATASETS}/{dataset_id}/labelsets/{name}.json"


def labelset_dir(dataset_id: str, name: str) -> str:
    return f"{DATASETS}/{dataset_id}/labelsets/{name}"


def soft(dataset_id: str, name: str, case_id: str) -> str:
    return f"{labelset_dir(dataset_id, name)}/{case_id}{FILE_ENDING}"


def superpixels(dataset_id: str, name: str, case_id: str) -> str:
    return f"{labelset_dir(dataset_id, name)}/{case_id}_superpixels{FILE_ENDING}"


def preview(dataset_id: str, name: str, case_id: str) -> str:
    return f"{labelset_dir(dataset_id, name)}/{case_id}_preview.png"


def provenance(dataset_id: str, name: str, case_id: str) -> str:
    return f"{labelset_dir(dataset_id, name)}/{case_id}.json"


def decoded_inputs(dataset_id: str, name: str, case_id: str) -> str:
    """The folder of uncompressed input copies handed from the upload to this labelset's job."""
    return f"{labelset_dir(dataset_id, name)}/.inputs/{case_id}"


def study_outputs(dataset_id: str, name: str, case_id: str) -> list[str]:
    """Every file a job writes for one study, provenance last."""
    return [
        soft(dataset_id, name, case_id),
        superpixels(dataset_id, name, case_id),
        preview(dataset_id, name, case_id),
        provenance(dataset_id, name, case_id),
    ]
