"""``softlabel nnunet export --api``: a finished labelset of the real service (embedded stack:
Redis, API, CPU worker in child processes) as an nnU-Net raw dataset with its soft labels."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.nnunet_cases import LABELS, write_raw_dataset
from softlabel.cli.main import app
from softlabel.service.client import SoftlabelClient
from softlabel.service.embedded import EmbeddedStack, admin_token
from softlabel.worker.engine.io.nifti import read_soft_labels

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_export_of_a_service_labelset(tmp_path):
    source = tmp_path / "source"
    write_raw_dataset(source)  # soft labels with the configuration the labelset below asks the worker for
    env_token = os.environ.pop("SOFTLABEL_ADMIN_TOKEN", None)
    try:
        with EmbeddedStack(data_dir=tmp_path / "stack", port=0, workers=1, backend="cpu", log_dir=tmp_path / "logs") as stack:
            token = admin_token(tmp_path / "stack")
            with SoftlabelClient(stack.api_url, token=token) as client:
                client.create_dataset(name="tiny", labels=LABELS, channel_names={"0": "MRI"}, dataset_id="tiny")
                for label in sorted((source / "labelsTr").glob("*.nii.gz")):
                    case = label.name[: -len(".nii.gz")]
                    client.upload_study("tiny", images=[source / "imagesTr" / f"{case}_0000.nii.gz"], label=label, case_id=case)
                client.create_labelset("tiny", "sp", method="superpixel", params={"n_segments": 300, "compactness": 1.0})
                state = client.watch("tiny", "sp", poll_s=0.5, timeout_s=240)
                assert state["counts"]["finished"] == 5
            result = CliRunner().invoke(app, ["nnunet", "export", "--api", stack.api_url, "--dataset", "tiny", "--labelset", "sp",
                                              "--id", "42", "--out", str(tmp_path / "raw"), "--cache-dir", str(tmp_path / "cache"),
                                              "--token", token])
    finally:
        if env_token is not None:
            os.environ["SOFTLABEL_ADMIN_TOKEN"] = env_token
    assert result.exit_code == 0, result.output
    root = tmp_path / "raw" / "Dataset042_tiny"
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"] == LABELS and meta["channel_names"] == {"0": "MRI"} and meta["numTraining"] == 5
    assert meta["softlabel"]["source"] == {"api": stack.api_url, "dataset": "tiny", "labelset": "sp", "method": "superpixel"}
    for i in range(5):
        case = f"case_{i:03d}"
        exported = nib.load(root / "imagesTr" / f"{case}_0000.nii.gz")
        np.testing.assert_array_equal(np.asanyarray(exported.dataobj), nib.load(source / "imagesTr" / f"{case}_0000.nii.gz").get_fdata(dtype=np.float32))
        np.testing.assert_array_equal(np.asanyarray(nib.load(root / "labelsTr" / f"{case}.nii.gz").dataobj),
                                      np.asanyarray(nib.load(source / "labelsTr" / f"{case}.nii.gz").dataobj))
        # the worker's soft labels are the engine's, computed here with the same configuration
        np.testing.assert_array_equal(read_soft_labels(root / "softlabelsTr" / f"{case}.nii.gz"),
                                      read_soft_labels(source / "softlabels" / f"{case}.nii.gz"))
