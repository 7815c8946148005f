"""Engine benchmark: per-stage wall time and peak RSS, beside the naive method, same run.

Cases: the synthetic 48x240x240 3-channel 11-class phantom (the paper's MRI size), a
synthetic 100-class phantom of the same size (atlas-like), and the MNI152 brain (4 classes).

Two modes, each case in a fresh process so peak RSS is the case's own:

* ``stages`` (default): one process per case runs ``worker.engine.pipeline.soften_files`` and times
  read, normalise (on the CPU part of read), superpixels, soften and write (medians over --repeats); then, on the same
  superpixels, times the softening step to the stored uint8 soft labels, restricted (ours,
  straight to uint8) vs naive (one full-volume SciPy EDT per class into a float32 array, then
  quantised), and checks the outputs are identical.
* ``end-to-end``: times whole ``softlabel soften`` runs (read, superpixels, softening,
  write), one process per run, against the naive pipeline (scikit-image SLIC plus one
  full-volume SciPy EDT per class) in its own process per run, alternating, medians over
  --repeats. The naive pipeline runs twice: on the standard libraries' reading and writing
  (nibabel, NumPy; the issue's baseline) and on ours (only SLIC and the transforms naive);
  the two must write the same voxels.

    python bench/engine.py [--mode stages|end-to-end] [--cases syn11,syn100,mni152] [--repeats 3]
                           [--slic skimage|native] [--backend cpu|gpu|auto]

``--backend`` picks where our path runs (the naive method is the CPU reference, always);
``bench/gpu_bench.py`` is the GPU benchmark with its own targets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = ("syn11", "syn100", "mni152")
NAIVE_IO = ("standard", "ours")  # the naive pipeline's reading and writing: see run_naive_pipeline
DATA_DIR = Path(__file__).resolve().parent / "out" / "data"


def prepare(case: str, data_dir: Path = DATA_DIR) -> dict:
    """Write the case's study as NIfTI once (cached under ``data_dir/case``); returns its facts
    with absolute paths. ``case.json`` holds the paths relative to the case's folder, so a
    prepared folder can be carried to another machine (bench/gpu_prepare.sh)."""
    folder = Path(data_dir) / case
    meta_path = folder / "case.json"
    if not meta_path.exists():
        from softlabel.worker.engine.demo_data import mni152_study, synthetic_study, write_study

        study = {"syn11": lambda: synthetic_study(classes=11), "syn100": lambda: synthetic_study(classes=100),
                 "mni152": mni152_study}[case]()  # fmt: skip
        images, label = write_study(study, folder, case)
        meta = {"images": [str(p.relative_to(folder)) for p in images], "label": str(label.relative_to(folder)),
                "num_classes": study.num_classes, "shape": list(study.label.shape), "channels": int(study.image.shape[-1])}  # fmt: skip
        meta_path.write_text(json.dumps(meta))
    meta = json.loads(meta_path.read_text())
    return {**meta, "images": [str(folder / p) for p in meta["images"]], "label": str(folder / meta["label"])}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stages(case: str, repeats: int, slic: str, backend: str) -> dict:
    """Child process body of the ``stages`` mode."""
    from softlabel.worker.engine.backend import to_host
    from softlabel.worker.engine.config import SofteningConfig
    from softlabel.worker.engine.io.nifti import quantize_soft_labels, read_study
    from softlabel.worker.engine.pipeline import soften_files
    from softlabel.worker.engine.softening.superpixel_soft import superpixel_soft_labels

    meta = prepare(case)
    config = SofteningConfig(slic=slic)
    per_stage: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            result = soften_files(meta["images"], meta["label"], Path(tmp) / "soft.nii.gz", config=config,
                                  num_classes=meta["num_classes"], backend=backend)  # fmt: skip
            for stage, seconds in result.timings_s.items():
                per_stage.setdefault(stage, []).append(seconds)
    pipeline_rss = peak_rss_mb()
    study = read_study(meta["images"], meta["label"], num_classes=meta["num_classes"])
    superpixels = to_host(result.superpixels)
    timings = {"restricted": [], "naive": []}
    outputs = {}
    k = meta["num_classes"]
    for _ in range(repeats):  # both give the stored uint8 soft labels, as the pipeline writes them
        start = time.perf_counter()
        outputs["restricted"] = superpixel_soft_labels(study.label, superpixels, num_classes=k, dtype="uint8")
        timings["restricted"].append(time.perf_counter() - start)
        start = time.perf_counter()
        naive = superpixel_soft_labels(study.label, superpixels, num_classes=k, restrict=False)
        outputs["naive"] = quantize_soft_labels(naive, "uint8")
        timings["naive"].append(time.perf_counter() - start)
        del naive
    return {
        "case": case, "shape": meta["shape"], "channels": meta["channels"], "classes": meta["num_classes"],
        "superpixels": int(superpixels.max()) + 1, "slic": slic, "backend": result.backend,
        "stages_s": {k: statistics.median(v) for k, v in per_stage.items()},
        "soften_restricted_s": statistics.median(timings["restricted"]),
        "soften_naive_s": statistics.median(timings["naive"]),
        "identical": bool(np.array_equal(outputs["restricted"], outputs["naive"])),
        "pipeline_peak_rss_mb": pipeline_rss,
    }  # fmt: skip


def run_naive_pipeline(case: str, out: str, io: str) -> None:
    """The naive method end to end: read, scikit-image SLIC, one full-volume SciPy EDT per class
    (the array path, classes in a thread pool), uint8 quantisation, write.

    io="standard" is the method as the standard libraries give it, the baseline the issue
    measured: nibabel reads and writes, NumPy normalises (``np.percentile``, clip) and makes the
    one-hot start and the uint8 labels. io="ours" swaps in our reading (ISA-L, checks), our
    normalisation, one-hot and quantisation kernels and our streamed writer, so that only SLIC
    and the distance transforms stay naive.
    """
    from softlabel.worker.engine.config import SofteningConfig
    from softlabel.worker.engine.intensity import rescale_intensities, rescale_intensities_by_arrays
    from softlabel.worker.engine.softening.superpixel_soft import one_hot, one_hot_by_arrays, soften_by_arrays
    from softlabel.worker.engine.superpixels.compute import compute_superpixels

    meta = prepare(case)
    config = SofteningConfig(slic="skimage")
    k = meta["num_classes"]
    if io == "standard":
        import nibabel as nib

        images = [nib.load(path) for path in meta["images"]]
        image = np.stack([np.asarray(img.dataobj, dtype=np.float32) for img in images], axis=-1)
        label = np.asarray(nib.load(meta["label"]).dataobj)
        affine, spacing = images[0].affine, tuple(float(z) for z in images[0].header.get_zooms()[:3])
    else:
        from softlabel.worker.engine.io.nifti import read_study

        study = read_study(meta["images"], meta["label"], num_classes=k)
        image, label, affine, spacing = study.image, study.label, study.affine, study.spacing_mm
    normalised = rescale_intensities_by_arrays(image) if io == "standard" else rescale_intensities(image)
    superpixels = compute_superpixels(normalised, n_segments=config.n_segments,
                                      compactness=config.compactness, spacing=spacing, slic="skimage")  # fmt: skip
    soft = one_hot_by_arrays(label, num_classes=k) if io == "standard" else one_hot(label, num_classes=k)
    soften_by_arrays(soft, label, superpixels, num_classes=k, spacing=spacing, restrict=False, threads=None)
    if io == "standard":
        stored = nib.Nifti1Image(np.rint(np.clip(soft, 0, 1) * 255).astype(np.uint8), affine)
        stored.header.set_data_dtype(np.uint8)
        stored.header.set_slope_inter(1 / 255, 0.0)
        nib.save(stored, out)
    else:
        from softlabel.worker.engine.io.nifti import quantize_soft_labels, write_soft_labels

        write_soft_labels(out, quantize_soft_labels(soft, config.dtype), affine=affine)


def timed_process(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def run_end_to_end(case: str, repeats: int, slic: str, backend: str) -> dict:
    """Ours against both naive pipelines, one process per run, alternating; medians over repeats."""
    import nibabel as nib

    meta = prepare(case)
    softlabel = str(Path(sys.executable).with_name("softlabel"))
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"ours": [softlabel, "soften", "--label", meta["label"], "--classes", str(meta["num_classes"]),
                             "--out", f"{tmp}/ours.nii.gz", "--slic", slic, "--backend", backend]}  # fmt: skip
        for image in meta["images"]:
            commands["ours"] += ["--image", image]
        for io in NAIVE_IO:
            commands[f"naive_{io}_io"] = [sys.executable, __file__, "--naive-run", case, "--naive-io", io,
                                          "--out", f"{tmp}/naive_{io}.nii.gz"]  # fmt: skip
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(repeats):
            for name, command in commands.items():
                runs[name].append(timed_process(command))
        naive_outputs = [np.asarray(nib.load(f"{tmp}/naive_{io}.nii.gz").dataobj.get_unscaled()) for io in NAIVE_IO]
    summary = {"case": case, "classes": meta["num_classes"], "slic": slic, "backend": backend,
               "naive_outputs_identical": bool(np.array_equal(*naive_outputs))}  # fmt: skip
    for name, values in runs.items():
        summary[f"{name}_s"] = statistics.median(v[0] for v in values)
        summary[f"{name}_runs_s"] = [round(v[0], 2) for v in values]
        summary[f"{name}_peak_rss_mb"] = max(v[1] for v in values)
    for io in NAIVE_IO:
        summary[f"speedup_vs_naive_{io}_io"] = summary[f"naive_{io}_io_s"] / summary["ours_s"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("stages", "end-to-end"), default="stages")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slic", choices=("skimage", "native"), default="native")
    parser.add_argument("--backend", choices=("cpu", "gpu", "auto"), default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--naive-run", help=argparse.SUPPRESS)
    parser.add_argument("--naive-io", choices=NAIVE_IO, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_run:
        run_naive_pipeline(args.naive_run, args.out, args.naive_io)
        return
    if args.child:
        print(json.dumps(run_stages(args.child, args.repeats, args.slic, args.backend)))
        return
    for case in args.cases.split(","):
        prepare(case)
        if args.mode == "stages":
            cmd = [sys.executable, __file__, "--child", case, "--repeats", str(args.repeats), "--slic", args.slic,
                   "--backend", args.backend]  # fmt: skip
            result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            result["soften_speedup"] = result["soften_naive_s"] / result["soften_restricted_s"]
        else:
            result = run_end_to_end(case, args.repeats, args.slic, args.backend)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
