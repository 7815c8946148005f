"""SLIC test cases and oracles shared by the native SLIC tests (CPU, CUDA source, GPU)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from softlabel.worker.engine.superpixels.native_slic import reference
from softlabel.worker.engine.superpixels.native_slic.grid import SlicGrid, make_grid


def phantom(shape: tuple[int, ...], channels: int, seed: int) -> np.ndarray:
    """float32 (shape, C) in [0, 1]: smooth random blobs plus noise."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random(shape + (channels,)), sigma=(2.0,) * len(shape) + (0,))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return np.clip(smooth + 0.05 * rng.standard_normal(smooth.shape), 0, 1).astype(np.float32)


def blob_mask(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """bool (shape): a smooth random region with holes and several pieces."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 2.5) > 0.5


def midway_state(shape, channels, spacing, n_segments, use_mask, iterations=3):
    """Image, mask, grid, weight and the twin's centres/labels after a few rounds."""
    image = phantom(shape, channels, seed=11)
    mask = blob_mask(shape, seed=5) if use_mask else None
    grid = make_grid(shape, spacing, n_segments, mask)
    image3 = image.reshape(grid.shape + (channels,))
    mask3 = None if mask is None else mask.reshape(grid.shape)
    weight = np.float32((0.1 / grid.step_mm) ** 2)
    centres = grid.initial_centres(channels)
    labels = np.full(grid.shape, -1, dtype=np.int32)
    for _ in range(iterations):
        reference.assign(image3, mask3, centres, grid, weight, labels)
        centres = reference.update_centres(image3, labels, centres)
    return image3, mask3, grid, weight, centres, labels


def scrambled(centres, grid, seed):
    """Arbitrary centres (anywhere in the volume, any colour): every candidate can win."""
    rng = np.random.default_rng(seed)
    out = centres.copy()
    out[:, :3] = rng.uniform(-1, np.asarray(grid.shape), size=(len(out), 3))
    out[:, 3:] = rng.random((len(out), out.shape[1] - 3))
    return out.astype(np.float32)


def permuted_pairs(n_cases: int, seed: int):
    """Cases where two centres tie in exact arithmetic and float32 rounding decides.

    Each case is a (1, 1, 2) volume with one centre per voxel column; for voxel 0
    the centres' offsets (and colour differences) are the same three numbers in
    a rotated order, so only the order of the additions tells them apart.
    Yields ``(image, centres)``.
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        a = rng.uniform(0.05, 0.95, size=3).astype(np.float32)
        image = rng.uniform(0.2, 0.8, size=(1, 1, 2, 3)).astype(np.float32)
        pixel = image[0, 0, 0]
        centres = np.empty((2, 6), dtype=np.float32)
        centres[0, :3], centres[1, :3] = -a, -np.roll(a, 1)  # voxel 0 sits at the origin
        t = rng.uniform(-0.3, 0.3, size=3).astype(np.float32)
        centres[0, 3:], centres[1, 3:] = pixel - t, pixel - np.roll(t, 1)
        yield image, centres


def float32_oracle(image, centres, grid, weight):
    """The documented distance, written out with float32 scalars; argmin with ties to the lowest k."""
    out = np.empty(grid.shape, dtype=np.int32)
    f32 = np.float32
    for idx in np.ndindex(grid.shape):
        best, best_k = f32(np.inf), -1
        for k in range(len(centres)):
            d = [(f32(i) - centres[k, a]) * f32(grid.spacing_mm[a]) for a, i in enumerate(idx)]
            space = d[0] * d[0] + (d[1] * d[1] + d[2] * d[2])
            colour = f32(0)
            for c in range(image.shape[-1]):
                t = image[idx][c] - centres[k, 3 + c]
                colour = colour + t * t
            dist = colour + f32(weight) * space
            if dist < best:
                best, best_k = dist, k
        out[idx] = best_k
    return out


# Seeds at voxels 0 and 2 (the second past the image): both voxels have both centres as candidates.
TWO_CELLS = SlicGrid(shape=(1, 1, 2), spacing_mm=(1.0, 1.0, 1.0), step=(1, 1, 2), start=(0, 0, 0),
                     cell_centre=np.array([[[0, 1]]], dtype=np.int32), step_mm=1.0)
