/*
 * ctrkit.data._dictscan: one pass over a plain delimited text file that dictionary-encodes every
 * column it is asked for.
 *
 * Each selected column gets a hash table of its distinct raw values (the bytes between two
 * separators, nothing parsed or unquoted); a row becomes one int32 code per selected column,
 * the index of its value in that column's table. The tables persist across calls, so train,
 * valid and test share codes. Everything that turns a raw value into a token, an id or a number
 * stays in Python (ctrkit.data.dictscan) and runs once per distinct value.
 *
 * The scan accepts only the simple case and reports anything else, and the caller then uses
 * the general reader. That covers a line with the wrong number of fields, a blank line and a
 * '"' anywhere in a line (quoting could hide separators). A '\r' before the '\n' ends the line
 * (CRLF).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Why a scan stopped (0: it did not). */
enum { SCAN_OK = 0, SCAN_FIELDS = 1, SCAN_QUOTE = 2, SCAN_BLANK = 3, SCAN_ROWS = 4, SCAN_MEMORY = 5 };

/* One table entry, 16 bytes: a value of at most 8 bytes is recognised from its slot alone,
 * without touching the arena (one cache miss at most where the table outgrows the cache). */
typedef struct {
    uint64_t head; /* the value's first 8 bytes, zero-padded */
    uint32_t id1;  /* id + 1; 0 marks an empty slot */
    uint32_t tag;  /* hash bits, with min(length, 15) in the low 4 bits */
} Slot;

typedef struct {
    Slot *slots;
    uint64_t mask;
    uint32_t n;        /* distinct values */
    uint64_t cap;      /* room in off/cnt/hash */
    char *arena;       /* the values' bytes, back to back */
    uint64_t alen, acap;
    uint64_t *off;     /* value i is arena[off[i], off[i+1]) */
    uint64_t *hash;    /* full hash of value i, for growing the table */
    int64_t *cnt;      /* occurrences of value i over every scan so far (compact: stays cached) */
} Dict;

typedef struct {
    int ncols;
    Dict *dicts;
    int busy; /* a scan is running (without the GIL): the tables must not be touched */
} Scanner;

/* One field of the row being scanned. */
typedef struct {
    const char *p;
    size_t n;
    uint64_t head, h;
} Field;

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* The first min(n, 8) bytes of p, zero-padded. A full 8-byte load when it stays inside the
 * buffer (the common case: no call to memcpy for a variable length). */
static inline uint64_t head_of(const char *p, size_t n, const char *end) {
    uint64_t w = 0;
    if (n >= 8) {
        memcpy(&w, p, 8);
    } else if (end - p >= 8) {
        memcpy(&w, p, 8);
        w &= (1ULL << (8 * n)) - 1; /* little-endian: the first n bytes are the low ones */
    } else {
        for (size_t i = 0; i < n; i++) w |= (uint64_t)(unsigned char)p[i] << (8 * i);
    }
    return w;
}

static inline uint64_t hash_value(const char *p, size_t n, uint64_t head) {
    uint64_t h = head ^ ((uint64_t)n << 56) ^ 0x9E3779B97F4A7C15ULL;
    if (n > 8) {
        const char *q = p + 8;
        size_t m = n - 8;
        while (m >= 8) {
            uint64_t w;
            memcpy(&w, q, 8);
            h = (h ^ mix(h)) * 0xff51afd7ed558ccdULL ^ w;
            q += 8;
            m -= 8;
        }
        uint64_t w = 0;
        for (size_t i = 0; i < m; i++) w |= (uint64_t)(unsigned char)q[i] << (8 * i);
        h = (h ^ mix(h)) * 0xff51afd7ed558ccdULL ^ w;
    }
    return mix(h);
}

/* A zeroed hash table. Tables of 2 MB and more ask for transparent huge pages (where the system
 * leaves that to madvise): their lookups land anywhere in them, and with 4 kB pages nearly
 * every one would also miss the TLB. */
static Slot *table_alloc(uint64_t nslots) {
    const size_t bytes = (size_t)nslots * sizeof(Slot);
    const size_t huge = (size_t)1 << 21;
    if (bytes < huge) return calloc(nslots, sizeof(Slot));
    void *mem = NULL;
    if (posix_memalign(&mem, huge, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(mem, bytes, MADV_HUGEPAGE);
#endif
    memset(mem, 0, bytes);
    return mem;
}

static int dict_init(Dict *d) {
    memset(d, 0, sizeof(*d));
    d->mask = 1023;
    d->slots = calloc(d->mask + 1, sizeof(Slot));
    d->cap = 512;
    d->off = malloc((d->cap + 1) * sizeof(uint64_t));
    d->hash = malloc(d->cap * sizeof(uint64_t));
    d->cnt = malloc(d->cap * sizeof(int64_t));
    d->acap = 1 << 14;
    d->arena = malloc(d->acap);
    if (!d->slots || !d->off || !d->hash || !d->cnt || !d->arena) return -1;
    d->off[0] = 0;
    return 0;
}

static void dict_free(Dict *d) {
    free(d->slots);
    free(d->off);
    free(d->hash);
    free(d->cnt);
    free(d->arena);
}

static int dict_grow_table(Dict *d) {
    uint64_t mask = d->mask * 2 + 1;
    Slot *slots = table_alloc(mask + 1);
    if (!slots) return -1;
    for (uint64_t j = 0; j <= d->mask; j++) {
        if (!d->slots[j].id1) continue;
        uint64_t i = d->hash[d->slots[j].id1 - 1] & mask;
        while (slots[i].id1) i = (i + 1) & mask;
        slots[i] = d->slots[j];
    }
    free(d->slots);
    d->slots = slots;
    d->mask = mask;
    return 0;
}

/* The code of value p[0:n] (first bytes ``head``, hash ``h``) in d, added when new with a count
 * of 0 (the caller counts); -1 when out of memory. */
static inline int64_t dict_code(Dict *d, const char *p, size_t n, uint64_t head, uint64_t h) {
    const uint32_t tag = ((uint32_t)(h >> 32) & ~15U) | (uint32_t)(n < 15 ? n : 15);
    uint64_t i = h & d->mask;
    for (;;) {
        Slot *s = &d->slots[i];
        if (!s->id1) break;
        if (s->tag == tag && s->head == head) {
            const uint32_t id = s->id1 - 1;
            /* Up to 8 bytes, head and length (in the tag) are the whole value. */
            if (n <= 8 || (d->off[id + 1] - d->off[id] == n && memcmp(d->arena + d->off[id], p, n) == 0)) return id;
        }
        i = (i + 1) & d->mask;
    }
    if (d->n >= 0x7ffffffeU) return -1;
    if (d->n == d->cap) {
        uint64_t cap = d->cap * 2;
        uint64_t *off = realloc(d->off, (cap + 1) * sizeof(uint64_t));
        if (!off) return -1;
        d->off = off;
        uint64_t *hash = realloc(d->hash, cap * sizeof(uint64_t));
        if (!hash) return -1;
        d->hash = hash;
        int64_t *cnt = realloc(d->cnt, cap * sizeof(int64_t));
        if (!cnt) return -1;
        d->cnt = cnt;
        d->cap = cap;
    }
    if (d->alen + n > d->acap) {
        uint64_t acap = d->acap * 2;
        while (d->alen + n > acap) acap *= 2;
        char *arena = realloc(d->arena, acap);
        if (!arena) return -1;
        d->arena = arena;
        d->acap = acap;
    }
    const uint32_t id = d->n++;
    memcpy(d->arena + d->alen, p, n);
    d->alen += n;
    d->off[id + 1] = d->alen;
    d->hash[id] = h;
    d->cnt[id] = 0;
    Slot *s = &d->slots[i];
    s->head = head;
    s->id1 = id + 1;
    s->tag = tag;
    /* Keep the load at most one half: probes stay short. */
    if ((uint64_t)d->n * 2 > d->mask + 1 && dict_grow_table(d) < 0) return -1;
    return id;
}

/* ------------------------------------------------------------------------ the Scanner type */
typedef struct {
    PyObject_HEAD
    Scanner s;
} ScannerObject;

static void Scanner_dealloc(ScannerObject *self) {
    if (self->s.dicts) {
        for (int k = 0; k < self->s.ncols; k++) dict_free(&self->s.dicts[k]);
        free(self->s.dicts);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Scanner_init(ScannerObject *self, PyObject *args, PyObject *kwds) {
    (void)kwds;
    int ncols;
    if (!PyArg_ParseTuple(args, "i", &ncols)) return -1;
    if (self->s.dicts) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is already initialised");
        return -1;
    }
    if (ncols < 1) {
        PyErr_SetString(PyExc_ValueError, "Scanner needs at least one column");
        return -1;
    }
    self->s.ncols = ncols;
    self->s.dicts = calloc(ncols, sizeof(Dict));
    if (!self->s.dicts) {
        PyErr_NoMemory();
        return -1;
    }
    for (int k = 0; k < ncols; k++) {
        if (dict_init(&self->s.dicts[k]) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

/* Scan rows of buf[0:len) into codes (max_rows rows of K) until the end or something the scan
 * does not take; *rows and *line (1-based, where it stopped) tell how far it got. Rows are
 * done in three steps so that the cache misses of one row's lookups overlap instead of
 * following one another: (1) split the row into fields, hash each selected one and prefetch its
 * table slot; (2) find or add each value, prefetching its count; (3) count the previous row's
 * values. fl has room for nfields entries. */
static int scan_rows(Scanner *sc, const char *p, const char *end, char sep, int skip_header, const int32_t *cmap,
                     int nfields, int32_t *codes, int64_t max_rows, Field *fl, int64_t *rows, int64_t *line) {
    const int K = sc->ncols;
    Dict *dicts = sc->dicts;
    const int32_t *prev = NULL;
    int status = SCAN_OK;
    *rows = 0;
    *line = 1;
    if (skip_header) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
        *line = 2;
    }
    while (p < end) {
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
            status = SCAN_BLANK;
            break;
        }
        if (*rows >= max_rows) {
            status = SCAN_ROWS;
            break;
        }
        int f = 0;
        for (;;) {
            const char *s = p;
            while (p < end && *p != sep && *p != '\n' && *p != '"') p++;
            if (p < end && *p == '"') {
                status = SCAN_QUOTE;
                break;
            }
            const int eol = p >= end || *p == '\n';
            const char *e = p;
            if (eol && e > s && e[-1] == '\r') e--;
            if (f >= nfields) {
                status = SCAN_FIELDS;
                break;
            }
            const int k = cmap[f];
            if (k >= 0) {
                Field *x = &fl[f];
                x->p = s;
                x->n = (size_t)(e - s);
                x->head = head_of(s, x->n, end);
                x->h = hash_value(s, x->n, x->head);
                __builtin_prefetch(&dicts[k].slots[x->h & dicts[k].mask]);
            }
            f++;
            if (p < end) p++; /* past the separator or the newline */
            if (eol) break;
        }
        if (status == SCAN_OK && f != nfields) status = SCAN_FIELDS;
        if (status != SCAN_OK) break;
        int32_t *row = codes + *rows * K;
        for (f = 0; f < nfields; f++) {
            const int k = cmap[f];
            if (k < 0) continue;
            const Field *x = &fl[f];
            const int64_t c = dict_code(&dicts[k], x->p, x->n, x->head, x->h);
            if (c < 0) {
                status = SCAN_MEMORY;
                break;
            }
            row[k] = (int32_t)c;
            __builtin_prefetch(&dicts[k].cnt[c], 1);
        }
        if (status != SCAN_OK) break;
        if (prev)
            for (int k = 0; k < K; k++) dicts[k].cnt[prev[k]]++;
        prev = row;
        (*rows)++;
        (*line)++;
    }
    if (prev)
        for (int k = 0; k < K; k++) dicts[k].cnt[prev[k]]++;
    return status;
}

/*
 * scan(data, sep, skip_header, colmap, out) -> (status, rows, line)
 *
 * data: the file's bytes (any buffer). sep: the separator byte. skip_header: 1 when the first
 * line is a header. colmap: int32 buffer, one entry per field of a line: the selected column
 * that field fills, or -1; every column must be filled by exactly one field. out: writable
 * int32 buffer of (max_rows, ncols), row-major. status is SCAN_OK or why the scan stopped; line
 * is then the 1-based line it stopped on.
 */
static PyObject *Scanner_scan(ScannerObject *self, PyObject *args) {
    Py_buffer data, colmap, out;
    int sep, skip_header;
    if (!PyArg_ParseTuple(args, "y*ipy*w*", &data, &sep, &skip_header, &colmap, &out)) return NULL;
    PyObject *result = NULL;
    const int nfields = (int)(colmap.len / sizeof(int32_t));
    const int K = self->s.ncols;
    const int32_t *cmap = colmap.buf;
    Field *fl = NULL;
    int *filled = calloc((size_t)K, sizeof(int));
    if (!filled) {
        PyErr_NoMemory();
        goto done;
    }
    for (int f = 0; f < nfields; f++)
        if (cmap[f] >= 0 && cmap[f] < K) filled[cmap[f]]++;
    for (int k = 0; k < K; k++) {
        if (filled[k] != 1) {
            PyErr_SetString(PyExc_ValueError, "colmap must name every column of the Scanner exactly once");
            goto done;
        }
    }
    for (int f = 0; f < nfields; f++) {
        if (cmap[f] >= K || cmap[f] < -1) {
            PyErr_SetString(PyExc_ValueError, "colmap names a column the Scanner does not have");
            goto done;
        }
    }
    fl = malloc(sizeof(Field) * (size_t)(nfields ? nfields : 1));
    if (!fl) {
        PyErr_NoMemory();
        goto done;
    }
    if (self->s.busy) { /* (one Scanner per thread: the tables have no lock) */
        PyErr_SetString(PyExc_RuntimeError, "this Scanner is scanning in another thread");
        goto done;
    }
    self->s.busy = 1;
    int status;
    int64_t rows, line;
    const char *p = data.buf;
    const int64_t max_rows = out.len / (Py_ssize_t)(sizeof(int32_t) * K);
    Py_BEGIN_ALLOW_THREADS
    status = scan_rows(&self->s, p, p + data.len, (char)sep, skip_header, cmap, nfields, out.buf, max_rows, fl, &rows,
                       &line);
    Py_END_ALLOW_THREADS
    self->s.busy = 0;
    result = Py_BuildValue("iLL", status, (long long)rows, (long long)line);
done:
    free(filled);
    free(fl);
    PyBuffer_Release(&data);
    PyBuffer_Release(&colmap);
    PyBuffer_Release(&out);
    return result;
}

/* The table of the column index in args (one int), or NULL with an exception set. */
static Dict *column_arg(ScannerObject *self, PyObject *args) {
    int k;
    if (!PyArg_ParseTuple(args, "i", &k)) return NULL;
    if (self->s.busy) {
        PyErr_SetString(PyExc_RuntimeError, "this Scanner is scanning in another thread");
        return NULL;
    }
    if (k < 0 || k >= self->s.ncols) {
        PyErr_SetString(PyExc_IndexError, "column out of range");
        return NULL;
    }
    return &self->s.dicts[k];
}

/* values(k) -> (bytes, offsets): column k's distinct values back to back, and the int64
 * offsets (n + 1 of them, as bytes) that delimit them; value i is the code i. */
static PyObject *Scanner_values(ScannerObject *self, PyObject *args) {
    Dict *d = column_arg(self, args);
    if (!d) return NULL;
    PyObject *blob = PyBytes_FromStringAndSize(d->arena, (Py_ssize_t)d->alen);
    PyObject *offs = PyBytes_FromStringAndSize((const char *)d->off, (Py_ssize_t)((d->n + 1) * sizeof(uint64_t)));
    if (!blob || !offs) {
        Py_XDECREF(blob);
        Py_XDECREF(offs);
        return NULL;
    }
    return Py_BuildValue("NN", blob, offs);
}

/* counts(k) -> bytes: int64 occurrences of each of column k's values over every scan so far. */
static PyObject *Scanner_counts(ScannerObject *self, PyObject *args) {
    Dict *d = column_arg(self, args);
    if (!d) return NULL;
    return PyBytes_FromStringAndSize((const char *)d->cnt, (Py_ssize_t)(d->n * sizeof(int64_t)));
}

/* merge(other) -> list of bytes: adds every value of another Scanner (same columns) to this one,
 * counts included, and returns per column the int32 remap from the other's codes to this one's.
 * Lets pieces of the input be scanned in parallel, each with its own Scanner. */
static PyObject *Scanner_merge(ScannerObject *self, PyObject *args) {
    ScannerObject *other;
    if (!PyArg_ParseTuple(args, "O!", Py_TYPE(self), &other)) return NULL;
    if (self->s.busy || other->s.busy) {
        PyErr_SetString(PyExc_RuntimeError, "merge while a Scanner is scanning in another thread");
        return NULL;
    }
    if (other == self || other->s.ncols != self->s.ncols) {
        PyErr_SetString(PyExc_ValueError, "merge needs another Scanner with as many columns");
        return NULL;
    }
    PyObject *list = PyList_New(self->s.ncols);
    if (!list) return NULL;
    for (int k = 0; k < self->s.ncols; k++) {
        Dict *src = &other->s.dicts[k], *dst = &self->s.dicts[k];
        PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(src->n * sizeof(int32_t)));
        if (!b) {
            Py_DECREF(list);
            return NULL;
        }
        int32_t *remap = (int32_t *)PyBytes_AS_STRING(b);
        const char *aend = src->arena + src->alen;
        for (uint32_t id = 0; id < src->n; id++) {
            const char *p = src->arena + src->off[id];
            const size_t n = (size_t)(src->off[id + 1] - src->off[id]);
            const int64_t c = dict_code(dst, p, n, head_of(p, n, aend), src->hash[id]);
            if (c < 0) {
                Py_DECREF(b);
                Py_DECREF(list);
                return PyErr_NoMemory();
            }
            dst->cnt[c] += src->cnt[id];
            remap[id] = (int32_t)c;
        }
        PyList_SET_ITEM(list, k, b);
    }
    return list;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS, "scan(data, sep, skip_header, colmap, out) -> (status, rows, line)"},
    {"values", (PyCFunction)Scanner_values, METH_VARARGS, "values(k) -> (bytes, int64 offsets as bytes)"},
    {"counts", (PyCFunction)Scanner_counts, METH_VARARGS, "counts(k) -> int64 counts as bytes"},
    {"merge", (PyCFunction)Scanner_merge, METH_VARARGS, "merge(other) -> [int32 remap as bytes per column]"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ctrkit.data._dictscan.Scanner",
    .tp_doc = "Dictionary-encoding scanner of delimited text: Scanner(ncols)",
    .tp_basicsize = sizeof(ScannerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

/* ---------------------------------------------------------------------------- gathering */
/*
 * gather(codes, ncols, srcs, lut_offsets, luts, out, itemsize=4): out[i, j] =
 * luts[lut_offsets[j] + codes[i, srcs[j]]] for items of 4 bytes (int32 ids, float32 values) or
 * 8 (int64 group keys), row by row, so the (rows, len(srcs)) output is written once, in order.
 * The codes must be ones a Scanner gave (each below its column's table size): they are not
 * checked.
 */
#define GATHER_ROWS(T)                                                  \
    do {                                                                \
        const T *lut = luts.buf;                                        \
        T *o = out.buf;                                                 \
        for (int64_t i = 0; i < rows; i++) {                            \
            const int32_t *row = c + i * K;                             \
            T *orow = o + i * J;                                        \
            for (int j = 0; j < J; j++) orow[j] = lut[lo[j] + row[src[j]]]; \
        }                                                               \
    } while (0)

static PyObject *gather(PyObject *mod, PyObject *args) {
    (void)mod;
    Py_buffer codes, srcs, loffs, luts, out;
    int K, itemsize = 4;
    if (!PyArg_ParseTuple(args, "y*iy*y*y*w*|i", &codes, &K, &srcs, &loffs, &luts, &out, &itemsize)) return NULL;
    const int J = (int)(srcs.len / sizeof(int32_t));
    const int64_t rows = K > 0 ? codes.len / (Py_ssize_t)(sizeof(int32_t) * K) : 0;
    const int64_t nlut = (itemsize == 4 || itemsize == 8) ? luts.len / itemsize : 0;
    const int32_t *src = srcs.buf;
    const int64_t *lo = loffs.buf;
    int ok = J > 0 && nlut > 0 && (Py_ssize_t)(loffs.len / sizeof(int64_t)) == J && out.len == rows * J * (Py_ssize_t)itemsize;
    for (int j = 0; ok && j < J; j++) ok = src[j] >= 0 && src[j] < K && lo[j] >= 0 && lo[j] < nlut;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "gather: buffer sizes do not agree");
    } else {
        Py_BEGIN_ALLOW_THREADS
        const int32_t *c = codes.buf;
        if (itemsize == 4)
            GATHER_ROWS(uint32_t);
        else
            GATHER_ROWS(uint64_t);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&codes);
    PyBuffer_Release(&srcs);
    PyBuffer_Release(&loffs);
    PyBuffer_Release(&luts);
    PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* count_lines(data) -> int: newlines, plus one for a last line without one. */
static PyObject *count_lines(PyObject *mod, PyObject *args) {
    (void)mod;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    int64_t n = 0;
    Py_BEGIN_ALLOW_THREADS
    const char *p = data.buf, *end = p + data.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            n++;
            break;
        }
        n++;
        p = nl + 1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyLong_FromLongLong((long long)n);
}

static PyMethodDef module_methods[] = {
    {"gather", gather, METH_VARARGS, "gather(codes, ncols, srcs, lut_offsets, luts, out, itemsize=4)"},
    {"count_lines", count_lines, METH_VARARGS, "count_lines(data) -> int"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_dictscan", "Dictionary-encoding scan of delimited text (see ctrkit.data.dictscan).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__dictscan(void) {
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "SCAN_OK", SCAN_OK);
    PyModule_AddIntConstant(m, "SCAN_FIELDS", SCAN_FIELDS);
    PyModule_AddIntConstant(m, "SCAN_QUOTE", SCAN_QUOTE);
    PyModule_AddIntConstant(m, "SCAN_BLANK", SCAN_BLANK);
    PyModule_AddIntConstant(m, "SCAN_ROWS", SCAN_ROWS);
    PyModule_AddIntConstant(m, "SCAN_MEMORY", SCAN_MEMORY);
    return m;
}
