"""Trainer benchmark (CPU): data loader time per step against model step time, and metric cost.

    python bench/trainer.py [--spacing-mm 2] [--n-2d 24] [--steps 30] [--threads N]

1. The 2D configuration of the small experiment (``docs/experiments.md``): MNI152 benchmark
   slices in memory, ``PatchSampler`` batches of 16 with soft labels (the KL path, which
   copies the most), against one Adam step of the U-Net with the kl+wce+dice loss. Target:
   loader time at most 10% of the step time.
2. SPEC section 3 metrics (3 classes) per 3D volume, perturbed annotation vs clean truth: the
   MNI152 brain's bounding box at 1 mm (149 x 185 x 157 of the 197 x 233 x 189 template), the
   same at 2 mm, and a 96^3 crop at 1 mm.

Medians after warm-up; everything runs in this process on the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script, bench/ comes first on sys.path and this file's name would shadow the
# trainer package: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def loader_vs_step(args) -> None:
    import torch

    from softlabel.trainer.benchmark_data import load_template, make_case
    from softlabel.trainer.datasets import Case, PatchSampler, default_patch_size
    from softlabel.trainer.losses import SegmentationLoss, class_weights
    from softlabel.trainer.models import build_unet

    template = load_template(args.spacing_mm)
    cases = []
    for k in range(args.n_2d):
        c = make_case(template, kind="2d", strength=0.5, crop_vox=(1, 1, 1), rng=np.random.default_rng(k))
        label = c.annotation[:, :, 0]
        image = c.image[None, :, :, 0]
        soft = np.moveaxis(np.eye(4, dtype=np.float32)[label], -1, 0)  # same shape and dtype as service soft labels
        cases.append(Case(f"c{k}", (image - image.mean()) / image.std(), label, soft, None, c.affine, (args.spacing_mm,) * 2))
    channels = (16, 32, 64, 128)
    patch = default_patch_size(cases, 2, 8)
    sampler = PatchSampler(cases, patch, with_soft=True)
    model = build_unet(spatial_dims=2, in_channels=1, num_classes=4, channels=channels, num_res_units=1)
    optim = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-5)
    loss_fn = SegmentationLoss("kl+wce+dice", class_weights=class_weights([c.label for c in cases], 4))
    rng = np.random.default_rng(0)
    batch = {}

    def load():
        image, label, soft = sampler.sample(16, rng)
        batch["x"], batch["y"], batch["q"] = torch.from_numpy(image), torch.from_numpy(label), torch.from_numpy(soft)

    def step():
        optim.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch["x"]), batch["y"], batch["q"])
        loss.backward()
        optim.step()

    load()
    t_load = median_time(load, args.steps)
    t_step = median_time(step, args.steps, warmup=3)
    print(f"2D config: {len(cases)} slices {patch} at {args.spacing_mm} mm, batch 16, U-Net {channels}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  loader  {1e3 * t_load:8.2f} ms/step (median of {args.steps})")
    print(f"  model   {1e3 * t_step:8.2f} ms/step (forward + backward + Adam, kl+wce+dice)")
    print(f"  loader / model = {t_load / t_step:.1%} (target <= 10%)")


def metric_cost(args) -> None:
    from softlabel.trainer.benchmark_data import load_template, make_case
    from softlabel.trainer.metrics import segmentation_metrics

    for spacing, crop, label in ((1.0, None, "brain box 1 mm"), (2.0, None, "brain box 2 mm"), (1.0, (96, 96, 96), "96^3 crop 1 mm")):
        template = load_template(spacing)
        case = make_case(template, kind="3d", strength=0.5, crop_vox=crop or template.brain.shape, rng=np.random.default_rng(0))
        pred, truth = case.annotation, case.clean
        t = median_time(lambda: segmentation_metrics(pred, truth, spacing_mm=(spacing,) * 3, num_classes=4), args.repeats, warmup=1)
        print(f"metrics {label:16s} {str(truth.shape):16s} {t:7.3f} s per volume (3 classes, median of {args.repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacing-mm", type=float, default=2.0)
    parser.add_argument("--n-2d", type=int, default=24)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, 1-minute load average {load:.2f} at start (figures are only comparable on an idle machine)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    loader_vs_step(args)
    metric_cost(args)


if __name__ == "__main__":
    main()
