"""NIfTI write cost of soft labels: nibabel's save against ours, and gzip level and codec.

Writes the 100-class soft labels of the synthetic 48x240x240 phantom as uint8 (276 MB raw)
and the 11-class ones, and reports medians over --repeats of:

* ``nib.save`` of the same image (C-ordered array, nibabel's writer);
* ``worker.nifti_io.save_nifti`` (Fortran-ordered array, one serialisation, one compress call);
* the compress step alone: zlib (Python's gzip) at levels 1 and 6, ISA-L's igzip at level 1,
  with the compressed size.

    python bench/nifti_io.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def soft_labels(classes: int) -> np.ndarray:
    """uint8 (48, 240, 240, K), Fortran-ordered, one-hot with a soft band like the engine's."""
    from worker.demo_data import synthetic_study
    from worker.nifti_io import quantize_soft_labels
    from worker.superpixel_soft import one_hot

    study = synthetic_study(classes=classes)
    soft = one_hot(study.label, num_classes=classes)
    band = np.random.default_rng(0).random(study.label.shape) < 0.2
    soft[band, 0] = np.float32(0.37)
    return quantize_soft_labels(soft, "uint8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from isal import igzip

    from worker.nifti_io import SOFT_UINT8_SLOPE, save_nifti

    for classes in (11, 100):
        stored = soft_labels(classes)
        img = nib.Nifti1Image(stored, np.eye(4))
        img.header.set_slope_inter(SOFT_UINT8_SLOPE, 0.0)
        c_ordered = nib.Nifti1Image(np.ascontiguousarray(stored), np.eye(4))
        c_ordered.header.set_slope_inter(SOFT_UINT8_SLOPE, 0.0)
        raw = stored.tobytes(order="F")
        with tempfile.TemporaryDirectory() as tmp:
            row = {
                "classes": classes, "raw_mb": len(raw) / 1e6,
                "nib_save_c_order_s": median_time(lambda: nib.save(c_ordered, Path(tmp) / "a.nii.gz"), args.repeats),
                "save_nifti_s": median_time(lambda: save_nifti(img, Path(tmp) / "b.nii.gz"), args.repeats),
            }  # fmt: skip
        for name, compress in (
            ("zlib1", lambda: gzip.compress(raw, compresslevel=1)),
            ("zlib6", lambda: gzip.compress(raw, compresslevel=6)),
            ("isal1", lambda: igzip.compress(raw, compresslevel=1)),
        ):
            row[f"{name}_s"] = median_time(compress, args.repeats)
            row[f"{name}_mb"] = len(compress()) / 1e6
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
