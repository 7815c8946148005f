"""``softlabel nnunet ...``: export a labelset, preprocess its soft targets, train nnU-Net on them.

nnU-Net's own commands do the rest (``nnUNetv2_plan_and_preprocess`` between export and
preprocess, ``nnUNetv2_predict`` after training); docs/nnunet.md is the recipe. nnU-Net and
torch are imported inside the commands, so that ``--help`` is fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="nnU-Net v2 on soft labels (the 'nnunet' extra): export, preprocess, train.", no_args_is_help=True)
TokenOption = Annotated[Optional[str], typer.Option("--token", envvar="SOFTLABEL_TOKEN", help="Service bearer token.")]


@app.command("export")
def export_command(
    dataset_id: Annotated[int, typer.Option("--id", help="nnU-Net dataset id (1..999): writes Dataset<ID>_<name>.")],
    raw: Annotated[Optional[Path], typer.Option("--raw", help="A local nnU-Net raw dataset (with --soft).")] = None,
    soft: Annotated[Optional[Path], typer.Option("--soft", help="Its soft labels, <case>.nii.gz (softlabel soften-dataset --out).")] = None,
    api: Annotated[Optional[str], typer.Option("--api", help="Service root URL (with --dataset and --labelset).")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset id on the service.")] = None,
    labelset: Annotated[Optional[str], typer.Option("--labelset", help="Labelset name on the service (finished).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Dataset name; default: the raw folder's or service dataset's.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="nnU-Net raw folder; default: $nnUNet_raw.")] = None,
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="Download cache (with --api).")] = Path(".softlabel-cache"),
    token: TokenOption = None,
) -> None:
    """Write an nnU-Net raw dataset (imagesTr, labelsTr, dataset.json) with the soft labels in softlabelsTr/."""
    from ..cli import _fail, _service_errors
    from .export import export_from_service, export_local

    out = out or (Path(os.environ["nnUNet_raw"]) if os.environ.get("nnUNet_raw") else None)
    try:
        if out is None:
            raise ValueError("--out: expected a folder or $nnUNet_raw set, got neither")
        if (raw is None) == (api is None):
            raise ValueError("source: expected either --raw with --soft or --api with --dataset and --labelset, got "
                             f"{'both' if raw else 'neither'}")
        if raw is not None:
            if soft is None:
                raise ValueError("--soft: expected the soft-label folder of --raw, got none")
            root = export_local(raw, soft, out, dataset_id=dataset_id, name=name, log=typer.echo)
        else:
            if not dataset or not labelset:
                raise ValueError("--dataset, --labelset: expected both with --api, got "
                                 f"dataset={dataset!r}, labelset={labelset!r}")
            root = export_from_service(api, dataset, labelset, out, dataset_id=dataset_id, name=name,
                                       cache_dir=cache_dir, token=token, log=typer.echo)
    except _service_errors() as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote {root}; next: nnUNetv2_plan_and_preprocess -d {dataset_id} -c 3d_fullres")


@app.command("preprocess")
def preprocess_command(
    dataset: Annotated[str, typer.Argument(help="nnU-Net dataset id or name (Dataset<ID>_<name>).")],
    configuration: Annotated[str, typer.Option("-c", "--configuration", help="nnU-Net configuration.")] = "3d_fullres",
    plans: Annotated[str, typer.Option("-p", "--plans", help="nnU-Net plans identifier.")] = "nnUNetPlans",
    soft_dir: Annotated[Optional[Path], typer.Option("--soft-dir", help="Soft labels; default: the raw dataset's softlabelsTr/.")] = None,
) -> None:
    """After nnUNetv2_plan_and_preprocess: the soft labels through the same transpose, crop and (linear) resampling."""
    from ..cli import _fail
    from .preprocess import preprocess_soft_labels

    try:
        summary = preprocess_soft_labels(dataset, configuration=configuration, plans_identifier=plans,
                                         soft_dir=soft_dir, log=typer.echo)
    except ValueError as exc:
        raise _fail(exc) from None
    typer.echo(f"{len(summary['cases'])} cases: <case>_soft.npy beside the preprocessed cases of {summary['data_identifier']}")


@app.command("train")
def train_command(
    dataset: Annotated[str, typer.Argument(help="nnU-Net dataset id or name.")],
    configuration: Annotated[str, typer.Argument(help="nnU-Net configuration, e.g. 3d_fullres.")],
    fold: Annotated[str, typer.Argument(help="Fold 0..4, or 'all'.")],
    loss: Annotated[str, typer.Option("--loss", help="Terms joined by '+': ce|wce, dice, kl (SPEC section 2).")] = "kl+ce+dice",
    alpha: Annotated[float, typer.Option("--alpha", help="Weight of the Dice term.")] = 1.0,
    beta: Annotated[float, typer.Option("--beta", help="Weight of the KL term.")] = 1.0,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Default: nnU-Net's 1000.")] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", help="Training iterations per epoch; default: nnU-Net's 250.")] = None,
    val_iterations: Annotated[Optional[int], typer.Option("--val-iterations", help="Validation iterations per epoch; default: 50.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Initial learning rate; default: nnU-Net's 0.01.")] = None,
    plans: Annotated[str, typer.Option("-p", "--plans", help="nnU-Net plans identifier.")] = "nnUNetPlans",
    device: Annotated[str, typer.Option("--device", help="cuda, cpu or mps.")] = "cuda",
    continue_training: Annotated[bool, typer.Option("--c", help="Continue from the fold's latest checkpoint.")] = False,
    pretrained: Annotated[Optional[Path], typer.Option("--pretrained", help="Initial network weights (a checkpoint).")] = None,
    validate: Annotated[bool, typer.Option("--val/--no-val", help="Run nnU-Net's final validation.")] = True,
    npz: Annotated[bool, typer.Option("--npz", help="Save validation softmax outputs (as nnUNetv2_train --npz).")] = False,
) -> None:
    """Train one fold with nnUNetTrainerSoftLabel (nothing is copied into nnU-Net)."""
    from ..cli import _fail
    from .run import build_trainer, train
    from .trainer import SoftLabelTrainConfig

    try:
        config = SoftLabelTrainConfig(loss=loss, alpha=alpha, beta=beta, num_epochs=epochs, iterations_per_epoch=iterations,
                                      val_iterations_per_epoch=val_iterations, initial_lr=lr)
        trainer = build_trainer(dataset, configuration, fold, config=config, plans_identifier=plans, device=device,
                                continue_training=continue_training)
        folder = train(trainer, continue_training=continue_training, pretrained_weights=str(pretrained) if pretrained else None,
                       validate=validate, export_probabilities=npz)
    except ValueError as exc:
        raise _fail(exc) from None
    typer.echo(f"model folder: {folder.parent} (predict: nnUNetv2_predict -d {dataset} -c {configuration} "
               f"-f {fold} -tr {type(trainer).__name__} -p {plans} -i IN -o OUT)")
