"""The experiment runner: config checks, Table 1 aggregation, paired tests, a tiny real run."""

import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from helpers.discs_service import discs_service
from softlabel.trainer.experiment import (
    ExperimentConfig,
    MethodSpec,
    compare_to_baseline,
    holm,
    paired_statistics,
    load_config,
    render_markdown,
    table_rows,
)

METHODS = [
    {"name": "baseline", "labelset": "hard", "method": "hard", "losses": ["ce+dice"]},
    {"name": "superpixel", "labelset": "sp", "losses": ["kl+ce+dice"]},
]


def _cfg(tmp_path, **kw):
    fields = {"name": "t", "out_dir": tmp_path / "exp", "seeds": [0, 1], "methods": METHODS, "train": {"dataset": "d1"}, **kw}
    return ExperimentConfig(**fields)


def _run(case_values: dict[str, float], dice: float) -> dict:
    """A run's metrics.json reduced to what the aggregation reads."""
    cases = {c: {"mean": {"dice": dice, "vs": 1.0, "hd95": v, "asd": v, "assd": v}} for c, v in case_values.items()}
    mean = {"dice": dice, "vs": 1.0, **{m: sum(case_values.values()) / len(case_values) for m in ("hd95", "asd", "assd")}}
    return {"cases": cases, "mean": mean}


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"baseline": "gaussian"}, "baseline: expected one of the method names"),
        ({"train": {"dataset": "d1", "loss": "ce"}}, r"train.loss: expected it to come from methods/seeds"),
        ({"methods": [METHODS[0], METHODS[0]]}, "expected unique names"),
        ({"seeds": []}, "at least 1 item"),
    ],
)
def test_config_errors(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg(tmp_path, **kw)


def test_loss_specs_are_normalised():
    assert MethodSpec(name="m", labelset="l", losses=["Dice+KL+wce"]).losses == ["dice+kl+wce"]


def test_table_mean_sd_and_paired_test(tmp_path):
    cfg = _cfg(tmp_path, seeds=[0, 1, 2, 3])
    cases = [f"c{i}" for i in range(8)]
    shift = {0: -0.5, 1: -0.4, 2: -0.6, 3: -0.5}  # method - baseline per seed
    base = {str(s): _run({c: 3.0 + 0.1 * i + 0.05 * s for i, c in enumerate(cases)}, 0.80 + 0.02 * s) for s in shift}
    soft = {str(s): _run({c: 3.0 + d + 0.1 * i + 0.05 * s for i, c in enumerate(cases)}, 0.82) for s, d in shift.items()}
    results = {"baseline": {"ce+dice": base}, "superpixel": {"kl+ce+dice": soft}}
    rows = table_rows(cfg, results)
    assert rows[0]["seeds"] == 4 and rows[0]["dice"]["mean"] == pytest.approx(0.83)
    comparisons = compare_to_baseline(cfg, results)
    assert [(c["metric"], c["baseline_loss"]) for c in comparisons] == [("hd95", "ce+dice"), ("assd", "ce+dice")]
    hd = comparisons[0]
    assert hd["seeds"] == 4 and hd["per_seed_difference"] == pytest.approx({"0": -0.5, "1": -0.4, "2": -0.6, "3": -0.5})
    assert hd["mean_difference"] == pytest.approx(-0.5) and hd["method_better"] == 4
    se = np.std([-0.5, -0.4, -0.6, -0.5], ddof=1) / 2
    t95 = stats.t.ppf(0.975, 3)
    assert hd["ci95"] == pytest.approx([-0.5 - t95 * se, -0.5 + t95 * se])
    assert hd["p_value"] == pytest.approx(stats.ttest_1samp([-0.5, -0.4, -0.6, -0.5], 0).pvalue)
    assert hd["p_holm"] == pytest.approx(min(1.0, 2 * hd["p_value"])) and hd["significant"]  # the smaller of two p
    assert hd["equivalence_margin"] == pytest.approx(0.05 * np.mean([3.35 + 0.05 * s for s in shift]))
    assert not hd["equivalent"]  # 0.5 mm better is far outside +-5 % of about 3.4 mm
    text = render_markdown(cfg, {"table": rows, "comparisons": comparisons})
    assert "| superpixel | KL+CE+Dice | CE+Dice | HD95 | 4 | -0.500 [" in text and "| 4 / 0 |" in text


def test_holm_and_equivalence() -> None:
    assert holm([0.01, None, 0.04, 0.03]) == [pytest.approx(0.03), None, pytest.approx(0.06), pytest.approx(0.06)]
    tiny = paired_statistics(np.array([0.01, -0.02, 0.0, 0.01, -0.01, 0.01]), margin=0.2)
    assert tiny["equivalence_p"] < 0.05 and tiny["p_value"] > 0.5  # no difference, and equivalent within the margin
    noisy = paired_statistics(np.array([0.5, -0.6, 0.4, -0.3]), margin=0.2)
    assert noisy["equivalence_p"] > 0.05 and noisy["p_value"] > 0.5  # neither: the test is too weak to say


def test_missing_seed_values_are_counted(tmp_path):
    cfg = _cfg(tmp_path, seeds=[0, 1, 2])
    base = {str(s): _run({"a": 1.0, "b": 2.0}, 0.8) for s in range(3)}
    soft = {str(s): _run({"a": 1.0, "b": 1.0 + 0.1 * s}, 0.8) for s in range(3)}
    soft["2"]["mean"]["hd95"] = None
    cmp = compare_to_baseline(cfg, {"baseline": {"ce+dice": base}, "superpixel": {"kl+ce+dice": soft}})
    assert cmp[0]["seeds"] == 2 and cmp[0]["left_out"] == 1 and cmp[0]["p_value"] is not None


def test_load_config_toml(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(
        'name = "small"\nout_dir = "exp"\nseeds = [0]\n[train]\ndataset = "d1"\nmodel = "unet2d"\n'
        '[[methods]]\nname = "baseline"\nlabelset = "hard"\nmethod = "hard"\nlosses = ["ce"]\n'
    )
    cfg = load_config(path)
    assert cfg.run_config(cfg.methods[0], "ce", 0).model == "unet2d"
    with pytest.raises(ValueError, match="no such file"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.slow
@pytest.mark.redis
def test_tiny_experiment_end_to_end(tmp_path, monkeypatch):
    """Against the real service: 2 methods x 2 seeds, the table, reuse, and 2 runs at a time."""
    pytest.importorskip("monai")
    from softlabel.trainer.cli import app

    with discs_service(tmp_path / "service", {"d1": {"n": 6, "shape": (16, 16, 1)}}) as service:
        monkeypatch.setenv("SOFTLABEL_TOKEN", service.token)
        config = {
            "name": "tiny", "out_dir": str(tmp_path / "exp"), "seeds": [0, 1], "methods": METHODS, "create_labelsets": False,
            "train": {"api": service.api, "dataset": "d1", "model": "unet2d", "truth_dir": str(service.truth_dirs["d1"]),
                      "cache_dir": str(tmp_path / "cache"), "epochs": 1, "steps_per_epoch": 1, "batch_size": 2,
                      "channels": [4, 8], "num_res_units": 0},
        }  # fmt: skip
        path = tmp_path / "exp.json"
        path.write_text(json.dumps(config))
        res = CliRunner().invoke(app, ["experiment", "--config", str(path)])
        assert res.exit_code == 0, res.output
        assert "| Method | Losses | Dice (%) ↑ |" in res.output and "paired by seed" in res.output
        summary = json.loads((tmp_path / "exp" / "results.json").read_text())
        assert [(r["method"], r["loss"], r["seeds"]) for r in summary["table"]] == [
            ("baseline", "ce+dice", 2), ("superpixel", "kl+ce+dice", 2)
        ]  # fmt: skip
        metrics = tmp_path / "exp" / "superpixel" / "kl+ce+dice" / "seed1" / "eval" / "metrics.json"
        checkpoints = sorted((tmp_path / "exp").glob("*/*/seed*/checkpoints/last.pt"))
        written = {p: p.stat().st_mtime_ns for p in [metrics, *checkpoints]}
        assert len(checkpoints) == 4
        # A second invocation reuses every finished run: nothing is trained or evaluated again.
        assert CliRunner().invoke(app, ["experiment", "--config", str(path)]).exit_code == 0
        assert {p: p.stat().st_mtime_ns for p in written} == written
        # Two runs at a time, in spawned processes reading the cache, give the same runs.
        path.write_text(json.dumps({**config, "out_dir": str(tmp_path / "exp2")}))
        res = CliRunner().invoke(app, ["experiment", "--config", str(path), "--jobs", "2"])
        assert res.exit_code == 0, res.output
        assert "(4/4)" in res.output
        parallel = json.loads((tmp_path / "exp2" / "results.json").read_text())
        for a, b in zip(summary["table"], parallel["table"]):
            assert a["dice"]["mean"] == pytest.approx(b["dice"]["mean"], abs=1e-6)


def test_a_method_may_train_on_another_dataset(tmp_path):
    oracle = {"name": "oracle", "labelset": "hard", "method": "hard", "dataset": "d1-clean", "losses": ["ce+dice"]}
    cfg = _cfg(tmp_path, methods=[*METHODS, oracle])
    assert cfg.run_config(cfg.methods[2], "ce+dice", 0).dataset == "d1-clean"
    assert cfg.run_config(cfg.methods[0], "ce+dice", 0).dataset == "d1"
