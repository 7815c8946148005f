"""The trainer against the real service: embedded stack (Redis, API, CPU worker) in child processes."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("monai")

from softlabel.service.client import SoftlabelClient  # noqa: E402
from softlabel.service.embedded import EmbeddedStack, admin_token  # noqa: E402
from softlabel.trainer.benchmark_data import write_benchmark  # noqa: E402
from softlabel.trainer.config import TrainConfig  # noqa: E402
from softlabel.trainer.experiment import ExperimentConfig, run_experiment  # noqa: E402
from softlabel.trainer.remote import upload_benchmark  # noqa: E402
from softlabel.trainer.run import load_training_data  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("stack")
    env_token = os.environ.pop("SOFTLABEL_ADMIN_TOKEN", None)  # the stack's own token, not the caller's
    with EmbeddedStack(data_dir=data_dir, port=0, workers=1, backend="cpu", log_dir=data_dir / "logs") as running:
        yield running, admin_token(data_dir)
    if env_token is not None:
        os.environ["SOFTLABEL_ADMIN_TOKEN"] = env_token


def test_benchmark_upload_labelsets_training_and_table(stack, tmp_path):
    running, token = stack
    bench = tmp_path / "bench"
    write_benchmark(bench, strength=0.5, n_2d=5, n_3d=0, seed=0, spacing_mm=4.0)
    with SoftlabelClient(running.api_url, token=token) as client:
        info = upload_benchmark(client, bench, dataset_id="bench", log=lambda _: None)
        assert info["num_studies"] == 5 and info["num_classes"] == 4
    cfg = ExperimentConfig(
        name="roundtrip", out_dir=tmp_path / "exp", seeds=[0], wait_timeout_s=300,
        methods=[{"name": "baseline", "labelset": "hard", "method": "hard", "losses": ["ce"]},
                 {"name": "superpixel", "labelset": "sp", "method": "superpixel", "params": {"n_segments": 40}, "losses": ["kl+ce"]}],
        train={"api": running.api_url, "dataset": "bench", "model": "unet2d", "truth_dir": str(bench / "labelsTr_clean"),
               "cache_dir": str(tmp_path / "cache"), "epochs": 1, "steps_per_epoch": 1, "batch_size": 2,
               "channels": [4, 8], "num_res_units": 0, "val_fraction": 0.2, "test_fraction": 0.4},
    )
    result = run_experiment(cfg, token=token, progress=False, log=lambda _: None)
    assert [row["method"] for row in result["table"]] == ["baseline", "superpixel"]
    assert "| superpixel | KL+CE |" in result["markdown"]

    # The soft labels as the trainer reads them: (K, X, Y) in [0, 1], softer than one-hot somewhere.
    data = load_training_data(TrainConfig(**cfg.train, labelset="sp", loss="kl+ce"), token=token)
    case = next(iter(data.cases.values()))
    assert case.soft.shape == (4, *case.label.shape) and case.truth is not None
    assert 0.0 <= case.soft.min() and case.soft.max() <= 1.0
    assert np.any((case.soft > 0.01) & (case.soft < 0.99))
    runs = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert runs["comparisons"][0]["seeds"] == 1 and runs["comparisons"][0]["p_value"] is None  # one seed: no test
