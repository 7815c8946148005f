"""Training loop: patches, the paper's optimiser and schedule, checkpoints and resume.

A run folder holds ``config.json`` (the :class:`TrainConfig` and the code version),
``splits.json`` (case ids per split), ``history.json`` (one entry per epoch),
``curves.png`` and ``checkpoints/{last,best}.pt``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .datasets import Case, PatchSampler, default_patch_size, save_splits
from .inference import predict, resolve_device
from .losses import SegmentationLoss, class_weights
from .metrics import dice_scores
from .models import build_unet, size_divisor
from .plots import plot_curves

ESTIMATE_AFTER_STEPS = 3  # steps timed before the estimate of the whole run is printed
RUNNING_LOSS_DECAY = 0.9  # exponential moving average of the loss shown in the progress bar


@dataclass
class TrainingData:
    """Cases in memory with their split and the dataset's class declarations."""

    cases: dict[str, Case]
    splits: dict[str, list[str]]
    num_classes: int
    class_names: dict[int, str]
    ignore_classes: list[int]  # left out of validation and evaluation (background always is)

    def subset(self, split: str) -> list[Case]:
        return [self.cases[i] for i in self.splits[split]]

    @property
    def in_channels(self) -> int:
        return next(iter(self.cases.values())).image.shape[0]

    @property
    def scored_classes(self) -> list[int]:
        return [c for c in range(1, self.num_classes) if c not in self.ignore_classes]


def code_version() -> str:
    """``git describe --always --dirty`` of this checkout, else the installed package version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"softlabel {version('softlabel')}"
        except PackageNotFoundError:
            return "unknown"


def seed_everything(seed: int, *, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def validation_dice(model, cases: list[Case], *, classes: list[int], patch_size, cfg: TrainConfig, device) -> float:
    """Mean over cases of the mean Dice over ``classes`` against each case's training label."""
    scores = []
    for case in cases:
        probs = predict(model, case.image, patch_size=patch_size, overlap=cfg.sw_overlap,
                        sw_batch_size=cfg.sw_batch_size, device=device, amp=cfg.amp)
        scores.append(np.nanmean(dice_scores(probs.argmax(0), case.label, classes)))
    return float(np.nanmean(scores))


def training_estimate(step_s: float, steps: int) -> str:
    """One line saying how long ``steps`` training steps of ``step_s`` seconds take."""
    total = step_s * steps
    hours, rest = divmod(round(total), 3600)
    duration = f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"
    return f"about {step_s:.2f} s per step: {steps} steps take about {duration}, plus validation"


def train(cfg: TrainConfig, data: TrainingData, run_dir: Path, *, resume: bool = False, progress: bool = True) -> dict:
    """Train one model; returns the final entry of the history plus the best validation Dice.

    With ``resume`` and an existing ``checkpoints/last.pt``, training continues from the
    epoch after it, restoring the model, optimiser, scheduler, gradient scaler and RNGs.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    version = code_version()
    (run_dir / "config.json").write_text(json.dumps({"config": cfg.model_dump(mode="json"), "code_version": version}, indent=2))
    save_splits(data.splits, run_dir / "splits.json")
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    use_amp = cfg.amp and device.type == "cuda"

    train_cases, val_cases = data.subset("train"), data.subset("val")
    divisor = size_divisor(cfg.channels)
    patch = tuple(cfg.patch_size or default_patch_size(train_cases, cfg.spatial_dims, divisor))
    if any(p % divisor for p in patch):
        raise ValueError(f"patch_size: expected multiples of {divisor} for {len(cfg.channels)} U-Net levels, got {patch}")
    weights = class_weights([c.label for c in train_cases], data.num_classes) if "wce" in cfg.loss else None
    loss_fn = SegmentationLoss(cfg.loss, alpha=cfg.alpha, beta=cfg.beta, class_weights=weights).to(device)
    sampler = PatchSampler(train_cases, patch, foreground_fraction=cfg.foreground_fraction,
                           boundary_fraction=cfg.boundary_fraction, with_soft=loss_fn.needs_soft)
    model = build_unet(spatial_dims=cfg.spatial_dims, in_channels=data.in_channels, num_classes=data.num_classes,
                       channels=cfg.channels, num_res_units=cfg.num_res_units).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    patience = cfg.plateau_patience(validates=bool(val_cases))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.lr_factor, patience=patience)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    rng = np.random.default_rng(cfg.seed)
    history: list[dict] = []
    best = -np.inf
    start_epoch = 0
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    if resume and last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"].cpu())  # map_location may have moved it
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1

    meta = {
        "config": cfg.model_dump(mode="json"), "num_classes": data.num_classes, "in_channels": data.in_channels,
        "patch_size": list(patch), "class_names": {str(k): v for k, v in data.class_names.items()},
        "ignore_classes": data.ignore_classes, "splits": data.splits, "code_version": version,
    }
    batch_size = cfg.effective_batch_size
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("train", total=cfg.epochs * cfg.steps_per_epoch, completed=start_epoch * cfg.steps_per_epoch, loss=float("nan"))
        running = None
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            sums: dict[str, float] = {}
            bar.update(task, description=f"epoch {epoch + 1}/{cfg.epochs}")
            for step in range(cfg.steps_per_epoch):
                if progress and epoch == start_epoch and step == ESTIMATE_AFTER_STEPS:
                    remaining = (cfg.epochs - start_epoch) * cfg.steps_per_epoch
                    bar.console.print(training_estimate((time.perf_counter() - t0) / step, remaining))
                image, label, soft = sampler.sample(batch_size, rng)
                x, y = torch.from_numpy(image).to(device), torch.from_numpy(label).to(device)
                q = torch.from_numpy(soft).to(device) if soft is not None else None
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    logits = model(x)
                terms = loss_fn.components(logits, y, q)
                total = loss_fn.combine(terms)
                scaler.scale(total).backward()
                scaler.step(optimizer)
                scaler.update()
                for name, value in {**terms, "total": total}.items():
                    sums[name] = sums.get(name, 0.0) + value.detach().item()
                step_loss = total.detach().item()
                running = step_loss if running is None else RUNNING_LOSS_DECAY * running + (1 - RUNNING_LOSS_DECAY) * step_loss
                bar.update(task, advance=1, loss=running)
            entry = {"epoch": epoch + 1, "train": {k: v / cfg.steps_per_epoch for k, v in sums.items()},
                     "lr": optimizer.param_groups[0]["lr"], "val_dice": None}
            validate = bool(val_cases) and ((epoch + 1) % cfg.val_every_epochs == 0 or epoch + 1 == cfg.epochs)
            if validate:
                entry["val_dice"] = validation_dice(model, val_cases, classes=data.scored_classes, patch_size=patch, cfg=cfg, device=device)
            score = entry["val_dice"] if val_cases else -entry["train"]["total"]
            if validate or not val_cases:
                scheduler.step(score)
            entry["time_s"] = time.perf_counter() - t0
            history.append(entry)
            improved = (validate or not val_cases) and score > best
            if improved:
                best = score
                _atomic_save({**meta, "model": model.state_dict(), "epoch": epoch}, best_path)
            _atomic_save({**meta, "model": model.state_dict(), "epoch": epoch, "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "history": history, "best": best,
                          "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}}, last_path)
            (run_dir / "history.json").write_text(json.dumps(history, indent=2))
            if progress:
                val = "" if entry["val_dice"] is None else f", val Dice {entry['val_dice']:.4f}"
                bar.console.print(f"epoch {epoch + 1}: loss {entry['train']['total']:.4f}{val}, lr {entry['lr']:.2e}, {entry['time_s']:.1f} s")
    if history:
        plot_curves(history, run_dir / "curves.png")
    return {**(history[-1] if history else {}), "best_score": best, "patch_size": list(patch)}
