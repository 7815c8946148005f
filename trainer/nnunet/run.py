"""Train one fold with ``nnUNetTrainerSoftLabel``, as ``nnUNetv2_train`` trains one.

``nnUNetv2_train`` finds trainer classes by name inside nnU-Net's package tree only; this
builds the trainer directly (the same plans, dataset.json and output folder
``<nnUNet_results>/<dataset>/nnUNetTrainerSoftLabel__<plans>__<configuration>/fold_<f>``), so
nothing is copied into nnU-Net. Then, as ``nnUNetv2_train`` does: continue from a checkpoint
or load pretrained weights if asked, train, and run nnU-Net's final validation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import SOFT_SUFFIX
from .paths import dataset_name, nnunet_folder
from .trainer import SoftLabelTrainConfig, nnUNetTrainerSoftLabel


def build_trainer(
    dataset: str | int,
    configuration: str,
    fold: int | str,
    *,
    config: SoftLabelTrainConfig,
    plans_identifier: str = "nnUNetPlans",
    device: str = "cuda",
    continue_training: bool = False,
    trainer_class: type[nnUNetTrainerSoftLabel] = nnUNetTrainerSoftLabel,
) -> nnUNetTrainerSoftLabel:
    """The configured trainer for one fold (``fold``: 0..4 or ``"all"``)."""
    from batchgenerators.utilities.file_and_folder_operations import load_json

    nnunet_folder("nnUNet_results")
    base = nnunet_folder("nnUNet_preprocessed") / dataset_name(dataset)
    plans_file = base / f"{plans_identifier}.json"
    if not plans_file.exists():
        raise ValueError(f"{plans_file}: plans: expected nnUNetv2_plan_and_preprocess to have run, got no such file")
    plans = load_json(str(plans_file))
    if configuration not in plans["configurations"]:
        raise ValueError(f"configuration: expected one of {sorted(plans['configurations'])}, got {configuration!r}")
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    data = base / PlansManager(plans).get_configuration(configuration).data_identifier
    if not any(data.glob(f"*{SOFT_SUFFIX}")):
        raise ValueError(f"{data}: soft targets: expected `nnUNetv2_plan_and_preprocess -c {configuration}` and "
                         f"`softlabel nnunet preprocess -c {configuration}` to have run, got no <case>{SOFT_SUFFIX}")
    plans["continue_training"] = continue_training
    fold = fold if fold == "all" else int(fold)
    trainer = trainer_class(plans=plans, configuration=configuration, fold=fold,
                            dataset_json=load_json(str(base / "dataset.json")), device=torch.device(device))
    trainer.configure(config)
    return trainer


def train(
    trainer: nnUNetTrainerSoftLabel,
    *,
    continue_training: bool = False,
    pretrained_weights: str | None = None,
    validate: bool = True,
    export_probabilities: bool = False,
) -> Path:
    """Train (and validate) one fold; returns its output folder."""
    from nnunetv2.run.run_training import maybe_load_checkpoint

    maybe_load_checkpoint(trainer, continue_training, False, pretrained_weights)
    if trainer.device.type == "cuda":
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    trainer.run_training()
    if validate:
        trainer.perform_actual_validation(export_probabilities)
    return Path(trainer.output_folder)
