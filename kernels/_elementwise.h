/* Elementwise kernels (kernels/_elementwise.pyx drives them): one pass over contiguous
 * arrays, computed in double where numpy would need several passes for the same result. */
#ifndef MINIGRAD_ELEMENTWISE_H
#define MINIGRAD_ELEMENTWISE_H

#include "_math.h"

/* ---- tanh's derivative -------------------------------------------------------
 * OUT out_j = g_j * sech^2(x_j), formed in double and rounded once to float:
 * sech^2 x = 4 e / (1 + e)^2 with e = exp(-2|x|) (-2|x| is exact, e is within
 * 0.07 ulp of double, never overflows), so the result is within half an ulp of
 * float plus ~1e-15 relative. +-inf gives 0, NaN gives NaN. From the input, not
 * from tanh(x): 1 - tanh^2 cancels where tanh is near +-1. */
XENT_CLONES static void mg_tanh_grad_f32(const float *restrict g, const float *restrict x,
                                         float *restrict out, ptrdiff_t n)
{
    XENT_SIMD
    for (ptrdiff_t j = 0; j < n; j++) {
        const double e = xent_exp(-2.0 * fabs((double)x[j])), d = 1.0 + e;
        out[j] = (float)((double)g[j] * (4.0 * e / (d * d)));
    }
}

/* ---- the sigmoid's derivative ------------------------------------------------
 * OUT out_j = g_j * s(x_j) s(-x_j) = g_j * e / (1 + e)^2 with e = exp(-|x|), formed
 * in double and rounded once to float, as tanh's above (the form that does not cancel
 * where out (1 - out) does: 0 in float32 from x = 17 on). */
XENT_CLONES static void mg_sigmoid_grad_f32(const float *restrict g, const float *restrict x,
                                            float *restrict out, ptrdiff_t n)
{
    XENT_SIMD
    for (ptrdiff_t j = 0; j < n; j++) {
        const double e = xent_exp(-fabs((double)x[j])), d = 1.0 + e;
        out[j] = (float)((double)g[j] * (e / (d * d)));
    }
}

#endif /* MINIGRAD_ELEMENTWISE_H */
