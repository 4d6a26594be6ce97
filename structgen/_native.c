/* structgen._native: the hot loops of structgen's automata and token layers, in C.
 *
 * Optional accelerator: every function here has a pure-Python reference in the package (the
 * oracle the tests compare against, byte for byte). Built by setup.py as an optional extension;
 * STRUCTGEN_PURE_PYTHON=1 forces the reference path (see structgen/_accel.py).
 *
 * Contents:
 *   Dfa   a lazily determinised byte DFA (subset construction on demand) over a byte NFA given
 *         as CSR arrays; the same state numbering rules as automata/lazy_dfa.py.
 *   Trie  the vocabulary's byte trie in depth-first order, with walks of a Dfa below trie nodes
 *         that produce token bitmasks (tokens/dfa_index.py and tokens/cfg_index.py).
 *
 * Everything runs with the GIL held and never calls back into Python (apart from building
 * result objects), so the objects need no locks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NATIVE_ABI 3

static PyObject *LimitExceeded = NULL; /* structgen.errors.LimitExceeded, set by _set_errors */

/* ------------------------------------------------------------------------------ utilities */

static int grow(void **ptr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *p = realloc(*ptr, c * elem);
    if (!p) { PyErr_NoMemory(); return -1; }
    *ptr = p;
    *cap = c;
    return 0;
}

typedef struct {
    Py_buffer view;
    int ok;
} Buf;

static int get_buf(PyObject *obj, Buf *b, Py_ssize_t itemsize, const char *what) {
    b->ok = 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    b->ok = 1;
    if (itemsize && b->view.len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: buffer length %zd is not a multiple of %zd", what,
                     b->view.len, itemsize);
        return -1;
    }
    return 0;
}

static void rel_buf(Buf *b) {
    if (b->ok) PyBuffer_Release(&b->view);
    b->ok = 0;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void sort_i32(int32_t *a, size_t n) {
    /* insertion sort for the (usual) tiny sets, qsort otherwise */
    if (n < 24) {
        for (size_t i = 1; i < n; i++) {
            int32_t v = a[i];
            size_t j = i;
            while (j && a[j - 1] > v) { a[j] = a[j - 1]; j--; }
            a[j] = v;
        }
        return;
    }
    qsort(a, n, sizeof(int32_t), cmp_i32);
}

static uint64_t hash_i32(const int32_t *a, size_t n) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)a[i];
        h *= 1099511628211ULL;
        h ^= h >> 29;
    }
    return h ^ (h >> 32);
}

/* ------------------------------------------------------------------------------------ Dfa */

typedef struct {
    PyObject_HEAD
    /* the NFA, CSR: byte edges [e_off[s], e_off[s+1]) and epsilon edges [x_off[s], x_off[s+1]) */
    int32_t n_nfa;
    int32_t *e_off, *e_dst, *x_off, *x_dst;
    uint8_t *e_lo, *e_hi, *nfa_accept, *live;
    /* epsilon closures, per NFA state (computed on first use) */
    int64_t *cl_off; /* -1: not computed */
    int32_t *cl_len;
    int32_t *cl_pool;
    size_t cl_cap, cl_used;
    /* discovered states: subsets (sorted NFA state lists) in a pool */
    int32_t n_states, max_states;
    size_t cap_states;
    int64_t *ss_off;
    int32_t *ss_len;
    uint64_t *ss_hash;
    int32_t *ss_pool;
    size_t ss_cap, ss_used;
    int32_t *ht; /* open addressing: sid + 1, 0 empty */
    size_t ht_cap;
    /* rows: table[sid * 256 + byte], -1 while the row is not computed */
    int32_t *table;
    uint8_t *accepting, *has_out, *row_done;
    PyObject *accept_list; /* list of bools, one per state (fast reads from Python) */
    PyObject *pyrows;      /* list: None or the row as a list of 256 ints (row()) */
    /* scratch */
    uint32_t *mark;
    uint32_t stamp;
    int32_t *tmp;
    size_t tmp_cap;
    int32_t *edges_tmp; /* (lo, hi, dst) triples */
    size_t edges_cap;
    int32_t start, initial;
    int all_live;
} DfaObject;

static PyTypeObject DfaType;

static void dfa_dealloc(DfaObject *d) {
    free(d->e_off); free(d->e_dst); free(d->x_off); free(d->x_dst);
    free(d->e_lo); free(d->e_hi); free(d->nfa_accept); free(d->live);
    free(d->cl_off); free(d->cl_len); free(d->cl_pool);
    free(d->ss_off); free(d->ss_len); free(d->ss_hash); free(d->ss_pool); free(d->ht);
    free(d->table); free(d->accepting); free(d->has_out); free(d->row_done);
    free(d->mark); free(d->tmp); free(d->edges_tmp);
    Py_XDECREF(d->accept_list);
    Py_XDECREF(d->pyrows);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static int dfa_reserve_states(DfaObject *d, size_t need) {
    if (need <= d->cap_states) return 0;
    size_t c = d->cap_states ? d->cap_states : 64;
    while (c < need) c *= 2;
    int64_t *so = realloc(d->ss_off, c * sizeof(int64_t));
    if (!so) return PyErr_NoMemory(), -1;
    d->ss_off = so;
    int32_t *sl = realloc(d->ss_len, c * sizeof(int32_t));
    if (!sl) return PyErr_NoMemory(), -1;
    d->ss_len = sl;
    uint64_t *sh = realloc(d->ss_hash, c * sizeof(uint64_t));
    if (!sh) return PyErr_NoMemory(), -1;
    d->ss_hash = sh;
    int32_t *t = realloc(d->table, c * 256 * sizeof(int32_t));
    if (!t) return PyErr_NoMemory(), -1;
    d->table = t;
    uint8_t *a = realloc(d->accepting, c);
    if (!a) return PyErr_NoMemory(), -1;
    d->accepting = a;
    uint8_t *h = realloc(d->has_out, c);
    if (!h) return PyErr_NoMemory(), -1;
    d->has_out = h;
    uint8_t *r = realloc(d->row_done, c);
    if (!r) return PyErr_NoMemory(), -1;
    d->row_done = r;
    d->cap_states = c;
    return 0;
}

static int dfa_rehash(DfaObject *d, size_t cap) {
    int32_t *ht = calloc(cap, sizeof(int32_t));
    if (!ht) return PyErr_NoMemory(), -1;
    for (int32_t sid = 0; sid < d->n_states; sid++) {
        size_t i = (size_t)d->ss_hash[sid] & (cap - 1);
        while (ht[i]) i = (i + 1) & (cap - 1);
        ht[i] = sid + 1;
    }
    free(d->ht);
    d->ht = ht;
    d->ht_cap = cap;
    return 0;
}

static int raise_limit(const char *msg, const char *hint) {
    if (LimitExceeded) {
        PyObject *args = Py_BuildValue("(s)", msg);
        PyObject *kw = Py_BuildValue("{s:s}", "hint", hint);
        PyObject *exc = (args && kw) ? PyObject_Call(LimitExceeded, args, kw) : NULL;
        Py_XDECREF(args);
        Py_XDECREF(kw);
        if (exc) {
            PyErr_SetObject(LimitExceeded, exc);
            Py_DECREF(exc);
        }
    } else {
        PyErr_SetString(PyExc_RuntimeError, msg);
    }
    return -1;
}

/* The id of the state whose NFA set is the sorted list set[0..n); interned if new (-1: error). */
static int32_t dfa_intern(DfaObject *d, const int32_t *set, size_t n) {
    uint64_t h = hash_i32(set, n);
    if (d->ht_cap) {
        size_t i = (size_t)h & (d->ht_cap - 1);
        while (d->ht[i]) {
            int32_t sid = d->ht[i] - 1;
            if (d->ss_hash[sid] == h && (size_t)d->ss_len[sid] == n &&
                memcmp(d->ss_pool + d->ss_off[sid], set, n * sizeof(int32_t)) == 0)
                return sid;
            i = (i + 1) & (d->ht_cap - 1);
        }
    }
    int32_t sid = d->n_states;
    if (sid >= d->max_states) {
        char msg[128];
        snprintf(msg, sizeof msg, "the lazy byte DFA exceeds %d states", (int)d->max_states);
        raise_limit(msg, "simplify the grammar (large bounded repeats multiply states)");
        return -1;
    }
    if (dfa_reserve_states(d, (size_t)sid + 1) < 0) return -1;
    if (grow((void **)&d->ss_pool, &d->ss_cap, d->ss_used + n, sizeof(int32_t)) < 0) return -1;
    if (n) memcpy(d->ss_pool + d->ss_used, set, n * sizeof(int32_t));
    d->ss_off[sid] = (int64_t)d->ss_used;
    d->ss_len[sid] = (int32_t)n;
    d->ss_hash[sid] = h;
    d->ss_used += n;
    uint8_t acc = 0;
    for (size_t k = 0; k < n; k++)
        if (d->nfa_accept[set[k]]) { acc = 1; break; }
    d->accepting[sid] = acc;
    d->has_out[sid] = 0;
    d->row_done[sid] = 0;
    int32_t *row = d->table + (size_t)sid * 256;
    for (int b = 0; b < 256; b++) row[b] = -1;
    if (PyList_Append(d->accept_list, acc ? Py_True : Py_False) < 0) return -1;
    if (PyList_Append(d->pyrows, Py_None) < 0) return -1;
    d->n_states = sid + 1;
    if ((size_t)d->n_states * 2 > d->ht_cap) {
        if (dfa_rehash(d, d->ht_cap ? d->ht_cap * 2 : 64) < 0) return -1;
    } else {
        size_t i = (size_t)h & (d->ht_cap - 1);
        while (d->ht[i]) i = (i + 1) & (d->ht_cap - 1);
        d->ht[i] = sid + 1;
    }
    return sid;
}

/* epsilon closure of NFA state s (s itself, then live states reachable by epsilon edges) */
static int dfa_closure_of(DfaObject *d, int32_t s) {
    if (d->cl_off[s] >= 0) return 0;
    uint32_t st = ++d->stamp;
    if (st == 0) { memset(d->mark, 0, (size_t)d->n_nfa * sizeof(uint32_t)); st = d->stamp = 1; }
    size_t base = d->cl_used, n = 0;
    if (grow((void **)&d->cl_pool, &d->cl_cap, base + 1, sizeof(int32_t)) < 0) return -1;
    d->cl_pool[base] = s;
    d->mark[s] = st;
    n = 1;
    /* the pool doubles as the DFS stack: entries [base, base+n) are the states found so far */
    for (size_t k = 0; k < n; k++) {
        int32_t u = d->cl_pool[base + k];
        for (int32_t e = d->x_off[u]; e < d->x_off[u + 1]; e++) {
            int32_t t = d->x_dst[e];
            if (d->mark[t] != st && d->live[t]) {
                d->mark[t] = st;
                if (grow((void **)&d->cl_pool, &d->cl_cap, base + n + 1, sizeof(int32_t)) < 0)
                    return -1;
                d->cl_pool[base + n++] = t;
            }
        }
    }
    sort_i32(d->cl_pool + base, n);
    d->cl_off[s] = (int64_t)base;
    d->cl_len[s] = (int32_t)n;
    d->cl_used = base + n;
    return 0;
}

/* tmp[0..*n) = sorted union of the closures of states[0..k) */
static int dfa_closure_union(DfaObject *d, const int32_t *states, size_t k, size_t *n_out) {
    for (size_t i = 0; i < k; i++)
        if (dfa_closure_of(d, states[i]) < 0) return -1;
    uint32_t st = ++d->stamp;
    if (st == 0) { memset(d->mark, 0, (size_t)d->n_nfa * sizeof(uint32_t)); st = d->stamp = 1; }
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        int32_t s = states[i];
        const int32_t *c = d->cl_pool + d->cl_off[s];
        int32_t len = d->cl_len[s];
        if (grow((void **)&d->tmp, &d->tmp_cap, n + (size_t)len, sizeof(int32_t)) < 0) return -1;
        for (int32_t j = 0; j < len; j++) {
            int32_t u = c[j];
            if (d->mark[u] != st) { d->mark[u] = st; d->tmp[n++] = u; }
        }
    }
    if (k > 1) sort_i32(d->tmp, n);
    *n_out = n;
    return 0;
}

static int cmp_u16(const void *a, const void *b) {
    int x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

/* Determinise the row of state sid (same interning order as lazy_dfa.py: targets of the byte
 * intervals in ascending order). Returns 0, or -1 with an exception set. */
static int dfa_compute_row(DfaObject *d, int32_t sid) {
    if (d->row_done[sid]) return 0;
    size_t ne = 0;
    {
        const int32_t *set = d->ss_pool + d->ss_off[sid];
        int32_t len = d->ss_len[sid];
        for (int32_t k = 0; k < len; k++) {
            int32_t s = set[k];
            for (int32_t e = d->e_off[s]; e < d->e_off[s + 1]; e++) {
                int32_t t = d->e_dst[e];
                if (!d->live[t]) continue;
                if (grow((void **)&d->edges_tmp, &d->edges_cap, 3 * (ne + 1), sizeof(int32_t)) < 0)
                    return -1;
                d->edges_tmp[3 * ne] = d->e_lo[e];
                d->edges_tmp[3 * ne + 1] = d->e_hi[e];
                d->edges_tmp[3 * ne + 2] = t;
                ne++;
            }
        }
    }
    int32_t row[256];
    for (int b = 0; b < 256; b++) row[b] = 0;
    if (ne) {
        /* interval end points: lo and hi + 1 of every edge */
        uint8_t seen[258];
        memset(seen, 0, sizeof seen);
        for (size_t i = 0; i < ne; i++) {
            seen[d->edges_tmp[3 * i]] = 1;
            seen[d->edges_tmp[3 * i + 1] + 1] = 1;
        }
        int pts[258], np_ = 0;
        for (int v = 0; v <= 256; v++)
            if (seen[v]) pts[np_++] = v;
        int32_t *targets = NULL;
        size_t tcap = 0;
        for (int k = 0; k + 1 < np_; k++) {
            int a = pts[k], b = pts[k + 1];
            size_t nt = 0;
            for (size_t i = 0; i < ne; i++) {
                if (d->edges_tmp[3 * i] <= a && a <= d->edges_tmp[3 * i + 1]) {
                    if (grow((void **)&targets, &tcap, nt + 1, sizeof(int32_t)) < 0) {
                        free(targets);
                        return -1;
                    }
                    targets[nt++] = d->edges_tmp[3 * i + 2];
                }
            }
            if (!nt) continue;
            size_t n;
            if (dfa_closure_union(d, targets, nt, &n) < 0) { free(targets); return -1; }
            int32_t tid = dfa_intern(d, d->tmp, n);
            if (tid < 0) { free(targets); return -1; }
            for (int v = a; v < b; v++) row[v] = tid;
        }
        free(targets);
    }
    memcpy(d->table + (size_t)sid * 256, row, sizeof row);
    d->has_out[sid] = ne ? 1 : 0;
    d->row_done[sid] = 1;
    return 0;
}

static inline int32_t dfa_next(DfaObject *d, int32_t s, int b) {
    int32_t t = d->table[(size_t)s * 256 + b];
    if (t >= 0) return t;
    if (dfa_compute_row(d, s) < 0) return -1;
    return d->table[(size_t)s * 256 + b];
}

static int copy_i32(PyObject *obj, int32_t **out, Py_ssize_t *n, const char *what) {
    Buf b;
    if (get_buf(obj, &b, 4, what) < 0) { rel_buf(&b); return -1; }
    *n = b.view.len / 4;
    *out = malloc((size_t)(*n ? *n : 1) * 4);
    if (!*out) { rel_buf(&b); PyErr_NoMemory(); return -1; }
    memcpy(*out, b.view.buf, (size_t)b.view.len);
    rel_buf(&b);
    return 0;
}

static int copy_u8(PyObject *obj, uint8_t **out, Py_ssize_t *n, const char *what) {
    Buf b;
    if (get_buf(obj, &b, 1, what) < 0) { rel_buf(&b); return -1; }
    *n = b.view.len;
    *out = malloc((size_t)(*n ? *n : 1));
    if (!*out) { rel_buf(&b); PyErr_NoMemory(); return -1; }
    memcpy(*out, b.view.buf, (size_t)b.view.len);
    rel_buf(&b);
    return 0;
}

/* co-reachable NFA states (reverse BFS from the accepting ones) */
static int dfa_compute_live(DfaObject *d) {
    int32_t n = d->n_nfa;
    int64_t ne = d->e_off[n], nx = d->x_off[n];
    int32_t *cnt = calloc((size_t)n + 1, sizeof(int32_t));
    int32_t *src = malloc((size_t)(ne + nx + 1) * sizeof(int32_t));
    int32_t *queue = malloc((size_t)(n + 1) * sizeof(int32_t));
    if (!cnt || !src || !queue) { free(cnt); free(src); free(queue); PyErr_NoMemory(); return -1; }
    for (int32_t s = 0; s < n; s++) {
        for (int32_t e = d->e_off[s]; e < d->e_off[s + 1]; e++) cnt[d->e_dst[e] + 1]++;
        for (int32_t e = d->x_off[s]; e < d->x_off[s + 1]; e++) cnt[d->x_dst[e] + 1]++;
    }
    for (int32_t s = 0; s < n; s++) cnt[s + 1] += cnt[s];
    int32_t *pos = malloc((size_t)(n + 1) * sizeof(int32_t));
    if (!pos) { free(cnt); free(src); free(queue); PyErr_NoMemory(); return -1; }
    memcpy(pos, cnt, (size_t)(n + 1) * sizeof(int32_t));
    for (int32_t s = 0; s < n; s++) {
        for (int32_t e = d->e_off[s]; e < d->e_off[s + 1]; e++) src[pos[d->e_dst[e]]++] = s;
        for (int32_t e = d->x_off[s]; e < d->x_off[s + 1]; e++) src[pos[d->x_dst[e]]++] = s;
    }
    free(pos);
    memset(d->live, 0, (size_t)n);
    int32_t qh = 0, qt = 0;
    for (int32_t s = 0; s < n; s++)
        if (d->nfa_accept[s]) { d->live[s] = 1; queue[qt++] = s; }
    while (qh < qt) {
        int32_t u = queue[qh++];
        for (int32_t k = cnt[u]; k < cnt[u + 1]; k++) {
            int32_t p = src[k];
            if (!d->live[p]) { d->live[p] = 1; queue[qt++] = p; }
        }
    }
    free(cnt); free(src); free(queue);
    return 0;
}

/* Dfa(n_nfa, e_off, e_lo, e_hi, e_dst, x_off, x_dst, accept, all_live, start, max_states)
 * e_off/x_off: int32[n_nfa + 1]; e_lo/e_hi: uint8[E]; e_dst: int32[E]; x_dst: int32[X];
 * accept: uint8[n_nfa] (1 = accepting). */
static PyObject *dfa_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"n_nfa", "e_off", "e_lo", "e_hi", "e_dst", "x_off", "x_dst",
                             "accept", "all_live", "start", "max_states", NULL};
    int n_nfa, all_live, start, max_states;
    PyObject *o_eoff, *o_elo, *o_ehi, *o_edst, *o_xoff, *o_xdst, *o_acc;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iOOOOOOOpii", kwlist, &n_nfa, &o_eoff, &o_elo,
                                     &o_ehi, &o_edst, &o_xoff, &o_xdst, &o_acc, &all_live, &start,
                                     &max_states))
        return NULL;
    DfaObject *d = (DfaObject *)type->tp_alloc(type, 0);
    if (!d) return NULL;
    d->n_nfa = n_nfa;
    d->max_states = max_states;
    d->start = start;
    d->all_live = all_live;
    d->accept_list = PyList_New(0);
    d->pyrows = PyList_New(0);
    if (!d->accept_list || !d->pyrows) goto fail;
    Py_ssize_t n1, ne, nlo, nhi, nx1, nx, nacc;
    if (copy_i32(o_eoff, &d->e_off, &n1, "e_off") < 0) goto fail;
    if (copy_u8(o_elo, &d->e_lo, &nlo, "e_lo") < 0) goto fail;
    if (copy_u8(o_ehi, &d->e_hi, &nhi, "e_hi") < 0) goto fail;
    if (copy_i32(o_edst, &d->e_dst, &ne, "e_dst") < 0) goto fail;
    if (copy_i32(o_xoff, &d->x_off, &nx1, "x_off") < 0) goto fail;
    if (copy_i32(o_xdst, &d->x_dst, &nx, "x_dst") < 0) goto fail;
    if (copy_u8(o_acc, &d->nfa_accept, &nacc, "accept") < 0) goto fail;
    if (n1 != n_nfa + 1 || nx1 != n_nfa + 1 || nacc != n_nfa || nlo != ne || nhi != ne ||
        d->e_off[n_nfa] != ne || d->x_off[n_nfa] != nx) {
        PyErr_SetString(PyExc_ValueError, "Dfa: inconsistent NFA arrays");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < ne; i++)
        if (d->e_dst[i] < 0 || d->e_dst[i] >= n_nfa || d->e_lo[i] > d->e_hi[i]) {
            PyErr_SetString(PyExc_ValueError, "Dfa: invalid byte edge");
            goto fail;
        }
    for (Py_ssize_t i = 0; i < nx; i++)
        if (d->x_dst[i] < 0 || d->x_dst[i] >= n_nfa) {
            PyErr_SetString(PyExc_ValueError, "Dfa: invalid epsilon edge");
            goto fail;
        }
    for (int32_t s = 0; s < n_nfa; s++)
        if (d->e_off[s] > d->e_off[s + 1] || d->x_off[s] > d->x_off[s + 1]) {
            PyErr_SetString(PyExc_ValueError, "Dfa: offsets not ascending");
            goto fail;
        }
    d->live = malloc((size_t)(n_nfa ? n_nfa : 1));
    d->mark = calloc((size_t)(n_nfa ? n_nfa : 1), sizeof(uint32_t));
    d->cl_off = malloc((size_t)(n_nfa ? n_nfa : 1) * sizeof(int64_t));
    d->cl_len = malloc((size_t)(n_nfa ? n_nfa : 1) * sizeof(int32_t));
    if (!d->live || !d->mark || !d->cl_off || !d->cl_len) { PyErr_NoMemory(); goto fail; }
    for (int32_t s = 0; s < n_nfa; s++) d->cl_off[s] = -1;
    if (all_live)
        memset(d->live, 1, (size_t)n_nfa);
    else if (dfa_compute_live(d) < 0)
        goto fail;
    /* state 0: the dead state (its row is all 0), then the initial state */
    if (dfa_intern(d, NULL, 0) != 0) goto fail;
    memset(d->table, 0, 256 * sizeof(int32_t));
    d->row_done[0] = 1;
    {
        PyObject *row = PyList_New(256);
        if (!row) goto fail;
        PyObject *zero = PyLong_FromLong(0);
        for (int b = 0; b < 256; b++) { Py_INCREF(zero); PyList_SET_ITEM(row, b, zero); }
        Py_DECREF(zero);
        PyList_SetItem(d->pyrows, 0, row);
    }
    if (start >= 0 && start < n_nfa && d->live[start]) {
        if (dfa_closure_of(d, start) < 0) goto fail;
        int32_t sid = dfa_intern(d, d->cl_pool + d->cl_off[start], (size_t)d->cl_len[start]);
        if (sid < 0) goto fail;
        d->initial = sid;
    } else {
        d->initial = 0;
    }
    return (PyObject *)d;
fail:
    Py_DECREF(d);
    return NULL;
}

static int check_state(DfaObject *d, long q) {
    if (q < 0 || q >= d->n_states) {
        PyErr_Format(PyExc_IndexError, "DFA state %ld out of range (%d states)", q,
                     (int)d->n_states);
        return -1;
    }
    return 0;
}

static PyObject *dfa_row(DfaObject *d, PyObject *arg) {
    long q = PyLong_AsLong(arg);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    PyObject *cached = PyList_GET_ITEM(d->pyrows, q);
    if (cached != Py_None) return Py_NewRef(cached);
    if (dfa_compute_row(d, (int32_t)q) < 0) return NULL;
    PyObject *row = PyList_New(256);
    if (!row) return NULL;
    const int32_t *r = d->table + (size_t)q * 256;
    for (int b = 0; b < 256; b++) {
        PyObject *v = PyLong_FromLong(r[b]);
        if (!v) { Py_DECREF(row); return NULL; }
        PyList_SET_ITEM(row, b, v);
    }
    PyList_SetItem(d->pyrows, q, Py_NewRef(row));
    return row;
}

static PyObject *dfa_next_py(DfaObject *d, PyObject *const *args, Py_ssize_t n) {
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "next(state, byte)"); return NULL; }
    long q = PyLong_AsLong(args[0]);
    long b = PyLong_AsLong(args[1]);
    if (PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    if (b < 0 || b > 255) { PyErr_SetString(PyExc_ValueError, "byte out of range"); return NULL; }
    int32_t t = dfa_next(d, (int32_t)q, (int)b);
    if (t < 0) return NULL;
    return PyLong_FromLong(t);
}

static PyObject *dfa_step(DfaObject *d, PyObject *const *args, Py_ssize_t n) {
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "step(state, data)"); return NULL; }
    long q = PyLong_AsLong(args[0]);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    Buf b;
    if (get_buf(args[1], &b, 1, "data") < 0) { rel_buf(&b); return NULL; }
    const uint8_t *p = b.view.buf;
    int32_t s = (int32_t)q;
    for (Py_ssize_t i = 0; i < b.view.len && s; i++) {
        s = dfa_next(d, s, p[i]);
        if (s < 0) { rel_buf(&b); return NULL; }
    }
    rel_buf(&b);
    return PyLong_FromLong(s);
}

static PyObject *dfa_row_has_out(DfaObject *d, PyObject *arg) {
    long q = PyLong_AsLong(arg);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    if (dfa_compute_row(d, (int32_t)q) < 0) return NULL;
    return PyBool_FromLong(d->has_out[q]);
}

static PyObject *dfa_single_live_byte(DfaObject *d, PyObject *arg) {
    long q = PyLong_AsLong(arg);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    if (dfa_compute_row(d, (int32_t)q) < 0) return NULL;
    const int32_t *r = d->table + (size_t)q * 256;
    int found = -1, count = 0;
    for (int b = 0; b < 256; b++)
        if (r[b]) { if (!count) found = b; count++; }
    return PyLong_FromLong(count == 1 ? found : -1);
}

/* gather(states: int32 buffer, bytes: uint8 buffer) -> bytes of int32 successors */
static PyObject *dfa_gather(DfaObject *d, PyObject *const *args, Py_ssize_t n) {
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "gather(states, bytes)"); return NULL; }
    Buf bs, bb;
    if (get_buf(args[0], &bs, 4, "states") < 0 || get_buf(args[1], &bb, 1, "bytes") < 0) {
        rel_buf(&bs); rel_buf(&bb); return NULL;
    }
    Py_ssize_t m = bs.view.len / 4;
    if (bb.view.len != m) {
        rel_buf(&bs); rel_buf(&bb);
        PyErr_SetString(PyExc_ValueError, "gather: length mismatch");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, m * 4);
    if (!out) { rel_buf(&bs); rel_buf(&bb); return NULL; }
    int32_t *o = (int32_t *)PyBytes_AS_STRING(out);
    const int32_t *st = bs.view.buf;
    const uint8_t *by = bb.view.buf;
    for (Py_ssize_t i = 0; i < m; i++) {
        if (st[i] < 0 || st[i] >= d->n_states) {
            PyErr_SetString(PyExc_IndexError, "gather: state out of range");
            goto err;
        }
        int32_t t = dfa_next(d, st[i], by[i]);
        if (t < 0) goto err;
        o[i] = t;
    }
    rel_buf(&bs); rel_buf(&bb);
    return out;
err:
    rel_buf(&bs); rel_buf(&bb);
    Py_DECREF(out);
    return NULL;
}

/* has_out(states: int32 buffer) -> bytes (one 0/1 per state), rows computed as needed */
static PyObject *dfa_has_out_many(DfaObject *d, PyObject *arg) {
    Buf bs;
    if (get_buf(arg, &bs, 4, "states") < 0) { rel_buf(&bs); return NULL; }
    Py_ssize_t m = bs.view.len / 4;
    PyObject *out = PyBytes_FromStringAndSize(NULL, m);
    if (!out) { rel_buf(&bs); return NULL; }
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    const int32_t *st = bs.view.buf;
    for (Py_ssize_t i = 0; i < m; i++) {
        if (st[i] < 0 || st[i] >= d->n_states) {
            PyErr_SetString(PyExc_IndexError, "has_out: state out of range");
            rel_buf(&bs); Py_DECREF(out); return NULL;
        }
        if (dfa_compute_row(d, st[i]) < 0) { rel_buf(&bs); Py_DECREF(out); return NULL; }
        o[i] = d->has_out[st[i]];
    }
    rel_buf(&bs);
    return out;
}

static PyObject *dfa_accepting_bytes(DfaObject *d, PyObject *Py_UNUSED(ignored)) {
    return PyBytes_FromStringAndSize((const char *)d->accepting, d->n_states);
}

static PyObject *dfa_is_accepting(DfaObject *d, PyObject *arg) {
    long q = PyLong_AsLong(arg);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    return PyBool_FromLong(d->accepting[q]);
}

/* subset(sid) -> tuple of NFA states (sorted) */
static PyObject *dfa_subset(DfaObject *d, PyObject *arg) {
    long q = PyLong_AsLong(arg);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    int32_t len = d->ss_len[q];
    const int32_t *set = d->ss_pool + d->ss_off[q];
    PyObject *t = PyTuple_New(len);
    if (!t) return NULL;
    for (int32_t i = 0; i < len; i++) {
        PyObject *v = PyLong_FromLong(set[i]);
        if (!v) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* intern(states: iterable of NFA states) -> sid (for unpickling: re-creates discovered states) */
static PyObject *dfa_intern_py(DfaObject *d, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "intern: expected a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int32_t *buf = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!buf) { Py_DECREF(seq); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if ((v == -1 && PyErr_Occurred()) || v < 0 || v >= d->n_nfa) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "intern: bad NFA state");
            free(buf); Py_DECREF(seq); return NULL;
        }
        buf[i] = (int32_t)v;
    }
    Py_DECREF(seq);
    sort_i32(buf, (size_t)n);
    size_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!m || buf[m - 1] != buf[i]) buf[m++] = buf[i];
    int32_t sid = dfa_intern(d, buf, m);
    free(buf);
    if (sid < 0) return NULL;
    return PyLong_FromLong(sid);
}

/* structurally_covered(avail: 257 int64 prefix counts of one-byte tokens) -> bool
 * Every live NFA state with a live byte edge has one on a byte that is a one-byte token. */
static PyObject *dfa_structurally_covered(DfaObject *d, PyObject *arg) {
    Buf b;
    if (get_buf(arg, &b, 1, "single") < 0) { rel_buf(&b); return NULL; }
    if (b.view.len != 256) {
        rel_buf(&b);
        PyErr_SetString(PyExc_ValueError, "structurally_covered: expected 256 flags");
        return NULL;
    }
    int avail[257];
    const uint8_t *f = b.view.buf;
    avail[0] = 0;
    for (int i = 0; i < 256; i++) avail[i + 1] = avail[i] + (f[i] ? 1 : 0);
    rel_buf(&b);
    for (int32_t s = 0; s < d->n_nfa; s++) {
        if (!d->live[s]) continue;
        int any = 0, ok = 0;
        for (int32_t e = d->e_off[s]; e < d->e_off[s + 1]; e++) {
            if (!d->live[d->e_dst[e]]) continue;
            any = 1;
            if (avail[d->e_hi[e] + 1] - avail[d->e_lo[e]] > 0) { ok = 1; break; }
        }
        if (any && !ok) Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *dfa_live_bytes(DfaObject *d, PyObject *Py_UNUSED(ignored)) {
    return PyBytes_FromStringAndSize((const char *)d->live, d->n_nfa);
}

static PyObject *dfa_get_num_states(DfaObject *d, void *c) { return PyLong_FromLong(d->n_states); }
static PyObject *dfa_get_initial(DfaObject *d, void *c) { return PyLong_FromLong(d->initial); }
static PyObject *dfa_get_accept_list(DfaObject *d, void *c) { return Py_NewRef(d->accept_list); }

static PyMethodDef dfa_methods[] = {
    {"row", (PyCFunction)dfa_row, METH_O, "The 256 successors of a state (a cached list)."},
    {"next", (PyCFunction)(void (*)(void))dfa_next_py, METH_FASTCALL, "next(state, byte)"},
    {"step", (PyCFunction)(void (*)(void))dfa_step, METH_FASTCALL, "step(state, data)"},
    {"row_has_out", (PyCFunction)dfa_row_has_out, METH_O, "Whether some byte keeps it alive."},
    {"single_live_byte", (PyCFunction)dfa_single_live_byte, METH_O, "The only live byte or -1."},
    {"gather", (PyCFunction)(void (*)(void))dfa_gather, METH_FASTCALL, "Vectorised successors."},
    {"has_out_many", (PyCFunction)dfa_has_out_many, METH_O, "has_out per state (bytes)."},
    {"accepting_bytes", (PyCFunction)dfa_accepting_bytes, METH_NOARGS, "Accepting flags."},
    {"is_accepting", (PyCFunction)dfa_is_accepting, METH_O, "Whether a state accepts."},
    {"subset", (PyCFunction)dfa_subset, METH_O, "The NFA states of a DFA state."},
    {"intern", (PyCFunction)dfa_intern_py, METH_O, "Intern a set of NFA states."},
    {"structurally_covered", (PyCFunction)dfa_structurally_covered, METH_O, "See vocab_proof."},
    {"live_bytes", (PyCFunction)dfa_live_bytes, METH_NOARGS, "Co-reachable NFA states."},
    {NULL}};

static PyGetSetDef dfa_getset[] = {
    {"num_states", (getter)dfa_get_num_states, NULL, "States discovered so far.", NULL},
    {"initial", (getter)dfa_get_initial, NULL, "The initial state.", NULL},
    {"accept_list", (getter)dfa_get_accept_list, NULL, "Accepting flags as a list.", NULL},
    {NULL}};

static PyTypeObject DfaType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "structgen._native.Dfa",
    .tp_basicsize = sizeof(DfaObject),
    .tp_dealloc = (destructor)dfa_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A lazily determinised byte DFA over a byte NFA (CSR arrays).",
    .tp_methods = dfa_methods,
    .tp_getset = dfa_getset,
    .tp_new = dfa_new,
};

/* ----------------------------------------------------------------------------------- Trie */

typedef struct {
    PyObject_HEAD
    int32_t n;          /* nodes, root included */
    int32_t vocab_size; /* token ids */
    int32_t words;      /* int32 words of a bitmask */
    /* depth-first (preorder) layout: index i, i+1 .. skip[i]-1 is the subtree of i */
    uint8_t *byte;
    int32_t *skip, *depth, *level_id, *tok_off, *tok_ids;
    int32_t *dfs_of; /* level-order id -> preorder index */
    int32_t max_depth;
    /* scratch */
    int32_t *stack;
    int64_t *out64;
    size_t out_cap;
} TrieObject;

static PyTypeObject TrieType;

static void trie_dealloc(TrieObject *t) {
    free(t->byte); free(t->skip); free(t->depth); free(t->level_id); free(t->tok_off);
    free(t->tok_ids); free(t->dfs_of); free(t->stack); free(t->out64);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

/* Trie(parent: int32[n], byte: uint8[n], token_node: int32[V], normal: uint8[V]) with nodes in
 * level order (parents before children, each node's children contiguous and byte-sorted). */
static PyObject *trie_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"parent", "byte", "token_node", "normal", NULL};
    PyObject *o_par, *o_byte, *o_tn, *o_norm;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO", kwlist, &o_par, &o_byte, &o_tn, &o_norm))
        return NULL;
    TrieObject *t = (TrieObject *)type->tp_alloc(type, 0);
    if (!t) return NULL;
    int32_t *parent = NULL, *token_node = NULL, *child_lo = NULL, *child_hi = NULL;
    int32_t *cnt = NULL;
    uint8_t *lbyte = NULL, *normal = NULL;
    Py_ssize_t n, nb, v, vn;
    if (copy_i32(o_par, &parent, &n, "parent") < 0) goto fail;
    if (copy_u8(o_byte, &lbyte, &nb, "byte") < 0) goto fail;
    if (copy_i32(o_tn, &token_node, &v, "token_node") < 0) goto fail;
    if (copy_u8(o_norm, &normal, &vn, "normal") < 0) goto fail;
    if (n < 1 || nb != n || vn != v || n > INT32_MAX - 2) {
        PyErr_SetString(PyExc_ValueError, "Trie: inconsistent arrays");
        goto fail;
    }
    t->n = (int32_t)n;
    t->vocab_size = (int32_t)v;
    t->words = (int32_t)((v + 31) / 32);
    child_lo = malloc((size_t)n * sizeof(int32_t));
    child_hi = malloc((size_t)n * sizeof(int32_t));
    t->byte = malloc((size_t)n);
    t->skip = malloc((size_t)n * sizeof(int32_t));
    t->depth = malloc((size_t)n * sizeof(int32_t));
    t->level_id = malloc((size_t)n * sizeof(int32_t));
    t->dfs_of = malloc((size_t)n * sizeof(int32_t));
    t->tok_off = calloc((size_t)n + 1, sizeof(int32_t));
    cnt = calloc((size_t)n + 1, sizeof(int32_t));
    if (!child_lo || !child_hi || !t->byte || !t->skip || !t->depth || !t->level_id ||
        !t->dfs_of || !t->tok_off || !cnt) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) { child_lo[i] = 0; child_hi[i] = 0; }
    for (Py_ssize_t i = 1; i < n; i++) {
        int32_t p = parent[i];
        if (p < 0 || p >= i || (i > 1 && p < parent[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "Trie: nodes are not in level order");
            goto fail;
        }
        if (!child_hi[p]) child_lo[p] = (int32_t)i;
        child_hi[p] = (int32_t)i + 1;
    }
    /* preorder by an explicit stack; children pushed in reverse so the smallest byte is first */
    {
        int32_t *stk = malloc((size_t)(n + 1) * sizeof(int32_t));
        int32_t *dep = malloc((size_t)(n + 1) * sizeof(int32_t));
        if (!stk || !dep) { free(stk); free(dep); PyErr_NoMemory(); goto fail; }
        int32_t sp = 0, k = 0;
        stk[sp] = 0; dep[sp] = 0; sp++;
        t->max_depth = 0;
        while (sp) {
            sp--;
            int32_t node = stk[sp], dd = dep[sp];
            t->level_id[k] = node;
            t->dfs_of[node] = k;
            t->byte[k] = lbyte[node];
            t->depth[k] = dd;
            if (dd > t->max_depth) t->max_depth = dd;
            k++;
            if (child_hi[node])
                for (int32_t c = child_hi[node] - 1; c >= child_lo[node]; c--) {
                    stk[sp] = c; dep[sp] = dd + 1; sp++;
                }
        }
        free(stk);
        free(dep);
        if (k != n) { PyErr_SetString(PyExc_ValueError, "Trie: not a tree"); goto fail; }
        /* skip[i]: the first index after i's subtree (next index with depth <= depth[i]) */
        int32_t *st2 = malloc((size_t)(t->max_depth + 2) * sizeof(int32_t));
        if (!st2) { PyErr_NoMemory(); goto fail; }
        int32_t top = 0;
        for (int32_t i = 0; i < n; i++) {
            while (top && t->depth[st2[top - 1]] >= t->depth[i]) t->skip[st2[--top]] = i;
            st2[top++] = i;
        }
        while (top) t->skip[st2[--top]] = (int32_t)n;
        free(st2);
    }
    /* tokens per node (normal tokens only), in preorder index space */
    for (Py_ssize_t tid = 0; tid < v; tid++)
        if (normal[tid]) {
            int32_t node = token_node[tid];
            if (node <= 0 || node >= n) {
                PyErr_SetString(PyExc_ValueError, "Trie: token node out of range");
                goto fail;
            }
            cnt[t->dfs_of[node] + 1]++;
        }
    for (Py_ssize_t i = 0; i < n; i++) cnt[i + 1] += cnt[i];
    memcpy(t->tok_off, cnt, (size_t)(n + 1) * sizeof(int32_t));
    t->tok_ids = malloc((size_t)(cnt[n] ? cnt[n] : 1) * sizeof(int32_t));
    if (!t->tok_ids) { PyErr_NoMemory(); goto fail; }
    for (Py_ssize_t tid = 0; tid < v; tid++)
        if (normal[tid]) t->tok_ids[cnt[t->dfs_of[token_node[tid]]]++] = (int32_t)tid;
    t->stack = malloc((size_t)(t->max_depth + 2) * sizeof(int32_t));
    if (!t->stack) { PyErr_NoMemory(); goto fail; }
    free(parent); free(token_node); free(child_lo); free(child_hi); free(cnt);
    free(lbyte); free(normal);
    return (PyObject *)t;
fail:
    free(parent); free(token_node); free(child_lo); free(child_hi); free(cnt);
    free(lbyte); free(normal);
    Py_DECREF(t);
    return NULL;
}

static inline void set_tokens(TrieObject *t, int32_t i, uint32_t *mask) {
    for (int32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) {
        int32_t tid = t->tok_ids[k];
        mask[tid >> 5] |= 1u << (tid & 31);
    }
}

static int check_dfa(PyObject *o) {
    if (!PyObject_TypeCheck(o, &DfaType)) {
        PyErr_SetString(PyExc_TypeError, "expected a structgen._native.Dfa");
        return -1;
    }
    return 0;
}

/* dfa_mask(dfa, state) -> bytes: int32 words, bit t set iff normal token t keeps the DFA alive */
static PyObject *trie_dfa_mask(TrieObject *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "dfa_mask(dfa, state)"); return NULL; }
    if (check_dfa(args[0]) < 0) return NULL;
    DfaObject *d = (DfaObject *)args[0];
    long q = PyLong_AsLong(args[1]);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)t->words * 4);
    if (!out) return NULL;
    uint32_t *mask = (uint32_t *)PyBytes_AS_STRING(out);
    memset(mask, 0, (size_t)t->words * 4);
    int32_t *st = t->stack;
    st[0] = (int32_t)q;
    int32_t i = 1, n = t->n;
    if (q == 0) i = n;
    while (i < n) {
        int32_t s = st[t->depth[i] - 1];
        int32_t nx = d->table[(size_t)s * 256 + t->byte[i]];
        if (nx < 0) {
            if (dfa_compute_row(d, s) < 0) { Py_DECREF(out); return NULL; }
            nx = d->table[(size_t)s * 256 + t->byte[i]];
        }
        if (!nx) { i = t->skip[i]; continue; }
        st[t->depth[i]] = nx;
        set_tokens(t, i, mask);
        i++;
    }
    return out;
}

/* dfa_end_states(dfa, state) -> bytes: int32[vocab], the state after each normal token (0: dead
 * or special) */
static PyObject *trie_dfa_end_states(TrieObject *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "dfa_end_states(dfa, state)"); return NULL; }
    if (check_dfa(args[0]) < 0) return NULL;
    DfaObject *d = (DfaObject *)args[0];
    long q = PyLong_AsLong(args[1]);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)t->vocab_size * 4);
    if (!out) return NULL;
    int32_t *ends = (int32_t *)PyBytes_AS_STRING(out);
    memset(ends, 0, (size_t)t->vocab_size * 4);
    int32_t *st = t->stack;
    st[0] = (int32_t)q;
    int32_t i = 1, n = t->n;
    if (q == 0) i = n;
    while (i < n) {
        int32_t s = st[t->depth[i] - 1];
        int32_t nx = dfa_next(d, s, t->byte[i]);
        if (nx < 0) { Py_DECREF(out); return NULL; }
        if (!nx) { i = t->skip[i]; continue; }
        st[t->depth[i]] = nx;
        for (int32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) ends[t->tok_ids[k]] = nx;
        i++;
    }
    return out;
}

static int push64(TrieObject *t, size_t *n, int64_t v) {
    if (grow((void **)&t->out64, &t->out_cap, *n + 1, sizeof(int64_t)) < 0) return -1;
    t->out64[(*n)++] = v;
    return 0;
}

static PyObject *sorted_unique_bytes(int64_t *a, size_t n) {
    if (n > 1) qsort(a, n, sizeof(int64_t), cmp_i64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!m || a[m - 1] != a[i]) a[m++] = a[i];
    return PyBytes_FromStringAndSize((const char *)a, (Py_ssize_t)(m * sizeof(int64_t)));
}

/* cfg_walk(dfa, state, roots: int64 level-order node ids) -> (mask, mids, sinks)
 * Runs the DFA from `state` at every root over the root's subtree (the root itself excluded).
 * mask: int32 words of the tokens ending at a live node; mids: live nodes where the DFA accepts
 * and the node has children; sinks: live nodes where it accepts and no byte keeps it alive.
 * mids and sinks are sorted, unique, int64 level-order ids (the cache keys of cfg_index). */
static PyObject *trie_cfg_walk(TrieObject *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "cfg_walk(dfa, state, roots)"); return NULL; }
    if (check_dfa(args[0]) < 0) return NULL;
    DfaObject *d = (DfaObject *)args[0];
    long q = PyLong_AsLong(args[1]);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    Buf br;
    if (get_buf(args[2], &br, 8, "roots") < 0) { rel_buf(&br); return NULL; }
    const int64_t *roots = br.view.buf;
    Py_ssize_t nroots = br.view.len / 8;
    PyObject *mask_obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)t->words * 4);
    if (!mask_obj) { rel_buf(&br); return NULL; }
    uint32_t *mask = (uint32_t *)PyBytes_AS_STRING(mask_obj);
    memset(mask, 0, (size_t)t->words * 4);
    /* mids go to the front of out64, sinks are collected separately then appended */
    size_t n_mid = 0;
    int64_t *sinks = NULL;
    size_t n_sink = 0, sink_cap = 0;
    int32_t *st = t->stack;
    for (Py_ssize_t r = 0; r < nroots && q != 0; r++) {
        int64_t root = roots[r];
        if (root < 0 || root >= t->n) {
            PyErr_SetString(PyExc_IndexError, "cfg_walk: root out of range");
            goto fail;
        }
        int32_t ri = t->dfs_of[root];
        int32_t base = t->depth[ri];
        st[base] = (int32_t)q;
        int32_t i = ri + 1, end = t->skip[ri];
        while (i < end) {
            int32_t dd = t->depth[i];
            int32_t s = st[dd - 1];
            int32_t nx = d->table[(size_t)s * 256 + t->byte[i]];
            if (nx < 0) {
                if (dfa_compute_row(d, s) < 0) goto fail;
                nx = d->table[(size_t)s * 256 + t->byte[i]];
            }
            if (!nx) { i = t->skip[i]; continue; }
            st[dd] = nx;
            set_tokens(t, i, mask);
            if (d->accepting[nx]) {
                if (t->skip[i] > i + 1 && push64(t, &n_mid, t->level_id[i]) < 0) goto fail;
                if (dfa_compute_row(d, nx) < 0) goto fail;
                if (!d->has_out[nx]) {
                    if (grow((void **)&sinks, &sink_cap, n_sink + 1, sizeof(int64_t)) < 0)
                        goto fail;
                    sinks[n_sink++] = t->level_id[i];
                }
            }
            i++;
        }
    }
    rel_buf(&br);
    PyObject *mids_obj = sorted_unique_bytes(t->out64, n_mid);
    PyObject *sinks_obj = sorted_unique_bytes(sinks, n_sink);
    free(sinks);
    if (!mids_obj || !sinks_obj) {
        Py_XDECREF(mids_obj); Py_XDECREF(sinks_obj); Py_DECREF(mask_obj);
        return NULL;
    }
    PyObject *res = PyTuple_Pack(3, mask_obj, mids_obj, sinks_obj);
    Py_DECREF(mask_obj); Py_DECREF(mids_obj); Py_DECREF(sinks_obj);
    return res;
fail:
    rel_buf(&br);
    free(sinks);
    Py_DECREF(mask_obj);
    return NULL;
}

static PyObject *trie_get_n(TrieObject *t, void *c) { return PyLong_FromLong(t->n); }

static PyMethodDef trie_methods[] = {
    {"dfa_mask", (PyCFunction)(void (*)(void))trie_dfa_mask, METH_FASTCALL,
     "Bitmask of the tokens a DFA state allows."},
    {"dfa_end_states", (PyCFunction)(void (*)(void))trie_dfa_end_states, METH_FASTCALL,
     "The DFA state after each token."},
    {"cfg_walk", (PyCFunction)(void (*)(void))trie_cfg_walk, METH_FASTCALL,
     "(mask, mids, sinks) of a terminal DFA below trie nodes."},
    {NULL}};

static PyGetSetDef trie_getset[] = {
    {"num_nodes", (getter)trie_get_n, NULL, "Nodes, the root included.", NULL},
    {NULL}};

static PyTypeObject TrieType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "structgen._native.Trie",
    .tp_basicsize = sizeof(TrieObject),
    .tp_dealloc = (destructor)trie_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The vocabulary byte trie in preorder, with DFA walks.",
    .tp_methods = trie_methods,
    .tp_getset = trie_getset,
    .tp_new = trie_new,
};

/* --------------------------------------------------------------------------------- module */

static PyObject *set_errors(PyObject *self, PyObject *arg) {
    Py_XSETREF(LimitExceeded, Py_NewRef(arg));
    Py_RETURN_NONE;
}

/* csr(edges: list of lists of (lo, hi, dst), eps: list of lists of dst)
 * -> (e_off, e_lo, e_hi, e_dst, x_off, x_dst) as bytes (int32 / uint8 arrays) */
static PyObject *csr_from_lists(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "csr(edges: list, eps: list)");
        return NULL;
    }
    PyObject *edges = args[0], *eps = args[1];
    Py_ssize_t n = PyList_GET_SIZE(edges);
    if (PyList_GET_SIZE(eps) != n) {
        PyErr_SetString(PyExc_ValueError, "csr: edges and eps differ in length");
        return NULL;
    }
    Py_ssize_t ne = 0, nx = 0;
    for (Py_ssize_t s = 0; s < n; s++) {
        PyObject *l = PyList_GET_ITEM(edges, s), *x = PyList_GET_ITEM(eps, s);
        if (!PyList_Check(l) || !PyList_Check(x)) {
            PyErr_SetString(PyExc_TypeError, "csr: expected lists");
            return NULL;
        }
        ne += PyList_GET_SIZE(l);
        nx += PyList_GET_SIZE(x);
    }
    PyObject *o_eoff = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    PyObject *o_elo = PyBytes_FromStringAndSize(NULL, ne);
    PyObject *o_ehi = PyBytes_FromStringAndSize(NULL, ne);
    PyObject *o_edst = PyBytes_FromStringAndSize(NULL, ne * 4);
    PyObject *o_xoff = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    PyObject *o_xdst = PyBytes_FromStringAndSize(NULL, nx * 4);
    if (!o_eoff || !o_elo || !o_ehi || !o_edst || !o_xoff || !o_xdst) goto fail;
    int32_t *eoff = (int32_t *)PyBytes_AS_STRING(o_eoff), *edst = (int32_t *)PyBytes_AS_STRING(o_edst);
    int32_t *xoff = (int32_t *)PyBytes_AS_STRING(o_xoff), *xdst = (int32_t *)PyBytes_AS_STRING(o_xdst);
    uint8_t *elo = (uint8_t *)PyBytes_AS_STRING(o_elo), *ehi = (uint8_t *)PyBytes_AS_STRING(o_ehi);
    Py_ssize_t ke = 0, kx = 0;
    for (Py_ssize_t s = 0; s < n; s++) {
        eoff[s] = (int32_t)ke;
        xoff[s] = (int32_t)kx;
        PyObject *l = PyList_GET_ITEM(edges, s), *x = PyList_GET_ITEM(eps, s);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l); i++) {
            PyObject *e = PyList_GET_ITEM(l, i);
            if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 3) {
                PyErr_SetString(PyExc_TypeError, "csr: an edge is not a (lo, hi, dst) tuple");
                goto fail;
            }
            long lo = PyLong_AsLong(PyTuple_GET_ITEM(e, 0));
            long hi = PyLong_AsLong(PyTuple_GET_ITEM(e, 1));
            long dst = PyLong_AsLong(PyTuple_GET_ITEM(e, 2));
            if (PyErr_Occurred()) goto fail;
            if (lo < 0 || hi > 255 || lo > hi || dst < 0 || dst >= n) {
                PyErr_SetString(PyExc_ValueError, "csr: invalid edge");
                goto fail;
            }
            elo[ke] = (uint8_t)lo; ehi[ke] = (uint8_t)hi; edst[ke] = (int32_t)dst; ke++;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(x); i++) {
            long dst = PyLong_AsLong(PyList_GET_ITEM(x, i));
            if (PyErr_Occurred()) goto fail;
            if (dst < 0 || dst >= n) { PyErr_SetString(PyExc_ValueError, "csr: invalid eps"); goto fail; }
            xdst[kx++] = (int32_t)dst;
        }
    }
    eoff[n] = (int32_t)ke;
    xoff[n] = (int32_t)kx;
    return Py_BuildValue("(NNNNNN)", o_eoff, o_elo, o_ehi, o_edst, o_xoff, o_xdst);
fail:
    Py_XDECREF(o_eoff); Py_XDECREF(o_elo); Py_XDECREF(o_ehi);
    Py_XDECREF(o_edst); Py_XDECREF(o_xoff); Py_XDECREF(o_xdst);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"_set_errors", set_errors, METH_O, "Register structgen.errors.LimitExceeded."},
    {"csr", (PyCFunction)(void (*)(void))csr_from_lists, METH_FASTCALL,
     "CSR arrays of a ByteNFA's edge lists."},
    {NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "structgen._native",
    "C accelerators for structgen (optional; see structgen/_accel.py).", -1, module_methods};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&DfaType) < 0 || PyType_Ready(&TrieType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "ABI", NATIVE_ABI) < 0) goto fail;
    Py_INCREF(&DfaType);
    if (PyModule_AddObject(m, "Dfa", (PyObject *)&DfaType) < 0) goto fail;
    Py_INCREF(&TrieType);
    if (PyModule_AddObject(m, "Trie", (PyObject *)&TrieType) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
