"""``softlabel experiment``: methods x losses x seeds on one dataset, in the paper's Table 1 layout.

Every run trains on one labelset of the service and is scored on the shared test split
(``split_seed``) against the clean truth. With ``create_labelsets``, the labelsets the runs
need are posted to the service first (idempotent) and awaited. Runs whose
``eval/metrics.json`` exists are not repeated, so an interrupted experiment picks up where
it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import TrainConfig, read_fields
from .losses import parse_spec
from .metrics import METRICS

HEADERS = {"dice": "Dice (%) ↑", "vs": "VS (%) ↑", "hd95": "HD95 (mm) ↓", "asd": "ASD (mm) ↓", "assd": "ASSD (mm) ↓"}
TESTED = ("hd95", "assd")  # metrics of the paired test against the baseline


class MethodSpec(BaseModel):
    """One row group of the table: a labelset of the service and the losses trained on it."""

    model_config = ConfigDict(extra="forbid")

    name: str  # shown in the table, e.g. "baseline", "gaussian", "superpixel"
    labelset: str  # labelset name on the service
    dataset: Optional[str] = None  # another dataset with the same cases (the clean-truth oracle); default: train.dataset
    method: str = "superpixel"  # softening method, used when the labelset has to be created
    params: dict[str, Any] = Field(default_factory=dict)  # its parameters (e.g. sigma, n_segments)
    losses: list[str]

    @model_validator(mode="after")
    def _losses(self) -> "MethodSpec":
        self.losses = ["+".join(parse_spec(loss)) for loss in self.losses]
        return self


class ExperimentConfig(BaseModel):
    """An experiment file (TOML or JSON). ``train`` holds the :class:`TrainConfig` fields
    shared by every run (``api``, ``dataset``, ``truth_dir``, ``model``, ``epochs``...)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    out_dir: Path
    seeds: list[int] = Field(min_length=1)
    baseline: str = "baseline"  # the method every other method is compared with
    methods: list[MethodSpec] = Field(min_length=1)
    train: dict[str, Any]
    create_labelsets: bool = True  # create missing labelsets on the service and wait for them
    wait_timeout_s: float = 3600.0  # longest wait for the service to finish a labelset

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"methods: expected unique names, got {names}")
        if self.baseline not in names:
            raise ValueError(f"baseline: expected one of the method names {names}, got {self.baseline!r}")
        for key in ("labelset", "loss", "seed"):
            if key in self.train:
                raise ValueError(f"train.{key}: expected it to come from methods/seeds, got it in [train]")
        return self

    def run_config(self, method: MethodSpec, loss: str, seed: int) -> TrainConfig:
        fields = {**self.train, "dataset": method.dataset} if method.dataset else self.train
        return TrainConfig(**fields, labelset=method.labelset, loss=loss, seed=seed)


def load_config(path: Path) -> ExperimentConfig:
    """Read an experiment file; ``.toml`` or ``.json``. Relative paths stay relative to the cwd."""
    return ExperimentConfig(**read_fields(path))


def run_dir(cfg: ExperimentConfig, method: MethodSpec, loss: str, seed: int) -> Path:
    return cfg.out_dir / method.name / loss / f"seed{seed}"


def unfinished_runs(cfg: ExperimentConfig) -> list[tuple[MethodSpec, str, int]]:
    """(method, loss, seed) of every run without its evaluation (``eval/metrics.json``) yet."""
    return [(m, loss, seed) for m in cfg.methods for loss in m.losses for seed in cfg.seeds
            if not (run_dir(cfg, m, loss, seed) / "eval" / "metrics.json").exists()]  # fmt: skip


def run_experiment(cfg: ExperimentConfig, *, token: str | None = None, progress: bool = True, jobs: int = 1, log=print) -> dict:
    """Train and evaluate every (method, loss, seed); write ``results.json`` and ``table.md``.

    ``jobs > 1`` trains that many runs at a time in separate processes (each run's result is
    the same as in sequence: a run depends only on its config and seed)."""
    from .run import load_training_data, train_and_evaluate

    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "experiment.json").write_text(cfg.model_dump_json(indent=2))
    pending = [method for method, _, _ in unfinished_runs(cfg)]
    if pending and cfg.create_labelsets:
        from softlabel.service.client import SoftlabelClient

        from .remote import ensure_labelset

        probe = cfg.run_config(cfg.methods[0], cfg.methods[0].losses[0], cfg.seeds[0])
        with SoftlabelClient(probe.api, token=token) as client:
            for method in {m.name: m for m in pending}.values():
                dataset = cfg.run_config(method, method.losses[0], cfg.seeds[0]).dataset
                ensure_labelset(client, dataset, method.labelset, method=method.method, params=method.params,
                                timeout_s=cfg.wait_timeout_s, log=log)
    if jobs > 1:
        _train_in_parallel(cfg, jobs=jobs, token=token, log=log)
    results: dict[str, dict[str, dict[str, dict]]] = {}
    for method in cfg.methods:
        need_soft = any("kl" in loss for loss in method.losses)
        data = None
        for loss in method.losses:
            for seed in cfg.seeds:
                folder = run_dir(cfg, method, loss, seed)
                done = folder / "eval" / "metrics.json"
                if not done.exists():
                    run_cfg = cfg.run_config(method, loss, seed)
                    data = data or load_training_data(run_cfg, token=token, need_soft=need_soft)
                    log(f"[{method.name} {loss} seed {seed}] training into {folder}")
                    t0 = time.perf_counter()
                    train_and_evaluate(run_cfg, folder, resume=True, progress=progress, data=data)
                    log(f"[{method.name} {loss} seed {seed}] done in {time.perf_counter() - t0:.0f} s")
                results.setdefault(method.name, {}).setdefault(loss, {})[str(seed)] = json.loads(done.read_text())
    summary = {"table": table_rows(cfg, results), "comparisons": compare_to_baseline(cfg, results)}
    (cfg.out_dir / "results.json").write_text(json.dumps(summary, indent=2))
    text = render_markdown(cfg, summary)
    (cfg.out_dir / "table.md").write_text(text)
    return {**summary, "markdown": text}


def _train_one(cfg_json: str, method_name: str, loss: str, seed: int) -> float:
    """One run in a worker process, from the cache the parent filled; returns its wall seconds."""
    from .run import load_training_data, train_and_evaluate

    cfg = ExperimentConfig.model_validate_json(cfg_json)
    method = next(m for m in cfg.methods if m.name == method_name)
    run_cfg = cfg.run_config(method, loss, seed).model_copy(update={"offline": True})
    t0 = time.perf_counter()
    data = load_training_data(run_cfg, need_soft=any("kl" in x for x in method.losses))
    train_and_evaluate(run_cfg, run_dir(cfg, method, loss, seed), resume=True, progress=False, data=data)
    return time.perf_counter() - t0


def _train_in_parallel(cfg: ExperimentConfig, *, jobs: int, token: str | None, log) -> None:
    """Every unfinished run, ``jobs`` at a time in spawned processes
    (fork would copy the parent's torch threads). The parent fetches each labelset into the
    cache first, so the workers read it offline."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from .run import fetch_training_files

    runs = unfinished_runs(cfg)
    for method in {m.name: m for m, _, _ in runs}.values():
        fetch_training_files(cfg.run_config(method, method.losses[0], cfg.seeds[0]), token=token,
                             need_soft=any("kl" in x for x in method.losses))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_one, cfg.model_dump_json(), m.name, loss, seed): (m.name, loss, seed)
                   for m, loss, seed in runs}
        for n, future in enumerate(as_completed(futures), 1):
            name, loss, seed = futures[future]
            log(f"[{name} {loss} seed {seed}] done in {future.result():.0f} s ({n}/{len(runs)})")


def table_rows(cfg: ExperimentConfig, results: dict) -> list[dict]:
    """One row per (method, loss): mean and SD over seeds of each run's mean metric."""
    rows = []
    for method in cfg.methods:
        for loss in method.losses:
            runs = results[method.name][loss]
            row = {"method": method.name, "loss": loss, "seeds": len(runs)}
            for m in METRICS:
                values = np.array([np.nan if r["mean"][m] is None else r["mean"][m] for r in runs.values()], float)
                finite = values[np.isfinite(values)]
                row[m] = {"mean": float(finite.mean()) if finite.size else None,
                          "sd": float(finite.std(ddof=1)) if finite.size > 1 else None, "n": int(finite.size)}
            rows.append(row)
    return rows


EQUIVALENCE_MARGIN = 0.05  # equivalence: the mean difference within 5 % of the baseline's value
ALPHA = 0.05  # level of the paired tests (Holm-corrected) and of the equivalence test (90 % CI)


def _seed_values(runs: dict, metric: str) -> dict[str, float]:
    """Per seed: the run's mean ``metric`` (over test cases and classes); runs without one left out."""
    return {seed: float(run["mean"][metric]) for seed, run in runs.items() if run["mean"][metric] is not None}


def paired_statistics(diff: np.ndarray, *, margin: float) -> dict[str, object]:
    """Paired-by-seed statistics of ``diff`` (method - baseline, one value per seed): mean, 95 %
    CI and two-sided paired t-test p; the equivalence test (two one-sided t-tests, TOST) against
    ``+-margin``, whose p is below ALPHA exactly when the 90 % CI lies inside the margin."""
    from scipy import stats

    n = diff.size
    out: dict[str, object] = {"mean_difference": float(diff.mean()) if n else None, "ci95": None, "p_value": None,
                              "equivalence_p": None}  # fmt: skip
    if n < 2:
        return out
    se = float(diff.std(ddof=1) / np.sqrt(n))
    t95 = float(stats.t.ppf(0.975, n - 1))
    out["ci95"] = [float(diff.mean() - t95 * se), float(diff.mean() + t95 * se)]
    if se == 0:  # every seed gave the same difference
        out["p_value"] = 0.0 if diff.mean() != 0 else 1.0
        out["equivalence_p"] = 0.0 if abs(diff.mean()) < margin else 1.0
        return out
    out["p_value"] = float(stats.ttest_1samp(diff, 0.0).pvalue)
    lower = stats.t.sf((diff.mean() + margin) / se, n - 1)  # H0: difference <= -margin
    upper = stats.t.cdf((diff.mean() - margin) / se, n - 1)  # H0: difference >= +margin
    out["equivalence_p"] = float(max(lower, upper))
    return out


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None), in the order given."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


def compare_to_baseline(cfg: ExperimentConfig, results: dict) -> list[dict]:
    """Each method against the baseline, paired by seed: the unit is the training run.

    Runs with the same seed share their initial weights and their batches, so each seed gives
    one paired difference (method - baseline) of the runs' mean metric. A loss ``kl+X`` is
    paired with the baseline's loss ``X`` (and ``X`` with ``X``). Per comparison: the per-seed
    differences, their mean with a 95 % CI, a paired t-test whose p is Holm-corrected across
    all comparisons of the experiment, and an equivalence test against +-5 % of the baseline's
    mean, so that a null result says whether the methods are equivalent or the test too weak.
    """
    base = results[cfg.baseline]
    out = []
    for method in cfg.methods:
        if method.name == cfg.baseline:
            continue
        for loss in method.losses:
            base_loss = "+".join(t for t in parse_spec(loss) if t != "kl")
            if base_loss not in base:
                continue
            for metric in TESTED:
                a, b = _seed_values(results[method.name][loss], metric), _seed_values(base[base_loss], metric)
                seeds = sorted(set(a) & set(b), key=int)
                diff = np.array([a[s] - b[s] for s in seeds])
                margin = EQUIVALENCE_MARGIN * float(np.mean([b[s] for s in seeds])) if seeds else 0.0
                entry = {"method": method.name, "loss": loss, "baseline_loss": base_loss, "metric": metric,
                         "seeds": len(seeds), "left_out": len(set(a) ^ set(b)),
                         "per_seed_difference": {s: float(d) for s, d in zip(seeds, diff)},
                         "method_better": int((diff < 0).sum()), "baseline_better": int((diff > 0).sum()),
                         "equivalence_margin": margin, **paired_statistics(diff, margin=margin)}  # fmt: skip
                entry["equivalent"] = entry["equivalence_p"] is not None and entry["equivalence_p"] < ALPHA
                out.append(entry)
    for entry, adjusted in zip(out, holm([e["p_value"] for e in out])):
        entry["p_holm"] = adjusted
        entry["significant"] = adjusted is not None and adjusted < ALPHA
    return out


def _loss_label(loss: str) -> str:
    names = {"ce": "CE", "wce": "WCE", "dice": "Dice", "kl": "KL"}
    order = ("kl", "ce", "wce", "dice")
    terms = parse_spec(loss)
    return "+".join(names[t] for t in order if t in terms)


def _cell(entry: dict, metric: str) -> str:
    if entry["mean"] is None:
        return "NaN"
    scale, digits = (100.0, 2) if metric in ("dice", "vs") else (1.0, 4)
    text = f"{scale * entry['mean']:.{digits}f}"
    return text + (f" ± {scale * entry['sd']:.{digits}f}" if entry["sd"] is not None else "")


def render_markdown(cfg: ExperimentConfig, summary: dict) -> str:
    """The paper's Table 1 layout with mean ± SD over seeds, then the paired tests."""
    lines = [f"**{cfg.name}**: mean ± SD over {len(cfg.seeds)} seeds (SD with ddof=1); "
             "each run's value is the mean over classes of the per-class means over test cases.", "",
             "| Method | Losses | " + " | ".join(HEADERS[m] for m in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    previous = None
    for row in summary["table"]:
        name = row["method"] if row["method"] != previous else ""
        previous = row["method"]
        lines.append(f"| {name} | {_loss_label(row['loss'])} | " + " | ".join(_cell(row[m], m) for m in METRICS) + " |")
    if summary["comparisons"]:
        lines += ["", f"Against {cfg.baseline}, paired by seed (one difference per training run, method - baseline; "
                  "negative: the method has the smaller distance): mean difference with its 95 % CI, paired t-test "
                  f"p with Holm's correction over the {len(summary['comparisons'])} comparisons, and the equivalence "
                  f"test (TOST) against +-{EQUIVALENCE_MARGIN:.0%} of the baseline's mean.", "",
                  "| Method | Losses | vs | metric | seeds | mean difference (mm) [95 % CI] | method better / worse | p (Holm) | equivalent (p) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in summary["comparisons"]:
            diff = "NaN" if c["mean_difference"] is None else f"{c['mean_difference']:+.3f}"
            if c["ci95"] is not None:
                diff += f" [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]"
            p = "n/a" if c["p_holm"] is None else f"{c['p_holm']:.3g}"
            eq = "n/a" if c["equivalence_p"] is None else f"{'yes' if c['equivalent'] else 'no'} ({c['equivalence_p']:.3g})"
            lines.append(f"| {c['method']} | {_loss_label(c['loss'])} | {_loss_label(c['baseline_loss'])} | {c['metric'].upper()} "
                         f"| {c['seeds']} | {diff} | {c['method_better']} / {c['baseline_better']} | {p} | {eq} |")
    return "\n".join(lines) + "\n"
