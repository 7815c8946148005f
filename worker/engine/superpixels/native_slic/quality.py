"""Superpixel quality against a ground-truth label map.

- Boundary recall (Achanta et al., TPAMI 2012, sec. 5.1, with a 1-voxel
  tolerance): the fraction of ground-truth boundary voxels that lie within
  1 voxel (Chebyshev: the 3x3[x3] neighbourhood) of a superpixel boundary
  voxel. A boundary voxel of a label map is one with a face neighbour of
  another label; the image edge is not a boundary.
- Undersegmentation error, the threshold-free form of Neubert & Protzel,
  "Superpixel Benchmark and Comparison", Forum Bildverarbeitung 2012:
  ``UE = (1/N) sum_G sum_{S: S∩G≠∅} min(|S∩G|, |S∖G|)``, over the N voxels
  with a superpixel label (``>= 0``).

Both take NumPy label maps of the same spatial shape; ``superpixels < 0``
marks voxels outside a mask, which are ignored.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...boundaries import label_boundaries


def boundary_recall(superpixels: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of ``truth`` boundary voxels within 1 voxel of a superpixel boundary."""
    truth_edge = label_boundaries(truth)
    if superpixels.min() < 0:
        truth_edge &= superpixels >= 0
    near = ndimage.binary_dilation(label_boundaries(superpixels),
                                   structure=np.ones((3,) * superpixels.ndim, dtype=bool))
    n_edge = int(truth_edge.sum())
    return float((truth_edge & near).sum() / n_edge) if n_edge else 1.0


def undersegmentation_error(superpixels: np.ndarray, truth: np.ndarray) -> float:
    """Neubert & Protzel's undersegmentation error (0 is perfect)."""
    valid = superpixels >= 0
    sp = superpixels[valid].astype(np.int64)
    gt = np.unique(truth[valid], return_inverse=True)[1].reshape(-1).astype(np.int64)
    n_gt = int(gt.max()) + 1
    overlap = np.bincount(sp * n_gt + gt, minlength=(int(sp.max()) + 1) * n_gt)
    overlap = overlap.reshape(-1, n_gt)
    size = overlap.sum(axis=1, keepdims=True)
    leak = np.minimum(overlap, size - overlap)
    return float(leak[overlap > 0].sum() / sp.size)
