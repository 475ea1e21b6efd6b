/* One row of softmax cross-entropy: loss and backprop in one fused pass.
 *
 * Why C and not Cython: gcc 12 vectorizes a reduction only under
 * `#pragma omp simd reduction(...)` (or reassociation flags, which cost
 * accuracy and are banned here), and Cython cannot emit that pragma. The
 * Cython driver (_xent.pyx) owns validation, threads and dtype dispatch;
 * this header owns the arithmetic of one row.
 *
 * Per row, with m = max_j x_j and e_j = exp(x_j - m):
 *     loss     = sum_j y_j * (log(sum_k e_k) - (x_j - m))     (TensorFlow's form)
 *     backprop = scale * (e_j / sum_k e_k - y_j)
 * The log of a probability is never formed. Sums are accumulated in double. The
 * entry of the label (dense: of the first label over 1/2, if any) is formed from the
 * sum of the other exps where softmax - y would cancel (xent_set_aside_*).
 *
 * The scale (a reduction folded into the backprop, 1/N for a mean) costs no pass
 * of its own: e_j / sum_k e_k is formed as e_j * inv with inv = scale / sum_k e_k
 * rounded once to the row's type, and the label term as y_j * sc with sc = scale
 * rounded to it. With scale = 1, inv and sc are those of the unscaled kernel, so
 * the results are the same bits; a power of two scales both exactly, so its
 * results are exactly scale times the unscaled ones (barring under/overflow).
 * The loss and the stats do not depend on the scale.
 *
 * IEEE semantics (no -ffast-math anywhere): a NaN anywhere in the row makes
 * sum_k e_k NaN, hence the whole row NaN; +inf gives m = inf and inf - inf = NaN;
 * a row of only -inf gives -inf - -inf = NaN (as TensorFlow). A -inf logit
 * with a dense label of exactly 0 contributes 0 (the limit), not 0 * inf = NaN.
 */
#ifndef MINIGRAD_XENT_ROW_H
#define MINIGRAD_XENT_ROW_H

#include "_math.h"

/* Rows are streamed from memory; the max pass over a fresh row stalls on its
 * loads, so each row asks for the start of the next one (prefetches never
 * fault, so running past the last row is harmless). ~10% at [4096, 1000]. */
#if defined(__GNUC__)
#define XENT_PREFETCH(p) __builtin_prefetch(p)
#else
#define XENT_PREFETCH(p) ((void)0)
#endif
#define XENT_PREFETCH_ROW(T, next, n)                                           \
    for (ptrdiff_t jp = 0; jp < (n) && jp < 4096; jp += 64 / (ptrdiff_t)sizeof(T)) \
        XENT_PREFETCH((next) + jp)

/* ---- float16 <-> float32, bit exact (round to nearest even; inf, NaN and
 * subnormals kept). Used for the float16 path, which computes in float32.
 * Branch-free (every case computed, one selected), so that the block loops below
 * vectorize: a branchy version cost ~5 ns per value, 30x the float32 kernel's time
 * at [4096, 1000]. After F. Giesen's half <-> float conversions (public domain). */
static inline float xent_half_to_float(uint16_t h)
{
    uint32_t em = (uint32_t)(h & 0x7FFFu) << 13;           /* exponent and mantissa, in place */
    uint32_t exp = em & 0x0F800000u;
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t normal = em + 0x38000000u;                    /* exponent bias 15 -> 127 */
    uint32_t special = em + 0x70000000u;                   /* exponent 31 -> 255: inf, NaN payload kept */
    /* zero or subnormal: 2^-14 (1 + mant / 2^10) - 2^-14 = mant * 2^-24, exact in float */
    uint32_t sub = xent_bits_from_f32(xent_f32_from_bits(em + 0x38800000u) - 6.103515625e-05f);
    uint32_t r = exp == 0x0F800000u ? special : exp == 0 ? sub : normal;
    return xent_f32_from_bits(r | sign);
}

static inline uint16_t xent_float_to_half(float f)
{
    uint32_t u = xent_bits_from_f32(f), absu = u & 0x7FFFFFFFu, sign = (u >> 16) & 0x8000u;
    /* normal: rebias and round the 13 dropped bits to nearest even; a carry into the
     * exponent is right, up to inf for values from 65520 (the tie with 65536) */
    uint32_t normal = (absu - 0x38000000u + 0x0FFFu + ((absu >> 13) & 1u)) >> 13;
    /* below 2^-14: adding 0.5 rounds to a multiple of 2^-24 (to nearest even: the FPU's
     * own rounding); the low bits are then the half's (0x400 if it rounds up to 2^-14) */
    uint32_t sub = xent_bits_from_f32(xent_f32_from_bits(absu) + 0.5f) - 0x3F000000u;
    /* from 2^16: inf, or NaN made quiet with its top payload bits */
    uint32_t special = absu > 0x7F800000u ? 0x7E00u | ((absu >> 13) & 0x3FFu) : 0x7C00u;
    uint32_t h = absu >= 0x47800000u ? special : absu < 0x38800000u ? sub : normal;
    return (uint16_t)(h | sign);
}

/* bfloat16 bits as a type of their own (the Cython driver's fused type must tell them
 * from float16 bits); an array of it is an array of uint16. */
typedef struct { uint16_t bits; } xent_bf16;

/* ---- bfloat16 <-> float32: a bfloat16 is the high half of a float32, so widening is a
 * shift (exact, NaN payloads kept). Narrowing rounds to nearest even by adding 0x7FFF
 * plus the lowest kept bit and truncating: a carry out of the mantissa moves the
 * exponent up, up to inf for values at or past the largest bfloat16 plus half an ulp,
 * as IEEE rounding says. A NaN keeps its sign and top payload bits and is made quiet
 * (the add would carry into its exponent or turn a payload in the low half into inf). */
static inline float xent_bf16_to_float(uint16_t b)
{
    return xent_f32_from_bits((uint32_t)b << 16);
}

static inline uint16_t xent_float_to_bf16(float f)
{
    uint32_t u = xent_bits_from_f32(f);
    uint16_t rounded = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    uint16_t quiet = (uint16_t)((u >> 16) | 0x40u);
    return (u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded;
}

/* ---- the row kernels ------------------------------------------------------
 * x, y: IN, one row of logits / labels; bp: OUT, the row of backprop, times
 * scale (it first holds e_j, then is rescaled in place, so no scratch row is
 * needed); stats: OUT, the row's max and log-sum (xent_put_stats). Returns the
 * row's loss.
 *
 * Each pass runs over the whole 64-byte blocks of the row, then over the tail
 * copied into a 64-byte block padded with logit -inf and label 0, which are
 * neutral (max unchanged, e = 0, no loss). Scalar remainder loops cost ~15 ns
 * per element (measured: a row of 10 classes took 100 ns, now ~25), which
 * dominated rows of up to a few hundred classes. */

/* A valid row sums its exps to >= 1 (its max gives e^0). A sum of 0 means the row was
 * all -inf but the max reduction started its lanes at -FLT_MAX rather than -inf (clang
 * does, for `omp simd reduction(max:...)`): make that row NaN, as with gcc and TensorFlow.
 * NaN stays NaN. */
#define XENT_VALID_SUM(sum) ((sum) > 0.0 ? (sum) : (double)NAN)

/* OUT stats[0] = the row's max, stats[1] = log(sum_k e_k), both in double, so that the
 * caller can form logsumexp = m + log(sum) and -log_softmax_j = (m - x_j) + log(sum) in
 * double and round once. A row whose log-sum is NaN (a NaN or +inf logit, only -inf
 * logits) gets NaN for both, so that nothing formed from them looks like a number. */
static inline void xent_put_stats(double *restrict stats, double m, double lsum)
{
    stats[0] = lsum == lsum ? m : lsum;
    stats[1] = lsum;
}

/* The backprop of the class k set aside in the row's sum (the sparse label; for dense
 * labels, the first class whose label is over 1/2, else none), where
 * sum = others + e_k. Where softmax_k = e_k / sum is over 1/2 (e_k > others), e_k * inv
 * - y_k cancels when y_k is near it: a probability 1 - 1e-9 rounds to 1 in float32,
 * and the entry for y_k = 1 to 0 instead of -1e-9. There the entry is formed as
 * scale * (e_k (1 - y_k) - y_k others) / sum in double from the sum of the others
 * (which keeps their relative accuracy) and rounded once to T; for y_k = 1 that is
 * -scale * others / sum. Elsewhere there is no cancellation to avoid, and the entry is
 * formed as every other one is (fewer roundings when y_k is not 1), and so is the
 * entry of an infinite label (-inf where y_k = inf: the set-aside form would make
 * y_k * others = inf * 0 = NaN when the others' exps sum to 0). */
#define XENT_DEFINE_SET_ASIDE(T, SUF)                                           \
static inline T xent_set_aside_##SUF(T ek, T yk, double others, double sum,     \
                                     T inv, T sc, double scale)                 \
{                                                                               \
    if ((double)ek > others && fabs((double)yk) < INFINITY)                     \
        return (T)((((double)ek * (1.0 - (double)yk) - (double)yk * others) / sum) * scale); \
    return ek * inv - yk * sc;                                                  \
}
XENT_DEFINE_SET_ASIDE(float, f32)
XENT_DEFINE_SET_ASIDE(double, f64)

/* ---- SIMD reductions for the long rows (AVX2, AVX-512) -----------------------
 * gcc vectorizes the `reduction(max:)` and `reduction(+:)` loops below (xent_max_*,
 * xent_sum_* in XENT_DEFINE_ROWS) with one vector accumulator and then folds
 * its lanes one after another: the max pass
 * and the double sum are chains of dependent operations, and the next pass of
 * the row waits for the fold. These run four accumulators and fold them as a
 * tree (measured, [4096, 1000] float32, one thread: the row 13-19% faster with
 * AVX-512; with AVX2 the max pass 2.9x and the sum 1.3x faster). They combine the
 * same values in another order: the max is the same value, the double sum may
 * differ in its last bits. The level is chosen when the module loads
 * (xent_simd_init: the best the CPU has, at most the level asked for); level 0,
 * those loops, runs anywhere else and for the tests' comparisons. */
#define XENT_SIMD_GENERIC 0
#define XENT_SIMD_AVX2 1
#define XENT_SIMD_AVX512 2
#if defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 7) && defined(__x86_64__) \
    && !defined(MINIGRAD_NO_SIMD_REDUCTIONS)
#include <immintrin.h>
static int xent_simd_level = XENT_SIMD_GENERIC;

/* use the best level the CPU has, at most `most`; returns the level used */
static int xent_simd_init(int most)
{
    int level = XENT_SIMD_GENERIC;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        level = XENT_SIMD_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        level = XENT_SIMD_AVX512;
    xent_simd_level = level < most ? level : most;
    return xent_simd_level;
}

/* lane folds that AVX2 lacks as intrinsics (AVX-512 has _mm512_reduce_*) */
__attribute__((target("avx2,fma")))
static inline float xent_fold_max_ps256(__m256 a)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
}
__attribute__((target("avx2,fma")))
static inline double xent_fold_max_pd256(__m256d a)
{
    __m128d m = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_max_sd(m, _mm_unpackhi_pd(m, m)));
}
__attribute__((target("avx2,fma")))
static inline double xent_fold_add_pd256(__m256d a)
{
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/* xent_block_max_SUF_ISA: the max of x[0, body) and the W-long tail block xt (W = 64 bytes
 * of T; body a multiple of W), by vectors of VL. A NaN is passed over, as by
 * `x > m ? x : m`: vmaxps returns its second operand unless the first is greater, and the
 * accumulators (second) never hold a NaN.
 * xent_block_sum_SUF_ISA: the sum, in double, of e[0, body) and the tail block et, by
 * vectors of DL doubles (WIDE: DL values from p, in double). */
#define XENT_DEFINE_SIMD_REDUCTIONS(T, SUF, ISA, TARGET, V, VL, LOAD, MAX, SET1, FOLD_MAX,  \
                                    D, DL, DZERO, DADD, WIDE, FOLD_ADD)         \
__attribute__((target(TARGET)))                                                 \
static T xent_block_max_##SUF##_##ISA(const T *restrict x, ptrdiff_t body,      \
                                      const T *restrict xt)                     \
{                                                                               \
    V a0 = SET1(-INFINITY), a1 = a0, a2 = a0, a3 = a0;                          \
    ptrdiff_t i = 0;                                                            \
    for (; i + 4 * VL <= body; i += 4 * VL) {                                   \
        a0 = MAX(LOAD(x + i), a0);                                              \
        a1 = MAX(LOAD(x + i + VL), a1);                                         \
        a2 = MAX(LOAD(x + i + 2 * VL), a2);                                     \
        a3 = MAX(LOAD(x + i + 3 * VL), a3);                                     \
    }                                                                           \
    for (; i < body; i += VL) a0 = MAX(LOAD(x + i), a0);                        \
    for (i = 0; i < 64 / (ptrdiff_t)sizeof(T); i += VL) a1 = MAX(LOAD(xt + i), a1); \
    return FOLD_MAX(MAX(MAX(a0, a1), MAX(a2, a3)));                             \
}                                                                               \
                                                                                \
__attribute__((target(TARGET)))                                                 \
static double xent_block_sum_##SUF##_##ISA(const T *restrict e, ptrdiff_t body, \
                                           const T *restrict et)                \
{                                                                               \
    D a0 = DZERO(), a1 = a0, a2 = a0, a3 = a0;                                  \
    ptrdiff_t i = 0;                                                            \
    for (; i + 4 * DL <= body; i += 4 * DL) {                                   \
        a0 = DADD(a0, WIDE(e + i));                                             \
        a1 = DADD(a1, WIDE(e + i + DL));                                        \
        a2 = DADD(a2, WIDE(e + i + 2 * DL));                                    \
        a3 = DADD(a3, WIDE(e + i + 3 * DL));                                    \
    }                                                                           \
    for (; i < body; i += DL) a0 = DADD(a0, WIDE(e + i));                       \
    for (i = 0; i < 64 / (ptrdiff_t)sizeof(T); i += DL) a1 = DADD(a1, WIDE(et + i)); \
    return FOLD_ADD(DADD(DADD(a0, a1), DADD(a2, a3)));                          \
}
#define XENT_WIDE_F32_512(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
#define XENT_WIDE_F32_256(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
XENT_DEFINE_SIMD_REDUCTIONS(float, f32, avx512, "avx512f,avx512dq", __m512, 16, _mm512_loadu_ps,
                            _mm512_max_ps, _mm512_set1_ps, _mm512_reduce_max_ps, __m512d, 8,
                            _mm512_setzero_pd, _mm512_add_pd, XENT_WIDE_F32_512, _mm512_reduce_add_pd)
XENT_DEFINE_SIMD_REDUCTIONS(double, f64, avx512, "avx512f,avx512dq", __m512d, 8, _mm512_loadu_pd,
                            _mm512_max_pd, _mm512_set1_pd, _mm512_reduce_max_pd, __m512d, 8,
                            _mm512_setzero_pd, _mm512_add_pd, _mm512_loadu_pd, _mm512_reduce_add_pd)
XENT_DEFINE_SIMD_REDUCTIONS(float, f32, avx2, "avx2,fma", __m256, 8, _mm256_loadu_ps,
                            _mm256_max_ps, _mm256_set1_ps, xent_fold_max_ps256, __m256d, 4,
                            _mm256_setzero_pd, _mm256_add_pd, XENT_WIDE_F32_256, xent_fold_add_pd256)
XENT_DEFINE_SIMD_REDUCTIONS(double, f64, avx2, "avx2,fma", __m256d, 4, _mm256_loadu_pd,
                            _mm256_max_pd, _mm256_set1_pd, xent_fold_max_pd256, __m256d, 4,
                            _mm256_setzero_pd, _mm256_add_pd, _mm256_loadu_pd, xent_fold_add_pd256)
/* in xent_rowmax_* / xent_rowsum_*: return the SIMD reduction at the level chosen */
#define XENT_FAST(NAME, SUF, ...)                                               \
    if (xent_simd_level == XENT_SIMD_AVX512) return NAME##_##SUF##_avx512(__VA_ARGS__); \
    if (xent_simd_level == XENT_SIMD_AVX2) return NAME##_##SUF##_avx2(__VA_ARGS__);
#else
static int xent_simd_level = XENT_SIMD_GENERIC;
static int xent_simd_init(int most) { (void)most; return xent_simd_level; }
#define XENT_FAST(NAME, SUF, ...)
#endif

#define XENT_DEFINE_ROWS(T, SUF, EXP)                                           \
static inline T xent_max_##SUF(const T *restrict x, ptrdiff_t n, T m)           \
{                                                                               \
    XENT_SIMD_MAX(m)                                                            \
    for (ptrdiff_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;                  \
    return m;                                                                   \
}                                                                               \
                                                                                \
/* the first j with y_j > 1/2, or n: a search by blocks of 4 vectors that stops \
 * at the block holding it (a one-hot row: half the row on average; gcc reduces \
 * each block's test across its lanes, ~15 dependent ops) */                    \
static inline ptrdiff_t xent_find_##SUF(const T *restrict y, ptrdiff_t n)       \
{                                                                               \
    enum { B = 4 * 64 / sizeof(T) };                                            \
    ptrdiff_t i = 0;                                                            \
    for (; i + B <= n; i += B) {                                                \
        int hit = 0;                                                            \
        XENT_SIMD_OR(hit)                                                       \
        for (ptrdiff_t j = 0; j < B; j++) hit |= y[i + j] > (T)0.5;             \
        if (hit) break;                                                         \
    }                                                                           \
    for (; i < n; i++)                                                          \
        if (y[i] > (T)0.5) return i;                                            \
    return n;                                                                   \
}                                                                               \
                                                                                \
/* OUT e_j = exp(x_j - m) */                                                    \
static inline void xent_exp_row_##SUF(const T *restrict x, T m, T *restrict e,  \
                                      ptrdiff_t n)                              \
{                                                                               \
    XENT_SIMD                                                                   \
    for (ptrdiff_t j = 0; j < n; j++) e[j] = EXP(x[j] - m);                     \
}                                                                               \
                                                                                \
/* sum_j e_j, accumulated in double. A pass of its own over the e_j just        \
 * written (in L1): summed inside the exp loop, the conversions and adds cost   \
 * more than this pass does (measured: 0.21 against 0.16 ns per float32 logit  \
 * for the two; a tree over blocks of 64, for accuracy, made rows slower) */    \
static inline double xent_sum_##SUF(const T *restrict e, ptrdiff_t n)           \
{                                                                               \
    double sum = 0.0;                                                           \
    XENT_SIMD_SUM(sum)                                                          \
    for (ptrdiff_t j = 0; j < n; j++) sum += (double)e[j];                      \
    return sum;                                                                 \
}                                                                               \
                                                                                \
/* bp_j = e_j * inv - y_j * sc in place (inv = scale / sum, sc = scale, both    \
 * rounded to T); adds sum_j y_j and sum_j y_j (x_j - m) */                     \
static inline void xent_dense_finish_##SUF(const T *restrict x, const T *restrict y, \
    T *restrict bp, T inv, T sc, T m, ptrdiff_t n, double *ysum_io, double *ydot_io) \
{                                                                               \
    double ysum = 0.0, ydot = 0.0, md = (double)m;                              \
    /* 0 * (-inf) would be NaN: a zero label contributes its limit, 0. The      \
     * difference in double: in float32, x - m overflows for finite logits      \
     * (3e38 - -3e38) where the loss is finite (the short rows do the same).    \
     * The product is formed for every j and dropped where y_j = 0: written as  \
     * y_j != 0 ? y_j (x_j - m) : 0, gcc masks the conversions and the loop     \
     * took twice as long (measured). */                                        \
    XENT_SIMD_SUM2(ysum, ydot)                                                  \
    for (ptrdiff_t j = 0; j < n; j++) {                                         \
        const double yd = (double)y[j], term = yd * ((double)x[j] - md);        \
        bp[j] = bp[j] * inv - y[j] * sc;                                        \
        ysum += yd;                                                             \
        ydot += y[j] != 0 ? term : 0.0;                                         \
    }                                                                           \
    *ysum_io += ysum;                                                           \
    *ydot_io += ydot;                                                           \
}                                                                               \
                                                                                \
/* The dense loss term by term, sum_j y_j (lsum - (x_j - m)) in double (a zero label  \
 * contributes 0): for a row whose ysum * lsum - ydot is NaN although lsum is a       \
 * number, because an infinite label makes both products infinite (inf - inf). Term  \
 * by term the loss is +-inf, as TensorFlow and the reference give. */          \
static double xent_dense_loss_terms_##SUF(const T *restrict x, const T *restrict y, \
                                          ptrdiff_t n, double m, double lsum)   \
{                                                                               \
    double loss = 0.0;                                                          \
    for (ptrdiff_t j = 0; j < n; j++)                                           \
        if (y[j] != 0) loss += (double)y[j] * (lsum - ((double)x[j] - m));      \
    return loss;                                                                \
}                                                                               \
                                                                                \
/* the row's max and sum over the W-multiple body and the W-long tail block: the \
 * SIMD reductions at the level chosen (xent_simd_init), else the loops above */ \
static inline T xent_rowmax_##SUF(const T *restrict x, ptrdiff_t body,          \
                                  const T *restrict xt)                         \
{                                                                               \
    XENT_FAST(xent_block_max, SUF, x, body, xt)                                 \
    return xent_max_##SUF(xt, 64 / sizeof(T), xent_max_##SUF(x, body, -INFINITY)); \
}                                                                               \
                                                                                \
static inline double xent_rowsum_##SUF(const T *restrict e, ptrdiff_t body,     \
                                       const T *restrict et)                    \
{                                                                               \
    XENT_FAST(xent_block_sum, SUF, e, body, et)                                 \
    return xent_sum_##SUF(e, body) + xent_sum_##SUF(et, 64 / sizeof(T));        \
}                                                                               \
                                                                                \
static inline void xent_scale_##SUF(T *restrict bp, T inv, ptrdiff_t n)         \
{                                                                               \
    XENT_SIMD                                                                   \
    for (ptrdiff_t j = 0; j < n; j++) bp[j] = bp[j] * inv;                      \
}                                                                               \
                                                                                \
/* The row's e_j, summed with the e of class k set aside (k = n: none): OUT     \
 * *ek = e_k (its slot in bp or et zeroed), *others = sum_{j != k} e_j;         \
 * returns the row's sum, others + e_k, or NaN (XENT_VALID_SUM) */              \
static inline double xent_split_sum_##SUF(T *restrict bp, T *restrict et,       \
    ptrdiff_t body, ptrdiff_t n, ptrdiff_t k, T *ek, double *others)            \
{                                                                               \
    enum { W = 64 / sizeof(T) };                                                \
    T *slot = k < body ? bp + k : et + (k - body);  /* k = n: past the tail */  \
    *ek = k < n ? *slot : (T)0;                                                 \
    if (k < n) *slot = (T)0;                                                    \
    *others = xent_rowsum_##SUF(bp, body, et);                                  \
    return XENT_VALID_SUM(*others + (double)*ek);                               \
}                                                                               \
                                                                                \
XENT_CLONES static double xent_dense_row_##SUF(const T *restrict x,             \
    const T *restrict y, T *restrict bp, ptrdiff_t n, double scale,             \
    double *restrict stats)                                                     \
{                                                                               \
    enum { W = 64 / sizeof(T) };                                                \
    const ptrdiff_t body = n - n % W, tail = n - body;                          \
    T xt[W], yt[W], et[W], m, ek, inv, sc = (T)scale;                           \
    double sum, others, lsum, loss, ysum = 0.0, ydot = 0.0;                     \
    ptrdiff_t k;                                                                \
    for (ptrdiff_t j = 0; j < W; j++) {                                         \
        xt[j] = j < tail ? x[body + j] : -INFINITY;                             \
        yt[j] = j < tail ? y[body + j] : 0;                                     \
    }                                                                           \
    m = xent_rowmax_##SUF(x, body, xt);                                         \
    XENT_PREFETCH_ROW(T, x + n, n);                                             \
    XENT_PREFETCH_ROW(T, y + n, n);                                             \
    xent_exp_row_##SUF(x, m, bp, body);                                         \
    xent_exp_row_##SUF(xt, m, et, W);                                           \
    /* k: the first class whose label is over 1/2, or none (xent_set_aside_*) */ \
    k = xent_find_##SUF(y, body);                                               \
    k = k < body ? k : body + xent_find_##SUF(yt, W);                           \
    k = k < n ? k : n;                                                          \
    sum = xent_split_sum_##SUF(bp, et, body, n, k, &ek, &others);               \
    inv = (T)(scale / sum);                                                     \
    xent_dense_finish_##SUF(x, y, bp, inv, sc, m, body, &ysum, &ydot);          \
    xent_dense_finish_##SUF(xt, yt, et, inv, sc, m, W, &ysum, &ydot);           \
    for (ptrdiff_t j = 0; j < tail; j++) bp[body + j] = et[j];                  \
    if (k < n) bp[k] = xent_set_aside_##SUF(ek, y[k], others, sum, inv, sc, scale); \
    lsum = log(sum);                                                            \
    xent_put_stats(stats, (double)m, lsum);                                     \
    /* NaN row: log(sum) is NaN, so is the loss */                              \
    loss = ysum * lsum - ydot;                                                  \
    return loss == loss || lsum != lsum ? loss : xent_dense_loss_terms_##SUF(x, y, n, (double)m, lsum); \
}                                                                               \
                                                                                \
XENT_CLONES static double xent_sparse_row_##SUF(const T *restrict x,            \
    ptrdiff_t label, T *restrict bp, ptrdiff_t n, double scale,                 \
    double *restrict stats)                                                     \
{                                                                               \
    enum { W = 64 / sizeof(T) };                                                \
    const ptrdiff_t body = n - n % W, tail = n - body;                          \
    T xt[W], et[W], m, ek, inv, sc = (T)scale;                                  \
    double sum, others, lsum;                                                   \
    for (ptrdiff_t j = 0; j < W; j++) xt[j] = j < tail ? x[body + j] : -INFINITY; \
    m = xent_rowmax_##SUF(x, body, xt);                                         \
    XENT_PREFETCH_ROW(T, x + n, n);                                             \
    xent_exp_row_##SUF(x, m, bp, body);                                         \
    xent_exp_row_##SUF(xt, m, et, W);                                           \
    sum = xent_split_sum_##SUF(bp, et, body, n, label, &ek, &others);           \
    inv = (T)(scale / sum);                                                     \
    xent_scale_##SUF(bp, inv, body);                                            \
    xent_scale_##SUF(et, inv, W);                                               \
    for (ptrdiff_t j = 0; j < tail; j++) bp[body + j] = et[j];                  \
    bp[label] = xent_set_aside_##SUF(ek, (T)1, others, sum, inv, sc, scale);    \
    lsum = log(sum);                                                            \
    xent_put_stats(stats, (double)m, lsum);                                     \
    return lsum - ((double)x[label] - (double)m);                               \
}

XENT_DEFINE_ROWS(float, f32, xent_expf)
XENT_DEFINE_ROWS(double, f64, xent_exp)

/* ---- short rows: n <= XENT_SHORT_ROW classes, many rows per call -----------
 * Through xent_*_row_* a 10-class float32 row took 40 ns (float64: 100):
 * the call and its ifunc dispatch, the body/tail/prefetch set-up, a W-long
 * in-order double sum and a call to glibc's log (12 ns) per row. Here the
 * rows loop is inside one clone; a row is loaded once into a padded block of
 * W = 16 lanes (one 64-byte block of floats, two of doubles; logit -inf and
 * label 0 past n), every pass is one vector op over it, the sums are
 * pairwise, and the logs of 32 rows' sums are taken together by the
 * vectorized xent_log. Per row, any n <= 16 (measured): sparse ~16 ns
 * float32, ~22 float64; dense ~18 and ~24.
 *
 * Rows are contiguous, so away from the end of the rows given, the W elements
 * from a row's start lie inside the array: they are read whole and the lanes
 * past n replaced, and the backprop is stored as a whole block too. Its lanes
 * past n land on the next rows' backprop, which those rows then overwrite
 * (rows go in order). The last rows, whose block would cross `rows * n`
 * (another thread's rows or the end of the array), are copied in and out
 * element by element instead.
 *
 * Dense and sparse rows share everything but how the label block is formed:
 * the labels row itself, or a one-hot block for a class index. That hook also
 * gives the row's loss as ysum * log(sum) - shift: dense, ysum = sum_j y_j
 * and shift = sum_j y_j (x_j - m), both in double (a zero label contributes 0,
 * also at a -inf logit); sparse, ysum = 1 and shift = x_label - m, so the loss
 * is log(sum) - shift exactly. The arithmetic per row is otherwise that of
 * xent_*_row_* (the sums' order aside). A sparse label outside [0, n) leaves
 * its row alone (loss NaN) and is counted in the return value. */
#define XENT_SHORT_ROW 16
#define XENT_SHORT_GROUP 32

/* pairwise by halves: gcc sums a reduction loop this short in order, W
 * dependent adds (measured: a third of the row's time) */
static inline double xent_short_sum(double *restrict s)
{
    for (ptrdiff_t h = XENT_SHORT_ROW / 2; h > 0; h /= 2) {
        XENT_SIMD
        for (ptrdiff_t j = 0; j < h; j++) s[j] += s[j + h];
    }
    return s[0];
}

#define XENT_DEFINE_SHORT_HELPERS(T, SUF, EXP)                                  \
/* OUT t = the W elements from src, lanes past n set to fill */                 \
static inline void xent_short_load_##SUF(T *restrict t, const T *restrict src,  \
                                         ptrdiff_t n, int whole, T fill)        \
{                                                                               \
    if (whole) {                                                                \
        XENT_SIMD                                                               \
        for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) {                        \
            T v = src[j];                                                       \
            t[j] = j < n ? v : fill;                                            \
        }                                                                       \
    } else {                                                                    \
        for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) t[j] = j < n ? src[j] : fill; \
    }                                                                           \
}                                                                               \
                                                                                \
static inline void xent_short_store_##SUF(T *restrict dst, const T *restrict t, \
                                          ptrdiff_t n, int whole)               \
{                                                                               \
    if (whole) {                                                                \
        XENT_SIMD                                                               \
        for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) dst[j] = t[j];           \
    } else {                                                                    \
        for (ptrdiff_t j = 0; j < n; j++) dst[j] = t[j];                        \
    }                                                                           \
}                                                                               \
                                                                                \
static inline T xent_short_max_##SUF(const T *restrict t)                       \
{                                                                               \
    T m = -INFINITY;                                                            \
    XENT_SIMD_MAX(m)                                                            \
    for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) m = t[j] > m ? t[j] : m;     \
    return m;                                                                   \
}                                                                               \
                                                                                \
/* IN t = logits block, OUT t = backprop, scale * (softmax - y), formed as in     \
 * xent_dense_finish_*, but for class k, which is set aside in the sum and      \
 * formed by xent_set_aside_*, as in the long rows (k = W: none); returns the   \
 * sum of the e_j */                                                            \
static inline double xent_short_backprop_##SUF(T *restrict t, const T *restrict y, T m, \
                                               double scale, ptrdiff_t k)       \
{                                                                               \
    double s[XENT_SHORT_ROW], sum;                                              \
    T inv, sc = (T)scale, ek;                                                   \
    XENT_SIMD                                                                   \
    for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) {                            \
        t[j] = EXP(t[j] - m);                                                   \
        s[j] = j == k ? 0.0 : (double)t[j];                                     \
    }                                                                           \
    ek = k < XENT_SHORT_ROW ? t[k] : (T)0;                                      \
    xent_short_sum(s);                                                          \
    sum = XENT_VALID_SUM(s[0] + (double)ek);                                    \
    inv = (T)(scale / sum);                                                     \
    XENT_SIMD                                                                   \
    for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) t[j] = t[j] * inv - y[j] * sc; \
    if (k < XENT_SHORT_ROW) t[k] = xent_set_aside_##SUF(ek, y[k], s[0], sum, inv, sc, scale); \
    return sum;                                                                 \
}                                                                               \
                                                                                \
/* label hook, dense: OUT y = the labels row, *k = the first class whose label is \
 * over 1/2, else W; always a valid row */                                      \
static inline int xent_dense_short_labels_##SUF(const T *restrict labels,       \
    ptrdiff_t i, ptrdiff_t n, int whole, const T *restrict t, T m,              \
    T *restrict y, double *ysum, double *shift, ptrdiff_t *k)                   \
{                                                                               \
    double ys[XENT_SHORT_ROW], yd[XENT_SHORT_ROW];                              \
    int first = XENT_SHORT_ROW;                                                 \
    xent_short_load_##SUF(y, labels + i * n, n, whole, (T)0);                   \
    XENT_SIMD_MIN(first)                                                        \
    for (int j = 0; j < XENT_SHORT_ROW; j++) first = y[j] > (T)0.5 && j < first ? j : first; \
    *k = first;                 /* lanes past n hold label 0 */                 \
    XENT_SIMD                                                                   \
    for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) {                            \
        const double term = (double)y[j] * ((double)t[j] - (double)m);          \
        ys[j] = (double)y[j];                                                   \
        /* 0 * (-inf) would be NaN: a zero label contributes its limit, 0       \
         * (the product formed for every j, as in xent_dense_finish_*) */       \
        yd[j] = y[j] != 0 ? term : 0.0;                                         \
    }                                                                           \
    *ysum = xent_short_sum(ys);                                                 \
    *shift = xent_short_sum(yd);                                                \
    return 1;                                                                   \
}

/* row i's loss term by term (the dense rows' xent_dense_loss_terms_*) */
#define XENT_DEFINE_DENSE_SHORT_TERMS(T, SUF)                                   \
static inline double xent_dense_short_terms_##SUF(const T *restrict x,          \
    const T *restrict labels, ptrdiff_t i, ptrdiff_t n, double m, double lsum)  \
{                                                                               \
    return xent_dense_loss_terms_##SUF(x + i * n, labels + i * n, n, m, lsum);  \
}
XENT_DEFINE_DENSE_SHORT_TERMS(float, f32)
XENT_DEFINE_DENSE_SHORT_TERMS(double, f64)

/* label hook, sparse: OUT y = one-hot block of the class index; 0 if it is out of range */
#define XENT_DEFINE_SPARSE_SHORT_LABELS(T, SUF, I, ISUF)                        \
static inline int xent_sparse_short_labels_##SUF##_##ISUF(const I *restrict labels, \
    ptrdiff_t i, ptrdiff_t n, int whole, const T *restrict t, T m,              \
    T *restrict y, double *ysum, double *shift, ptrdiff_t *k)                   \
{                                                                               \
    const ptrdiff_t label = (ptrdiff_t)labels[i];                               \
    (void)whole;                                                                \
    if (label < 0 || label >= n) return 0;                                      \
    *k = label;                                                                 \
    XENT_SIMD                                                                   \
    for (ptrdiff_t j = 0; j < XENT_SHORT_ROW; j++) y[j] = j == label ? (T)1 : (T)0; \
    *ysum = 1.0;                                                                \
    *shift = (double)t[label] - (double)m;                                      \
    return 1;                                                                   \
}                                                                               \
                                                                                \
/* row i's loss term by term: lsum - (x_label - m), as the rows loop forms it */ \
static inline double xent_sparse_short_terms_##SUF##_##ISUF(const T *restrict x, \
    const I *restrict labels, ptrdiff_t i, ptrdiff_t n, double m, double lsum)  \
{                                                                               \
    return lsum - ((double)x[i * n + (ptrdiff_t)labels[i]] - m);                \
}

/* xent_KIND_short_rows_SUF[_ISUF]: returns how many rows the label hook refused (their
 * loss and stats are NaN, their backprop is not written) */
#define XENT_DEFINE_SHORT_ROWS(KIND, T, SUF, LABEL_T, LSUF)                     \
XENT_CLONES static ptrdiff_t xent_##KIND##_short_rows_##SUF##LSUF(              \
    const T *restrict x, const LABEL_T *restrict labels, T *restrict loss,      \
    T *restrict bp, double scale, double *restrict stats, ptrdiff_t rows,       \
    ptrdiff_t n)                                                                \
{                                                                               \
    enum { W = XENT_SHORT_ROW, G = XENT_SHORT_GROUP };                          \
    ptrdiff_t bad = 0;                                                          \
    for (ptrdiff_t i0 = 0; i0 < rows; i0 += G) {                                \
        /* per row of the group: loss = ysum * log(sum) - shift; logs once per group */ \
        double sums[G], ysums[G], shifts[G], logs[G], maxes[G];                 \
        for (ptrdiff_t g = 0; g < G; g++) { sums[g] = 1.0; ysums[g] = 1.0; shifts[g] = 0.0; } \
        for (ptrdiff_t g = 0; g < G && i0 + g < rows; g++) {                    \
            const ptrdiff_t i = i0 + g;                                         \
            const int whole = i * n + W <= rows * n;                            \
            T t[W], y[W], m;                                                    \
            ptrdiff_t k;                                                        \
            xent_short_load_##SUF(t, x + i * n, n, whole, -INFINITY);           \
            m = xent_short_max_##SUF(t);                                        \
            maxes[g] = (double)m;                                               \
            if (!xent_##KIND##_short_labels_##SUF##LSUF(labels, i, n, whole, t, m, y, \
                                                        &ysums[g], &shifts[g], &k)) { \
                sums[g] = NAN;          /* loss and stats NaN */                \
                bad++;                                                          \
                continue;                                                       \
            }                                                                   \
            sums[g] = xent_short_backprop_##SUF(t, y, m, scale, k);             \
            xent_short_store_##SUF(bp + i * n, t, n, whole);                    \
        }                                                                       \
        XENT_SIMD                                                               \
        for (ptrdiff_t g = 0; g < G; g++) logs[g] = xent_log(sums[g]);          \
        /* a plain trip count, so that this loop vectorizes too */              \
        XENT_SIMD                                                               \
        for (ptrdiff_t g = 0; g < (rows - i0 < G ? rows - i0 : G); g++) {       \
            loss[i0 + g] = (T)(ysums[g] * logs[g] - shifts[g]);                 \
            xent_put_stats(stats + 2 * (i0 + g), maxes[g], logs[g]);            \
        }                                                                       \
        /* a NaN loss of a row that is not NaN (an infinite dense label): term by term */ \
        for (ptrdiff_t g = 0; g < G && i0 + g < rows; g++)                      \
            if (loss[i0 + g] != loss[i0 + g] && logs[g] == logs[g])             \
                loss[i0 + g] = (T)xent_##KIND##_short_terms_##SUF##LSUF(x, labels, i0 + g, n, \
                                                                       maxes[g], logs[g]); \
    }                                                                           \
    return bad;                                                                 \
}

XENT_DEFINE_SHORT_HELPERS(float, f32, xent_expf)
XENT_DEFINE_SHORT_HELPERS(double, f64, xent_exp)
XENT_DEFINE_SPARSE_SHORT_LABELS(float, f32, int32_t, i32)
XENT_DEFINE_SPARSE_SHORT_LABELS(float, f32, int64_t, i64)
XENT_DEFINE_SPARSE_SHORT_LABELS(double, f64, int32_t, i32)
XENT_DEFINE_SPARSE_SHORT_LABELS(double, f64, int64_t, i64)
XENT_DEFINE_SHORT_ROWS(dense, float, f32, float, )
XENT_DEFINE_SHORT_ROWS(dense, double, f64, double, )
XENT_DEFINE_SHORT_ROWS(sparse, float, f32, int32_t, _i32)
XENT_DEFINE_SHORT_ROWS(sparse, float, f32, int64_t, _i64)
XENT_DEFINE_SHORT_ROWS(sparse, double, f64, int32_t, _i32)
XENT_DEFINE_SHORT_ROWS(sparse, double, f64, int64_t, _i64)

/* OUT dst[j] = F(src[j]) over an array, in one clone */
#define XENT_DEFINE_MAP(NAME, IN, OUT, F)                                       \
XENT_CLONES static void NAME(const IN *restrict src, OUT *restrict dst, ptrdiff_t n) \
{                                                                               \
    XENT_SIMD                                                                   \
    for (ptrdiff_t j = 0; j < n; j++) dst[j] = F(src[j]);                       \
}

/* ---- float16 and bfloat16 rows: widened into float32 scratch by blocks of rows, run
 * through the float32 rows code above (short or long, as float32 rows would be: the same
 * results, then rounded once), narrowed back. The loops are per block, not per element
 * inside the row code, so the float32 code stays as it is. */
XENT_DEFINE_MAP(xent_widen_f16, uint16_t, float, xent_half_to_float)
XENT_DEFINE_MAP(xent_narrow_f16, float, uint16_t, xent_float_to_half)
XENT_DEFINE_MAP(xent_widen_bf16, uint16_t, float, xent_bf16_to_float)
XENT_DEFINE_MAP(xent_narrow_bf16, float, uint16_t, xent_float_to_bf16)

/* ---- the exp and the log over an array, for the test shims in _xent.pyx: in the clone
 * the kernels run in, so that the tests measure the arithmetic the kernels use (the
 * x86-64-v3/v4 clones contract multiply-adds, the baseline one does not). */
XENT_DEFINE_MAP(xent_exp_block_f32, float, float, xent_expf)
XENT_DEFINE_MAP(xent_exp_block_f64, double, double, xent_exp)
XENT_DEFINE_MAP(xent_log_block, double, double, xent_log)

#endif /* MINIGRAD_XENT_ROW_H */
