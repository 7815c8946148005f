"""One run end to end: pull a labelset from the service, train, evaluate on the test split."""

from __future__ import annotations

import json
from pathlib import Path

from .config import TrainConfig
from .data_cache import DataCache, fetch_labelset
from .datasets import load_case, read_splits, split_cases
from .train import TrainingData


def fetch_training_files(cfg: TrainConfig, *, token: str | None = None, need_soft: bool | None = None):
    """The labelset's manifest and local files (downloaded into the cache if missing), unread."""
    cache = DataCache(cfg.cache_dir, api=cfg.api, offline=cfg.offline, token=token)
    need_soft = "kl" in cfg.loss if need_soft is None else need_soft
    return fetch_labelset(cache, cfg.dataset, cfg.labelset, spatial_dims=cfg.spatial_dims,
                          with_soft=need_soft, truth_dir=cfg.truth_dir)


def load_training_data(cfg: TrainConfig, *, token: str | None = None, need_soft: bool | None = None) -> TrainingData:
    """Fetch the labelset (through the cache) and read its cases of ``cfg.model``'s dimensionality.

    Class count, names and ignored classes come from the manifest's ``dataset`` block; the
    split is seeded by ``cfg.split_seed`` so every run of an experiment shares it. Soft
    labels are read when ``need_soft`` (default: when the loss has a KL term). ``token``: the
    service's bearer token, if it needs one.
    """
    manifest, files = fetch_training_files(cfg, token=token, need_soft=need_soft)
    info = manifest["dataset"]
    num_classes = int(info["num_classes"])
    names = {int(v): k for k, v in info.get("labels", {}).items()}
    ignore = sorted(int(c) for c in info.get("ignore_classes", []) if int(c) != 0)
    cases = {f.case_id: load_case(f, num_classes=num_classes) for f in files}
    if cfg.splits_file is not None:
        splits = read_splits(cfg.splits_file, list(cases))
    else:
        splits = split_cases(list(cases), seed=cfg.split_seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
    return TrainingData(cases, splits, num_classes, names, ignore)


def train_and_evaluate(cfg: TrainConfig, run_dir: Path, *, data: TrainingData, resume: bool = False,
                       progress: bool = True) -> dict:
    """Train into ``run_dir`` and evaluate its ``cfg.eval_checkpoint`` (best or last) on the
    test split (``run_dir/eval``)."""
    from .evaluate import evaluate_cases
    from .inference import load_checkpoint, resolve_device
    from .train import train

    train(cfg, data, run_dir, resume=resume, progress=progress)
    device = resolve_device(cfg.device)
    model, meta = load_checkpoint(Path(run_dir) / "checkpoints" / f"{cfg.eval_checkpoint}.pt", device=device)
    result = evaluate_cases(model, data.subset("test"), cfg=cfg, patch_size=meta["patch_size"], num_classes=data.num_classes,
                            class_names=data.class_names, ignore_classes=data.ignore_classes,
                            out_dir=Path(run_dir) / "eval", device=device)
    return result


def evaluate_checkpoint(checkpoint: Path, *, out_dir: Path | None = None, split: str | None = None,
                        token: str | None = None, **overrides) -> dict:
    """Evaluate a checkpoint; ``overrides`` replace config fields (``dataset``, ``api``,
    ``truth_dir``, ``offline``...). ``split``: ``train``, ``val``, ``test`` (the checkpoint's
    recorded split; the default on the training dataset) or ``all`` (the default on another
    dataset). Outputs go to ``out_dir`` (default: ``<run>/eval-<split>``).
    """
    from .evaluate import evaluate_cases
    from .inference import load_checkpoint, resolve_device

    model, meta = load_checkpoint(checkpoint)
    trained = TrainConfig(**meta["config"])
    cfg = TrainConfig(**{**meta["config"], **{k: v for k, v in overrides.items() if v is not None}})
    same_data = (cfg.dataset, cfg.labelset) == (trained.dataset, trained.labelset)
    split = split or ("test" if same_data else "all")
    device = resolve_device(cfg.device)
    model = model.to(device)
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    data = load_training_data(cfg, token=token, need_soft=False)
    if (data.num_classes, data.in_channels) != (meta["num_classes"], meta["in_channels"]):
        raise ValueError(f"{cfg.dataset}: classes, channels: expected {meta['num_classes']}, {meta['in_channels']} "
                         f"like the checkpoint, got {data.num_classes}, {data.in_channels}")
    if split == "all":
        ids = sorted(data.cases)
    elif split in meta["splits"] and same_data:
        ids = meta["splits"][split]
    else:
        raise ValueError(f"split: expected 'all' or, on the training data, one of {sorted(meta['splits'])}; got {split!r}")
    missing = sorted(set(ids) - set(data.cases))
    if missing:
        raise ValueError(f"{cfg.dataset}/{cfg.labelset}: cases: expected the checkpoint's {split} cases, got {missing[:5]} missing")
    out_dir = Path(out_dir or Path(checkpoint).parent.parent / f"eval-{split}")
    result = evaluate_cases(model, [data.cases[i] for i in ids], cfg=cfg, patch_size=meta["patch_size"],
                            num_classes=data.num_classes, class_names=data.class_names,
                            ignore_classes=data.ignore_classes, out_dir=out_dir, device=device)
    (out_dir / "checkpoint.json").write_text(json.dumps({"checkpoint": str(checkpoint), "epoch": meta["epoch"],
                                                         "dataset": cfg.dataset, "split": split}, indent=2))
    return result
