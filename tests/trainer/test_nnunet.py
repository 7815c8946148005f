"""nnU-Net v2 on soft labels, end to end on CPU: export, nnU-Net's planning and preprocessing,
the soft targets' preprocessing, a few training iterations, and nnU-Net's own prediction in a
process that cannot import softlabel.

One module-scoped pipeline runs every step in child processes (nnunetv2 reads its folder
variables when first imported), and each test checks one of its results. Step times are
written to ``timings.json`` in the pipeline's folder and printed (``pytest -s``).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import nnunetv2  # noqa: F401  (the nnunet extra, which make test installs: these tests never skip)
import pytest

from helpers.nnunet_cases import LABELS, write_raw_dataset

pytestmark = pytest.mark.slow

DATASET_ID = 917
DATASET = "Dataset917_Tiny"
BIN = Path(sys.executable).parent
HERE = Path(__file__).parent
NO_SOFTLABEL = '''import sys


class NoSoftlabel:
    """softlabel is not installed, as far as this interpreter can tell."""

    def find_spec(self, name, path=None, target=None):
        if name == "softlabel" or name.startswith("softlabel."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoSoftlabel())
'''


def _run(args, env, timings, step):
    start = time.perf_counter()
    done = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True)
    timings[step] = round(time.perf_counter() - start, 1)
    assert done.returncode == 0, f"{step} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_def_n_proc": "1", "OMP_NUM_THREADS": "2"}
    timings = {}
    start = time.perf_counter()
    write_raw_dataset(root / "source")
    timings["make cases + soften (engine)"] = round(time.perf_counter() - start, 1)
    _run([BIN / "softlabel", "nnunet", "export", "--raw", root / "source", "--soft", root / "source" / "softlabels",
          "--id", DATASET_ID, "--name", "Tiny"], env, timings, "softlabel nnunet export")
    _run([BIN / "nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", "3d_fullres", "-npfp", "1", "-np", "1"],
         env, timings, "nnUNetv2_plan_and_preprocess")
    _run([BIN / "softlabel", "nnunet", "preprocess", DATASET_ID, "-c", "3d_fullres"], env, timings, "softlabel nnunet preprocess")
    capture = root / "capture.npz"
    _run([sys.executable, HERE / "nnunet_train_capture.py", DATASET_ID, "0", capture],
         {**env, "nnUNet_n_proc_DA": "0"}, timings, "train 3 epochs x 4 iterations + validation")
    (root / "timings.json").write_text(json.dumps(timings, indent=2))
    print(json.dumps(timings, indent=2))
    return {"root": root, "env": env, "capture": dict(np.load(capture)), "timings": timings}


def _fold(pipeline) -> Path:
    return pipeline["root"] / "results" / DATASET / "nnUNetTrainerSoftLabel__nnUNetPlans__3d_fullres" / "fold_0"


def test_export_writes_an_nnunet_raw_dataset_with_the_soft_labels_beside_it(pipeline):
    raw = pipeline["root"] / "raw" / DATASET
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["labels"] == LABELS and meta["file_ending"] == ".nii.gz" and meta["numTraining"] == 5
    assert meta["softlabel"]["soft_folder"] == "softlabelsTr" and meta["softlabel"]["num_classes"] == 3
    for case in ("case_000", "case_004"):
        assert (raw / "imagesTr" / f"{case}_0000.nii.gz").exists() and (raw / "labelsTr" / f"{case}.nii.gz").exists()
        soft = nib.load(raw / "softlabelsTr" / f"{case}.nii.gz")
        image = nib.load(raw / "imagesTr" / f"{case}_0000.nii.gz")
        assert soft.shape == (*image.shape, 3) and np.allclose(soft.affine, image.affine)


def test_export_refuses_soft_labels_on_another_grid(tmp_path):
    from softlabel.trainer.nnunet.export import export_local

    write_raw_dataset(tmp_path / "src", n_segments=50)
    soft_path = tmp_path / "src" / "softlabels" / "case_001.nii.gz"
    soft = nib.load(soft_path)
    nib.save(nib.Nifti1Image(np.asanyarray(soft.dataobj), np.diag([2.0, 1.0, 1.5, 1.0])), soft_path)
    with pytest.raises(ValueError, match=r"case_001.nii.gz: affine: expected the affine of case_001_0000.nii.gz"):
        export_local(tmp_path / "src", tmp_path / "src" / "softlabels", tmp_path / "raw", dataset_id=5)
    assert not (tmp_path / "raw").exists()


def test_preprocessed_soft_targets_are_soft_and_aligned_with_nnunets_segmentation(pipeline):
    import blosc2

    folder = pipeline["root"] / "preprocessed" / DATASET / "nnUNetPlans_3d_fullres"
    for i in range(5):
        stored = np.load(folder / f"case_{i:03d}_soft.npy")
        seg = blosc2.open(str(folder / f"case_{i:03d}_seg.b2nd"), mode="r")[:][0]
        assert stored.dtype == np.uint8 and stored.shape == (3, *seg.shape)
        assert ((stored > 0) & (stored < 255)).any(0).mean() > 0.01  # soft at the boundaries
        hard = (stored.max(0) == 255) & (seg >= 0)
        assert hard.mean() > 0.5
        np.testing.assert_array_equal(stored.argmax(0)[hard], seg[hard])
    # case_002 has a coarser x spacing: nnU-Net resampled it, and the soft targets with it
    assert np.load(folder / "case_002_soft.npy").shape[3] == 44


def test_preprocess_refuses_soft_labels_with_a_flipped_axis(pipeline, tmp_path):
    raw = pipeline["root"] / "raw" / DATASET / "softlabelsTr"
    shutil.copytree(raw, tmp_path / "soft")
    img = nib.load(raw / "case_003.nii.gz")
    flipped = np.ascontiguousarray(np.asanyarray(img.dataobj)[::-1])
    nib.save(nib.Nifti1Image(flipped, img.affine, img.header), tmp_path / "soft" / "case_003.nii.gz")
    done = subprocess.run([BIN / "softlabel", "nnunet", "preprocess", str(DATASET_ID), "--soft-dir", tmp_path / "soft",
                           "-p", "nnUNetPlans"], env=pipeline["env"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "case_003.nii.gz: alignment: expected the argmax of the hard soft-label voxels to be nnU-Net's label" in done.stderr


def test_targets_reaching_the_loss_are_soft_and_aligned_with_the_hard_labels(pipeline):
    soft, target = pipeline["capture"]["soft_0"], pipeline["capture"]["target_0"]
    assert soft.shape[:2] == (2, 3) and target.shape == (2, 1, *soft.shape[2:])
    assert tuple(pipeline["capture"]["output_shape_0"]) == soft.shape
    assert ((soft > 0.05) & (soft < 0.95)).any(1).mean() > 0.005  # non-integer values at the boundaries
    hard = soft.max(1) >= 0.999
    assert hard.mean() > 0.3
    np.testing.assert_array_equal(soft.argmax(1)[hard], target[:, 0][hard])


def test_deep_supervision_targets_are_average_pooled_soft_labels(pipeline):
    capture = pipeline["capture"]
    full = capture["soft_0"]
    scales = sorted(int(k.split("_")[1]) for k in capture if k.startswith("soft_"))
    assert len(scales) >= 3
    for s in scales[1:]:
        low = capture[f"soft_{s}"]
        b, k, z, y, x = full.shape
        fz, fy, fx = z // low.shape[2], y // low.shape[3], x // low.shape[4]
        assert (fz, fy, fx) == (2**s, 2**s, 2**s)
        expected = full.reshape(b, k, low.shape[2], fz, low.shape[3], fy, low.shape[4], fx).mean(axis=(3, 5, 7))
        np.testing.assert_allclose(low, expected, atol=1e-6)
        assert capture[f"target_{s}"].shape == (b, 1, *low.shape[2:])
        assert tuple(capture[f"output_shape_{s}"]) == low.shape


def _iteration_losses(fold) -> list[float]:
    """The training losses of every epoch, from the trainer's one line per epoch."""
    lines = [json.loads(line) for line in (fold / "softlabel_losses.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(len(lines)))
    return [loss for line in lines for loss in line["iteration_losses"]]


def test_loss_decreases(pipeline):
    losses = _iteration_losses(_fold(pipeline))
    assert len(losses) == 12
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses


def test_checkpoint_names_the_stock_trainer_and_validation_is_nnunets(pipeline):
    import torch

    checkpoint = torch.load(_fold(pipeline) / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == "nnUNetTrainer"
    assert checkpoint["softlabel"]["trainer"] == "softlabel.trainer.nnunet.trainer.nnUNetTrainerSoftLabel"
    assert checkpoint["softlabel"]["beta"] == 1.0 and checkpoint["softlabel"]["loss"] == "kl+ce+dice"
    assert (_fold(pipeline) / "checkpoint_best.pth").exists()
    summary = json.loads((_fold(pipeline) / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}


def test_nnunetv2_predict_runs_on_the_model_without_softlabel(pipeline, tmp_path):
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(NO_SOFTLABEL)
    env = {**pipeline["env"], "PYTHONPATH": str(tmp_path / "block")}
    probe = subprocess.run([sys.executable, "-c", "import softlabel.trainer"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'softlabel" in probe.stderr
    (tmp_path / "in").mkdir()
    image = pipeline["root"] / "raw" / DATASET / "imagesTr" / "case_004_0000.nii.gz"
    shutil.copy(image, tmp_path / "in" / "new_0000.nii.gz")
    start = time.perf_counter()
    done = subprocess.run([BIN / "nnUNetv2_predict", "-i", tmp_path / "in", "-o", tmp_path / "out", "-d", str(DATASET_ID),
                           "-c", "3d_fullres", "-f", "0", "-tr", "nnUNetTrainerSoftLabel", "-device", "cpu",
                           "-npp", "1", "-nps", "1"], env=env, capture_output=True, text=True)
    print(f"nnUNetv2_predict: {time.perf_counter() - start:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "softlabel" not in done.stderr
    pred, ref = nib.load(tmp_path / "out" / "new.nii.gz"), nib.load(image)
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert set(np.unique(np.asanyarray(pred.dataobj))) <= {0, 1, 2}


def test_softlabel_nnunet_train_command_with_wce(pipeline):
    fold = pipeline["root"] / "results" / DATASET / "nnUNetTrainerSoftLabel__nnUNetPlans__3d_fullres" / "fold_1"
    _run([BIN / "softlabel", "nnunet", "train", DATASET_ID, "3d_fullres", "1", "--device", "cpu", "--loss", "kl+wce+dice",
          "--beta", "0.5", "--epochs", "1", "--iterations", "2", "--val-iterations", "1", "--no-val"],
         {**pipeline["env"], "nnUNet_n_proc_DA": "0"}, pipeline["timings"], "softlabel nnunet train (CLI, 2 iterations)")
    assert json.loads((fold / "softlabel.json").read_text())["loss"] == "kl+wce+dice"
    losses = _iteration_losses(fold)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert (fold / "checkpoint_final.pth").exists() and not (fold / "validation").exists()
