"""Inference pads an image smaller than its window with the image's lowest value, as training
patches are padded (it padded with 0, which a z-scored image never has at its background)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softlabel.trainer.inference import predict


class WindowMean(torch.nn.Module):
    """Logits (0, mean of the whole input window) at every voxel: the output sees the padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True).expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([torch.zeros_like(mean), mean], dim=1)


@pytest.mark.parametrize("shape", [(1, 5, 6), (1, 5, 6, 3)])
def test_padding_takes_the_image_minimum(shape: tuple[int, ...]) -> None:
    image = np.full(shape, -3.0, dtype=np.float32)  # a z-scored background
    patch = tuple(s + 4 for s in shape[1:])  # the window is larger than the image: padded
    probs = predict(WindowMean(), image, patch_size=patch, device=torch.device("cpu"))
    assert probs.shape == (2, *shape[1:])
    np.testing.assert_allclose(probs[1], 1 / (1 + np.exp(3.0)), rtol=1e-5)  # the mean over the padded window is -3
