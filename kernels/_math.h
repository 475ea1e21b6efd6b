/* Arithmetic shared by the kernels: the build's clone and SIMD macros, bit casts, a
 * branch-free exp (float and double) and log (double). Used by the cross-entropy rows
 * (_xent_row.h) and the elementwise kernels (_elementwise.h). Plain C; no Python.
 *
 * IEEE semantics throughout (no -ffast-math anywhere).
 */
#ifndef MINIGRAD_MATH_H
#define MINIGRAD_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>

/* Portable build, fast where the CPU allows: gcc emits x86-64-v4 (AVX-512), x86-64-v3
 * (AVX2+FMA) and baseline clones of each kernel function (XENT_CLONES) and picks one at
 * load time (ifunc). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(MINIGRAD_NO_CLONES)
#define XENT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define XENT_HAVE_CLONES 1
#else
#define XENT_CLONES
#define XENT_HAVE_CLONES 0
#endif

#if defined(_OPENMP) || defined(MINIGRAD_OPENMP_SIMD)
#define XENT_PRAGMA(x) _Pragma(#x)
#define XENT_SIMD XENT_PRAGMA(omp simd)
#define XENT_SIMD_SUM(v) XENT_PRAGMA(omp simd reduction(+:v))
#define XENT_SIMD_SUM2(v, w) XENT_PRAGMA(omp simd reduction(+:v, w))
#define XENT_SIMD_MAX(v) XENT_PRAGMA(omp simd reduction(max:v))
#define XENT_SIMD_OR(v) XENT_PRAGMA(omp simd reduction(|:v))
#define XENT_SIMD_MIN(v) XENT_PRAGMA(omp simd reduction(min:v))
#else
#define XENT_SIMD
#define XENT_SIMD_SUM(v)
#define XENT_SIMD_SUM2(v, w)
#define XENT_SIMD_MAX(v)
#define XENT_SIMD_OR(v)
#define XENT_SIMD_MIN(v)
#endif

/* ---- branch-free exp for arguments in [-inf, 0] or NaN -------------------
 * glibc's scalar exp does not vectorize without fast-math flags. We use the
 * classic reduction x = k ln2 + r, |r| <= ln2/2 (ln2 split in two, Cody and
 * Waite), a polynomial for e^r, and 2^k built from exponent bits. k is rounded
 * with a magic constant (1.5 * 2^23, 2^52 for double) which also leaves k in
 * the low mantissa bits, so no float->int conversion (undefined for NaN) is
 * needed; the constant carries an offset B + bias on top, so that shifting
 * those bits into the exponent field gives s = 2^(k+B), a normal number, in
 * two integer ops. e^x = (p 2^-B) * s with the polynomial's coefficients
 * scaled by 2^-B: the one product rounds once, into the subnormals where
 * needed, so results down to the smallest subnormal are right. A NaN argument
 * gives p = NaN and so a NaN result whatever s is: no select is needed for it.
 *
 * The polynomials are minimax fits of e^r = 1 + r + r^2 q(r) on [-ln2/2, ln2/2]
 * (Remez on the relative error of q; degree 6 for float: 9.5e-9 relative,
 * 0.08 ulp; degree 11 for double: 1.6e-17, 0.07 ulp), evaluated by Horner down
 * to the last step 1 + r * (...). Measured against expl over every float in
 * [-110, 0]: at most 0.97 ulp where gcc contracts to fused multiply-adds (the
 * x86-64-v3 and -v4 clones), 1.24 ulp in the baseline clone (separate multiply
 * and add round twice per step). The Cephes form it replaced (degree 7, r^2
 * term added before the 1) took two more operations per value and gave 1.01
 * and 0.98 ulp. */
/* Bit casts through memcpy: gcc folds them to register moves that the
 * vectorizer accepts (a union temporary blocks it). */
static inline float xent_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t xent_bits_from_f32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline double xent_f64_from_bits(uint64_t u) { double f; memcpy(&f, &u, 8); return f; }
static inline uint64_t xent_bits_from_f64(double f) { uint64_t u; memcpy(&u, &f, 8); return u; }

/* Horner's coefficients, from r^6 (r^11) down to 1, times 2^-B: the polynomial comes out
 * as e^r * 2^-B, and one product with s = 2^(k+B) gives e^x. The factor is exact: each
 * fused multiply-add of the scaled polynomial is the unscaled one times 2^-B, and the
 * values stay far above the subnormals (c6 2^-64 ~ 7.5e-23); without fused multiply-adds
 * a product p r can underflow only where it is below half an ulp of the term it joins. */
#define XENT_F(c) ((c) * 0x1p-64f)
#define XENT_D(c) ((c) * 0x1p-600)
static const float xent_expf_poly[7] = {
    XENT_F(1.390130980e-03f), XENT_F(8.363200058e-03f), XENT_F(4.166685409e-02f),
    XENT_F(1.666657696e-01f), XENT_F(4.999999955e-01f), XENT_F(1.0f), XENT_F(1.0f)};
static const double xent_exp_poly[12] = {
    XENT_D(2.506819808563145e-08), XENT_D(2.762015965052805e-07), XENT_D(2.755735563612517e-06),
    XENT_D(2.4801521158791302e-05), XENT_D(1.9841269784362932e-04), XENT_D(1.3888888917291198e-03),
    XENT_D(8.333333333356363e-03), XENT_D(4.1666666666624004e-02), XENT_D(1.6666666666666644e-01),
    XENT_D(5.000000000000001e-01), XENT_D(1.0), XENT_D(1.0)};
#undef XENT_F
#undef XENT_D

static inline float xent_expf(float x)
{
    /* 1.5 * 2^23 + B + 127 with B = 64: bits(kf) = 0x4B400000 + k + 191, whose low 9 bits
     * shifted into the exponent field give 2^(k+64); k >= -150 keeps that normal */
    const float magic = 12583103.0f;
    float kf, k, r, p;
    x = x < -104.0f ? -104.0f : x;                 /* e^-104 < 2^-150: rounds to 0; NaN kept */
    kf = x * 1.44269504088896341f + magic;
    k = kf - magic;
    r = x - k * 0.693359375f;                      /* exact: k * 0.693359375 has 17 bits */
    r = r - k * -2.12194440e-4f;
    p = xent_expf_poly[0];
    for (int i = 1; i < 7; i++) p = p * r + xent_expf_poly[i];
    return p * xent_f32_from_bits(xent_bits_from_f32(kf) << 23);
}

static inline double xent_exp(double x)
{
    /* 1.5 * 2^52 + B + 1023 with B = 600: s = 2^(k+600), normal for k >= -1077 */
    const double magic = 6755399441057367.0;
    double kf, k, r, p;
    x = x < -746.0 ? -746.0 : x;                   /* below half the smallest subnormal; NaN kept */
    kf = x * 1.4426950408889634074 + magic;
    k = kf - magic;
    r = x - k * 6.93147180369123816490e-01;        /* ln2 hi/lo (fdlibm): the first product exact */
    r = r - k * 1.90821492927058770002e-10;
    p = xent_exp_poly[0];
    for (int i = 1; i < 12; i++) p = p * r + xent_exp_poly[i];
    return p * xent_f64_from_bits(xent_bits_from_f64(kf) << 52);
}

/* ---- branch-free log for positive normal x or NaN --------------------------
 * glibc's log is a call per row (~11 ns of a 25 ns short row, measured) and
 * does not vectorize without fast-math flags; this one runs over a block of
 * row sums at once. It is fdlibm's __ieee754_log (< 1 ulp) with its branches
 * turned into selects: x = 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)),
 * s = f / (2 + f), log(1 + f) = 2 atanh(s) = f - s (f - R(s^2)) with a minimax
 * R, and of fdlibm's two ways of adding the terms the one it picks for
 * accuracy. Zero, negative, subnormal and infinite x are outside its domain
 * (the row sums are in [1, classes] or NaN); a NaN x is returned as is. */
static inline double xent_log(double x)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    uint64_t u = xent_bits_from_f64(x);
    uint32_t hx = (uint32_t)(u >> 32) & 0x000fffffu;       /* high mantissa bits */
    uint32_t i = (hx + 0x95f64u) & 0x100000u;              /* set if the mantissa >= sqrt(2) */
    int32_t k = (int32_t)((uint32_t)(u >> 52) & 0x7ffu) - 1023 + (int32_t)(i >> 20);
    double f, s, z, w, R, hfsq, dk, big, small, result;
    /* 1 + f = the mantissa, or half of it: exponent 0 or -1 */
    f = xent_f64_from_bits(((uint64_t)(hx | (i ^ 0x3ff00000u)) << 32) | (u & 0xffffffffu)) - 1.0;
    s = f / (2.0 + f);
    dk = (double)k;
    z = s * s;
    w = z * z;
    R = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7))) + w * (Lg2 + w * (Lg4 + w * Lg6));
    hfsq = 0.5 * f * f;
    big = dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
    small = dk * ln2_hi - ((s * (f - R) - dk * ln2_lo) - f);
    /* fdlibm: the hfsq form where the mantissa's high bits are in (0x6147a, 0x6b851) */
    result = ((int32_t)(hx - 0x6147au) | (int32_t)(0x6b851u - hx)) > 0 ? big : small;
    return x != x ? x : result;
}

#endif /* MINIGRAD_MATH_H */
