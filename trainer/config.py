"""Run configuration: every hyperparameter is a field, saved as ``config.json`` with each run."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .losses import parse_spec


BUNDLED_CONFIGS = Path(__file__).parent / "configs"  # e.g. train_small_2d_cpu.toml


def read_fields(path: Path) -> dict[str, Any]:
    """The fields in a TOML (``.toml``) or JSON file, or in a bundled config named by its stem
    (``train_small_2d_cpu``); a missing file is a ValueError naming it."""
    path = Path(path)
    if not path.exists() and path.suffix == "" and (BUNDLED_CONFIGS / f"{path.name}.toml").exists():
        path = BUNDLED_CONFIGS / f"{path.name}.toml"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: file: expected a config file, got no such file") from None
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


class TrainConfig(BaseModel):
    """One training run. Defaults are the paper's optimiser settings (SPEC section 2)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # data (pulled from the service by dataset id and labelset name)
    api: str = "http://127.0.0.1:8000"  # service root URL
    dataset: str  # dataset id on the service
    labelset: str  # labelset name; its manifest lists images, hard and soft labels
    cache_dir: Path = Path("softlabel-data/cache")
    offline: bool = False  # use only the cache, never the network
    truth_dir: Optional[Path] = None  # clean truth <case_id>.nii.gz for evaluation; default: the labelset's labels
    split_seed: int = 0  # case-level split seed, shared by the runs of an experiment
    splits_file: Optional[Path] = None  # JSON {"train", "val", "test": [case ids]} (make-benchmark's splits.json); replaces the seeded split
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.25, ge=0.0, lt=1.0)

    # model
    model: Literal["unet2d", "unet3d"] = "unet3d"
    channels: tuple[int, ...] = (16, 32, 64, 128)  # feature maps per U-Net level
    num_res_units: int = Field(2, ge=0)

    # loss: "ce" or "wce", optional "dice" (weight alpha) and "kl" (weight beta)
    loss: str = "wce+dice"
    alpha: float = Field(1.0, ge=0.0)
    beta: float = Field(1.0, ge=0.0)

    # optimisation
    seed: int = 0
    epochs: int = Field(100, ge=1)
    steps_per_epoch: int = Field(250, ge=1)  # an epoch is a fixed number of steps, as in nnU-Net
    batch_size: Optional[int] = Field(None, ge=1)  # default: 2 (3D) or 16 (2D), the paper's
    patch_size: Optional[tuple[int, ...]] = None  # voxels; default: (96, 96, 96) in 3D, the largest slice in 2D
    foreground_fraction: float = Field(1 / 3, ge=0.0, le=1.0)  # patches centred on a foreground voxel
    boundary_fraction: float = Field(1 / 3, ge=0.0, le=1.0)  # patches centred on a class-boundary voxel
    lr: float = Field(3e-4, gt=0.0)
    weight_decay: float = Field(1e-5, ge=0.0)
    lr_factor: float = Field(0.5, gt=0.0, lt=1.0)  # ReduceLROnPlateau on validation Dice
    lr_patience_epochs: int = Field(20, ge=0)  # epochs without improvement before the LR drops
    val_every_epochs: int = Field(1, ge=1)
    device: str = "auto"  # "auto": cuda when available, else cpu
    torch_threads: Optional[int] = Field(None, ge=1)  # CPU threads; default: torch's choice (one per core)
    amp: bool = True  # mixed precision, on CUDA only
    deterministic: bool = True

    # evaluation
    eval_checkpoint: Literal["best", "last"] = "best"  # best validation Dice, or the end of training (converged runs)

    # inference
    sw_overlap: float = Field(0.5, ge=0.0, lt=1.0)  # sliding-window overlap (3D)
    sw_batch_size: int = Field(2, ge=1)

    @field_validator("loss")
    @classmethod
    def _loss_spec(cls, value: str) -> str:
        return "+".join(parse_spec(value))

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction: expected < 1, got {self.val_fraction + self.test_fraction}")
        if self.patch_size is not None and len(self.patch_size) != self.spatial_dims:
            raise ValueError(f"patch_size: expected {self.spatial_dims} sizes for {self.model}, got {self.patch_size}")
        if self.foreground_fraction + self.boundary_fraction > 1.0:
            raise ValueError("foreground_fraction + boundary_fraction: expected <= 1")
        return self

    @property
    def spatial_dims(self) -> int:
        return 2 if self.model == "unet2d" else 3

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or (16 if self.spatial_dims == 2 else 2)

    def plateau_patience(self, *, validates: bool) -> int:
        """ReduceLROnPlateau's patience, counted in its steps: one per validation (every
        ``val_every_epochs`` epochs) when there are validation cases, else one per epoch."""
        return -(-self.lr_patience_epochs // self.val_every_epochs) if validates else self.lr_patience_epochs
