"""Training end to end on tiny disc datasets in the real service: outputs, resume, evaluation, CLI."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.discs_service import discs_service

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from softlabel.trainer.cli import app  # noqa: E402
from softlabel.trainer.config import TrainConfig  # noqa: E402
from softlabel.trainer.run import load_training_data, train_and_evaluate  # noqa: E402
from softlabel.trainer.train import train  # noqa: E402

pytestmark = pytest.mark.redis
TINY = {"channels": (4, 8), "num_res_units": 0, "batch_size": 2, "steps_per_epoch": 2, "lr": 1e-2}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The embedded stack with 6 2D disc studies (d1), 4 3D ones (d3) and 6 whose soft labels are still queued."""
    datasets = {"d1": {"n": 6, "shape": (16, 16, 1)}, "d3": {"n": 4, "shape": (12, 14, 10)}}
    with discs_service(tmp_path_factory.mktemp("discs"), datasets, pending="d1-pending") as running:
        yield running


def _cfg(tmp_path, service, dataset="d1", **kw):
    fields = {"api": service.api, "dataset": dataset, "labelset": "sp", "model": "unet2d", "cache_dir": tmp_path / "cache",
              "truth_dir": service.truth_dirs[dataset], "epochs": 2, **TINY, **kw}
    return TrainConfig(**fields)


def test_config_rejects_conflicts():
    with pytest.raises(ValueError, match="at most one of ce and wce"):
        TrainConfig(dataset="d", labelset="l", loss="ce+wce")
    with pytest.raises(ValueError, match="patch_size: expected 2 sizes"):
        TrainConfig(dataset="d", labelset="l", model="unet2d", patch_size=(8, 8, 8))
    with pytest.raises(ValueError, match="extra"):
        TrainConfig(dataset="d", labelset="l", learning_rate=1.0)


def test_train_writes_run_folder_and_evaluates(tmp_path, service):
    cfg = _cfg(tmp_path, service, loss="kl+wce+dice")
    data = load_training_data(cfg, token=service.token)
    assert data.num_classes == 3 and data.ignore_classes == [] and data.class_names[2] == "core"
    assert [len(data.splits[k]) for k in ("train", "val", "test")] == [3, 1, 2]
    run = tmp_path / "run"
    result = train_and_evaluate(cfg, run, data=data, progress=False)
    for name in ("config.json", "splits.json", "history.json", "curves.png", "checkpoints/last.pt", "checkpoints/best.pt",
                 "eval/metrics.json", "eval/per_class.csv", "eval/metrics.md", "eval/overlays.png",
                 "eval/predictions/" + data.splits["test"][0] + ".nii.gz"):
        assert (run / name).exists(), name
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["loss"] == "kl+wce+dice" and saved["code_version"]
    assert json.loads((run / "splits.json").read_text()) == data.splits
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and set(history[0]["train"]) == {"wce", "dice", "kl", "total"}
    assert result["truth"] == "clean truth" and set(result["cases"]) == set(data.splits["test"])
    assert set(result["mean"]) == {"dice", "vs", "hd95", "asd", "assd"}


def test_resume_continues_exactly(tmp_path, service, capsys):
    data = load_training_data(_cfg(tmp_path, service), token=service.token)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(_cfg(tmp_path, service, epochs=2, steps_per_epoch=4), data, straight, progress=True)
    assert "s per step: 8 steps take about" in capsys.readouterr().out  # the estimate, printed up front
    train(_cfg(tmp_path, service, epochs=1, steps_per_epoch=4), data, split, progress=False)
    train(_cfg(tmp_path, service, epochs=2, steps_per_epoch=4), data, split, resume=True, progress=False)
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(split / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [h["train"] for h in a["history"]] == [h["train"] for h in b["history"]]


@pytest.mark.slow
def test_cli_train_then_evaluate_offline(tmp_path, service, monkeypatch):
    monkeypatch.setenv("SOFTLABEL_TOKEN", service.token)
    run = tmp_path / "cli-run"
    args = ["train", "--api", service.api, "--dataset", "d1", "--labelset", "sp", "--model", "unet2d", "--loss", "ce+dice",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--cache-dir", str(tmp_path / "cache"),
            "--truth-dir", str(service.truth_dirs["d1"]), "--out", str(run)]
    config = tmp_path / "fields.toml"
    config.write_text('channels = [4, 8]\nnum_res_units = 0\n')
    res = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert res.exit_code == 0, res.output
    assert "| **mean** |" in res.output
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--offline"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["truth"] == "clean truth"
    assert (run / "eval-test" / "metrics.json").exists()
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--offline", "--split", "all"])
    assert res.exit_code == 0 and len(json.loads((run / "eval-all" / "metrics.json").read_text())["cases"]) == 6


def test_cli_train_reports_bad_input(tmp_path, service, monkeypatch):
    monkeypatch.setenv("SOFTLABEL_TOKEN", service.token)
    res = CliRunner().invoke(app, ["train", "--api", service.api, "--dataset", "d1", "--labelset", "nope", "--model", "unet2d",
                                   "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 1 and "manifest: 404: labelset 'nope' not found" in res.output
    res = CliRunner().invoke(app, ["train", "--dataset", "d1", "--labelset", "sp", "--loss", "ce+kl+ce"])
    assert res.exit_code == 1 and "expected each term once" in res.output


def test_kl_needs_finished_soft_labels(tmp_path, service):
    """d1-pending's soft labels are queued with no worker running: the hard labels train, KL cannot."""
    with pytest.raises(ValueError, match="expected every study finished"):
        load_training_data(_cfg(tmp_path, service, dataset="d1-pending", loss="kl+ce"), token=service.token)
    data = load_training_data(_cfg(tmp_path, service, dataset="d1-pending", loss="ce"), token=service.token)
    assert data.cases["case00"].soft is None


def test_3d_patches_and_sliding_window(tmp_path, service):
    cfg = _cfg(tmp_path, service, dataset="d3", model="unet3d", patch_size=(8, 8, 8), epochs=1, loss="kl+ce+dice")
    data = load_training_data(cfg, token=service.token)
    result = train_and_evaluate(cfg, tmp_path / "run3d", data=data, progress=False)
    pred = np.asarray(__import__("nibabel").load(tmp_path / "run3d" / "eval" / "predictions" / f"{data.splits['test'][0]}.nii.gz").dataobj)
    assert pred.shape == (12, 14, 10)
    assert result["cases"][data.splits["test"][0]]["spacing_mm"] == [1.5, 1.0, 2.0]


def test_plateau_patience_is_counted_in_epochs() -> None:
    """The scheduler steps once per validation: 20 epochs of patience with validation every 5
    epochs are 4 of its steps (it counted 20 validations, i.e. 100 epochs)."""
    from softlabel.trainer.config import TrainConfig

    cfg = TrainConfig(dataset="d", labelset="l", lr_patience_epochs=20, val_every_epochs=5)
    assert cfg.plateau_patience(validates=True) == 4 and cfg.plateau_patience(validates=False) == 20
    assert TrainConfig(dataset="d", labelset="l", lr_patience_epochs=7, val_every_epochs=2).plateau_patience(validates=True) == 4


def test_the_run_time_is_estimated_up_front_and_a_small_cpu_config_ships() -> None:
    from softlabel.trainer.config import TrainConfig, read_fields
    from softlabel.trainer.train import training_estimate

    assert training_estimate(3.0, 25_000) == "about 3.00 s per step: 25000 steps take about 20 h 50 min, plus validation"
    assert training_estimate(0.5, 250) == "about 0.50 s per step: 250 steps take about 2 min 05 s, plus validation"
    small = TrainConfig(dataset="d", labelset="l", **read_fields("train_small_2d_cpu"))
    assert small.model == "unet2d" and small.epochs * small.steps_per_epoch == 250 and small.device == "cpu"
