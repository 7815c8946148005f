"""NIfTI cost: reading a study and writing soft labels, nibabel against ours, gzip codecs.

Reads the 11-class synthetic 48x240x240 study (3 channels and a label, gzipped) with
nibabel's streamed zlib (``np.asarray(img.dataobj)`` per file) and with
``worker.engine.io.nifti.read_study`` (ISA-L decompression, plus every validation check). Writes
the 100-class soft labels of the synthetic 48x240x240 phantom as uint8 (276 MB raw)
and the 11-class ones, and reports medians over --repeats of:

* ``nib.save`` of the same image (C-ordered array, nibabel's writer);
* ``worker.engine.io.nifti.save_nifti`` (Fortran-ordered array streamed into the gzip writer);
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
    from softlabel.worker.engine.demo_data import synthetic_study
    from softlabel.worker.engine.io.nifti import quantize_soft_labels
    from softlabel.worker.engine.softening.superpixel_soft import one_hot

    study = synthetic_study(classes=classes)
    soft = one_hot(study.label, num_classes=classes)
    band = np.random.default_rng(0).random(study.label.shape) < 0.2
    soft[band, 0] = np.float32(0.37)
    return quantize_soft_labels(soft, "uint8")


def read_costs(repeats: int) -> dict:
    """Seconds to read the 11-class study: nibabel's reader against ``read_study``."""
    from softlabel.worker.engine.demo_data import synthetic_study, write_study
    from softlabel.worker.engine.io.nifti import read_study

    with tempfile.TemporaryDirectory() as tmp:
        images, label = write_study(synthetic_study(classes=11), Path(tmp), "case")

        def nibabel_read() -> None:
            for path in images:
                np.asarray(nib.load(path).dataobj, dtype=np.float32)
            np.asarray(nib.load(label).dataobj)

        return {
            "study": "11-class, 3 channels", "gz_mb": sum(p.stat().st_size for p in [*images, label]) / 1e6,
            "nibabel_read_s": median_time(nibabel_read, repeats),
            "read_study_s": median_time(lambda: read_study(images, label, num_classes=11), repeats),
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from isal import igzip

    from softlabel.worker.engine.io.nifti import SOFT_UINT8_SLOPE, save_nifti

    print(json.dumps(read_costs(args.repeats)), flush=True)
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
