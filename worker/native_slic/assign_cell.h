/* One grid cell of the native SLIC assignment (worker/native_slic/cpu.pyx calls it per cell).
 *
 * The same arithmetic as the NumPy twin (worker/native_slic/reference.py), term for term, in
 * IEEE single precision with no contraction (setup.py builds with -ffp-contract=off). The cell's
 * voxels are copied channel-first with each (axis 1, axis 2) plane flattened, so the loops over
 * a plane are branch-free and vectorise; gcc builds an AVX2 clone beside the baseline one and
 * picks it at load time on CPUs that have AVX2 (no FMA: the sums stay the twin's).
 *
 * Layouts (C order): image (n0, n1, n2, nc) float32; mask (n0, n1, n2) uint8 or NULL;
 * centres (K, 3 + nc) float32 (position in voxels, then colour); cell_centre (g0, g1, g2)
 * int32, -1 for a cell without a centre; labels (n0, n1, n2) int32, updated in place.
 */
#ifndef SOFTLABEL_ASSIGN_CELL_H
#define SOFTLABEL_ASSIGN_CELL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SLIC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SLIC_CLONES
#endif

/* Returns the number of voxels whose label changed, or -1 when scratch memory cannot be had. */
SLIC_CLONES
static int64_t slic_assign_cell(const float *image, int64_t n0, int64_t n1, int64_t n2, int64_t nc,
                                const uint8_t *mask, const float *centres, const int32_t *cell_centre,
                                int64_t g0, int64_t g1, int64_t g2, int64_t cell, const int64_t *step,
                                const float *spacing, float weight, int32_t *labels)
{
    const int64_t c0 = cell / (g1 * g2), c1 = (cell / g2) % g1, c2 = cell % g2;
    const int64_t lo0 = c0 * step[0], lo1 = c1 * step[1], lo2 = c2 * step[2];
    const int64_t m0 = (c0 == g0 - 1 ? n0 : lo0 + step[0]) - lo0;
    const int64_t m1 = (c1 == g1 - 1 ? n1 : lo1 + step[1]) - lo1;
    const int64_t m2 = (c2 == g2 - 1 ? n2 : lo2 + step[2]) - lo2;
    const int64_t plane = m1 * m2, n_feat = 3 + nc;
    float *pixels = malloc(sizeof(float) * nc * m0 * plane);
    float *best = malloc(sizeof(float) * m0 * plane);
    int32_t *best_k = malloc(sizeof(int32_t) * m0 * plane);
    float *colour = malloc(sizeof(float) * plane);
    float *sq12 = malloc(sizeof(float) * plane);
    int64_t n_changed = 0;
    if (!pixels || !best || !best_k || !colour || !sq12) {
        n_changed = -1;
        goto done;
    }
    for (int64_t c = 0; c < nc; c++)
        for (int64_t i0 = 0; i0 < m0; i0++)
            for (int64_t i1 = 0; i1 < m1; i1++)
                for (int64_t i2 = 0; i2 < m2; i2++)
                    pixels[(c * m0 + i0) * plane + i1 * m2 + i2] =
                        image[(((lo0 + i0) * n1 + lo1 + i1) * n2 + lo2 + i2) * nc + c];
    for (int64_t j = 0; j < m0 * plane; j++) {
        best[j] = INFINITY;
        best_k[j] = -1;
    }
    for (int64_t q0 = c0 - 1; q0 <= c0 + 1; q0++) {
        if (q0 < 0 || q0 >= g0) continue;
        for (int64_t q1 = c1 - 1; q1 <= c1 + 1; q1++) {
            if (q1 < 0 || q1 >= g1) continue;
            for (int64_t q2 = c2 - 1; q2 <= c2 + 1; q2++) {
                if (q2 < 0 || q2 >= g2) continue;
                const int32_t k = cell_centre[(q0 * g1 + q1) * g2 + q2];
                if (k < 0) continue;  /* candidates in increasing index order: ties keep the first */
                const float *centre = centres + k * n_feat;
                for (int64_t i1 = 0; i1 < m1; i1++) {
                    const float d1 = ((float)(lo1 + i1) - centre[1]) * spacing[1];
                    const float sq1 = d1 * d1;
                    for (int64_t i2 = 0; i2 < m2; i2++) {
                        const float d2 = ((float)(lo2 + i2) - centre[2]) * spacing[2];
                        sq12[i1 * m2 + i2] = sq1 + d2 * d2;
                    }
                }
                for (int64_t i0 = 0; i0 < m0; i0++) {
                    const float d0 = ((float)(lo0 + i0) - centre[0]) * spacing[0];
                    const float sq0 = d0 * d0;
                    const float *px = pixels + i0 * plane;
                    for (int64_t j = 0; j < plane; j++) {
                        const float t = px[j] - centre[3];
                        colour[j] = t * t; /* == 0 + t * t */
                    }
                    for (int64_t c = 1; c < nc; c++) {
                        const float mu = centre[3 + c];
                        px = pixels + (c * m0 + i0) * plane;
                        for (int64_t j = 0; j < plane; j++) {
                            const float t = px[j] - mu;
                            colour[j] = colour[j] + t * t;
                        }
                    }
                    float *row_best = best + i0 * plane;
                    int32_t *row_k = best_k + i0 * plane;
                    for (int64_t j = 0; j < plane; j++) {
                        const float dist = colour[j] + weight * (sq0 + sq12[j]);
                        const float old = row_best[j];
                        const int32_t old_k = row_k[j];
                        const int better = dist < old;
                        row_k[j] = better ? k : old_k;
                        row_best[j] = better ? dist : old;
                    }
                }
            }
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
    free(colour);
    free(sq12);
    return n_changed;
}

#endif
