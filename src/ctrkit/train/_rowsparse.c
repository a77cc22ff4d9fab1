/*
 * ctrkit.train._rowsparse: the row-sparse update of an embedding table, for float32.
 *
 *   coalesce: the (row id, value row) pairs of a sparse gradient -> its distinct rows, sorted,
 *             and the sum of each row's values, added in the order the pairs come;
 *   adam:     RowSparseAdam's update of those rows, in place in the table and its two moments.
 *
 * Why: a batch of 10,000 Criteo rows looks up 260,000 ids of which about 40,000 are distinct.
 * PyTorch coalesces them with a stable sort of all 260,000 ids and a segment sum, and the
 * optimizer then gathers the rows of the table and of both moments, updates the gathered copies
 * with a dozen elementwise passes and scatters them back. All of it is memory-bound and runs on
 * one thread, so on two cores it cost about a fifth of a DeepFM training step. Here:
 *
 *   - coalesce marks each id in a per-table array of slots (one int32 per table row, -1 when
 *     free), radix-sorts the few distinct rows, then adds every value row into its row's slot:
 *     two passes over the ids and one over the values, no sort of the ids;
 *   - adam reads and writes each present row of the table and of its moments once.
 *
 * Results are deterministic: every sum is taken in the order the pairs come (the order of a
 * stable sort followed by a segment sum), every row is updated by one thread. The arithmetic is
 * RowSparseAdam's, in float32 with the bias corrections in double; it differs from PyTorch's
 * elementwise kernels only by rounding (they may fuse a multiply and an add).
 *
 * The slot array must hold -1 everywhere when coalesce is called, and does again when it returns,
 * whatever happens. Pointers, sizes and contiguity are trusted: ctrkit.train.optimizers checks
 * them. The GIL is released while the loops run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* How many rows (ids) ahead the loops ask for the cache lines they will touch: the rows of a
 * table are scattered over tens of MB, and each one waited for from DRAM in turn costs more than
 * its arithmetic. */
#define AHEAD 8

/* LSD radix sort of keys[0, n) (each in [0, limit)), 11 bits a pass; tmp holds n keys. */
static void radix_sort(int64_t *keys, int64_t *tmp, Py_ssize_t n, int64_t limit) {
    enum { BITS = 11, BUCKETS = 1 << BITS };
    Py_ssize_t count[BUCKETS];
    int64_t *src = keys, *dst = tmp;
    for (int shift = 0; shift < 63 && (limit - 1) >> shift; shift += BITS) {
        memset(count, 0, sizeof count);
        for (Py_ssize_t i = 0; i < n; i++) count[(src[i] >> shift) & (BUCKETS - 1)]++;
        Py_ssize_t pos = 0;
        for (int b = 0; b < BUCKETS; b++) {
            Py_ssize_t c = count[b];
            count[b] = pos;
            pos += c;
        }
        for (Py_ssize_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & (BUCKETS - 1)]++] = src[i];
        int64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != keys) memcpy(keys, src, (size_t)n * sizeof *keys);
}

#define OUT_OF_MEMORY PY_SSIZE_T_MIN

/* Returns the number of distinct rows; -1 - i when ids[i] is out of range, OUT_OF_MEMORY when
 * the sort's buffer cannot be had (the slots are all -1 again in every case). */
static Py_ssize_t coalesce_rows(const int64_t *ids, Py_ssize_t n, const float *vals, Py_ssize_t d, int64_t num_rows,
                                int32_t *slot, int64_t *rows, float *sums) {
    Py_ssize_t u = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t r = ids[i];
        if (i + AHEAD < n && ids[i + AHEAD] >= 0 && ids[i + AHEAD] < num_rows) __builtin_prefetch(slot + ids[i + AHEAD], 1);
        if (r < 0 || r >= num_rows) {
            for (Py_ssize_t k = 0; k < u; k++) slot[rows[k]] = -1;
            return -1 - i;
        }
        if (slot[r] < 0) {
            slot[r] = 0;
            rows[u++] = r;
        }
    }
    int64_t *tmp = malloc((size_t)(u > 0 ? u : 1) * sizeof *tmp);
    if (!tmp) {
        for (Py_ssize_t k = 0; k < u; k++) slot[rows[k]] = -1;
        return OUT_OF_MEMORY;
    }
    radix_sort(rows, tmp, u, num_rows);
    free(tmp);
    for (Py_ssize_t k = 0; k < u; k++) slot[rows[k]] = (int32_t)k;
    memset(sums, 0, (size_t)u * (size_t)d * sizeof *sums);
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Two stages: the slot of the id 2 * AHEAD on, then the sum row of the id AHEAD on. */
        if (i + 2 * AHEAD < n) __builtin_prefetch(slot + ids[i + 2 * AHEAD], 0);
        if (i + AHEAD < n) __builtin_prefetch(sums + (Py_ssize_t)slot[ids[i + AHEAD]] * d, 1);
        float *dst = sums + (Py_ssize_t)slot[ids[i]] * d;
        const float *src = vals + i * d;
        for (Py_ssize_t j = 0; j < d; j++) dst[j] += src[j];
    }
    for (Py_ssize_t k = 0; k < u; k++) slot[rows[k]] = -1;
    return u;
}

static PyObject *coalesce(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t ids, n, vals, d, slot, rows, sums;
    long long num_rows;
    if (!PyArg_ParseTuple(args, "nnnnLnnn", &ids, &n, &vals, &d, &num_rows, &slot, &rows, &sums)) return NULL;
    Py_ssize_t u;
    Py_BEGIN_ALLOW_THREADS
    u = coalesce_rows((const int64_t *)ids, n, (const float *)vals, d, (int64_t)num_rows, (int32_t *)slot,
                      (int64_t *)rows, (float *)sums);
    Py_END_ALLOW_THREADS
    if (u == OUT_OF_MEMORY) return PyErr_NoMemory();
    if (u < 0) {
        Py_ssize_t i = -1 - u;
        PyErr_Format(PyExc_IndexError, "sparse gradient: row id %lld at position %zd is outside the table's %lld rows",
                     (long long)((const int64_t *)ids)[i], i, num_rows);
        return NULL;
    }
    return PyLong_FromSsize_t(u);
}

static PyObject *adam(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t rows_p, u, g_p, w_p, m_p, v_p, step_p, d;
    double lr, beta1, beta2, eps, wd;
    if (!PyArg_ParseTuple(args, "nnnnnnnnddddd", &rows_p, &u, &g_p, &w_p, &m_p, &v_p, &step_p, &d, &lr, &beta1, &beta2,
                          &eps, &wd))
        return NULL;
    const int64_t *rows = (const int64_t *)rows_p;
    const float *g = (const float *)g_p;
    float *w = (float *)w_p, *m = (float *)m_p, *v = (float *)v_p;
    int32_t *step = (int32_t *)step_p;
    /* The scalars as PyTorch applies them to a float32 tensor: computed in double, cast once. */
    const float wdf = (float)wd, one_m_b1 = (float)(1.0 - beta1), b2 = (float)beta2, one_m_b2 = (float)(1.0 - beta2),
                epsf = (float)eps;
    /* Per-row bias corrections (see RowSparseAdam), in double like the PyTorch path. Most rows
     * share a handful of step counts, so the two pow() of a count are remembered. */
    enum { CACHE = 256 };
    int32_t seen[CACHE];
    float cached_step_size[CACHE], cached_bc2[CACHE];
    for (int i = 0; i < CACHE; i++) seen[i] = -1;
    const Py_ssize_t line = 64 / sizeof(float), row_lines = d < 4 * line ? (d + line - 1) / line : 4;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < u; k++) {
        if (k + AHEAD < u) {
            Py_ssize_t ahead = (Py_ssize_t)rows[k + AHEAD] * d;
            for (Py_ssize_t c = 0; c < row_lines; c++) {
                __builtin_prefetch(w + ahead + c * line, 1);
                __builtin_prefetch(m + ahead + c * line, 1);
                __builtin_prefetch(v + ahead + c * line, 1);
            }
            __builtin_prefetch(step + rows[k + AHEAD], 1);
        }
        Py_ssize_t off = (Py_ssize_t)rows[k] * d;
        int32_t t = ++step[rows[k]];
        int slot_t = t & (CACHE - 1);
        if (seen[slot_t] != t) {
            seen[slot_t] = t;
            cached_step_size[slot_t] = (float)(lr / (1.0 - pow(beta1, (double)t)));
            cached_bc2[slot_t] = (float)sqrt(1.0 - pow(beta2, (double)t));
        }
        const float step_size = cached_step_size[slot_t], bc2_sqrt = cached_bc2[slot_t];
        const float *gk = g + k * d;
        float *wr = w + off, *mr = m + off, *vr = v + off;
        for (Py_ssize_t j = 0; j < d; j++) {
            float gj = gk[j];
            if (wdf != 0.0f) gj += wdf * wr[j];
            float mj = mr[j] + one_m_b1 * (gj - mr[j]);
            float vj = vr[j] * b2 + one_m_b2 * gj * gj;
            mr[j] = mj;
            vr[j] = vj;
            wr[j] -= mj / (sqrtf(vj) / bc2_sqrt + epsf) * step_size;
        }
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"coalesce", coalesce, METH_VARARGS,
     "coalesce(ids, n, vals, d, num_rows, slot, rows, sums) -> u: the u distinct ids, sorted, into rows and the "
     "sum of each one's value rows into sums (u, d); slot: int32 (num_rows,), all -1 before and after"},
    {"adam", adam, METH_VARARGS,
     "adam(rows, u, g, w, m, v, step, d, lr, beta1, beta2, eps, weight_decay): RowSparseAdam's update of the u "
     "rows in place"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_rowsparse", "The row-sparse embedding update (see ctrkit.train.optimizers).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowsparse(void) { return PyModule_Create(&moduledef); }
