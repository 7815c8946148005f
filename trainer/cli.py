"""The trainer's commands, on a ``typer.Typer`` that the root CLI mounts.

Heavy imports (torch, MONAI, nilearn) happen inside the commands so that ``--help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .nnunet.cli import app as nnunet_app

app = typer.Typer(help="Train and evaluate U-Nets on soft labels; score segmentations.", no_args_is_help=True)
TokenOption = Annotated[Optional[str], typer.Option("--token", envvar="SOFTLABEL_TOKEN", help="Service bearer token.")]
API_ENV = "SOFTLABEL_API_URL"  # as the service's client commands and the README
app.add_typer(nnunet_app, name="nnunet")


def _service_errors() -> tuple[type[Exception], ...]:
    """Errors reported as one line: bad input, and the service's answers or absence."""
    import httpx

    from softlabel.service.client import ApiError

    return (ValueError, ApiError, TimeoutError, httpx.TransportError)


def _fail(exc: Exception) -> typer.Exit:
    """Exit 1 with one line; a connection that failed names the URL it tried."""
    import httpx

    where = ""
    if isinstance(exc, httpx.RequestError):
        try:
            where = f"{exc.request.url}: "
        except RuntimeError:  # raised without its request
            pass
    typer.echo(f"error: {where}{exc}", err=True)
    return typer.Exit(code=1)  # bad input or service error, as every softlabel command


@app.command("metrics")
def metrics_command(
    pred: Annotated[Path, typer.Option("--pred", help="Predicted label map (NIfTI).")],
    truth: Annotated[Path, typer.Option("--truth", help="Truth label map (NIfTI), same shape and affine.")],
    ignore: Annotated[Optional[list[int]], typer.Option("--ignore", help="Class to leave out (repeatable); background 0 always is.")] = None,
    num_classes: Annotated[Optional[int], typer.Option("--num-classes", help="K; default: largest label seen + 1.")] = None,
) -> None:
    """Print Dice, VS, HD95, ASD and ASSD (mm) per class and their mean as JSON."""
    from .metrics_cli import score_files

    try:
        result = score_files(pred, truth, ignore=ignore or [], num_classes=num_classes)
    except ValueError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(result, indent=2))


@app.command("label-quality")
def label_quality_command(
    soft: Annotated[Path, typer.Option("--soft", help="Soft labels (X, Y, Z, K) NIfTI, or a folder of <case>.nii.gz.")],
    label: Annotated[Path, typer.Option("--label", help="The noisy annotation they were made from (file or folder).")],
    truth: Annotated[Path, typer.Option("--truth", help="The clean truth (file or folder).")],
) -> None:
    """Judge soft labels against the clean truth (Brier score, how selectively errors are
    softened, the true class's probability on errors) as JSON; folders give a row per case and the mean."""
    from .label_quality import score_case, score_folders

    try:
        result = score_folders(soft, label, truth) if soft.is_dir() else score_case(soft, label, truth)
    except ValueError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(result, indent=2))


@app.command("make-benchmark")
def make_benchmark_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder (nnU-Net raw dataset layout).")],
    strength: Annotated[float, typer.Option("--strength", min=0.0, max=1.0, help="Annotation perturbation strength.")] = 0.5,
    n_2d: Annotated[int, typer.Option("--n-2d", min=0, help="Number of 2D axial-slice cases.")] = 40,
    n_3d: Annotated[int, typer.Option("--n-3d", min=0, help="Number of 3D crop cases.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed; case k of a kind depends only on (seed, kind, k).")] = 0,
    spacing_mm: Annotated[float, typer.Option("--spacing-mm", help="Isotropic voxel size to resample the 1 mm template to.")] = 1.0,
    crop: Annotated[tuple[int, int, int], typer.Option("--crop", help="3D crop size in voxels (X Y Z).")] = (96, 96, 96),
    gm_offset_mm: Annotated[float, typer.Option("--gm-offset-mm", min=-4.0, max=4.0,
                                                help="Systematic annotator error: the GM/WM boundary moved into WM (+) or GM (-) by this distance in every case.")] = 0.0,
    n_2d_test: Annotated[int, typer.Option("--n-2d-test", min=0, help="2D test cases from axial blocks apart from the training "
                                           "slices' blocks; writes splits.json (the trainer's splits_file).")] = 0,
    upload: Annotated[bool, typer.Option("--upload", help="Upload images and perturbed labels to the service as a dataset.")] = False,
    api: Annotated[str, typer.Option("--api", envvar=API_ENV, help="Service root URL (with --upload).")] = "http://127.0.0.1:8000",
    dataset_id: Annotated[str, typer.Option("--dataset-id", help="Dataset id on the service (with --upload).")] = "mni-bench",
    oracle_dataset_id: Annotated[Optional[str], typer.Option("--oracle-dataset-id", help="With --upload: also upload the "
                                                             "clean truth as this dataset's labels (the oracle arm).")] = None,
    token: TokenOption = None,
) -> None:
    """Write the MNI152 benchmark with perturbed training annotations and clean truth."""
    from .benchmark_data import write_benchmark

    try:
        dataset = write_benchmark(out, strength=strength, n_2d=n_2d, n_3d=n_3d, seed=seed, spacing_mm=spacing_mm, crop_vox=crop,
                                  gm_offset_mm=gm_offset_mm, n_2d_test=n_2d_test)
    except ValueError as exc:
        raise _fail(exc) from None
    cases = dataset["softlabel_benchmark"]["cases"].values()
    disagreement = sum(c["disagreement_in_brain"] for c in cases) / len(cases)
    typer.echo(f"wrote {len(cases)} cases to {out} (annotation differs from clean truth in {disagreement:.1%} of brain voxels)")
    if upload:
        from softlabel.service.client import SoftlabelClient

        from .remote import upload_benchmark

        try:
            with SoftlabelClient(api, token=token) as client:
                upload_benchmark(client, out, dataset_id=dataset_id, log=typer.echo)
                if oracle_dataset_id:
                    upload_benchmark(client, out, dataset_id=oracle_dataset_id, labels_dir="labelsTr_clean", log=typer.echo)
        except _service_errors() as exc:
            raise _fail(exc) from None


@app.command("train")
def train_command(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id on the service.")],
    labelset: Annotated[str, typer.Option("--labelset", help="Labelset name (its manifest gives images, labels, soft labels).")],
    api: Annotated[Optional[str], typer.Option("--api", envvar=API_ENV, help="Service root URL.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="unet2d or unet3d.")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="Terms joined by '+': ce|wce, dice, kl, e.g. kl+wce+dice.")] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="Weight of the Dice term.")] = None,
    beta: Annotated[Optional[float], typer.Option("--beta", help="Weight of the KL term.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs")] = None,
    steps_per_epoch: Annotated[Optional[int], typer.Option("--steps-per-epoch")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    patch_size: Annotated[Optional[str], typer.Option("--patch-size", help="Voxels, comma-separated, e.g. 96,96,96.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    truth_dir: Annotated[Optional[Path], typer.Option("--truth-dir", help="Clean truth <case>.nii.gz for evaluation.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Use only the local cache.")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML/JSON of any TrainConfig fields; options override it.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/run"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue from <out>/checkpoints/last.pt.")] = False,
    token: TokenOption = None,
) -> None:
    """Train a U-Net on a labelset pulled from the service, then evaluate it on the test split."""
    from .config import TrainConfig, read_fields
    from .run import load_training_data, train_and_evaluate

    options = {
        "dataset": dataset, "labelset": labelset, "api": api, "model": model, "loss": loss, "alpha": alpha, "beta": beta,
        "epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "lr": lr, "seed": seed,
        "truth_dir": truth_dir, "cache_dir": cache_dir, "offline": offline or None, "device": device,
        "patch_size": tuple(int(p) for p in patch_size.split(",")) if patch_size else None,
    }
    try:
        fields = read_fields(config) if config else {}
        cfg = TrainConfig(**{**fields, **{k: v for k, v in options.items() if v is not None}})
        data = load_training_data(cfg, token=token)
        result = train_and_evaluate(cfg, out, data=data, resume=resume)
    except _service_errors() as exc:  # pydantic's ValidationError is a ValueError
        raise _fail(exc) from None
    typer.echo((out / "eval" / "metrics.md").read_text())
    typer.echo(f"run folder: {out}; mean Dice {result['mean']['dice']}")


@app.command("evaluate")
def evaluate_command(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="checkpoints/best.pt or last.pt of a run.")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset id; default: the one trained on.")] = None,
    labelset: Annotated[Optional[str], typer.Option("--labelset", help="Labelset; default: the one trained on.")] = None,
    api: Annotated[Optional[str], typer.Option("--api", envvar=API_ENV, help="Service root URL.")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="test, val, train or all (default: test, or all on another dataset).")] = None,
    truth_dir: Annotated[Optional[Path], typer.Option("--truth-dir")] = None,
    offline: Annotated[bool, typer.Option("--offline")] = False,
    device: Annotated[Optional[str], typer.Option("--device")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder; default: <run>/eval-<split>.")] = None,
    token: TokenOption = None,
) -> None:
    """Score a checkpoint (SPEC section 3 metrics): JSON, per-class CSV, markdown table, overlays."""
    from .run import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(checkpoint, out_dir=out, split=split, token=token, dataset=dataset, labelset=labelset,
                                     api=api, truth_dir=truth_dir, offline=offline or None, device=device)
    except _service_errors() as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps({"truth": result["truth"], "mean": result["mean"]}, indent=2))


@app.command("experiment")
def experiment_command(
    config: Annotated[Path, typer.Option("--config", help="Experiment file (TOML or JSON); see docs/experiments.md.")],
    api: Annotated[Optional[str], typer.Option("--api", envvar=API_ENV, help="Service root URL; overrides the file's train.api.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Runs trained at a time, each in its own process "
                                      "(set train.torch_threads so that jobs x threads fits the cores).")] = 1,
    token: TokenOption = None,
) -> None:
    """Methods x losses x seeds on one dataset; prints the paper's Table 1 layout and paired tests."""
    from .experiment import load_config, run_experiment

    try:
        cfg = load_config(config)
        if api:
            cfg.train["api"] = api
        result = run_experiment(cfg, token=token, jobs=jobs)
    except _service_errors() as exc:
        raise _fail(exc) from None
    typer.echo(result["markdown"])
