"""Engine commands: ``softlabel soften``, ``soften-dataset`` and ``preview``.

Progress goes to stderr; bad input exits with code 1 and a one-line message. Rich draws the
progress bars and colours on a terminal; a scripted ``soften`` or ``preview`` (stderr not a
terminal) gets plain lines and never imports rich, which would add about 25 ms to every run's
start-up (``soften-dataset`` keeps its rich progress bar: one start-up for many studies).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from pydantic import ValidationError

from . import __version__
from .engine.config import SofteningConfig
from .engine.errors import InputError
from .engine.io.atomic import write_json_atomic
from .engine.pipeline import soften_files

app = typer.Typer(no_args_is_help=True, add_completion=False)
F = TypeVar("F", bound=Callable[..., Any])
DEFAULTS = SofteningConfig()  # the options' defaults are the configuration's (engine/config.py)

MethodOpt = Annotated[str, typer.Option("--method", help="superpixel | gaussian | smoothing | hard | svls")]
NSegmentsOpt = Annotated[int, typer.Option("--n-segments", help="SLIC superpixel count")]
CompactnessOpt = Annotated[float, typer.Option("--compactness", help="SLIC compactness (intensities rescaled to [0, 1])")]
MaxNumIterOpt = Annotated[int, typer.Option("--max-num-iter", help="SLIC iterations at most")]
SigmaOpt = Annotated[float, typer.Option("--sigma", help="gaussian std, in voxels or mm (see --distance)")]
EpsOpt = Annotated[float, typer.Option("--eps", help="label smoothing epsilon")]
DistanceOpt = Annotated[str, typer.Option("--distance", help="voxel | mm: unit of distances and sigma")]
NormalizeOpt = Annotated[bool, typer.Option("--normalize", help="divide each voxel's K probabilities by their sum")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="uint8 (scl_slope 1/255) | float32")]
SlicOpt = Annotated[str, typer.Option("--slic", help="native (ours: compiled C on the CPU, CUDA on the GPU) | skimage (the reference)")]
BackendOpt = Annotated[str, typer.Option("--backend", help="auto | cpu | gpu")]


def exits_on_bad_input(func: F) -> F:
    """Turn bad input into a one-line message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            tell(str(exc), error=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "options"
            tell(f"--{field.replace('_', '-')}: {first['msg']}", error=True)
        except ValueError as exc:
            tell(str(exc), error=True)
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def build_config(
    method: str, n_segments: int, compactness: float, max_num_iter: int, sigma: float, eps: float, distance: str,
    normalize: bool, dtype: str, slic: str,
) -> SofteningConfig:
    """A validated configuration from CLI options (pydantic reports the bad option)."""
    return SofteningConfig(
        method=method, n_segments=n_segments, compactness=compactness, max_num_iter=max_num_iter, sigma=sigma,
        eps=eps, distance=distance, normalize=normalize, dtype=dtype, slic=slic,
    )  # fmt: skip


@functools.cache
def _terminal_console() -> Any:
    """Rich's console on stderr (imported on first use); never wraps, so messages stay one line."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def tell(message: str, *, error: bool = False) -> None:
    """One line on stderr: with rich on a terminal ("error:" in red), plain text otherwise."""
    if sys.stderr.isatty():
        from rich.markup import escape

        _terminal_console().print(("[red]error:[/red] " if error else "") + escape(message), highlight=False)
    else:
        print(("error: " if error else "") + message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stage_progress() -> Iterator[Callable[[str, float], None] | None]:
    """A transient progress bar on stderr fed by the pipeline's (stage, fraction) reports, on a
    terminal; elsewhere no reporter (a transient bar leaves nothing in a log)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn

    columns = (TextColumn("{task.description:<12}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, console=_terminal_console(), transient=True) as bar:
        task = bar.add_task("starting", total=1.0)

        def report(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=fraction)

        yield report


@app.command()
@exits_on_bad_input
def soften(
    image: Annotated[list[Path], typer.Option("--image", help="image file: one 4D file or one file per channel, in order")],
    label: Annotated[Path, typer.Option("--label", help="integer label map")],
    out: Annotated[Path, typer.Option("--out", help="soft labels, 4D NIfTI (X, Y, Z, K)")],
    classes: Annotated[Optional[int], typer.Option("--classes", help="K, the dataset's class count")] = None,
    method: MethodOpt = DEFAULTS.method,
    n_segments: NSegmentsOpt = DEFAULTS.n_segments,
    compactness: CompactnessOpt = DEFAULTS.compactness,
    max_num_iter: MaxNumIterOpt = DEFAULTS.max_num_iter,
    sigma: SigmaOpt = DEFAULTS.sigma,
    eps: EpsOpt = DEFAULTS.eps,
    distance: DistanceOpt = DEFAULTS.distance,
    normalize: NormalizeOpt = DEFAULTS.normalize,
    save_superpixels: Annotated[Optional[Path], typer.Option("--save-superpixels", help="write the superpixel map here")] = None,
    superpixels: Annotated[Optional[Path], typer.Option("--superpixels", help="reuse this superpixel map")] = None,
    dtype: DtypeOpt = DEFAULTS.dtype,
    slic: SlicOpt = DEFAULTS.slic,
    backend: BackendOpt = "auto",
) -> None:
    """Soften one study's label map."""
    config = build_config(method, n_segments, compactness, max_num_iter, sigma, eps, distance, normalize, dtype, slic)
    with stage_progress() as report:
        result = soften_files(
            image, label, out, config=config, num_classes=classes, superpixels_in=superpixels,
            superpixels_out=save_superpixels, backend=backend, progress=report,
        )  # fmt: skip
    if classes is None:
        k = result.study.num_classes
        tell(f"note: --classes not given; used K = {k} from this label (pass --classes for a dataset's K)")
    times = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings_s.items())
    tell(f"wrote {out} ({result.backend}; {times})")


@app.command("soften-dataset")
@exits_on_bad_input
def soften_dataset(
    dataset: Annotated[Path, typer.Argument(help="nnU-Net raw dataset folder (dataset.json, imagesTr, labelsTr)")],
    out: Annotated[Path, typer.Option("--out", help="output folder: <case>.nii.gz per case")],
    method: MethodOpt = DEFAULTS.method,
    n_segments: NSegmentsOpt = DEFAULTS.n_segments,
    compactness: CompactnessOpt = DEFAULTS.compactness,
    max_num_iter: MaxNumIterOpt = DEFAULTS.max_num_iter,
    sigma: SigmaOpt = DEFAULTS.sigma,
    eps: EpsOpt = DEFAULTS.eps,
    distance: DistanceOpt = DEFAULTS.distance,
    normalize: NormalizeOpt = DEFAULTS.normalize,
    save_superpixels: Annotated[bool, typer.Option("--save-superpixels", help="also write <case>_superpixels.nii.gz")] = False,
    dtype: DtypeOpt = DEFAULTS.dtype,
    slic: SlicOpt = DEFAULTS.slic,
    backend: BackendOpt = "auto",
) -> None:
    """Soften every case of an nnU-Net raw dataset; finished cases are skipped (resumable)."""
    from .engine.io.raw_dataset import scan_dataset

    config = build_config(method, n_segments, compactness, max_num_iter, sigma, eps, distance, normalize, dtype, slic)
    raw = scan_dataset(dataset)
    ending = raw.file_ending
    _claim_output_folder(out, config)
    todo = [case for case in raw.cases if not (out / f"{case.case_id}{ending}").exists()]
    tell(f"{len(raw.cases)} cases, K = {raw.num_classes}; {len(raw.cases) - len(todo)} already done")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_terminal_console()) as bar:
        task = bar.add_task("softening", total=len(raw.cases), completed=len(raw.cases) - len(todo))
        for case in todo:
            bar.update(task, description=f"softening {case.case_id}")
            sp_out = out / f"{case.case_id}_superpixels{ending}" if save_superpixels else None
            soften_files(
                case.image_paths, case.label_path, out / f"{case.case_id}{ending}", config=config,
                num_classes=raw.num_classes, superpixels_out=sp_out, backend=backend,
            )  # fmt: skip
            bar.advance(task)
    tell(f"done: {out}")


def _claim_output_folder(out: Path, config: SofteningConfig) -> None:
    """Record the configuration in ``out/softening.json``; refuse a folder made with another one."""
    record = out / "softening.json"
    params = config.output_params()
    if record.exists():
        previous = json.loads(record.read_text()).get("params")
        if previous != params:
            raise InputError(file=record, field="params", expected=f"{params} to resume", got=str(previous))
        return
    write_json_atomic(record, {"params": params, "engine_version": __version__})


@app.command()
@exits_on_bad_input
def preview(
    image: Annotated[list[Path], typer.Option("--image", help="image file(s), as for soften")],
    label: Annotated[Path, typer.Option("--label")],
    soft: Annotated[Path, typer.Option("--soft", help="soft labels written by soften")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write")],
    class_index: Annotated[Optional[int], typer.Option("--class", help="class to show (default: most softened)")] = None,
    slice_index: Annotated[Optional[int], typer.Option("--slice", help="z slice (default: most softened)")] = None,
    superpixels: Annotated[Optional[Path], typer.Option("--superpixels", help="superpixel map to outline")] = None,
) -> None:
    """Image, superpixel boundaries, label and soft-label heat map side by side."""
    from .engine.io import nifti as nifti_io
    from .engine.preview import render_preview

    soft_data = nifti_io.read_soft_labels(soft)
    study = nifti_io.read_study(image, label, num_classes=soft_data.shape[-1])
    spatial3d = soft_data.shape[:-1]
    sp = None
    if superpixels is not None:
        sp = nifti_io.read_superpixels(superpixels, ref_path=image[0], ref_shape=study.spatial_shape, ref_affine=study.affine)
        sp = sp.reshape(spatial3d)
    c, z = render_preview(
        study.image.reshape(spatial3d + (-1,)), study.label.reshape(spatial3d), soft_data, out,
        superpixels=sp, class_index=class_index, slice_index=slice_index,
    )  # fmt: skip
    tell(f"wrote {out} (class {c}, slice {z})")


@app.command("demo-study")
@exits_on_bad_input
def demo_study(
    out: Annotated[Path, typer.Option("--out", help="folder to write an nnU-Net raw dataset into")],
    synthetic: Annotated[bool, typer.Option("--synthetic", help="the synthetic 48x240x240 3-channel 11-class phantom instead of MNI152")] = False,
) -> None:
    """Write a demo study: the MNI152 brain (T1, 4 tissue classes) as an nnU-Net raw dataset."""
    from .engine.demo_data import mni152_study, synthetic_study, write_dataset_json, write_study

    study = synthetic_study() if synthetic else mni152_study()
    case_id = "synthetic_001" if synthetic else "mni152_001"
    channels = ["T1", "T1_IR", "FLAIR"] if synthetic else ["T1"]
    images, label = write_study(study, out, case_id)
    write_dataset_json(study, out, num_training=1, channel_names=channels)
    tell(f"wrote {out}: {', '.join(p.name for p in images)}, {label.name} (K = {study.num_classes})")


def main() -> None:  # pragma: no cover - console entry for `python -m softlabel.worker.cli`
    app(prog_name="softlabel")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
