"""Native SLIC superpixels: one algorithm, three implementations.

- :mod:`.reference`: vectorised NumPy/SciPy twin that pins the behaviour;
- :mod:`.cpu` and :mod:`.connectivity`: Cython and C with OpenMP, bit-identical
  to the twin;
- :mod:`.gpu`: CUDA kernels through CuPy (same assignment as the twin given
  the same centres).

See ``docs/superpixels.md`` for the algorithm and its measured quality.
"""

from .driver import native_slic

__all__ = ["native_slic"]
