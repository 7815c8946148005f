"""Soft targets in nnU-Net's data augmentation (batchgeneratorsv2 transforms).

nnU-Net's data loader crops image and segmentation with the same box and hands them to the
transforms as ``image`` (C, *patch) and ``segmentation`` (1, *patch). The soft-label dataset
(``trainer.SoftTargetDataset``) appends the K soft channels to the image channels, so they are
cropped and padded with the image (zeros outside the case). Then:

- :class:`SplitSoftTargets`, first, moves them to ``regression_target``: batchgeneratorsv2's
  spatial transforms (``SpatialTransform``, ``MirrorTransform``, the pseudo-2D conversions)
  resample a regression target exactly as the image, with linear interpolation, and its
  intensity transforms touch only ``image``;
- :class:`PackSoftTargets`, last, average-pools the soft targets to every deep-supervision
  scale and packs them behind the hard label of that scale: ``segmentation`` becomes a list of
  float32 (1 + K, *patch_s) tensors, channel 0 the hard label, which nnU-Net's loader collates
  like any segmentation. The trainer splits them again before the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms


class SplitSoftTargets(BasicTransform):
    """Move the last ``num_classes`` image channels to ``regression_target``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def apply(self, data_dict: dict, **params) -> dict:
        image = data_dict["image"]
        if image.shape[0] <= self.num_classes:
            raise ValueError(f"image: expected image channels followed by {self.num_classes} soft channels, got {image.shape[0]} channels")
        data_dict["regression_target"] = image[-self.num_classes :].clone()
        data_dict["image"] = image[: -self.num_classes]
        return data_dict


def pooling_kernel(scale: Sequence[float]) -> tuple[int, ...]:
    """The integer average-pooling kernel of a deep-supervision scale, e.g. (0.5, 0.5, 0.25) -> (2, 2, 4)."""
    kernel = tuple(int(round(1.0 / s)) for s in scale)
    if any(k < 1 or abs(k * s - 1.0) > 1e-6 for k, s in zip(kernel, scale)):
        raise ValueError(f"deep supervision scale: expected 1/integer per axis, got {tuple(scale)}")
    return kernel


def average_pool(soft: torch.Tensor, scale: Sequence[float]) -> torch.Tensor:
    """(K, *shape) -> (K, *shape / kernel): the mean of each kernel-sized block of voxels."""
    kernel = pooling_kernel(scale)
    if all(k == 1 for k in kernel):
        return soft
    if any(n % k for n, k in zip(soft.shape[1:], kernel)):
        raise ValueError(f"soft targets: expected a patch divisible by the pooling kernel {kernel}, got {tuple(soft.shape[1:])}")
    pool = F.avg_pool3d if len(kernel) == 3 else F.avg_pool2d
    return pool(soft[None], kernel_size=kernel, stride=kernel)[0]


class PackSoftTargets(BasicTransform):
    """Pool the soft targets to each deep-supervision scale and pack them behind the hard label."""

    def __init__(self, ds_scales: Sequence[Sequence[float]] | None) -> None:
        super().__init__()
        self.ds_scales = ds_scales

    def apply(self, data_dict: dict, **params) -> dict:
        soft = data_dict.pop("regression_target", None)
        if soft is None:
            raise ValueError("soft targets: expected them in 'regression_target' after augmentation, got None "
                             "(a transform of this trainer does not carry regression targets)")
        seg = data_dict["segmentation"]
        if self.ds_scales is None:
            data_dict["segmentation"] = torch.cat((seg.float(), soft.float()))
            return data_dict
        if not isinstance(seg, list) or len(seg) != len(self.ds_scales):
            raise ValueError(f"segmentation: expected one tensor per deep-supervision scale ({len(self.ds_scales)}), got {type(seg).__name__}")
        data_dict["segmentation"] = [
            torch.cat((s.float(), average_pool(soft.float(), scale))) for s, scale in zip(seg, self.ds_scales)
        ]
        return data_dict


def with_soft_targets(transforms: ComposeTransforms, num_classes: int, ds_scales) -> ComposeTransforms:
    """nnU-Net's transform pipeline with the soft targets split off first and packed last."""
    return ComposeTransforms([SplitSoftTargets(num_classes), *transforms.transforms, PackSoftTargets(ds_scales)])


def unpack_targets(target: torch.Tensor | list[torch.Tensor]):
    """(hard, soft) from packed targets: hard (B, 1, ...) int16 labels, soft (B, K, ...) float32,
    per deep-supervision scale when ``target`` is a list."""
    if isinstance(target, list):
        pairs = [unpack_targets(t) for t in target]
        return [h for h, _ in pairs], [s for _, s in pairs]
    return target[:, :1].to(torch.int16), target[:, 1:]
