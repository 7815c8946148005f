"""MONAI U-Nets for 2D slices and 3D volumes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def build_unet(
    *, spatial_dims: int, in_channels: int, num_classes: int, channels: Sequence[int] = (16, 32, 64, 128), num_res_units: int = 2
) -> torch.nn.Module:
    """A MONAI ``UNet`` with stride-2 downsampling between levels and instance norm.

    Input (B, in_channels, H, W[, D]) with every spatial size a multiple of
    :func:`size_divisor`; output (B, num_classes, H, W[, D]) logits.
    """
    from monai.networks.nets import UNet

    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims}")
    if len(channels) < 2:
        raise ValueError(f"channels: expected at least two levels, got {tuple(channels)}")
    return UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=num_classes,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
        num_res_units=num_res_units,
        norm="INSTANCE",
    )


def size_divisor(channels: Sequence[int]) -> int:
    """Spatial sizes must be multiples of this: 2 ** (levels - 1)."""
    return int(math.pow(2, len(channels) - 1))
