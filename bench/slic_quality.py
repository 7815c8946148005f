"""Quality of native SLIC against scikit-image's SLIC at equal ``n_segments``.

Volumes: the nilearn MNI152 brain (197x233x189, 1 mm, 4 classes) and the synthetic
48x240x240 3-channel 11-class phantom (3.0 x 0.96 x 0.96 mm), from ``worker.engine.demo_data``.
Each image is normalised per channel (0.5/99.5 percentile clip to [0, 1],
``worker.engine.intensity``) and both SLICs see the same array, the same spacing and no mask:
scikit-image with ``channel_axis=-1, convert2lab=False, start_label=0``, ours with
``backend="cpu"``.

Metrics (``worker.engine.superpixels.native_slic.quality``): boundary recall with a 1-voxel Chebyshev
tolerance, and Neubert & Protzel's undersegmentation error. The target: native boundary
recall >= 0.95 x scikit-image's and native undersegmentation error <= 1.05 x scikit-image's.

    python bench/slic_quality.py [--volumes mni152,syn11] [--sweep]

Prints one JSON line per run, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from softlabel.worker.engine.demo_data import mni152_study, synthetic_study
from softlabel.worker.engine.intensity import rescale_intensities
from softlabel.worker.engine.superpixels.native_slic import native_slic
from softlabel.worker.engine.superpixels.native_slic.quality import boundary_recall, undersegmentation_error

DEFAULT = (2000, 0.1)  # n_segments, compactness
SWEEP = [(500, 0.1), (1000, 0.1), (2000, 0.1), (3500, 0.1), (2000, 0.03), (2000, 0.3)]
VOLUMES = {"mni152": mni152_study, "syn11": lambda: synthetic_study(classes=11)}


def skimage_slic(image, spacing, n_segments, compactness):
    from skimage.segmentation import slic

    return slic(image, n_segments=n_segments, compactness=compactness, spacing=np.asarray(spacing),
                channel_axis=-1, convert2lab=False, start_label=0)


def ours(image, spacing, n_segments, compactness):
    return native_slic(image, n_segments=n_segments, compactness=compactness, spacing=spacing)


def describe(superpixels: np.ndarray, truth: np.ndarray, seconds: float) -> dict:
    sizes = np.bincount(superpixels.ravel())
    sizes = sizes[sizes > 0]
    return {"segments": int(len(sizes)), "boundary_recall": boundary_recall(superpixels, truth),
            "underseg_error": undersegmentation_error(superpixels, truth), "seconds": seconds,
            "over_3x_mean_pct": 100 * float((sizes > 3 * sizes.mean()).mean())}


def measure(volume: str, image, truth, spacing, n_segments, compactness) -> dict:
    row = {"volume": volume, "n_segments": n_segments, "compactness": compactness}
    for name, run in (("skimage", skimage_slic), ("native", ours)):
        start = time.perf_counter()
        superpixels = run(image, spacing, n_segments, compactness)
        row[name] = describe(superpixels, truth, time.perf_counter() - start)
    row["br_ratio"] = row["native"]["boundary_recall"] / row["skimage"]["boundary_recall"]
    row["ue_ratio"] = row["native"]["underseg_error"] / row["skimage"]["underseg_error"]
    row["within_5pct"] = row["br_ratio"] >= 0.95 and row["ue_ratio"] <= 1.05
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| volume | n_segments | compactness | segments sk / native | BR sk | BR native | BR ratio "
             "| UE sk | UE native | UE ratio | within 5% | > 3x mean % sk / native |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sk, nat = r["skimage"], r["native"]
        lines.append(f"| {r['volume']} | {r['n_segments']} | {r['compactness']} | {sk['segments']} / {nat['segments']} "
                     f"| {sk['boundary_recall']:.4f} | {nat['boundary_recall']:.4f} | {r['br_ratio']:.3f} "
                     f"| {sk['underseg_error']:.4f} | {nat['underseg_error']:.4f} | {r['ue_ratio']:.3f} "
                     f"| {'yes' if r['within_5pct'] else 'NO'} "
                     f"| {sk['over_3x_mean_pct']:.2f} / {nat['over_3x_mean_pct']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", default="mni152,syn11", help="comma-separated: mni152, syn11")
    parser.add_argument("--sweep", action="store_true", help=f"run {SWEEP} instead of {DEFAULT} only")
    args = parser.parse_args()
    ours(np.zeros((8, 8, 8, 1), np.float32), (1.0, 1.0, 1.0), 8, 0.1)  # load the compiled kernels
    rows = []
    for volume in args.volumes.split(","):
        study = VOLUMES[volume]()
        spacing = tuple(float(s) for s in np.abs(np.diag(study.affine))[:3])
        image = rescale_intensities(study.image)
        for n_segments, compactness in (SWEEP if args.sweep else [DEFAULT]):
            row = measure(volume, image, study.label, spacing, n_segments, compactness)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(markdown(rows))


if __name__ == "__main__":
    main()
