"""Prediction with a trained U-Net and checkpoint loading, shared by training and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .models import build_unet


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; other names go to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    sw_batch_size: int = 2,
    device: torch.device,
    amp: bool = False,
) -> np.ndarray:
    """Softmax probabilities (K, X, Y[, Z]) float32 of one image (C, X, Y[, Z]).

    MONAI's ``sliding_window_inference`` with Gaussian blending over windows of
    ``patch_size``; an image no larger than one window is padded and run once. Padding takes
    the image's lowest value, as the training patches do (``datasets.PatchSampler``).
    """
    from monai.inferers import sliding_window_inference

    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(image))[None].to(device)
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
        logits = sliding_window_inference(x, tuple(patch_size), sw_batch_size, model, overlap=overlap, mode="gaussian",
                                          cval=float(image.min()))  # fmt: skip
    return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()


def load_checkpoint(path: Path, *, device: torch.device | None = None) -> tuple[torch.nn.Module, dict]:
    """A model from a checkpoint written by ``trainer.train`` and the checkpoint's metadata.

    The metadata has ``config`` (a :class:`TrainConfig` dict), ``num_classes``,
    ``in_channels``, ``patch_size``, ``class_names``, ``ignore_classes``, ``splits``,
    ``epoch`` and ``code_version``.
    """
    try:
        ckpt = torch.load(path, map_location=device or "cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: file: expected a checkpoint, got no such file") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path}: contents: expected a softlabel checkpoint with 'model' and 'config', got something else")
    cfg = TrainConfig(**ckpt["config"])
    model = build_unet(
        spatial_dims=cfg.spatial_dims,
        in_channels=ckpt["in_channels"],
        num_classes=ckpt["num_classes"],
        channels=cfg.channels,
        num_res_units=cfg.num_res_units,
    )
    model.load_state_dict(ckpt["model"])
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
    return model.to(device or "cpu"), meta
