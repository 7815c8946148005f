/* One window of the native SLIC assignment (worker/native_slic/cpu.pyx calls it per window).
 *
 * The same arithmetic as the NumPy twin (worker/native_slic/reference.py), term for term, in
 * IEEE single precision with no contraction (setup.py builds with -ffp-contract=off):
 *   colour = (I_0 - mu_0)^2 + (I_1 - mu_1)^2 + ...   (left to right)
 *   dist   = colour + weight * (d0^2 + (d1^2 + d2^2))
 * and candidates are visited in increasing centre index with a strict "<", so ties keep the
 * first. The window's voxels are copied channel-first with each (axis 1, axis 2) plane
 * flattened. Candidates go through in groups of up to three: one pass over a plane loads each
 * voxel's colour and running best once and updates them against the whole group in
 * registers, in index order. The loops are branch-free and vectorise; gcc builds AVX-512 and
 * AVX2 clones beside the baseline one and picks one at load time (no FMA: the sums stay the
 * twin's).
 *
 * Layouts (C order): image (n0, n1, n2, nc) float32; mask (n0, n1, n2) uint8 or NULL;
 * centres (K, 3 + nc) float32 (position in voxels, then colour); cell_centre (g0, g1, g2)
 * int32, -1 for a cell without a centre; labels (n0, n1, n2) int32, updated in place.
 */
#ifndef SOFTLABEL_ASSIGN_WINDOW_H
#define SOFTLABEL_ASSIGN_WINDOW_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SLIC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SLIC_CLONES
#endif
#if defined(__GNUC__)
#define SLIC_INLINE static inline __attribute__((always_inline))
#else
#define SLIC_INLINE static inline
#endif

/* Candidates updated per pass over a plane: all of a window's (at most 8) in one pass. With
 * the 27 candidates of an earlier rule, three per pass halved the time against one, and six
 * and nine measured the same as three; with 8, one pass of 8 took 5.7 to 6.2 ms a round on
 * the 11-class phantom (minimum of 40 calls) against 6.4 to 6.6 ms for passes of 4. */
#define SLIC_GROUP 8

/* The running best of one plane's voxels against n_k (1..SLIC_GROUP) candidates, in order.
 * pixels: nc planes of the window (stride channel_stride); colour: (n_k, nc) candidate colours;
 * sq0: (n_k,) the plane's d0^2; sq12: (n_k, plane) d1^2 + d2^2; ks: centre indices.
 * Inlined with constant n_k and nc so the candidate and channel loops unroll. */
SLIC_INLINE void slic_update_plane(const float *restrict pixels, int64_t channel_stride, int64_t plane,
                                   int64_t nc, int n_k, const float *restrict colour,
                                   const float *restrict sq0, const float *restrict sq12,
                                   const int32_t *restrict ks, float weight,
                                   float *restrict best, int32_t *restrict best_k)
{
    int32_t k[SLIC_GROUP];
    for (int g = 0; g < n_k; g++) k[g] = ks[g];
    for (int64_t j = 0; j < plane; j++) {
        float b = best[j];
        int32_t bk = best_k[j];
#pragma GCC unroll 8
        for (int g = 0; g < n_k; g++) {
            float t = pixels[j] - colour[g * nc];
            float c2 = t * t; /* == 0 + t * t */
#pragma GCC unroll 4
            for (int64_t c = 1; c < nc; c++) {
                t = pixels[c * channel_stride + j] - colour[g * nc + c];
                c2 = c2 + t * t;
            }
            const float dist = c2 + weight * (sq0[g] + sq12[g * plane + j]);
            const int better = dist < b;
            bk = better ? k[g] : bk;
            b = better ? dist : b;
        }
        best[j] = b;
        best_k[j] = bk;
    }
}

/* Dispatch to a copy of slic_update_plane with n_k and (for nc <= 4) nc known at compile time. */
SLIC_INLINE void slic_update_plane_fixed(const float *pixels, int64_t channel_stride, int64_t plane, int64_t nc,
                                         int n_k, const float *colour, const float *sq0, const float *sq12,
                                         const int32_t *ks, float weight, float *best, int32_t *best_k)
{
#define SLIC_CASE(NK, NC) \
    slic_update_plane(pixels, channel_stride, plane, NC, NK, colour, sq0, sq12, ks, weight, best, best_k)
#define SLIC_BY_NC(NK)                        \
    switch (nc) {                             \
    case 1: SLIC_CASE(NK, 1); break;          \
    case 2: SLIC_CASE(NK, 2); break;          \
    case 3: SLIC_CASE(NK, 3); break;          \
    case 4: SLIC_CASE(NK, 4); break;          \
    default: SLIC_CASE(NK, nc); break;        \
    }
    switch (n_k) {
    case 1: SLIC_BY_NC(1); break;
    case 2: SLIC_BY_NC(2); break;
    case 3: SLIC_BY_NC(3); break;
    case 4: SLIC_BY_NC(4); break;
    case 5: SLIC_BY_NC(5); break;
    case 6: SLIC_BY_NC(6); break;
    case 7: SLIC_BY_NC(7); break;
    default: SLIC_BY_NC(SLIC_GROUP); break;
    }
#undef SLIC_BY_NC
#undef SLIC_CASE
}

/* The voxel range [*lo, *hi) of window w (-1 .. g - 1) along one axis: the voxels whose
 * grid.lower_cell is w (empty for w = -1 when the first seed is voxel 0). */
SLIC_INLINE void slic_window_bounds(int64_t w, int64_t start, int64_t step, int64_t g, int64_t n,
                                    int64_t *lo, int64_t *hi)
{
    const int64_t first = start + w * step;
    *lo = first > 0 ? first : 0;
    *hi = w == g - 1 ? n : first + step;
    if (*hi < *lo) *hi = *lo;
}

/* One window: the voxels whose candidate cells are w and w + 1 along each axis, window index
 * ((w0 + 1) * (g1 + 1) + w1 + 1) * (g2 + 1) + w2 + 1. Returns the number of voxels whose label
 * changed, or -1 when scratch memory cannot be had. */
SLIC_CLONES
static int64_t slic_assign_window(const float *image, int64_t n0, int64_t n1, int64_t n2, int64_t nc,
                                  const uint8_t *mask, const float *centres, const int32_t *cell_centre,
                                  int64_t g0, int64_t g1, int64_t g2, int64_t window, const int64_t *step,
                                  const int64_t *start, const float *spacing, float weight, int32_t *labels)
{
    const int64_t c0 = window / ((g1 + 1) * (g2 + 1)) - 1;
    const int64_t c1 = (window / (g2 + 1)) % (g1 + 1) - 1;
    const int64_t c2 = window % (g2 + 1) - 1;
    int64_t lo0, hi0, lo1, hi1, lo2, hi2;
    slic_window_bounds(c0, start[0], step[0], g0, n0, &lo0, &hi0);
    slic_window_bounds(c1, start[1], step[1], g1, n1, &lo1, &hi1);
    slic_window_bounds(c2, start[2], step[2], g2, n2, &lo2, &hi2);
    const int64_t m0 = hi0 - lo0, m1 = hi1 - lo1, m2 = hi2 - lo2;
    if (m0 == 0 || m1 == 0 || m2 == 0) return 0;
    const int64_t plane = m1 * m2, n_feat = 3 + nc, n_vox = m0 * plane;
    float *pixels = malloc(sizeof(float) * nc * n_vox);
    float *best = malloc(sizeof(float) * n_vox);
    int32_t *best_k = malloc(sizeof(int32_t) * n_vox);
    float *sq12 = malloc(sizeof(float) * SLIC_GROUP * plane);
    float *sq2 = malloc(sizeof(float) * m2);
    float *colour = malloc(sizeof(float) * SLIC_GROUP * nc);
    int64_t n_changed = 0;
    if (!pixels || !best || !best_k || !sq12 || !sq2 || !colour) {
        n_changed = -1;
        goto done;
    }
    for (int64_t i0 = 0; i0 < m0; i0++)
        for (int64_t i1 = 0; i1 < m1; i1++) {
            const float *row = image + (((lo0 + i0) * n1 + lo1 + i1) * n2 + lo2) * nc;
            float *to = pixels + i0 * plane + i1 * m2;
            for (int64_t i2 = 0; i2 < m2; i2++)
                for (int64_t c = 0; c < nc; c++) to[c * n_vox + i2] = row[i2 * nc + c];
        }
    for (int64_t j = 0; j < n_vox; j++) {
        best[j] = INFINITY;
        best_k[j] = -1;
    }
    /* The candidates: centres of cells c and c + 1 along each axis, in increasing index order. */
    int32_t ks[8];
    int n_cand = 0;
    for (int64_t q0 = c0; q0 <= c0 + 1; q0++) {
        if (q0 < 0 || q0 >= g0) continue;
        for (int64_t q1 = c1; q1 <= c1 + 1; q1++) {
            if (q1 < 0 || q1 >= g1) continue;
            for (int64_t q2 = c2; q2 <= c2 + 1; q2++) {
                if (q2 < 0 || q2 >= g2) continue;
                const int32_t k = cell_centre[(q0 * g1 + q1) * g2 + q2];
                if (k >= 0) ks[n_cand++] = k;
            }
        }
    }
    for (int first = 0; first < n_cand; first += SLIC_GROUP) {
        const int n_k = n_cand - first < SLIC_GROUP ? n_cand - first : SLIC_GROUP;
        for (int g = 0; g < n_k; g++) {
            const float *centre = centres + (int64_t)ks[first + g] * n_feat;
            for (int64_t c = 0; c < nc; c++) colour[g * nc + c] = centre[3 + c];
            for (int64_t i2 = 0; i2 < m2; i2++) {
                const float d2 = ((float)(lo2 + i2) - centre[2]) * spacing[2];
                sq2[i2] = d2 * d2;
            }
            for (int64_t i1 = 0; i1 < m1; i1++) {
                const float d1 = ((float)(lo1 + i1) - centre[1]) * spacing[1];
                const float sq1 = d1 * d1;
                float *to = sq12 + g * plane + i1 * m2;
                for (int64_t i2 = 0; i2 < m2; i2++) to[i2] = sq1 + sq2[i2];
            }
        }
        for (int64_t i0 = 0; i0 < m0; i0++) {
            float sq0[SLIC_GROUP];
            for (int g = 0; g < n_k; g++) {
                const float d0 = ((float)(lo0 + i0) - centres[(int64_t)ks[first + g] * n_feat]) * spacing[0];
                sq0[g] = d0 * d0;
            }
            slic_update_plane_fixed(pixels + i0 * plane, m0 * plane, plane, nc, n_k, colour, sq0, sq12,
                                    ks + first, weight, best + i0 * plane, best_k + i0 * plane);
        }
    }
    for (int64_t i0 = 0; i0 < m0; i0++)
        for (int64_t i1 = 0; i1 < m1; i1++)
            for (int64_t i2 = 0; i2 < m2; i2++) {
                const int64_t at = ((lo0 + i0) * n1 + lo1 + i1) * n2 + lo2 + i2;
                if (mask && !mask[at]) continue;
                const int32_t k = best_k[i0 * plane + i1 * m2 + i2];
                if (labels[at] != k) {
                    labels[at] = k;
                    n_changed++;
                }
            }
done:
    free(pixels);
    free(best);
    free(best_k);
    free(sq12);
    free(sq2);
    free(colour);
    return n_changed;
}

#endif
