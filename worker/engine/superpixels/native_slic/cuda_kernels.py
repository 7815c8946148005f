"""CUDA C source of the GPU SLIC steps, and their argument lists.

Kept free of CuPy so that the CPU test-suite can compile the very same source
(with ``nvcc`` for syntax, and with ``g++`` under a thread-emulation shim to
run it against the twin). :mod:`.gpu` builds it with ``cupy.RawModule``.

``CUDA_SOURCE`` (via :func:`source`) holds the SLIC steps; ``CCL_SOURCE`` the
connected-component labelling used by the GPU connectivity pass.

Layouts are those of :mod:`.reference`; one thread per voxel (assignment) or
per run of ``SOFTLABEL_RUN`` voxels along the last axis (sums), grid-stride
loops, 64-bit voxel indices. The float32 distance uses ``__fsub_rn``,
``__fmul_rn`` and ``__fadd_rn`` in the twin's order, so no multiply-add is
fused and the assignment equals the twin's bit for bit given the same
centres. Centre sums use float64 ``atomicAdd`` (order not fixed): counts and
coordinate sums are integers, hence exact; colour sums may differ from the
twin's in the last float64 bits, so a centre colour may differ by one float32
ulp.
"""

from __future__ import annotations

import numpy as np

from .grid import SlicGrid

THREADS_PER_BLOCK = 256
MAX_BLOCKS = 4096  # grid-stride loops cover the rest
RUN = 32  # voxels along the last axis summed locally before one atomicAdd

KERNEL_NAMES = ("softlabel_slic_assign", "softlabel_slic_accumulate", "softlabel_slic_finalize")
CCL_KERNEL_NAMES = ("softlabel_ccl_init", "softlabel_ccl_merge", "softlabel_ccl_compress")

CUDA_SOURCE = r"""
#define SOFTLABEL_N_FEAT (3 + SOFTLABEL_N_CHANNELS)
#define SOFTLABEL_N_SUMS (4 + SOFTLABEL_N_CHANNELS)

__device__ inline int softlabel_lower_cell(long long i, int start, int step, int g)
{
    if (i < start) return -1;
    const long long c = (i - start) / step;
    return c < g - 1 ? (int)c : g - 1;
}

// Nearest candidate centre for each voxel; sets *changed when a label moves.
extern "C" __global__ void softlabel_slic_assign(
    const float* __restrict__ image,          // (n0, n1, n2, C)
    const unsigned char* __restrict__ mask,   // (n0, n1, n2), read if has_mask
    const float* __restrict__ centres,        // (K, 3 + C)
    const int* __restrict__ cell_centre,      // (g0, g1, g2), -1: no centre
    int* __restrict__ labels,                 // (n0, n1, n2), in/out
    int* __restrict__ changed,                // (1,)
    const long long n0, const long long n1, const long long n2,
    const int step0, const int step1, const int step2,
    const int start0, const int start1, const int start2,
    const int g0, const int g1, const int g2,
    const float sp0, const float sp1, const float sp2,
    const float weight, const int has_mask)
{
    const long long n = n0 * n1 * n2;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < n; v += stride) {
        if (has_mask && !mask[v]) continue;
        const long long i2 = v % n2;
        const long long i1 = (v / n2) % n1;
        const long long i0 = v / (n1 * n2);
        // Candidate cells c and c + 1 per axis: c is the cell of the last seed at or before
        // the voxel, -1 before the first one (grid.lower_cell; start < step).
        const int c0 = softlabel_lower_cell(i0, start0, step0, g0);
        const int c1 = softlabel_lower_cell(i1, start1, step1, g1);
        const int c2 = softlabel_lower_cell(i2, start2, step2, g2);
        const float x0 = (float)i0, x1 = (float)i1, x2 = (float)i2;
        const float* pixel = image + v * SOFTLABEL_N_CHANNELS;
        float best = __int_as_float(0x7f800000);  // +inf
        int best_k = -1;
        for (int q0 = c0; q0 <= c0 + 1; ++q0) {
            if (q0 < 0 || q0 >= g0) continue;
            for (int q1 = c1; q1 <= c1 + 1; ++q1) {
                if (q1 < 0 || q1 >= g1) continue;
                for (int q2 = c2; q2 <= c2 + 1; ++q2) {
                    if (q2 < 0 || q2 >= g2) continue;
                    const int k = cell_centre[((long long)q0 * g1 + q1) * g2 + q2];
                    if (k < 0) continue;
                    const float* centre = centres + (long long)k * SOFTLABEL_N_FEAT;
                    const float d0 = __fmul_rn(__fsub_rn(x0, centre[0]), sp0);
                    const float d1 = __fmul_rn(__fsub_rn(x1, centre[1]), sp1);
                    const float d2 = __fmul_rn(__fsub_rn(x2, centre[2]), sp2);
                    const float space = __fadd_rn(__fmul_rn(d0, d0),
                                                  __fadd_rn(__fmul_rn(d1, d1), __fmul_rn(d2, d2)));
                    float colour = 0.0f;
                    for (int c = 0; c < SOFTLABEL_N_CHANNELS; ++c) {
                        const float t = __fsub_rn(pixel[c], centre[3 + c]);
                        colour = __fadd_rn(colour, __fmul_rn(t, t));
                    }
                    const float dist = __fadd_rn(colour, __fmul_rn(weight, space));
                    if (dist < best) {  // candidates in increasing k: ties keep the lowest
                        best = dist;
                        best_k = k;
                    }
                }
            }
        }
        if (labels[v] != best_k) {
            labels[v] = best_k;
            *changed = 1;
        }
    }
}

// Per-centre float64 sums (count, 3 coordinates, C colours), one run per thread.
extern "C" __global__ void softlabel_slic_accumulate(
    const float* __restrict__ image,   // (n0, n1, n2, C)
    const int* __restrict__ labels,    // (n0, n1, n2), -1: skipped
    double* __restrict__ sums,         // (K, 4 + C), zeroed by the caller
    const long long n0, const long long n1, const long long n2)
{
    const long long runs_per_row = (n2 + SOFTLABEL_RUN - 1) / SOFTLABEL_RUN;
    const long long n_tasks = n0 * n1 * runs_per_row;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long task = (long long)blockIdx.x * blockDim.x + threadIdx.x; task < n_tasks;
         task += stride) {
        const long long row = task / runs_per_row;
        const long long lo = (task % runs_per_row) * SOFTLABEL_RUN;
        const long long hi = (lo + SOFTLABEL_RUN < n2) ? lo + SOFTLABEL_RUN : n2;
        const double x0 = (double)(row / n1), x1 = (double)(row % n1);
        int current = -1;
        double acc[SOFTLABEL_N_SUMS];
        for (long long i2 = lo; i2 <= hi; ++i2) {
            const long long v = row * n2 + i2;
            const int k = (i2 < hi) ? labels[v] : -1;
            if (k != current) {
                if (current >= 0) {
                    for (int f = 0; f < SOFTLABEL_N_SUMS; ++f)
                        atomicAdd(&sums[(long long)current * SOFTLABEL_N_SUMS + f], acc[f]);
                }
                current = k;
                for (int f = 0; f < SOFTLABEL_N_SUMS; ++f) acc[f] = 0.0;
            }
            if (k < 0) continue;
            acc[0] += 1.0;
            acc[1] += x0;
            acc[2] += x1;
            acc[3] += (double)i2;
            for (int c = 0; c < SOFTLABEL_N_CHANNELS; ++c)
                acc[4 + c] += (double)image[v * SOFTLABEL_N_CHANNELS + c];
        }
    }
}

// centres[k] = sums[k, 1:] / sums[k, 0] rounded to float32, where the count is > 0.
extern "C" __global__ void softlabel_slic_finalize(
    const double* __restrict__ sums,   // (K, 4 + C)
    float* __restrict__ centres,       // (K, 3 + C), in/out
    const int n_centres)
{
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < n_centres;
         k += blockDim.x * gridDim.x) {
        const double count = sums[(long long)k * SOFTLABEL_N_SUMS];
        if (count > 0.0) {
            for (int f = 0; f < SOFTLABEL_N_FEAT; ++f)
                centres[(long long)k * SOFTLABEL_N_FEAT + f] =
                    (float)(sums[(long long)k * SOFTLABEL_N_SUMS + 1 + f] / count);
        }
    }
}
"""


CCL_SOURCE = r"""
// Face-connected components of equal labels by union-find with atomicMin
// (Playne & Hawick, IEEE TPDS 2018): a root only ever links under a smaller
// index, so each component ends rooted at its smallest flat index, its first
// voxel in C order. parent: (n,) int32, -1 where labels < 0.

__device__ int softlabel_find(const volatile int* parent, int x)
{
    int p = parent[x];
    while (p != x) {
        x = p;
        p = parent[x];
    }
    return x;
}

__device__ void softlabel_unite(int* parent, int a, int b)
{
    bool done;
    do {
        a = softlabel_find(parent, a);
        b = softlabel_find(parent, b);
        if (a < b) {
            const int old = atomicMin(&parent[b], a);
            done = (old == b);
            b = old;
        } else if (b < a) {
            const int old = atomicMin(&parent[a], b);
            done = (old == a);
            a = old;
        } else {
            done = true;
        }
    } while (!done);
}

extern "C" __global__ void softlabel_ccl_init(
    const int* __restrict__ labels, int* __restrict__ parent, const long long n)
{
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < n; v += stride)
        parent[v] = (labels[v] >= 0) ? (int)v : -1;
}

// Join each voxel with its three earlier face neighbours of the same label.
extern "C" __global__ void softlabel_ccl_merge(
    const int* __restrict__ labels, int* parent,
    const long long n0, const long long n1, const long long n2)
{
    const long long n = n0 * n1 * n2;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < n; v += stride) {
        const int lab = labels[v];
        if (lab < 0) continue;
        const long long i2 = v % n2;
        const long long i1 = (v / n2) % n1;
        const long long i0 = v / (n1 * n2);
        if (i2 > 0 && labels[v - 1] == lab) softlabel_unite(parent, (int)v, (int)(v - 1));
        if (i1 > 0 && labels[v - n2] == lab) softlabel_unite(parent, (int)v, (int)(v - n2));
        if (i0 > 0 && labels[v - n1 * n2] == lab) softlabel_unite(parent, (int)v, (int)(v - n1 * n2));
    }
}

// parent[v] = root of v (run after softlabel_ccl_merge has finished).
extern "C" __global__ void softlabel_ccl_compress(int* parent, const long long n)
{
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < n; v += stride)
        if (parent[v] >= 0) parent[v] = softlabel_find(parent, (int)v);
}
"""


def source(n_channels: int) -> str:
    """The CUDA source specialised for ``n_channels`` image channels."""
    return (f"#define SOFTLABEL_N_CHANNELS {int(n_channels)}\n"
            f"#define SOFTLABEL_RUN {RUN}\n" + CUDA_SOURCE)


def blocks_for(n_items: int) -> int:
    """Number of blocks of ``THREADS_PER_BLOCK`` threads for a grid-stride loop."""
    return max(1, min(MAX_BLOCKS, -(-n_items // THREADS_PER_BLOCK)))


def assign_args(image, mask_or_dummy, has_mask: bool, centres, grid: SlicGrid,
                weight: np.float32, labels, changed, cell_centre) -> tuple:
    """Arguments of ``softlabel_slic_assign`` (arrays on the kernel's device)."""
    n0, n1, n2 = grid.shape
    g0, g1, g2 = grid.cell_centre.shape
    return (image, mask_or_dummy, centres, cell_centre, labels, changed,
            np.int64(n0), np.int64(n1), np.int64(n2),
            *(np.int32(s) for s in grid.step), *(np.int32(s) for s in grid.start),
            np.int32(g0), np.int32(g1), np.int32(g2),
            *(np.float32(s) for s in grid.spacing_mm), np.float32(weight), np.int32(has_mask))


def accumulate_args(image, labels, sums) -> tuple:
    """Arguments of ``softlabel_slic_accumulate``; launch over ``accumulate_tasks``."""
    n0, n1, n2 = labels.shape
    return (image, labels, sums, np.int64(n0), np.int64(n1), np.int64(n2))


def accumulate_tasks(shape: tuple[int, int, int]) -> int:
    """Number of threads' work items of the accumulation: runs of ``RUN`` voxels."""
    n0, n1, n2 = shape
    return n0 * n1 * (-(-n2 // RUN))


def finalize_args(sums, centres) -> tuple:
    """Arguments of ``softlabel_slic_finalize``."""
    return (sums, centres, np.int32(len(centres)))


def ccl_init_args(labels, parent) -> tuple:
    """Arguments of ``softlabel_ccl_init``; launch over ``labels.size`` voxels."""
    return (labels, parent, np.int64(labels.size))


def ccl_merge_args(labels, parent) -> tuple:
    """Arguments of ``softlabel_ccl_merge``; launch over ``labels.size`` voxels."""
    n0, n1, n2 = labels.shape
    return (labels, parent, np.int64(n0), np.int64(n1), np.int64(n2))


def ccl_compress_args(parent) -> tuple:
    """Arguments of ``softlabel_ccl_compress``; launch over ``parent.size`` voxels."""
    return (parent, np.int64(parent.size))
