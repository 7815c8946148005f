"""The trainer's commands, on a ``typer.Typer`` that the root CLI mounts.

Heavy imports (torch, MONAI, nilearn) happen inside the commands so that ``--help`` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Train and evaluate U-Nets on soft labels; score segmentations.", no_args_is_help=True)


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=2)


@app.command("metrics")
def metrics_command(
    pred: Annotated[Path, typer.Option("--pred", help="Predicted label map (NIfTI).")],
    truth: Annotated[Path, typer.Option("--truth", help="Truth label map (NIfTI), same shape and affine.")],
    ignore: Annotated[Optional[list[int]], typer.Option("--ignore", help="Class to leave out (repeatable); background 0 always is.")] = None,
    num_classes: Annotated[Optional[int], typer.Option("--num-classes", help="K; default: largest label seen + 1.")] = None,
) -> None:
    """Print Dice, VS, HD95, ASD and ASSD (mm) per class and their mean as JSON."""
    from trainer.metrics_cli import score_files

    try:
        result = score_files(pred, truth, ignore=ignore or [], num_classes=num_classes)
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
) -> None:
    """Write the MNI152 benchmark with perturbed training annotations and clean truth."""
    from trainer.benchmark_data import write_benchmark

    try:
        dataset = write_benchmark(out, strength=strength, n_2d=n_2d, n_3d=n_3d, seed=seed, spacing_mm=spacing_mm, crop_vox=crop)
    except ValueError as exc:
        raise _fail(exc) from None
    cases = dataset["softlabel_benchmark"]["cases"].values()
    disagreement = sum(c["disagreement_in_brain"] for c in cases) / len(cases)
    typer.echo(f"wrote {len(cases)} cases to {out} (annotation differs from clean truth in {disagreement:.1%} of brain voxels)")
