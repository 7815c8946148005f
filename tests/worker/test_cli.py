"""The engine commands end to end: soften, soften-dataset (resumable) and preview."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from softlabel.worker.cli import app
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.io import nifti as nifti_io
from softlabel.worker.engine.pipeline import soften_arrays

runner = CliRunner()


def soften_args(study: dict, out: Path, *extra: str) -> list[str]:
    args = ["soften", "--label", str(study["label"]), "--out", str(out), "--classes", "4", "--n-segments", "20"]
    for image in study["images"]:
        args += ["--image", str(image)]
    return args + list(extra)


def test_soften_writes_what_the_engine_computes(tmp_path: Path, small_study: dict) -> None:
    out, sp = tmp_path / "soft.nii.gz", tmp_path / "sp.nii.gz"
    result = runner.invoke(app, soften_args(small_study, out, "--save-superpixels", str(sp), "--dtype", "float32"))
    assert result.exit_code == 0, result.output
    soft = nifti_io.read_soft_labels(out)
    assert soft.shape == (17, 19, 11, 4)
    assert nib.load(sp).get_data_dtype() == np.int32
    # Pin the softening step: the engine on the saved superpixels gives the same numbers.
    superpixels = np.asarray(nib.load(sp).dataobj)
    study = nifti_io.read_study(small_study["images"], small_study["label"], num_classes=4)
    expected = soften_arrays(None, study.label, config=SofteningConfig(), num_classes=4,
                             spacing_mm=study.spacing_mm, superpixels=superpixels, backend="cpu").soft  # fmt: skip
    np.testing.assert_array_equal(soft, expected)


def test_soften_reuses_given_superpixels_across_methods(tmp_path: Path, small_study: dict) -> None:
    sp = tmp_path / "sp.nii.gz"
    assert runner.invoke(app, soften_args(small_study, tmp_path / "a.nii.gz", "--save-superpixels", str(sp))).exit_code == 0
    result = runner.invoke(app, soften_args(small_study, tmp_path / "b.nii.gz", "--superpixels", str(sp), "--distance", "mm"))
    assert result.exit_code == 0, result.output
    stages_run = result.output.split("(cpu;")[1]
    assert "soften" in stages_run and "superpixels" not in stages_run and "rescale" not in stages_run


def test_bad_input_exits_1_with_one_line(tmp_path: Path, small_study: dict) -> None:
    result = runner.invoke(app, soften_args(small_study, tmp_path / "o.nii.gz", "--classes", "3"))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "case.nii.gz: label values: expected integers in [0, 3), got max 3" in lines[0]
    assert not (tmp_path / "o.nii.gz").exists()


def test_without_classes_k_comes_from_the_label_and_bad_labels_still_get_a_clear_error(tmp_path: Path, small_study: dict) -> None:
    args = [a for a in soften_args(small_study, tmp_path / "o.nii.gz") if a not in ("--classes", "4")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "used K = 4 from this label" in result.output
    assert nib.load(tmp_path / "o.nii.gz").shape[-1] == 4
    label = nib.load(small_study["label"])
    with_nan = np.asarray(label.dataobj).astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    nan_label = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(with_nan, label.affine), nan_label)
    args[args.index("--label") + 1] = str(nan_label)
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "nan.nii.gz: label values: expected integers, got NaN/Inf voxels" in result.output


def test_bad_option_exits_1(tmp_path: Path, small_study: dict) -> None:
    result = runner.invoke(app, soften_args(small_study, tmp_path / "o.nii.gz", "--eps", "2", "--method", "smoothing"))
    assert result.exit_code == 1 and "--eps" in result.output


def make_dataset(root: Path, study: dict, cases: int) -> Path:
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for i in range(cases):
        for ch, image in enumerate(study["images"]):
            shutil.copy(image, root / "imagesTr" / f"case{i}_{ch:04d}.nii.gz")
        shutil.copy(study["label"], root / "labelsTr" / f"case{i}.nii.gz")
    meta = {"channel_names": {"0": "T1", "1": "IR", "2": "FLAIR"}, "labels": {"bg": 0, "a": 1, "b": 2, "c": 3},
            "numTraining": cases, "file_ending": ".nii.gz"}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_soften_dataset_is_resumable(tmp_path: Path, small_study: dict) -> None:
    dataset = make_dataset(tmp_path / "Dataset001_Small", small_study, cases=3)
    out = tmp_path / "soft"
    args = ["soften-dataset", str(dataset), "--out", str(out), "--n-segments", "20"]
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in out.glob("case*.nii.gz")) == ["case0.nii.gz", "case1.nii.gz", "case2.nii.gz"]
    first = (out / "case1.nii.gz").stat().st_mtime_ns
    (out / "case2.nii.gz").unlink()
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "2 already done" in result.output
    assert (out / "case2.nii.gz").exists() and (out / "case1.nii.gz").stat().st_mtime_ns == first
    other = runner.invoke(app, ["soften-dataset", str(dataset), "--out", str(out), "--n-segments", "30"])
    assert other.exit_code == 1 and "softening.json: params" in other.output


def test_preview_writes_a_png(tmp_path: Path, small_study: dict) -> None:
    soft, sp, png = tmp_path / "soft.nii.gz", tmp_path / "sp.nii.gz", tmp_path / "p.png"
    assert runner.invoke(app, soften_args(small_study, soft, "--save-superpixels", str(sp))).exit_code == 0
    args = ["preview", "--image", str(small_study["images"][0]), "--image", str(small_study["images"][1]),
            "--image", str(small_study["images"][2]), "--label", str(small_study["label"]), "--soft", str(soft),
            "--superpixels", str(sp), "--out", str(png), "--class", "2", "--slice", "4"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "class 2, slice 4" in result.output


def test_preview_of_stored_uint8_soft_labels_shows_what_the_float_ones_show(tmp_path: Path, small_study: dict) -> None:
    from softlabel.worker.engine.preview import render_preview

    study = nifti_io.read_study(small_study["images"], small_study["label"], num_classes=4)
    kwargs = dict(config=SofteningConfig(n_segments=20), num_classes=4, spacing_mm=study.spacing_mm, backend="cpu")
    as_float = soften_arrays(study.image, study.label, **kwargs)
    stored = soften_arrays(study.image, study.label, as_stored=True, **kwargs)
    assert as_float.soft.dtype == np.float32 and stored.soft.dtype == np.uint8
    shown = [render_preview(study.image, study.label, result.soft, tmp_path / f"{result.soft.dtype}.png",
                            superpixels=result.superpixels) for result in (as_float, stored)]  # fmt: skip
    assert shown[0] == shown[1]
    assert (tmp_path / "float32.png").read_bytes() == (tmp_path / "uint8.png").read_bytes()


def test_launcher_knows_the_engine_commands() -> None:
    """softlabel.cli.launcher picks engine commands by name before importing NumPy: the same names."""
    from softlabel.cli.launcher import ENGINE_COMMANDS
    from softlabel.worker import cli as worker_cli

    names = {info.name or info.callback.__name__.replace("_", "-") for info in worker_cli.app.registered_commands}
    assert ENGINE_COMMANDS == names


def test_console_script_exit_status_and_output(tmp_path: Path, small_study: dict) -> None:
    """The installed ``softlabel`` entry (cli.launcher) ends engine commands with os._exit:
    outputs are complete and flushed, and the exit status is the command's."""
    import subprocess
    import sys

    entry = [sys.executable, "-c", "from softlabel.cli.launcher import main; main()"]
    out = tmp_path / "soft.nii.gz"
    ok = subprocess.run(entry + soften_args(small_study, out), capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"wrote {out}" in ok.stderr
    assert nifti_io.read_soft_labels(out).shape == (17, 19, 11, 4)
    bad = subprocess.run(entry + soften_args(small_study, tmp_path / "o.nii.gz", "--classes", "3"), capture_output=True, text=True)
    assert bad.returncode == 1 and "expected integers in [0, 3), got max 3" in bad.stderr
    usage = subprocess.run(entry + ["soften", "--no-such-option"], capture_output=True, text=True)
    assert usage.returncode == 2 and "No such option" in usage.stderr


def test_a_bad_option_value_names_the_option(tmp_path: Path, small_study: dict) -> None:
    result = runner.invoke(app, soften_args(small_study, tmp_path / "o.nii.gz", "--n-segments", "0"))
    assert result.exit_code == 1
    assert "error: --n-segments: Input should be greater than or equal to 1" in result.output
    assert not (tmp_path / "o.nii.gz").exists()
