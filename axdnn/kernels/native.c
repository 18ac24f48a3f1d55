/* axdnn native product-table kernels: exact table convolution/matmul on the CPU.
 *
 * Loaded by axdnn/kernels/native.py, which compiles this file once per machine with the host's
 * best instruction set (-march=native) and calls it through ctypes (the GIL is released).
 *
 * The MAC kernel keeps a tile of P output pixels x OB output channels in vector registers. For
 * every reduction position ("tap") k it reads each pixel's activation index a and adds the row
 * slab[k][a][0..OB) of table values T[a, w[o, k]], built once per call from the weights: one
 * vector add per OB/LANES channels and pixel, no scalar lookups. The slab holds T - base as
 * uint16 when the table spans at most 65535 (every 8-bit multiplier), else int32. Taps are
 * processed in cache-sized blocks; register sums are flushed per block into an int32 buffer when
 * no sum of K slab entries can pass 2^31 (16-bit slabs and K up to 32768, or 65535 for signed
 * ones), else into an int64 buffer, with blocks short enough that the int32 registers cannot
 * overflow (int32 slabs, and longer reductions). The column kernel flushes its int32 registers
 * into int64 sums the same way, and the direct kernel sums in int64. A direct scalar kernel serves
 * depthwise or tiny problems, where building slabs would cost more than the lookups.
 *
 * Results are exact integers: acc[n, o, p] = sum_k T[x_k, w[o, k]] - zw[o] * Sx[n, g, p] - zx * sw[o]
 * where Sx = sum_k (code(x_k) - zx) comes from per-plane channel sums D (computed while the input
 * is quantized or padded) and sw[o] = sum_k code(w[o, k]); without zero points zw = zx = 0.
 * Float outputs are (float)clamp(acc) * scale[o] in IEEE single precision with no contraction,
 * matching torch's `acc.to(float32) * scale` bit for bit.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define LANES 16
typedef __m512i vec;
static inline vec v_zero(void) { return _mm512_setzero_si512(); }
static inline vec v_add_u16(vec a, const uint16_t *p) {
    return _mm512_add_epi32(a, _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)));
}
static inline vec v_add_i32(vec a, const int32_t *p) {
    return _mm512_add_epi32(a, _mm512_loadu_si512((const void *)p));
}
static inline void v_store(int32_t *p, vec a) { _mm512_storeu_si512((void *)p, a); }
static inline vec v_load(const int32_t *p) { return _mm512_loadu_si512((const void *)p); }
#define TILE_PIXELS_1 16
#define TILE_PIXELS_2 8
#define TILE_PIXELS_4 6
#elif defined(__AVX2__)
#include <immintrin.h>
#define LANES 8
typedef __m256i vec;
static inline vec v_zero(void) { return _mm256_setzero_si256(); }
static inline vec v_add_u16(vec a, const uint16_t *p) {
    return _mm256_add_epi32(a, _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)));
}
static inline vec v_add_i32(vec a, const int32_t *p) {
    return _mm256_add_epi32(a, _mm256_loadu_si256((const __m256i *)p));
}
static inline void v_store(int32_t *p, vec a) { _mm256_storeu_si256((__m256i *)p, a); }
static inline vec v_load(const int32_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
#define TILE_PIXELS_1 12
#define TILE_PIXELS_2 6
#define TILE_PIXELS_4 3
#else
#define LANES 4
typedef struct { int32_t v[4]; } vec;
static inline vec v_zero(void) { vec a = {{0, 0, 0, 0}}; return a; }
static inline vec v_add_u16(vec a, const uint16_t *p) {
    for (int i = 0; i < 4; i++) a.v[i] += p[i];
    return a;
}
static inline vec v_add_i32(vec a, const int32_t *p) {
    for (int i = 0; i < 4; i++) a.v[i] += p[i];
    return a;
}
static inline void v_store(int32_t *p, vec a) { memcpy(p, a.v, sizeof a.v); }
static inline vec v_load(const int32_t *p) { vec a; memcpy(a.v, p, sizeof a.v); return a; }
#define TILE_PIXELS_1 8
#define TILE_PIXELS_2 4
#define TILE_PIXELS_4 2
#endif

enum { KERNEL_SLAB = 0, KERNEL_DIRECT = 1, KERNEL_COLUMN = 2 };

/* Bytes of one block of slab taps (about the L2 cache) and budgets for whole-reduction slabs
 * kept across image chunks and for accumulator buffers. */
#define BLOCK_BYTES (768 << 10)
#define SLAB_BUDGET (24 << 20)
#define ACC_BUDGET (2 << 20)

int axn_lanes(void) { return LANES; }

/* ------------------------------------------------------------------------------------------ */
/* threads: one parallel region = `ntasks` tasks shared by `nthreads` workers. With OpenMP the
 * regions run on the process's OpenMP runtime, which is torch's own when torch is loaded (the
 * library is found by its soname): the same worker threads, so no oversubscription by torch's
 * workers still spinning after an op. Without OpenMP, plain pthreads. */

typedef void (*task_fn)(void *ctx, int64_t task, int worker);

#ifdef _OPENMP
#include <omp.h>
/* Tasks are handed out one at a time (uneven tasks: MAC blocks), or when `many` (thousands of
 * small, even tasks writing neighbouring memory) in one contiguous range per thread. */
static void parallel_tasks(task_fn fn, void *ctx, int64_t ntasks, int nthreads, int many) {
    if (nthreads > ntasks) nthreads = (int)ntasks;
    if (nthreads <= 1) {
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    if (many) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, omp_get_thread_num());
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, omp_get_thread_num());
}
#define parallel(fn, ctx, ntasks, nthreads) parallel_tasks(fn, ctx, ntasks, nthreads, 0)
#define parallel_many(fn, ctx, ntasks, nthreads) parallel_tasks(fn, ctx, ntasks, nthreads, 1)
#else
typedef struct {
    task_fn fn;
    void *ctx;
    int64_t ntasks;
    int64_t next;
    pthread_mutex_t lock;
} region;

typedef struct {
    region *r;
    int worker;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *w = (worker_arg *)arg;
    region *r = w->r;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int64_t t = r->next++;
        pthread_mutex_unlock(&r->lock);
        if (t >= r->ntasks) break;
        r->fn(r->ctx, t, w->worker);
    }
    return NULL;
}

static void parallel(task_fn fn, void *ctx, int64_t ntasks, int nthreads) {
    if (nthreads > ntasks) nthreads = (int)ntasks;
    if (nthreads <= 1) {
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    region r = {fn, ctx, ntasks, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t threads[64];
    worker_arg args[64];
    if (nthreads > 64) nthreads = 64;
    int started = 0;
    for (int i = 1; i < nthreads; i++) {
        args[i].r = &r;
        args[i].worker = i;
        if (pthread_create(&threads[i], NULL, worker_main, &args[i]) != 0) break;
        started = i;
    }
    args[0].r = &r;
    args[0].worker = 0;
    worker_main(&args[0]);
    for (int i = 1; i <= started; i++) pthread_join(threads[i], NULL);
}
#define parallel_many parallel
#endif

/* ------------------------------------------------------------------------------------------ */
/* input preparation: quantize (float) or copy (indices) into a padded uint8 index tensor and
 * sum (code - zx) over each group's channels per padded pixel (D, for the zero-point term). */

typedef struct {
    const float *xf;      /* float input (N, C, H, W), or NULL */
    const uint8_t *xi;    /* index input (N, C, H, W), or NULL */
    int64_t N;
    int C, H, W, ph, pw, G;
    float scale, zero, qmin, qmax; /* code = clamp(rint(x / scale) + zero, qmin, qmax) */
    int32_t mask;                  /* index = code & mask */
    int pad_index;
    int rows;                      /* table rows: index -> code is index, or index - rows if signed */
    int a_signed;
    int32_t zx;
    uint8_t *xp; /* out: (N, C, H + 2ph, W + 2pw) */
    int32_t *D;  /* out: (N, G, Hp, Wp) or NULL */
} prep_args;

static void quantize_plane(const float *restrict src, uint8_t *restrict dst, int64_t len,
                           float scale, float zero, float qmin, float qmax, int32_t mask) {
    for (int64_t i = 0; i < len; i++) {
        float q = rintf(src[i] / scale) + zero;
        q = q >= qmin ? q : qmin; /* NaN -> qmin */
        q = q <= qmax ? q : qmax;
        dst[i] = (uint8_t)((int32_t)q & mask);
    }
}

/* D[i] += code(idx[i]) - zx */
static void add_centred(const uint8_t *restrict idx, int32_t *restrict D, int64_t len, int rows,
                        int is_signed, int32_t zx) {
    const int32_t half = is_signed ? rows / 2 : rows, wrap = is_signed ? rows : 0;
    for (int64_t i = 0; i < len; i++) {
        const int32_t v = idx[i];
        D[i] += (v >= half ? v - wrap : v) - zx;
    }
}

static void prep_task(void *ctx, int64_t n, int worker) {
    (void)worker;
    const prep_args *a = (const prep_args *)ctx;
    const int H = a->H, W = a->W, ph = a->ph, pw = a->pw, C = a->C, cg = C / a->G;
    const int Wp = W + 2 * pw;
    const int64_t plane = (int64_t)(H + 2 * ph) * Wp, hw = (int64_t)H * W;
    uint8_t *codes = a->xf ? malloc((size_t)hw) : NULL;
    int32_t *dsum = a->D ? malloc(sizeof(int32_t) * hw) : NULL;
    if ((a->xf && !codes) || (a->D && !dsum)) goto done;
    for (int c = 0; c < C; c++) {
        const int64_t src = (n * C + c) * hw;
        const uint8_t *idx = a->xi ? a->xi + src : codes;
        if (a->xf)
            quantize_plane(a->xf + src, codes, hw, a->scale, a->zero, a->qmin, a->qmax, a->mask);
        uint8_t *dst = a->xp + (n * C + c) * plane;
        if (ph || pw) memset(dst, a->pad_index, (size_t)plane);
        for (int y = 0; y < H; y++) memcpy(dst + (y + ph) * Wp + pw, idx + (int64_t)y * W, W);
        if (!dsum) continue;
        if (c % cg == 0) memset(dsum, 0, sizeof(int32_t) * hw);
        add_centred(idx, dsum, hw, a->rows, a->a_signed, a->zx);
        if (c % cg == cg - 1) { /* the group's sums into the padded D plane (border: 0) */
            int32_t *D = a->D + (n * a->G + c / cg) * plane;
            memset(D, 0, sizeof(int32_t) * plane);
            for (int y = 0; y < H; y++)
                memcpy(D + (y + ph) * Wp + pw, dsum + (int64_t)y * W, sizeof(int32_t) * W);
        }
    }
done:
    free(codes);
    free(dsum);
}

void axn_prepare(const prep_args *a, int nthreads) {
    parallel_many(prep_task, (void *)a, a->N, nthreads);
}

/* ------------------------------------------------------------------------------------------ */
/* the MAC */

typedef struct {
    const uint8_t *xp;       /* padded indices */
    int64_t img_stride;      /* elements per image of xp */
    int64_t grp_stride;      /* elements per group of xp */
    int64_t N;
    int G, og, K;            /* groups, output channels per group, taps per output */
    const int64_t *pix;      /* npix_pad pixel offsets within an (image, group) (output order) */
    const int64_t *dpix;     /* npix pixel offsets within a D plane */
    int npix, npix_pad;
    const int32_t *tap;      /* K tap offsets within a group */
    const int32_t *w;        /* (G * og, K) table column per output channel and tap, or NULL */
    const uint8_t *w8;       /* the same as bytes (tables of at most 256 columns), or NULL */
    const uint16_t *t16;     /* table - base as uint16 (rows x cols, +2 slack), or NULL */
    const uint16_t *tt16;    /* its transpose, each column padded to 256 entries, or NULL */
    const int32_t *t32;      /* table as int32 (rows x cols) */
    int rows, cols;
    int64_t base;            /* t16 = table - base */
    int64_t maxabs;          /* max |table| (int32 slabs) */
    const int64_t *zw;       /* per output channel weight zero point, or NULL: no zw term */
    int64_t zx;
    const int64_t *sw;       /* per output channel sum of weight codes, or NULL: no zx term */
    const int32_t *D;        /* (N, G, plane) channel sums of (code - zx) (slab kernel, zw) */
    int a_signed;            /* activation indices read as two's complement (direct kernel) */
    int64_t plane;
    const int64_t *spat;     /* nspat spatial tap offsets within a plane (box sum of D) */
    int nspat;
    int out_float;           /* 0: int64 out; 1: float32 out */
    void *out;
    int64_t o_img, o_ch, o_pix; /* output strides (elements) */
    const float *scale;      /* per output channel (float out) */
    int saturate;
    int64_t lo, hi;
    int OB, P;               /* lanes per slab row, pixels per tile */
    int kernel;              /* KERNEL_SLAB, KERNEL_DIRECT or KERNEL_COLUMN */
    int acc32;               /* every finished value and term fits int32 (the caller's bound) */
    int64_t img_parts;       /* image ranges per channel block (slab kernel tasks) */
    const uint8_t *tb8;      /* per column: low bytes of tt16's 256 entries, then high bytes */
} mac_args;

static inline int32_t weight_at(const mac_args *a, int64_t o, int k) {
    return a->w8 ? a->w8[o * a->K + k] : a->w[o * a->K + k];
}

/* Sx of one output pixel: box sum of D over the receptive field. */
static inline int64_t pixel_sx(const mac_args *a, int64_t n, int g, int p) {
    if (!a->zw) return 0;
    const int32_t *D = a->D + (n * a->G + g) * a->plane + a->dpix[p];
    int64_t s = 0;
    for (int i = 0; i < a->nspat; i++) s += D[a->spat[i]];
    return s;
}

/* Writes outputs (image n; channels o0..o0+nq; pixels p0..p0+pn) from accumulators
 * acc[p * stride + q] (int32, or int64 when `wide`) plus `bias`: the zero-point terms, then
 * saturation and scale for float outputs; sx[p] is pixel p0 + p's sum of (code - zx). `tmp` and
 * `ftmp` hold FIN_PIXELS * stride values. */
#define FIN_PIXELS 16
/* The common case in int32 arithmetic (exact under the caller's bound): float outputs with
 * unit pixel stride from int32 sums; loops the compiler vectorizes. */
static void finish32(const mac_args *a, int64_t n, int o0, int nq, const int32_t *acc, int stride,
                     int64_t bias, int p0, int pn, const int64_t *sx) {
    enum { BLOCK = 256 };
    int32_t s32[BLOCK];
    const int sat = a->saturate && a->lo > INT32_MIN && a->hi < INT32_MAX;
    const int32_t lo = sat ? (int32_t)a->lo : 0, hi = sat ? (int32_t)a->hi : 0;
    for (int b = 0; b < pn; b += BLOCK) {
        const int bn = pn - b < BLOCK ? pn - b : BLOCK;
        for (int p = 0; p < bn; p++) s32[p] = (int32_t)sx[b + p];
        for (int q = 0; q < nq; q++) {
            const int o = o0 + q;
            const int32_t c = (int32_t)(bias - (a->sw ? a->zx * a->sw[o] : 0));
            const int32_t zw = a->zw ? (int32_t)a->zw[o] : 0;
            const float sc = a->scale[o];
            const int32_t *restrict src = acc + (int64_t)b * stride + q;
            float *restrict dst = (float *)a->out + n * a->o_img + (int64_t)o * a->o_ch + p0 + b;
            if (sat)
                for (int p = 0; p < bn; p++) {
                    int32_t v = src[p * stride] + c - zw * s32[p];
                    v = v < lo ? lo : (v > hi ? hi : v);
                    dst[p] = (float)v * sc;
                }
            else
                for (int p = 0; p < bn; p++) dst[p] = (float)(src[p * stride] + c - zw * s32[p]) * sc;
        }
    }
}

static void finish(const mac_args *a, int64_t n, int o0, int nq, const void *acc,
                   int stride, int wide, int64_t bias, int p0, int pn, const int64_t *sx,
                   int64_t *tmp, float *ftmp) {
    if (a->acc32 && a->out_float && !wide && a->o_pix == 1) {
        finish32(a, n, o0, nq, (const int32_t *)acc, stride, bias, p0, pn, sx);
        return;
    }
    const int64_t lo = a->lo, hi = a->hi, zx = a->zx;
    for (int b = 0; b < pn; b += FIN_PIXELS) {
        const int bn = pn - b < FIN_PIXELS ? pn - b : FIN_PIXELS;
        for (int p = 0; p < bn; p++) {
            const int64_t sxp = sx[b + p];
            const int64_t at = (int64_t)(b + p) * stride;
            int64_t *t = tmp + (int64_t)p * stride;
            for (int q = 0; q < nq; q++)
                t[q] = (wide ? ((const int64_t *)acc)[at + q] : ((const int32_t *)acc)[at + q]) +
                       bias;
            if (a->zw)
                for (int q = 0; q < nq; q++) t[q] -= a->zw[o0 + q] * sxp;
            if (a->sw)
                for (int q = 0; q < nq; q++) t[q] -= zx * a->sw[o0 + q];
            if (a->out_float && a->saturate)
                for (int q = 0; q < nq; q++) t[q] = t[q] < lo ? lo : (t[q] > hi ? hi : t[q]);
            if (a->out_float) { /* rounded to single, then the product: like torch */
                float *f = ftmp + (int64_t)p * stride;
                for (int q = 0; q < nq; q++) f[q] = (float)t[q] * a->scale[o0 + q];
            }
        }
        for (int q = 0; q < nq; q++) {
            const int64_t at = n * a->o_img + (int64_t)(o0 + q) * a->o_ch +
                               (int64_t)(p0 + b) * a->o_pix;
            if (a->out_float) {
                float *dst = (float *)a->out + at;
                for (int p = 0; p < bn; p++) dst[p * a->o_pix] = ftmp[(int64_t)p * stride + q];
            } else {
                int64_t *dst = (int64_t *)a->out + at;
                for (int p = 0; p < bn; p++) dst[p * a->o_pix] = tmp[(int64_t)p * stride + q];
            }
        }
    }
}

/* acc[p][v] (+)= sum over taps of slab rows; `init`: start from the values in `out` */
#define TILE(NAME, NV, P, SLAB_T, VADD)                                                           \
    static void NAME(const uint8_t *x, const int64_t *off, const int32_t *tap, int ntap,          \
                     const SLAB_T *slab, int rows, int32_t *out, int init) {                       \
        vec acc[P][NV];                                                                            \
        const uint8_t *xs[P];                                                                      \
        for (int p = 0; p < P; p++) {                                                              \
            xs[p] = x + off[p];                                                                    \
            for (int v = 0; v < NV; v++)                                                           \
                acc[p][v] = init ? v_load(out + (p * NV + v) * LANES) : v_zero();                 \
        }                                                                                          \
        const size_t row = (size_t)NV * LANES;                                                     \
        for (int k = 0; k < ntap; k++) {                                                           \
            const SLAB_T *s = slab + (size_t)k * rows * row;                                       \
            const int32_t t = tap[k];                                                              \
            for (int p = 0; p < P; p++) {                                                          \
                const SLAB_T *r = s + (size_t)xs[p][t] * row;                                      \
                for (int v = 0; v < NV; v++) acc[p][v] = VADD(acc[p][v], r + v * LANES);           \
            }                                                                                      \
        }                                                                                          \
        for (int p = 0; p < P; p++)                                                                \
            for (int v = 0; v < NV; v++) v_store(out + (p * NV + v) * LANES, acc[p][v]);           \
    }

TILE(tile16_1, 1, TILE_PIXELS_1, uint16_t, v_add_u16)
TILE(tile16_2, 2, TILE_PIXELS_2, uint16_t, v_add_u16)
TILE(tile16_4, 4, TILE_PIXELS_4, uint16_t, v_add_u16)
TILE(tile32_1, 1, TILE_PIXELS_1, int32_t, v_add_i32)
TILE(tile32_2, 2, TILE_PIXELS_2, int32_t, v_add_i32)
TILE(tile32_4, 4, TILE_PIXELS_4, int32_t, v_add_i32)

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
/* Two-register rows (32 channels) of *signed* 16-bit slab entries (T - base - 32768), summed by
 * VNNI word dot products against (1, 0) and (0, 1) patterns: even and odd channels go to two
 * int32 accumulators straight from the loaded row, with no zero-extension shuffles. The lanes
 * are interleaved back when the tile is stored. */
#define SIGNED_SLAB_VECTORS 2
static void tile16s_2(const uint8_t *x, const int64_t *off, const int32_t *tap, int ntap,
                      const int16_t *slab, int rows, int32_t *out, int init) {
    enum { P = TILE_PIXELS_2 };
    const __m512i even = _mm512_set1_epi32(1), odd = _mm512_set1_epi32(1 << 16);
    __m512i ae[P], ao[P];
    const uint8_t *xs[P];
    for (int p = 0; p < P; p++) {
        xs[p] = x + off[p];
        ae[p] = ao[p] = _mm512_setzero_si512();
    }
    for (int k = 0; k < ntap; k++) {
        const int16_t *s = slab + (size_t)k * rows * 32;
        const int32_t t = tap[k];
        for (int p = 0; p < P; p++) {
            const __m512i r = _mm512_loadu_si512((const void *)(s + (size_t)xs[p][t] * 32));
            ae[p] = _mm512_dpwssd_epi32(ae[p], r, even);
            ao[p] = _mm512_dpwssd_epi32(ao[p], r, odd);
        }
    }
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15,
                                         31);
    for (int p = 0; p < P; p++) {
        __m512i v0 = _mm512_permutex2var_epi32(ae[p], lo, ao[p]);
        __m512i v1 = _mm512_permutex2var_epi32(ae[p], hi, ao[p]);
        int32_t *dst = out + p * 32;
        if (init) {
            v0 = _mm512_add_epi32(v0, _mm512_loadu_si512((const void *)dst));
            v1 = _mm512_add_epi32(v1, _mm512_loadu_si512((const void *)(dst + 16)));
        }
        _mm512_storeu_si512((void *)dst, v0);
        _mm512_storeu_si512((void *)(dst + 16), v1);
    }
}
/* One-register rows (16 channels): two pixels' rows share a register (one 32-byte load and one
 * insert), summed the same way; lanes 0-7 hold the first pixel's even / odd channels. */
static void tile16s_1(const uint8_t *x, const int64_t *off, const int32_t *tap, int ntap,
                      const int16_t *slab, int rows, int32_t *out, int init) {
    enum { PAIRS = TILE_PIXELS_1 / 2 };
    const __m512i even = _mm512_set1_epi32(1), odd = _mm512_set1_epi32(1 << 16);
    __m512i ae[PAIRS], ao[PAIRS];
    const uint8_t *xs[2 * PAIRS];
    for (int p = 0; p < 2 * PAIRS; p++) xs[p] = x + off[p];
    for (int j = 0; j < PAIRS; j++) ae[j] = ao[j] = _mm512_setzero_si512();
    for (int k = 0; k < ntap; k++) {
        const int16_t *s = slab + (size_t)k * rows * 16;
        const int32_t t = tap[k];
        for (int j = 0; j < PAIRS; j++) {
            const __m256i r0 = _mm256_loadu_si256((const __m256i *)(s + (size_t)xs[2 * j][t] * 16));
            const __m256i r1 = _mm256_loadu_si256((const __m256i *)(s + (size_t)xs[2 * j + 1][t] * 16));
            const __m512i r = _mm512_inserti64x4(_mm512_castsi256_si512(r0), r1, 1);
            ae[j] = _mm512_dpwssd_epi32(ae[j], r, even);
            ao[j] = _mm512_dpwssd_epi32(ao[j], r, odd);
        }
    }
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15,
                                         31);
    for (int j = 0; j < PAIRS; j++) {
        __m512i v0 = _mm512_permutex2var_epi32(ae[j], lo, ao[j]);
        __m512i v1 = _mm512_permutex2var_epi32(ae[j], hi, ao[j]);
        int32_t *dst = out + 2 * j * 16;
        if (init) {
            v0 = _mm512_add_epi32(v0, _mm512_loadu_si512((const void *)dst));
            v1 = _mm512_add_epi32(v1, _mm512_loadu_si512((const void *)(dst + 16)));
        }
        _mm512_storeu_si512((void *)dst, v0);
        _mm512_storeu_si512((void *)(dst + 16), v1);
    }
}
#define SIGNED_SLAB(a) ((a)->t16 && (a)->OB <= 32 && (a)->cols <= 256) /* permute-built */
#else
#define SIGNED_SLAB(a) 0
#endif

int axn_tile_pixels(int nv) {
    return nv == 1 ? TILE_PIXELS_1 : nv == 2 ? TILE_PIXELS_2 : TILE_PIXELS_4;
}

static void run_tile(const mac_args *a, const uint8_t *x, const int64_t *off, const int32_t *tap,
                     int ntap, const void *slab, int32_t *out, int init) {
    const int nv = a->OB / LANES;
#ifdef SIGNED_SLAB_VECTORS
    if (SIGNED_SLAB(a)) {
        if (nv == 1) tile16s_1(x, off, tap, ntap, (const int16_t *)slab, a->rows, out, init);
        else tile16s_2(x, off, tap, ntap, (const int16_t *)slab, a->rows, out, init);
        return;
    }
#endif
    if (a->t16) {
        const uint16_t *s = (const uint16_t *)slab;
        if (nv == 1) tile16_1(x, off, tap, ntap, s, a->rows, out, init);
        else if (nv == 2) tile16_2(x, off, tap, ntap, s, a->rows, out, init);
        else tile16_4(x, off, tap, ntap, s, a->rows, out, init);
    } else {
        const int32_t *s = (const int32_t *)slab;
        if (nv == 1) tile32_1(x, off, tap, ntap, s, a->rows, out, init);
        else if (nv == 2) tile32_2(x, off, tap, ntap, s, a->rows, out, init);
        else tile32_4(x, off, tap, ntap, s, a->rows, out, init);
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
/* uint16 slab rows by in-register lookups: table row r (at most 256 entries) sits in eight
 * registers; 32 slab entries (block index list idx[], 16-bit) take four two-register word
 * permutes and three blends on index bits 6 and 7. Entry j of the list goes to slab tap
 * j / OB, lane j % OB. Lists are done GROUP_CHUNKS chunks at a time over all rows, so the
 * stores go to a few sequential streams (taps are rows * OB entries apart: many streams at
 * that stride would collide in the cache sets). */
#define GROUP_CHUNKS 4
/* 32 entries t[ix] of a 16-bit table of `size` <= 256 entries held in eight registers */
static inline __m512i lookup32(const __m512i *t, __m512i ix, int size) {
    __m512i v = _mm512_permutex2var_epi16(t[0], ix, t[1]);
    if (size > 64) {
        const __mmask32 m6 = _mm512_test_epi16_mask(ix, _mm512_set1_epi16(64));
        v = _mm512_mask_blend_epi16(m6, v, _mm512_permutex2var_epi16(t[2], ix, t[3]));
        if (size > 128) {
            __m512i hi = _mm512_permutex2var_epi16(t[4], ix, t[5]);
            hi = _mm512_mask_blend_epi16(m6, hi, _mm512_permutex2var_epi16(t[6], ix, t[7]));
            const __mmask32 m7 = _mm512_test_epi16_mask(ix, _mm512_set1_epi16(128));
            v = _mm512_mask_blend_epi16(m7, v, hi);
        }
    }
    return v;
}

static inline void load_entries(__m512i *t, const uint16_t *src, int size) {
    for (int i = 0; i < 8; i++) {
        const int left = size - 32 * i;
        const __mmask32 m = left >= 32 ? 0xFFFFFFFFu : left <= 0 ? 0 : (1u << left) - 1;
        t[i] = _mm512_maskz_loadu_epi16(m, src + 32 * i);
    }
}

static void build_slab16_permute(const mac_args *a, const uint16_t *idx, int n, void *slab) {
    const int OB = a->OB, rows = a->rows, cols = a->cols;
    const __m512i flip = _mm512_set1_epi16(SIGNED_SLAB(a) ? (short)0x8000 : 0); /* u16 -> s16 */
    uint16_t *s16 = (uint16_t *)slab;
    for (int j0 = 0; j0 < n; j0 += 32 * GROUP_CHUNKS) {
        const int halves = (n - j0 < 32 * GROUP_CHUNKS ? n - j0 : 32 * GROUP_CHUNKS) / 16;
        size_t off[2 * GROUP_CHUNKS]; /* where each 16-entry half of the group goes (row 0) */
        for (int h = 0; h < halves; h++) {
            const int e = j0 + 16 * h;
            off[h] = (size_t)(e / OB) * rows * OB + e % OB;
        }
        for (int r = 0; r < rows; r++) {
            __m512i t[8];
            load_entries(t, a->t16 + (size_t)r * cols, cols);
            uint16_t *row = s16 + (size_t)r * OB;
            for (int h = 0; h < halves; h += 2) {
                const __m512i ix = _mm512_loadu_si512((const void *)(idx + j0 + 16 * h));
                const __m512i v = _mm512_xor_si512(lookup32(t, ix, cols), flip);
                _mm256_storeu_si256((__m256i *)(row + off[h]), _mm512_castsi512_si256(v));
                if (h + 1 < halves)
                    _mm256_storeu_si256((__m256i *)(row + off[h + 1]), _mm512_extracti64x4_epi64(v, 1));
            }
        }
    }
}
#endif

/* slab[k - k0][r][q] = table[r, w[o0 + q, k]] (minus base for uint16); lanes q >= nq read column
 * 0 and are never emitted. */
static void build_slab(const mac_args *a, int o0, int nq, int k0, int k1, void *slab,
                       uint16_t *idx) {
    const int OB = a->OB, rows = a->rows, cols = a->cols;
    int32_t wq[256];
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (a->t16 && cols <= 256 && OB % 16 == 0) {
        for (int k = k0; k < k1; k++)
            for (int q = 0; q < OB; q++)
                idx[(k - k0) * OB + q] = (uint16_t)(q < nq ? weight_at(a, o0 + q, k) : 0);
        memset(idx + (k1 - k0) * OB, 0, 32 * sizeof(uint16_t)); /* the last load's tail */
        build_slab16_permute(a, idx, (k1 - k0) * OB, slab);
        return;
    }
#else
    (void)idx;
#endif
    for (int k = k0; k < k1; k++) {
        for (int q = 0; q < OB; q++) wq[q] = q < nq ? weight_at(a, o0 + q, k) : 0;
        if (a->t16) {
            uint16_t *dst = (uint16_t *)slab + (size_t)(k - k0) * rows * OB;
#if defined(__AVX512F__) && defined(__AVX512BW__)
            /* 32-bit gathers at 2-byte steps (the table has 2 entries of slack), then narrow */
            for (int r = 0; r < rows; r++, dst += OB) {
                const void *trow = a->t16 + (size_t)r * cols;
                for (int q = 0; q < OB; q += 16) {
                    const __m512i idx = _mm512_loadu_si512((const void *)(wq + q));
                    const __m512i v = _mm512_i32gather_epi32(idx, trow, 2);
                    _mm256_storeu_si256((__m256i *)(dst + q), _mm512_cvtepi32_epi16(v));
                }
            }
#else
            for (int r = 0; r < rows; r++, dst += OB) {
                const uint16_t *trow = a->t16 + (size_t)r * cols;
                for (int q = 0; q < OB; q++) dst[q] = trow[wq[q]];
            }
#endif
        } else {
            int32_t *dst = (int32_t *)slab + (size_t)(k - k0) * rows * OB;
            for (int r = 0; r < rows; r++, dst += OB) {
                const int32_t *trow = a->t32 + (size_t)r * cols;
                for (int q = 0; q < OB; q++) dst[q] = trow[wq[q]];
            }
        }
    }
}

/* One slab task: output block `blk` (group g, channels o0..o0+nq) over a range of images. */
static void slab_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const mac_args *a = (const mac_args *)ctx;
    const int64_t part = task % a->img_parts, blk = task / a->img_parts;
    const int blocks_per_group = (a->og + a->OB - 1) / a->OB;
    const int g = (int)(blk / blocks_per_group), ob = (int)(blk % blocks_per_group);
    const int o0 = g * a->og + ob * a->OB;
    const int nq = a->og - ob * a->OB < a->OB ? a->og - ob * a->OB : a->OB;
    const int64_t n0 = a->N * part / a->img_parts, n1 = a->N * (part + 1) / a->img_parts;
    if (n0 >= n1) return;
    const int OB = a->OB, P = a->P, K = a->K;
    /* Register sums are int32. They are flushed into an int64 buffer per block of taps (`wide`)
     * when K slab entries could pass 2^31: int32 slabs, or 16-bit slabs past 32768 (unsigned,
     * entries up to 65535) or 65536 taps (signed, entries down to -32768); else the int32 sums
     * run across all taps in an int32 buffer. */
    const int64_t entry = a->t16 ? (SIGNED_SLAB(a) ? 32768 : 0xFFFF) : a->maxabs;
    const int wide = (int64_t)K * entry > INT32_MAX;
    const size_t esize = a->t16 ? 2 : 4, bsize = wide ? 8 : 4;
    const size_t tap_bytes = (size_t)a->rows * OB * esize;
    int kb = (int)(BLOCK_BYTES / tap_bytes);
    if (kb < 1) kb = 1;
    if (wide) { /* int32 registers must not overflow within a block */
        const int64_t lim = entry > 0 ? INT32_MAX / entry : K;
        if (lim < kb) kb = (int)(lim < 1 ? 1 : lim);
    }
    if (kb > K) kb = K;
    const int full = (size_t)K * tap_bytes <= SLAB_BUDGET;
    const int64_t per_image = (int64_t)a->npix_pad * OB;
    int64_t chunk = full ? (int64_t)(ACC_BUDGET / (per_image * bsize)) : n1 - n0;
    if (chunk < 1) chunk = 1;
    if (chunk > n1 - n0) chunk = n1 - n0;
    void *slab = malloc((full ? (size_t)K : (size_t)kb) * tap_bytes);
    void *buf = malloc((size_t)(chunk * per_image) * bsize);
    int32_t *scratch = malloc(sizeof(int32_t) * P * OB);
    int64_t *tmp = malloc(sizeof(int64_t) * FIN_PIXELS * OB);
    float *ftmp = malloc(sizeof(float) * FIN_PIXELS * OB);
    uint16_t *idx = malloc(sizeof(uint16_t) * (size_t)kb * OB + 64);
    int64_t *sx = malloc(sizeof(int64_t) * a->npix);
    if (!slab || !buf || !scratch || !tmp || !ftmp || !idx || !sx) goto done;
    const int64_t bias = a->t16 ? (a->base + (SIGNED_SLAB(a) ? 32768 : 0)) * K : 0;
    for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
        const int64_t c1 = c0 + chunk < n1 ? c0 + chunk : n1;
        if (wide) memset(buf, 0, (size_t)((c1 - c0) * per_image) * bsize);
        for (int k0 = 0; k0 < K; k0 += kb) {
            const int k1 = k0 + kb < K ? k0 + kb : K;
            void *sb = full ? (char *)slab + (size_t)k0 * tap_bytes : slab;
            if (!full || c0 == n0) build_slab(a, o0, nq, k0, k1, sb, idx);
            for (int64_t n = c0; n < c1; n++) {
                const uint8_t *x = a->xp + n * a->img_stride + g * a->grp_stride;
                for (int t = 0; t < a->npix_pad; t += P) {
                    const int64_t at = ((n - c0) * a->npix_pad + t) * OB;
                    if (!wide) {
                        run_tile(a, x, a->pix + t, a->tap + k0, k1 - k0, sb, (int32_t *)buf + at,
                                 k0 > 0);
                        continue;
                    }
                    run_tile(a, x, a->pix + t, a->tap + k0, k1 - k0, sb, scratch, 0);
                    int64_t *b = (int64_t *)buf + at;
                    for (int i = 0; i < P * OB; i++) b[i] += scratch[i];
                }
            }
        }
        for (int64_t n = c0; n < c1; n++) {
            for (int p = 0; p < a->npix; p++) sx[p] = pixel_sx(a, n, g, p);
            finish(a, n, o0, nq, (char *)buf + (size_t)((n - c0) * per_image) * bsize, OB,
                   wide, bias, 0, a->npix, sx, tmp, ftmp);
        }
    }
done:
    free(slab);
    free(buf);
    free(scratch);
    free(tmp);
    free(ftmp);
    free(idx);
    free(sx);
}

/* One direct task: all output channels of group g at pixels [p0, p0 + FIN_PIXELS) of image n. */
static void direct_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const mac_args *a = (const mac_args *)ctx;
    const int64_t tiles = (a->npix + FIN_PIXELS - 1) / FIN_PIXELS;
    const int64_t n = task / (a->G * tiles);
    const int g = (int)((task / tiles) % a->G);
    const int p0 = (int)(task % tiles) * FIN_PIXELS;
    const int pn = p0 + FIN_PIXELS < a->npix ? FIN_PIXELS : a->npix - p0;
    const int K = a->K, cols = a->cols, og = a->og;
    int32_t *rowoff = malloc(sizeof(int32_t) * K);
    int64_t *acc = malloc(sizeof(int64_t) * FIN_PIXELS * og);
    int64_t *tmp = malloc(sizeof(int64_t) * FIN_PIXELS * og);
    float *ftmp = malloc(sizeof(float) * FIN_PIXELS * og);
    if (!rowoff || !acc || !tmp || !ftmp) goto done;
    const uint8_t *x = a->xp + n * a->img_stride + g * a->grp_stride;
    const int32_t half = a->a_signed ? a->rows / 2 : a->rows, wrap = a->a_signed ? a->rows : 0;
    int64_t sx[FIN_PIXELS];
    for (int p = 0; p < pn; p++) {
        const uint8_t *xpix = x + a->pix[p0 + p];
        int64_t centred = 0;
        for (int k = 0; k < K; k++) {
            const int32_t i = xpix[a->tap[k]];
            rowoff[k] = i * cols;
            centred += (i >= half ? i - wrap : i) - a->zx;
        }
        sx[p] = centred;
        for (int q = 0; q < og; q++) {
            const int64_t o = (int64_t)g * og + q;
            int64_t s = 0;
            if (a->w8) {
                const uint8_t *wr = a->w8 + o * K;
                for (int k = 0; k < K; k++) s += a->t32[rowoff[k] + wr[k]];
            } else {
                const int32_t *wr = a->w + o * K;
                for (int k = 0; k < K; k++) s += a->t32[rowoff[k] + wr[k]];
            }
            acc[(int64_t)p * og + q] = s;
        }
    }
    finish(a, n, g * og, og, acc, og, 1, 0, p0, pn, sx, tmp, ftmp);
done:
    free(rowoff);
    free(acc);
    free(tmp);
    free(ftmp);
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
/* Column kernel, for few pixels per output channel (small batches, late layers, depthwise), where
 * building slabs would cost more than the MACs: per output channel and tap the table column
 * T[:, w[o, k]] sits in eight registers and serves COL_PIXELS pixels by word permutes. */
#define COL_PIXELS 64
#define BYTE_BLOCK (2 * COL_PIXELS) /* pixels per task of the byte-plane kernel (VBMI) */
/* Taps per int32 register sum of uint16 entries (K * 65535 < 2^31) */
#define COL_TAPS (INT32_MAX / 0xFFFF)

/* acc32[p] = sum over taps k0..k1 of T[x_k[p], w[o, k]] - base, for xb[k][p] (the long-reduction
 * path; column_task inlines the same loop for the common one) */
static __attribute__((noinline)) void column_sums(const mac_args *a, int64_t o, const uint8_t *xb, int k0, int k1,
                               int32_t *acc32) {
    const int rows = a->rows;
    __m512i acc[COL_PIXELS / 16];
    for (int i = 0; i < COL_PIXELS / 16; i++) acc[i] = _mm512_setzero_si512();
    for (int k = k0; k < k1; k++) {
        __m512i t[8];
        load_entries(t, a->tt16 + (size_t)weight_at(a, o, k) * 256, rows);
        const uint8_t *xk = xb + (size_t)k * COL_PIXELS;
        for (int c = 0; c < COL_PIXELS / 32; c++) {
            const __m512i ix = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(xk + 32 * c)));
            const __m512i v = lookup32(t, ix, rows);
            acc[2 * c] = _mm512_add_epi32(acc[2 * c], _mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)));
            acc[2 * c + 1] = _mm512_add_epi32(acc[2 * c + 1],
                                              _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)));
        }
    }
    for (int i = 0; i < COL_PIXELS / 16; i++) _mm512_storeu_si512((void *)(acc32 + 16 * i), acc[i]);
}

#if defined(__AVX512VBMI__)
/* Byte-plane column kernel (AVX-512 VBMI): the column's 16-bit entries split into a low-byte and
 * a high-byte plane of 256 bytes (four registers each); one byte permute pair and a blend on
 * index bit 7 look up 64 pixels in a plane, where 16-bit word permutes take four permutes and
 * three blends per 32 (and several micro-ops each on Intel cores). The bytes of even and odd
 * pixels add into 16-bit sums by a mask and a shift (not the permute port), exact for up to 257
 * taps, and are widened into int32 every BYTE_TAPS taps. */
#define BYTE_TAPS 256
static inline __m512i lookup64(const __m512i *t, __m512i ix, __mmask64 high) {
    const __m512i lo = _mm512_permutex2var_epi8(t[0], ix, t[1]);
    const __m512i hi = _mm512_permutex2var_epi8(t[2], ix, t[3]);
    return _mm512_mask_blend_epi8(high, lo, hi);
}

/* acc += low-byte sums + 256 * high-byte sums, words `half` * 16 .. + 15 widened to int32 */
static inline __m512i widen_add(__m512i acc, __m512i low, __m512i high, int half) {
    const __m256i l = half ? _mm512_extracti64x4_epi64(low, 1) : _mm512_castsi512_si256(low);
    const __m256i h = half ? _mm512_extracti64x4_epi64(high, 1) : _mm512_castsi512_si256(high);
    const __m512i v = _mm512_add_epi32(_mm512_cvtepu16_epi32(l),
                                       _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 8));
    return _mm512_add_epi32(acc, v);
}

/* acc32[p] = sum over all K taps of T[x_k[p], w[o, k]] - base for the 64 * NV pixels of
 * xb[k][p] (rows of BYTE_BLOCK pixels): each column loaded once serves NV pixel vectors */
static inline __attribute__((always_inline)) void column_bytes_n(const mac_args *a, int64_t o,
                                                                 const uint8_t *xb,
                                                                 int32_t *acc32, const int NV) {
    const __m512i zero = _mm512_setzero_si512(), even = _mm512_set1_epi16(0xFF);
    __m512i s[2][4];
    for (int v = 0; v < NV; v++) s[v][0] = s[v][1] = s[v][2] = s[v][3] = zero;
    for (int k0 = 0; k0 < a->K; k0 += BYTE_TAPS) {
        const int k1 = a->K - k0 > BYTE_TAPS ? k0 + BYTE_TAPS : a->K;
        __m512i le[2], lo[2], he[2], ho[2]; /* low / high byte sums of even / odd pixels */
        for (int v = 0; v < NV; v++) le[v] = lo[v] = he[v] = ho[v] = zero;
        for (int k = k0; k < k1; k++) {
            const uint8_t *col = a->tb8 + (size_t)weight_at(a, o, k) * 512;
            __m512i tl[4], th[4];
            for (int i = 0; i < 4; i++) {
                tl[i] = _mm512_loadu_si512((const void *)(col + 64 * i));
                th[i] = _mm512_loadu_si512((const void *)(col + 256 + 64 * i));
            }
            for (int v = 0; v < NV; v++) {
                const __m512i x = _mm512_loadu_si512((const void *)(xb + (size_t)k * BYTE_BLOCK + 64 * v));
                const __mmask64 high = _mm512_movepi8_mask(x);
                const __m512i l = lookup64(tl, x, high), h = lookup64(th, x, high);
                le[v] = _mm512_add_epi16(le[v], _mm512_and_si512(l, even));
                lo[v] = _mm512_add_epi16(lo[v], _mm512_srli_epi16(l, 8));
                he[v] = _mm512_add_epi16(he[v], _mm512_and_si512(h, even));
                ho[v] = _mm512_add_epi16(ho[v], _mm512_srli_epi16(h, 8));
            }
        }
        for (int v = 0; v < NV; v++) {
            s[v][0] = widen_add(s[v][0], le[v], he[v], 0);
            s[v][1] = widen_add(s[v][1], le[v], he[v], 1);
            s[v][2] = widen_add(s[v][2], lo[v], ho[v], 0);
            s[v][3] = widen_add(s[v][3], lo[v], ho[v], 1);
        }
    }
    /* word j of a vector's even (odd) sums is its pixel 2j (2j + 1) */
    int32_t sums[64];
    for (int v = 0; v < NV; v++) {
        for (int i = 0; i < 4; i++) _mm512_storeu_si512((void *)(sums + 16 * i), s[v][i]);
        for (int i = 0; i < 64; i++) acc32[64 * v + 2 * (i % 32) + i / 32] = sums[i];
    }
}

static void column_bytes(const mac_args *a, int64_t o, const uint8_t *xb, int pn, int32_t *acc32) {
    if (pn > 64) column_bytes_n(a, o, xb, acc32, 2);
    else column_bytes_n(a, o, xb, acc32, 1);
}
#endif

/* memcpy of a short run: masked 64-byte moves (a library call per run costs as much as the run) */
static inline void copy_run(uint8_t *dst, const uint8_t *src, int len) {
    for (; len >= 64; len -= 64, dst += 64, src += 64)
        _mm512_storeu_si512((void *)dst, _mm512_loadu_si512((const void *)src));
    if (len > 0) {
        const __mmask64 m = (1ULL << len) - 1; /* len < 64 */
        _mm512_mask_storeu_epi8(dst, m, _mm512_maskz_loadu_epi8(m, src));
    }
}

/* pixels per column task: BYTE_BLOCK where the byte-plane kernel runs */
static int column_block(const mac_args *a) {
#if defined(__AVX512VBMI__)
    if (a->tb8 && a->K <= COL_TAPS) return BYTE_BLOCK;
#else
    (void)a;
#endif
    return COL_PIXELS;
}

static void column_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const mac_args *a = (const mac_args *)ctx;
    const int BP = column_block(a);
    const int64_t blocks = (a->npix + BP - 1) / BP;
    const int64_t n = task / (a->G * blocks);
    const int g = (int)((task / blocks) % a->G);
    const int p0 = (int)(task % blocks) * BP;
    const int pn = p0 + BP < a->npix ? BP : a->npix - p0;
    const int K = a->K, rows = a->rows;
    uint8_t *xb = malloc((size_t)K * BP); /* [k][p] activation indices */
    int64_t *tmp = malloc(sizeof(int64_t) * FIN_PIXELS);
    float *ftmp = malloc(sizeof(float) * FIN_PIXELS);
    if (!xb || !tmp || !ftmp) goto done;
    const uint8_t *x = a->xp + n * a->img_stride + g * a->grp_stride;
    /* runs of pixels at consecutive input offsets (output rows at stride 1) are copied whole */
    int run_at[BYTE_BLOCK + 1], nruns = 0;
    for (int p = 0; p < pn; p++)
        if (p == 0 || a->pix[p0 + p] != a->pix[p0 + p - 1] + 1) run_at[nruns++] = p;
    run_at[nruns] = pn;
    for (int k = 0; k < K; k++) {
        uint8_t *dst = xb + (size_t)k * BP;
        for (int r = 0; r < nruns; r++)
            copy_run(dst + run_at[r], x + a->pix[p0 + run_at[r]] + a->tap[k],
                     run_at[r + 1] - run_at[r]);
        memset(dst + pn, 0, (size_t)(BP - pn));
    }
    int64_t sx[BYTE_BLOCK] = {0};
    if (a->zw) {
        const int32_t half = a->a_signed ? rows / 2 : rows, wrap = a->a_signed ? rows : 0;
        for (int k = 0; k < K; k++)
            for (int p = 0; p < BP; p++) {
                const int32_t i = xb[(size_t)k * BP + p];
                sx[p] += (i >= half ? i - wrap : i) - a->zx;
            }
    }
    const int64_t bias = a->base * K;
    int32_t acc32[BYTE_BLOCK];
#if defined(__AVX512VBMI__)
    if (BP == BYTE_BLOCK) {
        for (int q = 0; q < a->og; q++) {
            const int64_t o = (int64_t)g * a->og + q;
            column_bytes(a, o, xb, pn, acc32);
            finish(a, n, (int)o, 1, acc32, 1, 0, bias, p0, pn, sx, tmp, ftmp);
        }
        goto done;
    }
#endif
    if (K <= COL_TAPS) {
        for (int q = 0; q < a->og; q++) {
            const int64_t o = (int64_t)g * a->og + q;
            __m512i acc[COL_PIXELS / 16];
            for (int i = 0; i < COL_PIXELS / 16; i++) acc[i] = _mm512_setzero_si512();
            for (int k = 0; k < K; k++) {
                __m512i t[8];
                load_entries(t, a->tt16 + (size_t)weight_at(a, o, k) * 256, rows);
                const uint8_t *xk = xb + (size_t)k * COL_PIXELS;
                for (int c = 0; c < COL_PIXELS / 32; c++) {
                    const __m512i ix = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(xk + 32 * c)));
                    const __m512i v = lookup32(t, ix, rows);
                    acc[2 * c] = _mm512_add_epi32(acc[2 * c], _mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)));
                    acc[2 * c + 1] = _mm512_add_epi32(acc[2 * c + 1],
                                                      _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)));
                }
            }
            for (int i = 0; i < COL_PIXELS / 16; i++) _mm512_storeu_si512((void *)(acc32 + 16 * i), acc[i]);
            finish(a, n, (int)o, 1, acc32, 1, 0, bias, p0, pn, sx, tmp, ftmp);
        }
    } else { /* longer reductions: int32 sums of COL_TAPS taps at a time, added in int64 */
        int64_t acc64[COL_PIXELS];
        for (int q = 0; q < a->og; q++) {
            const int64_t o = (int64_t)g * a->og + q;
            memset(acc64, 0, sizeof acc64);
            for (int k0 = 0; k0 < K; k0 += COL_TAPS) {
                column_sums(a, o, xb, k0, K - k0 > COL_TAPS ? k0 + COL_TAPS : K, acc32);
                for (int p = 0; p < COL_PIXELS; p++) acc64[p] += acc32[p];
            }
            finish(a, n, (int)o, 1, acc64, 1, 1, bias, p0, pn, sx, tmp, ftmp);
        }
    }
done:
    free(xb);
    free(tmp);
    free(ftmp);
}
#endif

int axn_has_byte_columns(void) {
#if defined(__AVX512VBMI__)
    return 1;
#else
    return 0;
#endif
}

int axn_has_column_kernel(void) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
    return 1;
#else
    return 0;
#endif
}

void axn_mac(mac_args *a, int nthreads) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (a->kernel == KERNEL_COLUMN && a->tt16) {
        const int64_t blocks = (a->npix + column_block(a) - 1) / column_block(a);
        parallel(column_task, a, a->N * a->G * blocks, nthreads);
        return;
    }
#endif
    if (a->kernel != KERNEL_SLAB) {
        const int64_t tiles = (a->npix + FIN_PIXELS - 1) / FIN_PIXELS;
        parallel(direct_task, a, a->N * a->G * tiles, nthreads);
        return;
    }
    const int64_t blocks = (int64_t)a->G * ((a->og + a->OB - 1) / a->OB);
    /* split images when there are fewer output blocks than threads, or they do not divide */
    a->img_parts = blocks % nthreads == 0 ? 1 : nthreads;
    if (a->img_parts > a->N) a->img_parts = a->N;
    parallel(slab_task, a, blocks * a->img_parts, nthreads);
}

/* ------------------------------------------------------------------------------------------ */
/* the low-rank backend's passes around its float32 convolutions (see lowrank.py) */

typedef struct {
    const uint8_t *x; /* indices (N, C, H, W) */
    int64_t N;
    int C, H, W, ph, pw, pad_index, G;
    const float *luts; /* (na, lut_len) */
    int na, lut_len, c0, c1;
    const int64_t *row; /* row sums: row[index] */
    void *out;
    const float *res; /* finish: (N, O, HW) float32 convolution results */
    int O, og;
    int64_t HW, chunk_scale;
    const int64_t *bias, *rowmap; /* (O), (N, G, HW) or NULL */
    int first;
    /* layer outputs (axn_lowrank_out) */
    const int64_t *acc;   /* (N, O, HW) sums of the earlier chunks, or NULL */
    int64_t denominator;  /* the decomposition's D: sums are D times the table sums */
    const int64_t *zw, *zsw, *sxmap; /* zw[o], zx * sum_k w_k[o], (N, G, HW) sums of x - zx */
    const float *out_scale; /* per output channel */
    int saturate;
    int64_t lo, hi;
} lowrank_args;

static void lookup_row(float *restrict dst, const uint8_t *restrict idx,
                       const float *restrict lut, int w) {
    for (int x = 0; x < w; x++) dst[x] = lut[idx[x]];
}

/* dst (Hp x Wp) = lut[idx (H x W)] with a border of ph rows and pw columns of lut[pad] */
static void lookup_padded(float *dst, const uint8_t *idx, const float *lut, int pad, int H, int W,
                          int ph, int pw) {
    const int Hp = H + 2 * ph, Wp = W + 2 * pw;
    const float pv = lut[pad];
    for (int y = 0; y < Hp; y++) {
        float *drow = dst + (int64_t)y * Wp;
        const int iy = y - ph;
        if (iy < 0 || iy >= H) {
            for (int x = 0; x < Wp; x++) drow[x] = pv;
            continue;
        }
        for (int x = 0; x < pw; x++) drow[x] = drow[Wp - 1 - x] = pv;
        lookup_row(drow + pw, idx + (int64_t)iy * W, lut, W);
    }
}

/* out[n, (g*na + r)*cc + c, y, x] = luts[r, xpad[n, g*cg + c0 + c, y, x]], border pad_index */
static void lut_pad_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const lowrank_args *a = (const lowrank_args *)ctx;
    const int cc = a->c1 - a->c0, cg = a->C / a->G, Hp = a->H + 2 * a->ph, Wp = a->W + 2 * a->pw;
    const int64_t n = task / ((int64_t)a->G * cc);
    const int g = (int)((task / cc) % a->G), c = (int)(task % cc);
    const uint8_t *src = a->x + ((n * a->C + g * cg + a->c0 + c) * (int64_t)a->H) * a->W;
    for (int r = 0; r < a->na; r++) {
        float *dst = (float *)a->out +
                     ((n * a->G * a->na + (int64_t)g * a->na + r) * cc + c) * (int64_t)Hp * Wp;
        lookup_padded(dst, src, a->luts + (int64_t)r * a->lut_len, a->pad_index, a->H, a->W,
                      a->ph, a->pw);
    }
}

/* out[n, g, y, x] = sum over the group's channels of row[xpad[n, c, y, x]] (int64) */
static void row_sums_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const lowrank_args *a = (const lowrank_args *)ctx;
    const int cg = a->C / a->G, Hp = a->H + 2 * a->ph, Wp = a->W + 2 * a->pw;
    const int64_t n = task / a->G;
    const int g = (int)(task % a->G);
    int64_t *dst = (int64_t *)a->out + task * (int64_t)Hp * Wp;
    const int64_t pv = a->row[a->pad_index];
    for (int64_t i = 0; i < (int64_t)Hp * Wp; i++) dst[i] = pv * cg;
    for (int c = 0; c < cg; c++) {
        const uint8_t *src = a->x + ((n * a->C + g * cg + c) * (int64_t)a->H) * a->W;
        for (int y = 0; y < a->H; y++) {
            int64_t *drow = dst + (int64_t)(y + a->ph) * Wp + a->pw;
            const uint8_t *srow = src + (int64_t)y * a->W;
            for (int x = 0; x < a->W; x++) drow[x] += a->row[srow[x]] - pv;
        }
    }
}

/* out = res * scale + bias[o] + rowmap[n, o / og] (first chunk) or out += res * scale */
static void finish_chunk_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const lowrank_args *a = (const lowrank_args *)ctx;
    const int64_t n = task / a->O;
    const int o = (int)(task % a->O);
    const float *res = a->res + task * a->HW;
    int64_t *out = (int64_t *)a->out + task * a->HW;
    if (!a->first) {
        for (int64_t i = 0; i < a->HW; i++) out[i] += (int64_t)res[i] * a->chunk_scale;
        return;
    }
    const int64_t *rm = a->rowmap ? a->rowmap + (n * (a->O / a->og) + o / a->og) * a->HW : NULL;
    for (int64_t i = 0; i < a->HW; i++)
        out[i] = (int64_t)res[i] * a->chunk_scale + a->bias[o] + (rm ? rm[i] : 0);
}

/* A layer's float outputs from the last chunk: acc = ((earlier) + res * scale (+ bias + rowmap
 * when it is the only chunk)) / D - zw[o] * sx - zx * sw[o], saturated, float32(acc) * scale[o]. */
static void lowrank_out_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    enum { BLOCK = 512 };
    const lowrank_args *a = (const lowrank_args *)ctx;
    const int64_t n = task / a->O;
    const int o = (int)(task % a->O), g = o / a->og, groups = a->O / a->og;
    const float *res = a->res + task * a->HW;
    const int64_t *prev = a->acc ? a->acc + task * a->HW : NULL;
    const int64_t *rm = a->first && a->rowmap ? a->rowmap + (n * groups + g) * a->HW : NULL;
    const int64_t *sx = a->zw ? a->sxmap + (n * groups + g) * a->HW : NULL;
    const int64_t bias = (a->first ? a->bias[o] : 0), zw = a->zw ? a->zw[o] : 0;
    const int64_t zsw = a->zsw ? a->zsw[o] : 0, cs = a->chunk_scale, d = a->denominator;
    const int64_t lo = a->lo, hi = a->hi;
    const float sc = a->out_scale[o];
    float *out = (float *)a->out + task * a->HW;
    int64_t v[BLOCK]; /* one simple loop per term: each one vectorizes */
    for (int64_t b = 0; b < a->HW; b += BLOCK) {
        const int m = (int)(a->HW - b < BLOCK ? a->HW - b : BLOCK);
        for (int i = 0; i < m; i++) v[i] = (int64_t)res[b + i] * cs + bias;
        if (prev)
            for (int i = 0; i < m; i++) v[i] += prev[b + i];
        if (rm)
            for (int i = 0; i < m; i++) v[i] += rm[b + i];
        if (d != 1) /* floor division of an exact multiple */
            for (int i = 0; i < m; i++) {
                const int64_t q = v[i] / d;
                v[i] = q - (q * d != v[i] && v[i] < 0);
            }
        if (sx)
            for (int i = 0; i < m; i++) v[i] -= zw * sx[b + i];
        for (int i = 0; i < m; i++) v[i] -= zsw;
        if (a->saturate)
            for (int i = 0; i < m; i++) v[i] = v[i] < lo ? lo : (v[i] > hi ? hi : v[i]);
        for (int i = 0; i < m; i++) out[b + i] = (float)v[i] * sc;
    }
}

void axn_lowrank_out(lowrank_args *a, int nthreads) {
    parallel_many(lowrank_out_task, a, a->N * a->O, nthreads);
}

void axn_lut_pad(lowrank_args *a, int nthreads) {
    parallel_many(lut_pad_task, a, a->N * a->G * (a->c1 - a->c0), nthreads);
}

void axn_row_sums(lowrank_args *a, int nthreads) {
    parallel_many(row_sums_task, a, a->N * a->G, nthreads);
}

void axn_finish_chunk(lowrank_args *a, int nthreads) {
    parallel_many(finish_chunk_task, a, a->N * a->O, nthreads);
}

/* ------------------------------------------------------------------------------------------ */
/* the low-rank layer's input pass: quantize float input, look up the first chunk's operands
 * (padded with the pad index's values) and sum value tables over each group's channels per
 * padded pixel, in one pass over the input instead of quantize, lookup and sum passes. */

typedef struct {
    const float *xf;       /* float input (N, C, H, W) */
    int64_t N;
    int C, H, W, ph, pw, G;
    float scale, zero, qmin, qmax; /* code = clamp(rint(x / scale) + zero, qmin, qmax) */
    int32_t mask;                  /* index = code & mask */
    int pad_index;
    const float *luts;     /* (na, lut_len) operand lookups of channels [c0, c1), or NULL */
    int na, lut_len, c0, c1;
    float *out;            /* (N, G * na * (c1 - c0), Hp, Wp), like axn_lut_pad */
    uint8_t *codes;        /* out: (N, C, H, W) indices, or NULL */
    const int64_t *v0;     /* a value table indexed by table row, or NULL */
    int64_t *s0;           /* out: (N, G, Hp, Wp) sums of v0[index] (border: cg * v0[pad]) */
    int64_t *s1;           /* out: the same for code(index) - zx (computed, not looked up) */
    int rows, a_signed;    /* index -> code: index, or index - rows when signed and >= rows/2 */
    int64_t zx;
} lowrank_in_args;

static void add_values(int64_t *restrict dst, const uint8_t *restrict idx,
                       const int64_t *restrict v, int64_t pv, int w) {
    for (int x = 0; x < w; x++) dst[x] += v[idx[x]] - pv;
}

/* dst += code(idx) - zx - pad_code, without a lookup */
static void add_codes(int64_t *restrict dst, const uint8_t *restrict idx, int32_t half,
                      int32_t wrap, int64_t offset, int w) {
    for (int x = 0; x < w; x++) {
        const int32_t v = idx[x];
        dst[x] += (int64_t)(v >= half ? v - wrap : v) - offset;
    }
}

static void lowrank_in_task(void *ctx, int64_t task, int worker) {
    (void)worker;
    const lowrank_in_args *a = (const lowrank_in_args *)ctx;
    const int cg = a->C / a->G, cc = a->c1 - a->c0, H = a->H, W = a->W, ph = a->ph, pw = a->pw;
    const int Hp = H + 2 * ph, Wp = W + 2 * pw;
    const int64_t n = task / a->G, hw = (int64_t)H * W, plane = (int64_t)Hp * Wp;
    const int g = (int)(task % a->G);
    uint8_t *tmp = a->codes ? NULL : malloc((size_t)hw);
    if (!a->codes && !tmp) return;
    int64_t *s0 = a->s0 ? a->s0 + task * plane : NULL, *s1 = a->s1 ? a->s1 + task * plane : NULL;
    const int32_t half = a->a_signed ? a->rows / 2 : a->rows, wrap = a->a_signed ? a->rows : 0;
    const int64_t pad_code = (a->pad_index >= half ? a->pad_index - wrap : a->pad_index) - a->zx;
    if (s0)
        for (int64_t i = 0; i < plane; i++) s0[i] = a->v0[a->pad_index] * cg;
    if (s1)
        for (int64_t i = 0; i < plane; i++) s1[i] = pad_code * cg;
    for (int c = 0; c < cg; c++) {
        const int64_t ch = n * a->C + (int64_t)g * cg + c;
        uint8_t *idx = a->codes ? a->codes + ch * hw : tmp;
        quantize_plane(a->xf + ch * hw, idx, hw, a->scale, a->zero, a->qmin, a->qmax, a->mask);
        if (a->luts && c >= a->c0 && c < a->c1)
            for (int r = 0; r < a->na; r++) {
                float *dst = a->out + ((n * a->G * a->na + (int64_t)g * a->na + r) * cc +
                                       (c - a->c0)) * plane;
                lookup_padded(dst, idx, a->luts + (int64_t)r * a->lut_len, a->pad_index, H, W,
                              ph, pw);
            }
        for (int y = 0; y < H; y++) {
            const uint8_t *srow = idx + (int64_t)y * W;
            const int64_t off = (int64_t)(y + ph) * Wp + pw;
            if (s0) add_values(s0 + off, srow, a->v0, a->v0[a->pad_index], W);
            if (s1) add_codes(s1 + off, srow, half, wrap, a->zx + pad_code, W);
        }
    }
    free(tmp);
}

void axn_lowrank_in(lowrank_in_args *a, int nthreads) {
    parallel_many(lowrank_in_task, a, a->N * a->G, nthreads);
}

/* out[t, oy, ox] = sum over the kernel window (stride, dilation) of padded plane t (int64) */
typedef struct {
    const int64_t *planes; /* (T, Hp, Wp) */
    int64_t T;
    int Hp, Wp, kh, kw, sh, sw, dh, dw, Ho, Wo;
    int64_t *out;          /* (T, Ho, Wo) */
} box_args;

static void box_task(void *ctx, int64_t t, int worker) {
    (void)worker;
    const box_args *a = (const box_args *)ctx;
    const int64_t *src = a->planes + t * (int64_t)a->Hp * a->Wp;
    int64_t *dst = a->out + t * (int64_t)a->Ho * a->Wo;
    for (int oy = 0; oy < a->Ho; oy++) {
        int64_t *drow = dst + (int64_t)oy * a->Wo;
        for (int ox = 0; ox < a->Wo; ox++) drow[ox] = 0;
        for (int i = 0; i < a->kh; i++) {
            const int64_t *srow = src + (int64_t)(oy * a->sh + i * a->dh) * a->Wp;
            for (int j = 0; j < a->kw; j++) {
                const int64_t *s = srow + j * a->dw;
                if (a->sw == 1)
                    for (int ox = 0; ox < a->Wo; ox++) drow[ox] += s[ox];
                else
                    for (int ox = 0; ox < a->Wo; ox++) drow[ox] += s[(int64_t)ox * a->sw];
            }
        }
    }
}

void axn_box_sums(box_args *a, int nthreads) {
    parallel_many(box_task, a, a->T, nthreads);
}
