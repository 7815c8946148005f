"""``nnUNetTrainerSoftLabel``: nnU-Net v2's trainer on soft targets with SPEC section 2's loss.

What changes against ``nnUNetTrainer`` (everything else, the network, the optimiser and its
schedule, validation, the pseudo-Dice and checkpoint selection, is nnU-Net's own):

- data: each case's preprocessed soft targets (``<case>_soft.npy``, from
  ``softlabel nnunet preprocess``) come with each patch (:class:`SoftTargetDataset`), go
  through the spatial augmentations with the image, linearly, and skip the intensity ones;
- deep supervision: the soft targets of the lower scales are average-pooled (the hard labels
  stay nnU-Net's nearest-sampled ones, for CE and Dice);
- loss: ``(CE or WCE) + alpha * Dice + beta * KL(q || p)`` per output scale
  (``softlabel.trainer.losses``), weighted across scales as nnU-Net weights them;
- checkpoints name ``nnUNetTrainer`` as their trainer (and keep this trainer and its options
  under ``softlabel``): the network and inference are the stock trainer's, so
  ``nnUNetv2_predict`` rebuilds the network without softlabel installed.

Options are a :class:`SoftLabelTrainConfig` given to :meth:`nnUNetTrainerSoftLabel.configure`
before training (nnU-Net rebuilds trainers from their four ``__init__`` arguments, so options
cannot be ``__init__`` arguments); they are saved with each fold as ``softlabel.json``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch._dynamo import OptimizedModule

from ..losses import SegmentationLoss, class_weights, parse_spec
from . import SOFT_SUFFIX
from .transforms import unpack_targets, with_soft_targets

STOCK_TRAINER = "nnUNetTrainer"  # what checkpoints name: same network, same inference
LOSSES_FILE = "softlabel_losses.jsonl"  # per epoch, in the fold's folder: {"epoch": e, "iteration_losses": [...]}


class SoftLabelTrainConfig(BaseModel):
    """The trainer's options; None keeps nnU-Net's value (1000 epochs of 250 iterations, 50 validation iterations)."""

    model_config = ConfigDict(extra="forbid")

    loss: str = Field("kl+ce+dice", description="terms joined by '+': ce or wce, dice, kl (SPEC section 2)")
    alpha: float = Field(1.0, ge=0, description="weight of the Dice term")
    beta: float = Field(1.0, ge=0, description="weight of the KL term (the paper's best: 1)")
    num_epochs: Optional[int] = Field(None, ge=1)
    iterations_per_epoch: Optional[int] = Field(None, ge=1)
    val_iterations_per_epoch: Optional[int] = Field(None, ge=1)
    initial_lr: Optional[float] = Field(None, gt=0)

    @field_validator("loss")
    @classmethod
    def _loss(cls, spec: str) -> str:
        return "+".join(parse_spec(spec))


class SoftChannels:
    """The image channels of a case followed by its K soft channels, read lazily per crop.

    ``data`` (C, *spatial) is nnU-Net's preprocessed image (a blosc2 array or a memory map),
    ``soft`` (K, *spatial) uint8 the stored soft targets; ``self[:, box]`` reads only the box
    and returns float32 (C + K, *box) with the soft channels as ``stored / 255``.
    """

    def __init__(self, data, soft: np.ndarray) -> None:
        if tuple(soft.shape[1:]) != tuple(data.shape[1:]):
            raise ValueError(f"soft targets: expected the spatial shape {tuple(data.shape[1:])} of the image, got {tuple(soft.shape[1:])}")
        self.data, self.soft = data, soft
        self.shape = (data.shape[0] + soft.shape[0], *data.shape[1:])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, index):
        if not isinstance(index, tuple) or index[0] != slice(None):
            raise TypeError(f"index: expected (slice(None), *spatial slices), got {index!r}")
        image = np.asarray(self.data[index], dtype=np.float32)
        soft = self.soft[index].astype(np.float32) * np.float32(1.0 / 255.0)
        return np.concatenate((image, soft))


class SoftTargetDataset:
    """An nnU-Net dataset whose cases carry their soft targets behind the image channels."""

    def __init__(self, base) -> None:
        self.base = base
        self.identifiers = base.identifiers
        self.source_folder = Path(base.source_folder)
        missing = [i for i in self.identifiers if not (self.source_folder / f"{i}{SOFT_SUFFIX}").exists()]
        if missing:
            raise ValueError(f"{self.source_folder}: soft targets: expected <case>{SOFT_SUFFIX} for every case "
                             f"(run `softlabel nnunet preprocess`), got none for {missing[:5]}")

    def __len__(self) -> int:
        return len(self.identifiers)

    def __getitem__(self, identifier):
        return self.load_case(identifier)

    def load_case(self, identifier):
        data, seg, seg_prev, properties = self.base.load_case(identifier)
        soft = np.load(self.source_folder / f"{identifier}{SOFT_SUFFIX}", mmap_mode="r")
        return SoftChannels(data, soft), seg, seg_prev, properties


class SoftLabelLoss(torch.nn.Module):
    """SPEC section 2's loss on one output scale, in nnU-Net's target layout.

    ``forward(logits (B, K, ...), target (B, 1, ...) int labels, soft (B, K, ...) float)``.
    """

    def __init__(self, loss: SegmentationLoss) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target[:, 0].long(), soft)


class nnUNetTrainerSoftLabel(nnUNetTrainer):
    """nnU-Net's trainer on soft targets; see the module docstring."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")) -> None:  # nnU-Net's signature: it rebuilds trainers from it
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.softlabel_config = SoftLabelTrainConfig()
        self.iteration_losses: list[float] = []  # this epoch's, appended to LOSSES_FILE at its end

    def configure(self, config: SoftLabelTrainConfig) -> None:
        """Set the options (before training starts)."""
        if self.was_initialized:
            raise ValueError("configure: expected an uninitialized trainer, got one already initialized")
        self.softlabel_config = config
        for field, attribute in (("num_epochs", "num_epochs"), ("iterations_per_epoch", "num_iterations_per_epoch"),
                                 ("val_iterations_per_epoch", "num_val_iterations_per_epoch"), ("initial_lr", "initial_lr")):
            value = getattr(config, field)
            if value is not None:
                setattr(self, attribute, value)

    def initialize(self) -> None:
        lm = self.label_manager
        if lm.has_regions or lm.has_ignore_label or self.is_cascaded:
            raise ValueError("dataset: expected plain labels (no regions, no ignore label) and no cascade for soft-label "
                             f"training, got regions={lm.has_regions}, ignore label={lm.ignore_label}, cascade={self.is_cascaded}")
        super().initialize()
        if self.output_folder is not None:
            Path(self.output_folder).mkdir(parents=True, exist_ok=True)
            (Path(self.output_folder) / "softlabel.json").write_text(
                json.dumps({"trainer": type(self).__name__, **self.softlabel_config.model_dump()}, indent=2))

    # -- data --------------------------------------------------------------------------------
    def get_tr_and_val_datasets(self):
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        return SoftTargetDataset(dataset_tr), SoftTargetDataset(dataset_val)

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales, *args, **kwargs):
        base = nnUNetTrainer.get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, *args, **kwargs)
        return with_soft_targets(base, self.label_manager.num_segmentation_heads, deep_supervision_scales)

    def get_validation_transforms(self, deep_supervision_scales, *args, **kwargs):
        base = nnUNetTrainer.get_validation_transforms(deep_supervision_scales, *args, **kwargs)
        return with_soft_targets(base, self.label_manager.num_segmentation_heads, deep_supervision_scales)

    # -- loss --------------------------------------------------------------------------------
    def _training_class_weights(self) -> np.ndarray:
        """WCE weights from the training cases' preprocessed labels (nnU-Net's -1 outside the image counts as background)."""
        tr_keys, _ = self.do_split()
        dataset = self.dataset_class(self.preprocessed_dataset_folder, tr_keys)
        labels = (np.maximum(np.asarray(dataset.load_case(k)[1][:]), 0) for k in tr_keys)
        return class_weights(labels, self.label_manager.num_segmentation_heads)

    def _build_loss(self):
        cfg = self.softlabel_config
        if self.dataset_class is None:
            from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        weights = self._training_class_weights() if "wce" in cfg.loss.split("+") else None
        loss = SoftLabelLoss(SegmentationLoss(cfg.loss, alpha=cfg.alpha, beta=cfg.beta, class_weights=weights,
                                              include_background=False, batch_dice=self.configuration_manager.batch_dice))
        loss = loss.to(self.device)  # the class weights' buffer: nnU-Net never moves self.loss to the GPU
        if not self.enable_deep_supervision:
            return loss
        # nnU-Net's weights: halved per scale, the lowest scale unused, normalised to sum 1
        scales = self._get_deep_supervision_scales()
        weights_ds = np.array([1 / (2**i) for i in range(len(scales))])
        weights_ds[-1] = 0
        return DeepSupervisionWrapper(loss, weights_ds / weights_ds.sum())

    @contextmanager
    def _loss_with_soft_targets(self, soft):
        """``self.loss(output, target)`` as nnU-Net's steps call it, given the batch's soft targets."""
        loss = self.loss
        soft = [s.to(self.device, non_blocking=True) for s in soft] if isinstance(soft, list) else soft.to(self.device)
        self.loss = lambda output, target: loss(output, target, soft)
        try:
            yield
        finally:
            self.loss = loss

    def train_step(self, batch: dict) -> dict:
        hard, soft = unpack_targets(batch["target"])
        with self._loss_with_soft_targets(soft):
            result = super().train_step({**batch, "target": hard})
        self.iteration_losses.append(float(result["loss"]))
        return result

    def validation_step(self, batch: dict) -> dict:
        hard, soft = unpack_targets(batch["target"])
        with self._loss_with_soft_targets(soft):
            return super().validation_step({**batch, "target": hard})

    def on_train_epoch_end(self, train_outputs) -> None:
        super().on_train_epoch_end(train_outputs)
        if self.local_rank == 0:  # one line per epoch: a continued run (--c) appends, and a long run costs O(1) per epoch
            with open(Path(self.output_folder) / LOSSES_FILE, "a") as out:
                out.write(json.dumps({"epoch": self.current_epoch, "iteration_losses": self.iteration_losses}) + "\n")
        self.iteration_losses = []

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, naming the stock trainer (see the module docstring)."""
        if self.local_rank != 0:
            return
        if self.disable_checkpointing:
            self.print_to_log_file("No checkpoint written, checkpointing is disabled")
            return
        mod = self.network.module if self.is_ddp else self.network
        if isinstance(mod, OptimizedModule):
            mod = mod._orig_mod
        checkpoint = {
            "network_weights": mod.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "logging": self.logger.get_checkpoint(),
            "_best_ema": self._best_ema,
            "current_epoch": self.current_epoch + 1,
            "init_args": self.my_init_kwargs,
            "trainer_name": STOCK_TRAINER,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
            "softlabel": {"trainer": f"{type(self).__module__}.{type(self).__name__}", **self.softlabel_config.model_dump()},
        }
        torch.save(checkpoint, filename)

