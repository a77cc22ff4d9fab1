/*
 * ctrkit.nn._fieldattn: the two small batched products of attention over fields, for float32.
 *
 *   pair_dots:     S[b,h,i,j] = scale * <X[b,i,h,:], Y[b,j,h,:]>       (B, H, Fx, Fy) contiguous
 *   weighted_sum:  Z[b,i,h,:] = scale * sum_j W[b,h,i,j] * Y[b,j,h,:]  (B, Fi, H, d) contiguous
 *
 * Attention over the F fields of a CTR model multiplies B * H tiny matrices (F = 10 to 40,
 * d = 8 to 128). A batched GEMM pays a fixed cost per matrix that such sizes never amortise:
 * torch.bmm reaches about 7 GFLOPS on them on one idle core of this CPU (large products: about
 * 80), and the head transposes around it copy every q, k and v once more. These loops read X, Y and W in place through
 * their strides (the last axis of X and Y must be contiguous) and write the output in the
 * layout the next layer wants. Forward and backward of attention are both made of these two
 * operations (ctrkit.nn.field_attention says how).
 *
 * Each call covers batch rows [b0, b1), so the caller may split a batch across threads; an
 * output element is always computed by one thread in one fixed order, so results do not depend
 * on the number of threads. The GIL is released while the loops run. Pointers and strides
 * are trusted: ctrkit.nn.field_attention checks them.
 *
 * On x86 the loops are compiled twice, for AVX2 with FMA and for the baseline ISA, and the module
 * picks the version the CPU runs when it loads (isa() says which).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
#if defined(__GNUC__) && !defined(__clang__)
/* The helpers pass v8 by value; they are always inlined, so no call ever uses that ABI. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* The kernels are written once as inlined bodies and compiled twice: for AVX2 with FMA and for
 * the baseline ISA. The module picks one when it loads (__builtin_cpu_supports). */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define HAVE_AVX2_VERSION 1
#endif
#define INLINE static inline __attribute__((always_inline))

INLINE v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A macro, not a function: a v8 parameter draws an ABI note from GCC even when inlined. */
#define STORE8(p, v)                           \
    do {                                       \
        v8 stored_ = (v);                      \
        memcpy((p), &stored_, sizeof stored_); \
    } while (0)

/* Store the 8 columns [c, c + 8) of a row of S, but none past Fy (the padding). */
#define STORE_COLS(o, c, Fy, v)                                             \
    do {                                                                    \
        v8 cols_ = (v);                                                     \
        if ((c) + 8 <= (Fy)) {                                              \
            STORE8((o) + (c), cols_);                                       \
        } else {                                                            \
            for (Py_ssize_t u_ = 0; (c) + u_ < (Fy); u_++) (o)[(c) + u_] = cols_[u_]; \
        }                                                                   \
    } while (0)

/* One (b, h) block of pair_dots. yt is scratch of d * fyp floats (fyp: Fy rounded up to 8,
 * padding zero): Y's block transposed, so that a row of S is built 8 columns at a time from
 * broadcasts of x[i, t] -- no horizontal sums. Rows go two at a time and columns 16 at a time,
 * so each load of yt feeds two FMAs. */
INLINE void pair_dots_block(const float *xb, Py_ssize_t xsf, const float *yb, Py_ssize_t ysf, float *o,
                            Py_ssize_t Fx, Py_ssize_t Fy, Py_ssize_t d, float scale, float *yt, Py_ssize_t fyp) {
    for (Py_ssize_t t = 0; t < d; t++)
        for (Py_ssize_t j = 0; j < Fy; j++) yt[t * fyp + j] = yb[j * ysf + t];
    Py_ssize_t i = 0;
    for (; i + 2 <= Fx; i += 2) {
        const float *x0 = xb + i * xsf, *x1 = x0 + xsf;
        float *o0 = o + i * Fy, *o1 = o0 + Fy;
        Py_ssize_t c = 0;
        for (; c + 16 <= fyp; c += 16) {
            v8 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
            for (Py_ssize_t t = 0; t < d; t++) {
                v8 r0 = load8(yt + t * fyp + c), r1 = load8(yt + t * fyp + c + 8);
                a0 += x0[t] * r0;
                a1 += x0[t] * r1;
                b0 += x1[t] * r0;
                b1 += x1[t] * r1;
            }
            STORE_COLS(o0, c, Fy, a0 * scale);
            STORE_COLS(o0, c + 8, Fy, a1 * scale);
            STORE_COLS(o1, c, Fy, b0 * scale);
            STORE_COLS(o1, c + 8, Fy, b1 * scale);
        }
        if (c < fyp) {
            v8 a0 = {0}, b0 = {0};
            for (Py_ssize_t t = 0; t < d; t++) {
                v8 r0 = load8(yt + t * fyp + c);
                a0 += x0[t] * r0;
                b0 += x1[t] * r0;
            }
            STORE_COLS(o0, c, Fy, a0 * scale);
            STORE_COLS(o1, c, Fy, b0 * scale);
        }
    }
    if (i < Fx) {
        const float *x0 = xb + i * xsf;
        float *o0 = o + i * Fy;
        for (Py_ssize_t c = 0; c < fyp; c += 8) {
            v8 a0 = {0};
            for (Py_ssize_t t = 0; t < d; t++) a0 += x0[t] * load8(yt + t * fyp + c);
            STORE_COLS(o0, c, Fy, a0 * scale);
        }
    }
}

INLINE void pair_dots_body(const float *x, Py_ssize_t xsb, Py_ssize_t xsf, Py_ssize_t xsh, const float *y,
                           Py_ssize_t ysb, Py_ssize_t ysf, Py_ssize_t ysh, float *out, Py_ssize_t Fx, Py_ssize_t Fy,
                           Py_ssize_t H, Py_ssize_t d, float scale, Py_ssize_t b0, Py_ssize_t b1, float *yt,
                           Py_ssize_t fyp) {
    for (Py_ssize_t b = b0; b < b1; b++)
        for (Py_ssize_t h = 0; h < H; h++)
            pair_dots_block(x + b * xsb + h * xsh, xsf, y + b * ysb + h * ysh, ysf, out + ((b * H + h) * Fx) * Fy,
                            Fx, Fy, d, scale, yt, fyp);
}

/* z[0:n] = scale * sum_j w[j * ws] * y[j * ysf + 0:n], with y's rows contiguous. */
INLINE void combine(float *z, const float *w, Py_ssize_t ws, const float *y, Py_ssize_t ysf, Py_ssize_t Fj,
                    Py_ssize_t n, float scale) {
    Py_ssize_t t = 0;
    for (; t + 32 <= n; t += 32) {
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (Py_ssize_t j = 0; j < Fj; j++) {
            const float *yj = y + j * ysf + t;
            float wj = w[j * ws];
            a0 += wj * load8(yj);
            a1 += wj * load8(yj + 8);
            a2 += wj * load8(yj + 16);
            a3 += wj * load8(yj + 24);
        }
        STORE8(z + t, a0 * scale);
        STORE8(z + t + 8, a1 * scale);
        STORE8(z + t + 16, a2 * scale);
        STORE8(z + t + 24, a3 * scale);
    }
    for (; t + 8 <= n; t += 8) {
        v8 a0 = {0};
        for (Py_ssize_t j = 0; j < Fj; j++) a0 += w[j * ws] * load8(y + j * ysf + t);
        STORE8(z + t, a0 * scale);
    }
    for (; t < n; t++) {
        float s = 0.0f;
        for (Py_ssize_t j = 0; j < Fj; j++) s += w[j * ws] * y[j * ysf + t];
        z[t] = s * scale;
    }
}

INLINE void weighted_sum_body(const float *w, Py_ssize_t wsb, Py_ssize_t wsh, Py_ssize_t wsi, Py_ssize_t wsj,
                              const float *y, Py_ssize_t ysb, Py_ssize_t ysf, Py_ssize_t ysh, float *out,
                              Py_ssize_t Fi, Py_ssize_t Fj, Py_ssize_t H, Py_ssize_t d, float scale, Py_ssize_t b0,
                              Py_ssize_t b1) {
    for (Py_ssize_t b = b0; b < b1; b++)
        for (Py_ssize_t i = 0; i < Fi; i++)
            for (Py_ssize_t h = 0; h < H; h++)
                combine(out + ((b * Fi + i) * H + h) * d, w + b * wsb + h * wsh + i * wsi, wsj, y + b * ysb + h * ysh,
                        ysf, Fj, d, scale);
}

#define PAIR_DOTS_ARGS                                                                                             \
    const float *x, Py_ssize_t xsb, Py_ssize_t xsf, Py_ssize_t xsh, const float *y, Py_ssize_t ysb, Py_ssize_t ysf, \
        Py_ssize_t ysh, float *out, Py_ssize_t Fx, Py_ssize_t Fy, Py_ssize_t H, Py_ssize_t d, float scale,         \
        Py_ssize_t b0, Py_ssize_t b1, float *yt, Py_ssize_t fyp
#define PAIR_DOTS_CALL x, xsb, xsf, xsh, y, ysb, ysf, ysh, out, Fx, Fy, H, d, scale, b0, b1, yt, fyp
#define WEIGHTED_SUM_ARGS                                                                                          \
    const float *w, Py_ssize_t wsb, Py_ssize_t wsh, Py_ssize_t wsi, Py_ssize_t wsj, const float *y, Py_ssize_t ysb, \
        Py_ssize_t ysf, Py_ssize_t ysh, float *out, Py_ssize_t Fi, Py_ssize_t Fj, Py_ssize_t H, Py_ssize_t d,      \
        float scale, Py_ssize_t b0, Py_ssize_t b1
#define WEIGHTED_SUM_CALL w, wsb, wsh, wsi, wsj, y, ysb, ysf, ysh, out, Fi, Fj, H, d, scale, b0, b1

static void pair_dots_base(PAIR_DOTS_ARGS) { pair_dots_body(PAIR_DOTS_CALL); }
static void weighted_sum_base(WEIGHTED_SUM_ARGS) { weighted_sum_body(WEIGHTED_SUM_CALL); }
#ifdef HAVE_AVX2_VERSION
__attribute__((target("avx2,fma"))) static void pair_dots_avx2(PAIR_DOTS_ARGS) { pair_dots_body(PAIR_DOTS_CALL); }
__attribute__((target("avx2,fma"))) static void weighted_sum_avx2(WEIGHTED_SUM_ARGS) {
    weighted_sum_body(WEIGHTED_SUM_CALL);
}
#endif

static void (*pair_dots_rows)(PAIR_DOTS_ARGS) = pair_dots_base;
static void (*weighted_sum_rows)(WEIGHTED_SUM_ARGS) = weighted_sum_base;
static const char *isa = "baseline";

static PyObject *pair_dots(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t x, xsb, xsf, xsh, y, ysb, ysf, ysh, out, Fx, Fy, H, d, b0, b1;
    float scale;
    if (!PyArg_ParseTuple(args, "nnnnnnnnnnnnnfnn", &x, &xsb, &xsf, &xsh, &y, &ysb, &ysf, &ysh, &out, &Fx, &Fy, &H, &d,
                          &scale, &b0, &b1))
        return NULL;
    Py_ssize_t fyp = (Fy + 7) / 8 * 8;
    /* Padding columns stay 0. At least one element: calloc(0) may return NULL. */
    float *yt = calloc((size_t)(d > 0 ? d : 1) * (size_t)(fyp > 0 ? fyp : 8), sizeof(float));
    if (!yt) return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    pair_dots_rows((const float *)x, xsb, xsf, xsh, (const float *)y, ysb, ysf, ysh, (float *)out, Fx, Fy, H, d, scale,
                   b0, b1, yt, fyp);
    Py_END_ALLOW_THREADS
    free(yt);
    Py_RETURN_NONE;
}

static PyObject *weighted_sum(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t w, wsb, wsh, wsi, wsj, y, ysb, ysf, ysh, out, Fi, Fj, H, d, b0, b1;
    float scale;
    if (!PyArg_ParseTuple(args, "nnnnnnnnnnnnnnfnn", &w, &wsb, &wsh, &wsi, &wsj, &y, &ysb, &ysf, &ysh, &out, &Fi, &Fj,
                          &H, &d, &scale, &b0, &b1))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    weighted_sum_rows((const float *)w, wsb, wsh, wsi, wsj, (const float *)y, ysb, ysf, ysh, (float *)out, Fi, Fj, H,
                      d, scale, b0, b1);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *get_isa(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyUnicode_FromString(isa);
}

static int cpu_has_avx2(void) {
#ifdef HAVE_AVX2_VERSION
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Point the loops at one compiled version: 1 for AVX2+FMA (only where the CPU runs it), 0 for
 * the baseline. Returns 0 when that version is not available. */
static int select_version(int avx2) {
    if (!avx2) {
        pair_dots_rows = pair_dots_base;
        weighted_sum_rows = weighted_sum_base;
        isa = "baseline";
        return 1;
    }
#ifdef HAVE_AVX2_VERSION
    if (cpu_has_avx2()) {
        pair_dots_rows = pair_dots_avx2;
        weighted_sum_rows = weighted_sum_avx2;
        isa = "avx2+fma";
        return 1;
    }
#endif
    return 0;
}

/* Switch between the compiled versions (tests run both); refuses one the CPU cannot run. */
static PyObject *use_isa(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    int avx2 = strcmp(name, "avx2+fma") == 0;
    if (!(avx2 || strcmp(name, "baseline") == 0) || !select_version(avx2)) {
        PyErr_Format(PyExc_ValueError, "instruction set '%s' is not available here (baseline%s)", name,
                     cpu_has_avx2() ? ", avx2+fma" : "");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"pair_dots", pair_dots, METH_VARARGS,
     "pair_dots(x, xsb, xsf, xsh, y, ysb, ysf, ysh, out, Fx, Fy, H, d, scale, b0, b1): "
     "out[b,h,i,j] = scale * <x[b,i,h,:], y[b,j,h,:]> for b in [b0, b1)"},
    {"weighted_sum", weighted_sum, METH_VARARGS,
     "weighted_sum(w, wsb, wsh, wsi, wsj, y, ysb, ysf, ysh, out, Fi, Fj, H, d, scale, b0, b1): "
     "out[b,i,h,:] = scale * sum_j w[b,h,i,j] * y[b,j,h,:] for b in [b0, b1)"},
    {"use_isa", use_isa, METH_VARARGS, "use_isa(name): run the 'baseline' or the 'avx2+fma' version from now on"},
    {"isa", get_isa, METH_NOARGS, "isa() -> the instruction set the loops were compiled for ('avx2+fma' or 'baseline')"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_fieldattn", "Small batched products of attention over fields (see ctrkit.nn.field_attention).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fieldattn(void) {
    select_version(1); /* the fastest the CPU runs; the baseline stays otherwise */
    return PyModule_Create(&moduledef);
}
