"""The CUDA kernels' source, checked without a GPU.

1. ``nvcc -ptx`` compiles it for sm_90 (skipped when nvcc is absent), with no
   fused multiply-add in the float32 distance.
2. ``g++`` compiles the same source under a small shim (``__global__`` as a
   plain function, ``threadIdx``/``blockIdx`` as globals, sequential
   ``atomicAdd``) and the test runs every thread of a launch one after the
   other. The kernels use no shared memory, barriers or warp functions, so a
   sequential run computes what the device computes, up to the order of the
   float64 atomics. This covers the index arithmetic, the candidate loop, the
   tie rule, the union-find of the connectivity pass and the argument lists
   of :mod:`worker.engine.superpixels.native_slic.cuda_kernels` against the twin. It does not
   cover the CUDA compiler, the device's arithmetic, or races between
   threads (the union-find's atomicMin retries only matter there);
   ``test_native_slic_gpu.py`` does, on a GPU.
3. ``native_slic(..., backend="gpu")`` runs end to end on a stand-in ``cupy``
   module: NumPy arrays of a subclass that claims to be ``cupy.ndarray``, and a
   ``RawModule`` that compiles the source with g++ and runs launches thread by
   thread. This exercises the Python side of the GPU path (gpu.py, the driver,
   grid.py and merge.py on "device" arrays) but not CuPy's own semantics.
"""

from __future__ import annotations

import ctypes
import functools
import re
import shutil
import subprocess
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

import softlabel.worker.engine.superpixels.native_slic as native_slic_package
from helpers.slic_cases import TWO_CELLS, blob_mask, float32_oracle, midway_state, permuted_pairs, phantom, scrambled
from softlabel.worker.engine.superpixels.native_slic import cuda_kernels, native_slic, reference
from softlabel.worker.engine.superpixels.native_slic.driver import run_kmeans
from softlabel.worker.engine.superpixels.native_slic.grid import make_grid
from softlabel.worker.engine.superpixels.native_slic.merge import components_from_roots, merge_small_components

SHIM = r"""
#include <cstring>
struct SoftlabelDim3 { unsigned int x, y, z; };
static SoftlabelDim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __restrict__ __restrict
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
static inline double atomicAdd(double* p, double v) { double old = *p; *p = old + v; return old; }
static inline int atomicMin(int* p, int v) { int old = *p; if (v < old) *p = v; return old; }
extern "C" void softlabel_emu_set(unsigned b, unsigned t, unsigned grid, unsigned block) {
    blockIdx.x = b; threadIdx.x = t; gridDim.x = grid; blockDim.x = block;
}
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """``build(n_channels)`` -> ctypes library of the kernels compiled by g++."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot emulate the CUDA kernels on the host")
    folder = tmp_path_factory.mktemp("cuda_emulation")
    built = {}

    def build(n_channels):
        """SLIC kernels for ``n_channels``; the CCL kernels for ``n_channels=None``."""
        if n_channels not in built:
            src = folder / f"slic_{n_channels}.cpp"
            lib = folder / f"slic_{n_channels}.so"
            code = cuda_kernels.CCL_SOURCE if n_channels is None else cuda_kernels.source(n_channels)
            src.write_text(SHIM + code)
            subprocess.run(["g++", "-O2", "-std=c++14", "-ffp-contract=off", "-shared", "-fPIC",
                            str(src), "-o", str(lib)], check=True, capture_output=True)
            built[n_channels] = ctypes.CDLL(str(lib))
        return built[n_channels]

    return build


def _c_arg(value):
    if isinstance(value, np.ndarray):
        assert value.flags.c_contiguous
        return ctypes.c_void_p(value.ctypes.data)
    return {np.int64: ctypes.c_longlong, np.int32: ctypes.c_int, np.float32: ctypes.c_float}[type(value)](value)


def launch(lib, name, n_items, args, threads=None):
    """Run every thread of a launch in turn (default: the geometry gpu.py uses)."""
    blocks, block = (cuda_kernels.blocks_for(n_items), cuda_kernels.THREADS_PER_BLOCK) if threads is None else threads
    kernel = getattr(lib, name)
    c_args = [_c_arg(a) for a in args]
    for b in range(blocks):
        for t in range(block):
            lib.softlabel_emu_set(b, t, blocks, block)
            kernel(*c_args)


def emulated_steps(lib, threads=None):
    """The step functions of worker.engine.superpixels.native_slic.gpu, on the emulated kernels."""

    def assign(image, mask, centres, grid, weight, labels):
        changed = np.zeros(1, dtype=np.int32)
        dummy = np.ones(1, dtype=bool)
        args = cuda_kernels.assign_args(image, dummy if mask is None else np.ascontiguousarray(mask), mask is not None,
                                        centres, grid, weight, labels, changed, grid.cell_centre)
        launch(lib, "softlabel_slic_assign", labels.size, args, threads)
        return bool(changed[0])

    def centre_sums(image, labels, n_centres):
        sums = np.zeros((n_centres, 4 + image.shape[-1]), dtype=np.float64)
        launch(lib, "softlabel_slic_accumulate", cuda_kernels.accumulate_tasks(labels.shape),
               cuda_kernels.accumulate_args(image, labels, sums), threads)
        return sums

    def update_centres(image, labels, centres):
        out = centres.copy()
        sums = centre_sums(image, labels, len(centres))
        launch(lib, "softlabel_slic_finalize", len(centres), cuda_kernels.finalize_args(sums, out), threads)
        return out

    return SimpleNamespace(assign=assign, centre_sums=centre_sums, update_centres=update_centres)


def emulated_components(lib, labels, threads=None):
    """softlabel.worker.engine.superpixels.native_slic.gpu.components, on the emulated kernels."""
    parent = np.empty(labels.size, dtype=np.int32)
    launch(lib, "softlabel_ccl_init", labels.size, cuda_kernels.ccl_init_args(labels, parent), threads)
    launch(lib, "softlabel_ccl_merge", labels.size, cuda_kernels.ccl_merge_args(labels, parent), threads)
    launch(lib, "softlabel_ccl_compress", labels.size, cuda_kernels.ccl_compress_args(parent), threads)
    return components_from_roots(parent, labels.shape)


STATES = [  # shape, channels, spacing, n_segments, mask
    ((17, 23, 11), 3, (1.0, 1.0, 1.0), 40, False),  # cells left over along axes 0 and 2
    ((11, 13, 7), 3, (1.0, 0.8, 2.5), 20, False),
    ((11, 13, 7), 1, (1.0, 0.8, 2.5), 20, True),
    ((23, 19), 2, (0.7, 1.3), 12, True),
    ((40, 3, 35), 1, (1.0, 1.0, 1.0), 15, False),
]


@pytest.mark.parametrize("scramble", [False, True], ids=["midway", "scrambled"])
@pytest.mark.parametrize("threads", [None, (2, 3)], ids=["gpu_geometry", "grid_stride"])
@pytest.mark.parametrize("shape, channels, spacing, n_segments, use_mask", STATES)
def test_emulated_kernels_match_the_twin(emulator, shape, channels, spacing, n_segments, use_mask, threads,
                                         scramble):
    image, mask, grid, weight, centres, labels = midway_state(shape, channels, spacing, n_segments, use_mask)
    if scramble:
        centres = scrambled(centres, grid, seed=n_segments)
    steps = emulated_steps(emulator(channels), threads)
    ref_labels, emu_labels = labels.copy(), labels.copy()
    ref_changed = reference.assign(image, mask, centres, grid, weight, ref_labels)
    emu_changed = steps.assign(image, mask, centres, grid, weight, emu_labels)
    np.testing.assert_array_equal(emu_labels, ref_labels)
    assert emu_changed == ref_changed
    sums = steps.centre_sums(image, ref_labels, len(centres))
    ref_sums = reference.centre_sums(image, ref_labels, len(centres))
    np.testing.assert_array_equal(sums[:, :4], ref_sums[:, :4])  # counts and coordinates: exact
    np.testing.assert_allclose(sums[:, 4:], ref_sums[:, 4:], rtol=1e-12)
    np.testing.assert_array_max_ulp(steps.update_centres(image, ref_labels, centres),
                                    reference.update_centres(image, ref_labels, centres), maxulp=1)


def test_emulated_tie_rule(emulator):
    image = np.full((1, 1, 5, 1), 0.5, dtype=np.float32)
    grid = make_grid((1, 5), (1.0, 1.0), 2)
    centres = np.array([[0, 0, 1, 0.5], [0, 0, 3, 0.5]], dtype=np.float32)
    labels = np.full((1, 1, 5), -1, dtype=np.int32)
    emulated_steps(emulator(1)).assign(image, None, centres, grid, np.float32(0.01), labels)
    assert labels.ravel().tolist() == [0, 0, 0, 1, 1]


def test_emulated_rounding_decides_ties_identically(emulator):
    steps = emulated_steps(emulator(3))
    for image, centres in permuted_pairs(300, seed=0):
        labels = np.full(TWO_CELLS.shape, -1, dtype=np.int32)
        steps.assign(image, None, centres, TWO_CELLS, np.float32(0.7), labels)
        np.testing.assert_array_equal(labels, float32_oracle(image, centres, TWO_CELLS, np.float32(0.7)))


def test_emulated_full_run_matches_the_twin(emulator):
    image, mask, grid, weight, *_ = midway_state((12, 14, 9), 2, (1.0, 0.9, 2.0), 25, True, iterations=0)
    steps = emulated_steps(emulator(2))
    expected = run_kmeans(reference, image, mask, grid, weight, 10)
    got = run_kmeans(steps, image, mask, grid, weight, 10)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("threads", [None, (2, 3)], ids=["gpu_geometry", "grid_stride"])
def test_emulated_components_match_the_reference(emulator, threads):
    lib = emulator(None)
    rng = np.random.default_rng(0)
    for _ in range(12):
        shape = tuple(int(s) for s in rng.integers(1, 12, size=3))
        labels = rng.integers(-1, int(rng.integers(1, 5)), size=shape).astype(np.int32)
        comp = emulated_components(lib, labels, threads)
        np.testing.assert_array_equal(comp, reference.components(labels))
        for min_size in (1, 3, 20):
            np.testing.assert_array_equal(merge_small_components(comp, min_size),
                                          reference.enforce_connectivity(labels, min_size))


def test_emulated_components_on_superpixels(emulator):
    image, mask, grid, weight, *_ = midway_state((17, 23, 11), 2, (1.0, 0.8, 2.5), 40, True, iterations=0)
    labels = run_kmeans(reference, image, mask, grid, weight, 10)
    np.testing.assert_array_equal(emulated_components(emulator(None), labels), reference.components(labels))


def test_nvcc_compiles_without_fused_multiply_add(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found: cannot compile the CUDA source")
    text = {}
    for name, code in (("slic", cuda_kernels.source(3)), ("ccl", cuda_kernels.CCL_SOURCE)):
        src, ptx = tmp_path / f"{name}.cu", tmp_path / f"{name}.ptx"
        src.write_text(code)
        subprocess.run([nvcc, "-ptx", "-arch=sm_90", str(src), "-o", str(ptx)], check=True, capture_output=True)
        text[name] = ptx.read_text()
    for name in cuda_kernels.KERNEL_NAMES:
        assert f".entry {name}(" in text["slic"]
    for name in cuda_kernels.CCL_KERNEL_NAMES:
        assert f".entry {name}(" in text["ccl"]
    assert not re.search(r"\bfma\.rn\.f32\b", text["slic"])


def make_fake_cupy(compile_source):
    """A stand-in ``cupy`` module: NumPy underneath, kernels run by the emulator."""
    fake = types.ModuleType("cupy")

    class ndarray(np.ndarray):
        def get(self):
            return np.asarray(self).copy()

    ndarray.__module__ = "cupy"

    def wrap(value):
        if isinstance(value, np.ndarray):
            return value.view(ndarray)
        if isinstance(value, tuple):
            return tuple(wrap(v) for v in value)
        return value

    def module_getattr(name):
        obj = getattr(np, name)
        if callable(obj) and not isinstance(obj, type):
            return functools.wraps(obj)(lambda *a, **k: wrap(obj(*a, **k)))
        return obj

    class RawModule:
        def __init__(self, code, options=()):
            self.lib = compile_source(code)

        def get_function(self, name):
            def kernel(grid, block, args):
                launch(self.lib, name, None, tuple(np.asarray(a) if isinstance(a, ndarray) else a for a in args),
                       threads=(grid[0], block[0]))
            return kernel

    fake.__getattr__ = module_getattr
    fake.ndarray = ndarray
    fake.RawModule = RawModule
    fake.RawKernel = object
    fake.memoize = lambda for_each_device=False: functools.lru_cache(maxsize=None)
    return fake


@pytest.fixture
def fake_cupy(monkeypatch, tmp_path):
    """Install the stand-in cupy; forget worker.engine.superpixels.native_slic.gpu afterwards."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot emulate the CUDA kernels on the host")
    built = {}

    def compile_source(code):
        if code not in built:
            src, lib = tmp_path / f"k{len(built)}.cpp", tmp_path / f"k{len(built)}.so"
            src.write_text(SHIM + code)
            subprocess.run(["g++", "-O2", "-std=c++14", "-ffp-contract=off", "-shared", "-fPIC", str(src), "-o", str(lib)],
                           check=True, capture_output=True)
            built[code] = ctypes.CDLL(str(lib))
        return built[code]

    fake = make_fake_cupy(compile_source)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    yield fake
    sys.modules.pop("softlabel.worker.engine.superpixels.native_slic.gpu", None)
    if hasattr(native_slic_package, "gpu"):
        delattr(native_slic_package, "gpu")


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("spatial, channels, spacing", [((17, 23, 11), 2, (1.0, 0.8, 2.5)), ((29, 31), 1, None)])
def test_gpu_path_end_to_end_on_emulated_cupy(fake_cupy, spatial, channels, spacing, use_mask):
    image = phantom(spatial, channels, seed=4)
    mask = blob_mask(spatial, seed=6) if use_mask else None
    kwargs = dict(n_segments=30, compactness=0.1, spacing=spacing)
    expected = native_slic(image, mask=mask, **kwargs)
    device_mask = None if mask is None else fake_cupy.asarray(mask)
    got = native_slic(fake_cupy.asarray(image), mask=device_mask, backend="gpu", **kwargs)
    assert isinstance(got, fake_cupy.ndarray) and got.dtype == np.int32
    np.testing.assert_array_equal(got.get(), expected)
    no_connectivity = native_slic(fake_cupy.asarray(image), mask=device_mask, backend="gpu",
                                  enforce_connectivity=False, **kwargs)
    np.testing.assert_array_equal(no_connectivity.get(), native_slic(image, mask=mask, enforce_connectivity=False,
                                                                     **kwargs))


def test_gpu_path_calls_the_checkpoint_as_the_cpu_path_does(fake_cupy):
    image = phantom((17, 23, 11), 2, seed=4)
    kwargs = dict(n_segments=30, compactness=0.1, spacing=(1.0, 0.8, 2.5), max_num_iter=4)
    on_cpu: list[int] = []
    on_gpu: list[int] = []
    native_slic(image, checkpoint=lambda: on_cpu.append(1), **kwargs)
    native_slic(fake_cupy.asarray(image), backend="gpu", checkpoint=lambda: on_gpu.append(1), **kwargs)
    assert len(on_gpu) == len(on_cpu) >= 4  # before each assignment, centre update and the connectivity pass

    class Abandon(Exception):
        pass

    def abandon() -> None:
        raise Abandon

    with pytest.raises(Abandon):
        native_slic(fake_cupy.asarray(image), backend="gpu", checkpoint=abandon, **kwargs)
