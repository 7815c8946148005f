"""Compile (or load) the engine's Numba kernels once: ``python -m worker.native_slic``.

The native SLIC kernels and the softener's CPU kernels, for the array types and layouts real
studies bring (``worker.cpu_kernels``). Numba compiles the CPU kernels on their first call and
caches them on disk (next to the sources, or in ``NUMBA_CACHE_DIR``; a user-wide cache when
the package folder is read-only). Run this after installing, e.g. in the Docker image build,
so that no study pays the compile; it prints how long it took.
"""

from __future__ import annotations

import time

from worker import cpu_kernels


def main() -> None:
    start = time.perf_counter()
    cpu_kernels.load()
    print(f"native SLIC and softening CPU kernels ready in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
