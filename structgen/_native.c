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

#define NATIVE_ABI 6

static PyObject *LimitExceeded = NULL; /* structgen.errors.LimitExceeded, set by _set_errors */

/* ------------------------------------------------------------------------------ utilities */

/* Make room for `need` elements of `elem` bytes in *ptr (capacity *cap, doubled as needed).
 * 0, or -1 with MemoryError (also when the size in bytes would overflow). */
static int grow(void **ptr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2) { PyErr_NoMemory(); return -1; }
        c *= 2;
    }
    if (elem && c > (size_t)PY_SSIZE_T_MAX / elem) { PyErr_NoMemory(); return -1; }
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

#define BUF_INIT {.ok = 0}

/* A C-contiguous buffer of `itemsize`-byte elements: bytes-like (item size 1) or an array of that
 * item size (an int64 array where int32 is expected is a TypeError, not a silent reinterpretation).
 * 0, or -1 with an exception set; rel_buf(b) is safe in both cases. */
static int get_buf(PyObject *obj, Buf *b, Py_ssize_t itemsize, const char *what) {
    b->ok = 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    b->ok = 1;
    if (itemsize > 1 && b->view.itemsize != 1 && b->view.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes, got %zd", what, itemsize,
                     b->view.itemsize);
        return -1;
    }
    if (itemsize == 1 && b->view.itemsize != 1) {
        PyErr_Format(PyExc_TypeError, "%s: expected a buffer of bytes, got items of %zd bytes",
                     what, b->view.itemsize);
        return -1;
    }
    if (itemsize > 1 && b->view.len && (uintptr_t)b->view.buf % (uintptr_t)itemsize) { /* read in place */
        PyErr_Format(PyExc_ValueError, "%s: buffer not aligned to its %zd-byte items", what,
                     itemsize);
        return -1;
    }
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
    uint8_t *absorb; /* 0 unknown, 1 no, 2: loops on every slice byte (see Trie) */
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
    free(d->table); free(d->accepting); free(d->has_out); free(d->row_done); free(d->absorb);
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
    uint8_t *ab = realloc(d->absorb, c);
    if (!ab) return PyErr_NoMemory(), -1;
    d->absorb = ab;
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
    /* room in the hash table first: a failed rehash leaves no state that lookups cannot find */
    if (((size_t)sid + 1) * 2 > d->ht_cap && dfa_rehash(d, d->ht_cap ? d->ht_cap * 2 : 64) < 0)
        return -1;
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
    d->absorb[sid] = 0;
    int32_t *row = d->table + (size_t)sid * 256;
    for (int b = 0; b < 256; b++) row[b] = -1;
    d->n_states = sid + 1;
    size_t i = (size_t)h & (d->ht_cap - 1);
    while (d->ht[i]) i = (i + 1) & (d->ht_cap - 1);
    d->ht[i] = sid + 1;
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
        /* intervals often share their target set (a class like [^"\\akms] splits the bytes
         * into many intervals with the same targets): each distinct set is closed once */
        int32_t *targets = NULL, *prev = NULL;
        size_t tcap = 0, pcap = 0;
        struct { uint64_t h; size_t off, n; int32_t tid; } seen_sets[258];
        int n_seen = 0;
        size_t prev_used = 0;
        for (int k = 0; k + 1 < np_; k++) {
            int a = pts[k], b = pts[k + 1];
            size_t nt = 0;
            for (size_t i = 0; i < ne; i++) {
                if (d->edges_tmp[3 * i] <= a && a <= d->edges_tmp[3 * i + 1]) {
                    if (grow((void **)&targets, &tcap, nt + 1, sizeof(int32_t)) < 0) {
                        free(targets); free(prev);
                        return -1;
                    }
                    targets[nt++] = d->edges_tmp[3 * i + 2];
                }
            }
            if (!nt) continue;
            sort_i32(targets, nt);
            size_t u = 0;
            for (size_t i = 0; i < nt; i++)
                if (!u || targets[u - 1] != targets[i]) targets[u++] = targets[i];
            nt = u;
            uint64_t h = hash_i32(targets, nt);
            int32_t tid = -1;
            for (int j = 0; j < n_seen; j++)
                if (seen_sets[j].h == h && seen_sets[j].n == nt &&
                    memcmp(prev + seen_sets[j].off, targets, nt * sizeof(int32_t)) == 0) {
                    tid = seen_sets[j].tid;
                    break;
                }
            if (tid < 0) {
                size_t n;
                if (dfa_closure_union(d, targets, nt, &n) < 0) { free(targets); free(prev); return -1; }
                tid = dfa_intern(d, d->tmp, n);
                if (tid < 0) { free(targets); free(prev); return -1; }
                if (grow((void **)&prev, &pcap, prev_used + nt, sizeof(int32_t)) < 0) {
                    free(targets); free(prev);
                    return -1;
                }
                memcpy(prev + prev_used, targets, nt * sizeof(int32_t));
                seen_sets[n_seen].h = h;
                seen_sets[n_seen].off = prev_used;
                seen_sets[n_seen].n = nt;
                seen_sets[n_seen].tid = tid;
                n_seen++;
                prev_used += nt;
            }
            for (int v = a; v < b; v++) row[v] = tid;
        }
        free(targets);
        free(prev);
    }
    memcpy(d->table + (size_t)sid * 256, row, sizeof row);
    d->has_out[sid] = ne ? 1 : 0;
    d->row_done[sid] = 1;
    return 0;
}

static inline int32_t dfa_next(DfaObject *d, int32_t s, int b) {
    int32_t t = d->table[(size_t)s * 256 + (size_t)b];
    if (t >= 0) return t;
    if (dfa_compute_row(d, s) < 0) return -1;
    return d->table[(size_t)s * 256 + (size_t)b];
}

static int copy_i32(PyObject *obj, int32_t **out, Py_ssize_t *n, const char *what) {
    Buf b = BUF_INIT;
    if (get_buf(obj, &b, 4, what) < 0) { rel_buf(&b); return -1; }
    *n = b.view.len / 4;
    *out = malloc((size_t)(*n ? *n : 1) * 4);
    if (!*out) { rel_buf(&b); PyErr_NoMemory(); return -1; }
    memcpy(*out, b.view.buf, (size_t)b.view.len);
    rel_buf(&b);
    return 0;
}

static int copy_u8(PyObject *obj, uint8_t **out, Py_ssize_t *n, const char *what) {
    Buf b = BUF_INIT;
    if (get_buf(obj, &b, 1, what) < 0) { rel_buf(&b); return -1; }
    *n = b.view.len;
    *out = malloc((size_t)(*n ? *n : 1));
    if (!*out) { rel_buf(&b); PyErr_NoMemory(); return -1; }
    memcpy(*out, b.view.buf, (size_t)b.view.len);
    rel_buf(&b);
    return 0;
}

/* co-reachable NFA states (reverse BFS from the accepting ones); n_nfa >= 0 and the CSR arrays
 * are validated by dfa_new. Counts are int64: byte plus epsilon edges may exceed INT32_MAX. */
static int dfa_compute_live(DfaObject *d) {
    if (d->n_nfa < 0) { PyErr_SetString(PyExc_ValueError, "Dfa: negative size"); return -1; }
    size_t n = (size_t)d->n_nfa;
    size_t ne = (size_t)d->e_off[n], nx = (size_t)d->x_off[n];
    int64_t *cnt = calloc(n + 1, sizeof(int64_t));
    int32_t *src = malloc((ne + nx + 1) * sizeof(int32_t));
    int32_t *queue = malloc((n + 1) * sizeof(int32_t));
    int64_t *pos = malloc((n + 1) * sizeof(int64_t));
    if (!cnt || !src || !queue || !pos) {
        free(cnt); free(src); free(queue); free(pos);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t s = 0; s < n; s++) {
        for (int32_t e = d->e_off[s]; e < d->e_off[s + 1]; e++) cnt[d->e_dst[e] + 1]++;
        for (int32_t e = d->x_off[s]; e < d->x_off[s + 1]; e++) cnt[d->x_dst[e] + 1]++;
    }
    for (size_t s = 0; s < n; s++) cnt[s + 1] += cnt[s];
    memcpy(pos, cnt, (n + 1) * sizeof(int64_t));
    for (size_t s = 0; s < n; s++) {
        for (int32_t e = d->e_off[s]; e < d->e_off[s + 1]; e++) src[pos[d->e_dst[e]]++] = (int32_t)s;
        for (int32_t e = d->x_off[s]; e < d->x_off[s + 1]; e++) src[pos[d->x_dst[e]]++] = (int32_t)s;
    }
    free(pos);
    memset(d->live, 0, n);
    size_t qh = 0, qt = 0;
    for (size_t s = 0; s < n; s++)
        if (d->nfa_accept[s]) { d->live[s] = 1; queue[qt++] = (int32_t)s; }
    while (qh < qt) {
        int32_t u = queue[qh++];
        for (int64_t k = cnt[u]; k < cnt[u + 1]; k++) {
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
    if (n_nfa < 0 || n_nfa > INT32_MAX - 1) {
        PyErr_Format(PyExc_ValueError, "Dfa: bad number of NFA states %d", n_nfa);
        return NULL;
    }
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
    if (n1 != (Py_ssize_t)n_nfa + 1 || nx1 != (Py_ssize_t)n_nfa + 1 || nacc != n_nfa ||
        nlo != ne || nhi != ne || d->e_off[0] != 0 || d->x_off[0] != 0 ||
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
    if (q < PyList_GET_SIZE(d->pyrows)) {
        PyObject *cached = PyList_GET_ITEM(d->pyrows, q);
        if (cached != Py_None) return Py_NewRef(cached);
    }
    if (dfa_compute_row(d, (int32_t)q) < 0) return NULL;
    while (PyList_GET_SIZE(d->pyrows) < d->n_states)
        if (PyList_Append(d->pyrows, Py_None) < 0) return NULL;
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
    if (q == -1 && PyErr_Occurred()) return NULL;
    long b = PyLong_AsLong(args[1]);
    if (b == -1 && PyErr_Occurred()) return NULL;
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
    Buf b = BUF_INIT;
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
    Buf bs = BUF_INIT, bb = BUF_INIT;
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
    Buf bs = BUF_INIT;
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
    PyObject *seq = PySequence_Tuple(arg); /* a snapshot: __index__ may change a list */
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    int32_t *buf = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!buf) { Py_DECREF(seq); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
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
    Buf b = BUF_INIT;
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

static PyObject *dfa_get_num_states(DfaObject *d, void *Py_UNUSED(c)) { return PyLong_FromLong(d->n_states); }
static PyObject *dfa_get_initial(DfaObject *d, void *Py_UNUSED(c)) { return PyLong_FromLong(d->initial); }
static PyObject *dfa_get_accept_list(DfaObject *d, void *Py_UNUSED(c)) {
    /* extended to the states discovered so far (a list: fast reads from Python) */
    for (Py_ssize_t q = PyList_GET_SIZE(d->accept_list); q < d->n_states; q++)
        if (PyList_Append(d->accept_list, d->accepting[q] ? Py_True : Py_False) < 0) return NULL;
    return Py_NewRef(d->accept_list);
}

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
    int32_t *parent_dfs;
    int32_t max_depth;
    /* the slice (after the first byte): per first byte, the tokens whose other bytes are all SLICE
     * bytes (JSON-string-safe ASCII), as bitmasks, and the trie of the other tokens (the prefixes
     * of tokens with a non-SLICE byte after the first; preorder, level_id into the full trie).
     * Where the state after a token's first byte loops on every SLICE byte (inside a string,
     * most keys too), a root walk takes that byte's slice whole and walks only the rest. */
    uint32_t *slice_mask; /* tokens made only of SLICE bytes */
    int32_t a_n; /* the trie of the other tokens (a non-SLICE byte anywhere) */
    uint8_t *a_byte;
    int32_t *a_skip, *a_depth, *a_level, *a_tok_off, *a_tok_ids;
    uint32_t *first_mask; /* 256 bitmasks: tokens of first byte c whose other bytes are all SLICE */
    int32_t full_child[256], comp_child[256]; /* depth-1 node of byte c in each layout, or -1 */
    int32_t c_n;
    uint8_t *c_byte;
    int32_t *c_skip, *c_depth, *c_level, *c_tok_off, *c_tok_ids;
} TrieObject;

static inline int in_slice(int b) { return b >= 0x20 && b <= 0x7E && b != 0x22 && b != 0x5C; }

/* Slice closure of state q: the states slice bytes reach from q (q included), if at most
 * SLICE_CLOSURE_MAX. Returns SC_LIVE if every one is live (so every token whose remaining bytes
 * are slice bytes is allowed), plus SC_QUIET if none accepts (no mids or sinks among them);
 * 0 otherwise; -1 on error. Cached per state. */
#define SC_LIVE 1
#define SC_QUIET 2
#define SLICE_CLOSURE_MAX 8

static int dfa_slice_closed(DfaObject *d, int32_t q) {
    if (q <= 0) return 0;
    if (d->absorb[q]) return d->absorb[q] - 1;
    int32_t seen[SLICE_CLOSURE_MAX];
    int n = 0, result = SC_LIVE | SC_QUIET;
    seen[n++] = q;
    for (int i = 0; i < n && result; i++) {
        int32_t u = seen[i];
        if (dfa_compute_row(d, u) < 0) return -1;
        if (d->accepting[u]) result &= ~SC_QUIET;
        for (int b = 0x20; b <= 0x7E; b++) {
            if (!in_slice(b)) continue;
            int32_t v = d->table[(size_t)u * 256 + (size_t)b];
            if (!v) { result = 0; break; }
            int known = 0;
            for (int k = 0; k < n; k++)
                if (seen[k] == v) { known = 1; break; }
            if (known) continue;
            if (n == SLICE_CLOSURE_MAX) { result = 0; break; }
            seen[n++] = v;
        }
    }
    d->absorb[q] = (uint8_t)(result + 1);
    return result;
}

/* A preorder layout to walk: the full trie or the slice's complement. */
typedef struct {
    int32_t n;
    const uint8_t *byte;
    const int32_t *skip, *depth, *level_id, *tok_off, *tok_ids;
} Layout;

static Layout full_layout(TrieObject *t) {
    Layout L = {t->n, t->byte, t->skip, t->depth, t->level_id, t->tok_off, t->tok_ids};
    return L;
}

static Layout comp_layout(TrieObject *t) {
    Layout L = {t->c_n, t->c_byte, t->c_skip, t->c_depth, t->c_level, t->c_tok_off, t->c_tok_ids};
    return L;
}

typedef struct {
    int64_t *a;
    size_t n, cap;
} Out64;

/* Run the DFA from q at preorder index r of L over r's subtree (r excluded): OR the tokens of
 * live nodes into mask; where the DFA accepts, nodes with children go to mids and states with
 * no live byte to sinks (both as level ids; NULL: not collected). 0, or -1 on error. */
static int walk_layout(DfaObject *d, const Layout *L, int32_t r, int32_t q, uint32_t *mask,
                       Out64 *mids, Out64 *sinks, int32_t *st) {
    int32_t base = L->depth[r];
    st[base] = q;
    int32_t i = r + 1, end = L->skip[r];
    while (i < end) {
        int32_t dd = L->depth[i];
        int32_t s = st[dd - 1];
        int32_t nx = d->table[(size_t)s * 256 + L->byte[i]];
        if (nx < 0) {
            if (dfa_compute_row(d, s) < 0) return -1;
            nx = d->table[(size_t)s * 256 + L->byte[i]];
        }
        if (!nx) { i = L->skip[i]; continue; }
        st[dd] = nx;
        for (int32_t k = L->tok_off[i]; k < L->tok_off[i + 1]; k++) {
            int32_t tid = L->tok_ids[k];
            mask[tid >> 5] |= 1u << (tid & 31);
        }
        if (mids && d->accepting[nx]) {
            if (L->skip[i] > i + 1) {
                if (grow((void **)&mids->a, &mids->cap, mids->n + 1, sizeof(int64_t)) < 0) return -1;
                mids->a[mids->n++] = L->level_id[i];
            }
            if (dfa_compute_row(d, nx) < 0) return -1;
            if (!d->has_out[nx]) {
                if (grow((void **)&sinks->a, &sinks->cap, sinks->n + 1, sizeof(int64_t)) < 0) return -1;
                sinks->a[sinks->n++] = L->level_id[i];
            }
        }
        i++;
    }
    return 0;
}

static PyTypeObject TrieType;

static void trie_dealloc(TrieObject *t) {
    free(t->byte); free(t->skip); free(t->depth); free(t->level_id); free(t->tok_off);
    free(t->tok_ids); free(t->dfs_of); free(t->parent_dfs);
    free(t->slice_mask); free(t->a_byte); free(t->a_skip); free(t->a_depth); free(t->a_level);
    free(t->a_tok_off); free(t->a_tok_ids);
    free(t->first_mask); free(t->c_byte); free(t->c_skip); free(t->c_depth); free(t->c_level);
    free(t->c_tok_off); free(t->c_tok_ids);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

/* The preorder layout of the nodes with keep[i] (a subtree-closed set: parents of kept nodes are
 * kept), with all their tokens. 0, or -1 with MemoryError. */
static int filtered_layout(TrieObject *t, const uint8_t *keep, Layout *L) {
    int32_t n = t->n, m = 0, ntok = 0;
    for (int32_t i = 0; i < n; i++)
        if (keep[i]) { m++; ntok += t->tok_off[i + 1] - t->tok_off[i]; }
    uint8_t *byte = malloc((size_t)m);
    int32_t *skip = malloc((size_t)m * sizeof(int32_t)), *depth = malloc((size_t)m * sizeof(int32_t));
    int32_t *level = malloc((size_t)m * sizeof(int32_t));
    int32_t *tok_off = malloc((size_t)(m + 1) * sizeof(int32_t));
    int32_t *tok_ids = malloc((size_t)(ntok ? ntok : 1) * sizeof(int32_t));
    int32_t *st = malloc((size_t)(t->max_depth + 2) * sizeof(int32_t));
    if (!byte || !skip || !depth || !level || !tok_off || !tok_ids || !st) {
        free(byte); free(skip); free(depth); free(level); free(tok_off); free(tok_ids); free(st);
        PyErr_NoMemory();
        return -1;
    }
    int32_t k2 = 0, tk = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!keep[i]) continue;
        byte[k2] = t->byte[i];
        depth[k2] = t->depth[i];
        level[k2] = t->level_id[i];
        tok_off[k2] = tk;
        for (int32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) tok_ids[tk++] = t->tok_ids[k];
        k2++;
    }
    tok_off[m] = tk;
    int32_t top = 0;
    for (int32_t i = 0; i < m; i++) {
        while (top && depth[st[top - 1]] >= depth[i]) skip[st[--top]] = i;
        st[top++] = i;
    }
    while (top) skip[st[--top]] = m;
    free(st);
    L->n = m; L->byte = byte; L->skip = skip; L->depth = depth; L->level_id = level;
    L->tok_off = tok_off; L->tok_ids = tok_ids;
    return 0;
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
    if (n < 1 || nb != n || vn != v || n > INT32_MAX - 2 || v > INT32_MAX - 32) {
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
    /* parents in preorder, and the slice */
    t->parent_dfs = malloc((size_t)n * sizeof(int32_t));
    t->first_mask = calloc((size_t)256 * (size_t)(t->words ? t->words : 1), sizeof(uint32_t));
    {
        uint8_t *tail_slice = malloc((size_t)n), *keep = calloc((size_t)n, 1);
        int32_t *first = malloc((size_t)n * sizeof(int32_t));
        if (!t->parent_dfs || !t->first_mask || !tail_slice || !keep || !first) {
            free(tail_slice); free(keep); free(first);
            PyErr_NoMemory();
            goto fail;
        }
        for (int c = 0; c < 256; c++) t->full_child[c] = t->comp_child[c] = -1;
        t->parent_dfs[0] = 0;
        tail_slice[0] = 1;
        first[0] = -1;
        for (int32_t i = 1; i < n; i++) {
            int32_t par = t->dfs_of[parent[t->level_id[i]]];
            t->parent_dfs[i] = par;
            if (t->depth[i] == 1) {
                first[i] = t->byte[i];
                tail_slice[i] = 1; /* no byte after the first yet */
                t->full_child[t->byte[i]] = i;
            } else {
                first[i] = first[par];
                tail_slice[i] = tail_slice[par] && in_slice(t->byte[i]);
            }
            if (tail_slice[i]) {
                uint32_t *fm = t->first_mask + (size_t)first[i] * (size_t)t->words;
                for (int32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) {
                    int32_t tid = t->tok_ids[k];
                    fm[tid >> 5] |= 1u << (tid & 31);
                }
            }
        }
        for (int32_t i = (int32_t)n - 1; i >= 1; i--) {
            if (!tail_slice[i] && t->tok_off[i + 1] > t->tok_off[i]) keep[i] = 1;
            if (keep[i]) keep[t->parent_dfs[i]] = 1;
        }
        keep[0] = 1;
        Layout C;
        int ok = filtered_layout(t, keep, &C);
        if (ok == 0) {
            t->c_n = C.n; t->c_byte = (uint8_t *)C.byte; t->c_skip = (int32_t *)C.skip;
            t->c_depth = (int32_t *)C.depth; t->c_level = (int32_t *)C.level_id;
            t->c_tok_off = (int32_t *)C.tok_off; t->c_tok_ids = (int32_t *)C.tok_ids;
            for (int32_t k = 0; k < C.n; k++)
                if (C.depth[k] == 1) t->comp_child[C.byte[k]] = k;
        }
        /* the whole-slice layout: tokens with a non-SLICE byte anywhere */
        uint8_t *all_slice = tail_slice; /* reused: all bytes SLICE, the first included */
        t->slice_mask = calloc((size_t)(t->words ? t->words : 1), sizeof(uint32_t));
        if (ok == 0 && t->slice_mask) {
            all_slice[0] = 1;
            memset(keep, 0, (size_t)n);
            for (int32_t i = 1; i < n; i++) {
                all_slice[i] = all_slice[t->parent_dfs[i]] && in_slice(t->byte[i]);
                if (all_slice[i])
                    for (int32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) {
                        int32_t tid = t->tok_ids[k];
                        t->slice_mask[tid >> 5] |= 1u << (tid & 31);
                    }
            }
            for (int32_t i = (int32_t)n - 1; i >= 1; i--) {
                if (!all_slice[i] && t->tok_off[i + 1] > t->tok_off[i]) keep[i] = 1;
                if (keep[i]) keep[t->parent_dfs[i]] = 1;
            }
            keep[0] = 1;
            Layout A;
            ok = filtered_layout(t, keep, &A);
            if (ok == 0) {
                t->a_n = A.n; t->a_byte = (uint8_t *)A.byte; t->a_skip = (int32_t *)A.skip;
                t->a_depth = (int32_t *)A.depth; t->a_level = (int32_t *)A.level_id;
                t->a_tok_off = (int32_t *)A.tok_off; t->a_tok_ids = (int32_t *)A.tok_ids;
            }
        } else if (ok == 0) {
            ok = -1;
            PyErr_NoMemory();
        }
        free(tail_slice); free(keep); free(first);
        if (ok < 0) goto fail;
    }
    free(parent); free(token_node); free(child_lo); free(child_hi); free(cnt);
    free(lbyte); free(normal);
    return (PyObject *)t;
fail:
    free(parent); free(token_node); free(child_lo); free(child_hi); free(cnt);
    free(lbyte); free(normal);
    Py_DECREF(t);
    return NULL;
}


static int check_dfa(PyObject *o) {
    if (!PyObject_TypeCheck(o, &DfaType)) {
        PyErr_SetString(PyExc_TypeError, "expected a structgen._native.Dfa");
        return -1;
    }
    return 0;
}

/* The walk below the root from q, with slice shortcuts: where every state slice bytes reach from
 * q is live (and, when mids are collected, none accepts), all-slice tokens are taken whole and
 * only the trie of the others is walked; otherwise the same per first byte c, for the tokens of
 * c whose other bytes are slice bytes. Same results as walk_layout over the full trie. */
static int walk_root(TrieObject *t, DfaObject *d, int32_t q, uint32_t *mask, Out64 *mids,
                     Out64 *sinks, int32_t *st) {
    Layout F = full_layout(t), C = comp_layout(t);
    int need = mids ? (SC_LIVE | SC_QUIET) : SC_LIVE;
    int closed = dfa_slice_closed(d, q);
    if (closed < 0) return -1;
    if ((closed & need) == need) { /* every all-slice token is allowed, with nothing to record */
        Layout A = {t->a_n, t->a_byte, t->a_skip, t->a_depth, t->a_level, t->a_tok_off, t->a_tok_ids};
        for (int32_t w = 0; w < t->words; w++) mask[w] |= t->slice_mask[w];
        return walk_layout(d, &A, 0, q, mask, mids, sinks, st);
    }
    if (dfa_compute_row(d, q) < 0) return -1;
    for (int c = 0; c < 256; c++) {
        int32_t fc = t->full_child[c];
        if (fc < 0) continue;
        int32_t s = d->table[(size_t)q * 256 + (size_t)c];
        if (!s) continue;
        int sc = dfa_slice_closed(d, s);
        if (sc < 0) return -1;
        if ((sc & need) == need) {
            const uint32_t *fm = t->first_mask + (size_t)c * (size_t)t->words;
            for (int32_t w = 0; w < t->words; w++) mask[w] |= fm[w];
            int32_t cc = t->comp_child[c];
            if (cc >= 0 && walk_layout(d, &C, cc, s, mask, mids, sinks, st) < 0) return -1;
            continue;
        }
        /* the node of c itself, then its subtree */
        for (int32_t k = t->tok_off[fc]; k < t->tok_off[fc + 1]; k++) {
            int32_t tid = t->tok_ids[k];
            mask[tid >> 5] |= 1u << (tid & 31);
        }
        if (mids && d->accepting[s]) {
            if (t->skip[fc] > fc + 1) {
                if (grow((void **)&mids->a, &mids->cap, mids->n + 1, sizeof(int64_t)) < 0) return -1;
                mids->a[mids->n++] = t->level_id[fc];
            }
            if (dfa_compute_row(d, s) < 0) return -1;
            if (!d->has_out[s]) {
                if (grow((void **)&sinks->a, &sinks->cap, sinks->n + 1, sizeof(int64_t)) < 0) return -1;
                sinks->a[sinks->n++] = t->level_id[fc];
            }
        }
        if (walk_layout(d, &F, fc, s, mask, mids, sinks, st) < 0) return -1;
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
    if (q == 0) return out;
    int32_t *st = malloc((size_t)(t->max_depth + 2) * sizeof(int32_t));
    if (!st) { Py_DECREF(out); return PyErr_NoMemory(); }
    if (walk_root(t, d, (int32_t)q, mask, NULL, NULL, st) < 0) {
        free(st);
        Py_DECREF(out);
        return NULL;
    }
    free(st);
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
    int32_t *st = malloc((size_t)(t->max_depth + 2) * sizeof(int32_t));
    if (!st) { Py_DECREF(out); return PyErr_NoMemory(); }
    st[0] = (int32_t)q;
    int32_t i = 1, n = t->n;
    if (q == 0) i = n;
    while (i < n) {
        int32_t s = st[t->depth[i] - 1];
        int32_t nx = dfa_next(d, s, t->byte[i]);
        if (nx < 0) { free(st); Py_DECREF(out); return NULL; }
        if (!nx) { i = t->skip[i]; continue; }
        st[t->depth[i]] = nx;
        for (int32_t k = t->tok_off[i]; k < t->tok_off[i + 1]; k++) ends[t->tok_ids[k]] = nx;
        i++;
    }
    free(st);
    return out;
}


static PyObject *sorted_unique_bytes(int64_t *a, size_t n) {
    if (!n) return PyBytes_FromStringAndSize(NULL, 0);
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
 * mids and sinks are sorted, unique, int64 level-order ids (the cache keys of cfg_index).
 * From the root, the slice shortcut applies per first byte (walk_root). */
static PyObject *trie_cfg_walk(TrieObject *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "cfg_walk(dfa, state, roots)"); return NULL; }
    if (check_dfa(args[0]) < 0) return NULL;
    DfaObject *d = (DfaObject *)args[0];
    long q = PyLong_AsLong(args[1]);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (check_state(d, q) < 0) return NULL;
    Buf br = BUF_INIT;
    if (get_buf(args[2], &br, 8, "roots") < 0) { rel_buf(&br); return NULL; }
    const int64_t *roots = br.view.buf;
    Py_ssize_t nroots = br.view.len / 8;
    PyObject *mask_obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)t->words * 4);
    if (!mask_obj) { rel_buf(&br); return NULL; }
    uint32_t *mask = (uint32_t *)PyBytes_AS_STRING(mask_obj);
    memset(mask, 0, (size_t)t->words * 4);
    Out64 mids = {NULL, 0, 0}, sinks = {NULL, 0, 0};
    int32_t *st = malloc((size_t)(t->max_depth + 2) * sizeof(int32_t));
    if (!st) { rel_buf(&br); Py_DECREF(mask_obj); return PyErr_NoMemory(); }
    for (Py_ssize_t r = 0; r < nroots && q != 0; r++) {
        int64_t root = roots[r];
        if (root < 0 || root >= t->n) {
            PyErr_SetString(PyExc_IndexError, "cfg_walk: root out of range");
            goto fail;
        }
        if (root == 0) {
            if (walk_root(t, d, (int32_t)q, mask, &mids, &sinks, st) < 0) goto fail;
        } else {
            Layout L = full_layout(t);
            if (walk_layout(d, &L, t->dfs_of[root], (int32_t)q, mask, &mids, &sinks, st) < 0) goto fail;
        }
    }
    rel_buf(&br);
    free(st);
    PyObject *mids_obj = sorted_unique_bytes(mids.a, mids.n);
    PyObject *sinks_obj = sorted_unique_bytes(sinks.a, sinks.n);
    free(mids.a);
    free(sinks.a);
    if (!mids_obj || !sinks_obj) {
        Py_XDECREF(mids_obj); Py_XDECREF(sinks_obj); Py_DECREF(mask_obj);
        return NULL;
    }
    PyObject *res = PyTuple_Pack(3, mask_obj, mids_obj, sinks_obj);
    Py_DECREF(mask_obj); Py_DECREF(mids_obj); Py_DECREF(sinks_obj);
    return res;
fail:
    rel_buf(&br);
    free(st);
    free(mids.a);
    free(sinks.a);
    Py_DECREF(mask_obj);
    return NULL;
}

/* path_bytes(ancestor, node) -> the bytes on the trie path below `ancestor` down to `node` (level
 * ids) */
static PyObject *trie_path_bytes(TrieObject *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "path_bytes(ancestor, node)"); return NULL; }
    long a = PyLong_AsLong(args[0]);
    if (a == -1 && PyErr_Occurred()) return NULL;
    long b = PyLong_AsLong(args[1]);
    if (b == -1 && PyErr_Occurred()) return NULL;
    if (a < 0 || a >= t->n || b < 0 || b >= t->n) {
        PyErr_SetString(PyExc_IndexError, "path_bytes: node out of range");
        return NULL;
    }
    int32_t ia = t->dfs_of[a], ib = t->dfs_of[b];
    if (ib < ia || ib >= t->skip[ia]) {
        PyErr_SetString(PyExc_ValueError, "path_bytes: not a descendant");
        return NULL;
    }
    int32_t len = t->depth[ib] - t->depth[ia];
    PyObject *out = PyBytes_FromStringAndSize(NULL, len);
    if (!out) return NULL;
    char *p = PyBytes_AS_STRING(out);
    for (int32_t k = len - 1, i = ib; k >= 0; k--, i = t->parent_dfs[i]) p[k] = (char)t->byte[i];
    return out;
}

static PyObject *trie_get_n(TrieObject *t, void *Py_UNUSED(c)) { return PyLong_FromLong(t->n); }

static PyMethodDef trie_methods[] = {
    {"dfa_mask", (PyCFunction)(void (*)(void))trie_dfa_mask, METH_FASTCALL,
     "Bitmask of the tokens a DFA state allows."},
    {"dfa_end_states", (PyCFunction)(void (*)(void))trie_dfa_end_states, METH_FASTCALL,
     "The DFA state after each token."},
    {"cfg_walk", (PyCFunction)(void (*)(void))trie_cfg_walk, METH_FASTCALL,
     "(mask, mids, sinks) of a terminal DFA below trie nodes."},
    {"path_bytes", (PyCFunction)(void (*)(void))trie_path_bytes, METH_FASTCALL,
     "The bytes from an ancestor node down to a node."},
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



/* ------------------------------------------------------------------------------ Fragment */

/* An NFA piece over local states (automata/nfa.py's Fragment): own edges, epsilon edges, and
 * nested fragments at local offsets. Expanded into CSR arrays by expand(). */
typedef struct FragObject {
    PyObject_HEAD
    int32_t size, n_e, n_x, n_s;
    int32_t *e;        /* (src, lo, hi, dst) */
    int32_t *x;        /* (src, dst) */
    struct FragObject **sub;
    int32_t *sub_base;
    int64_t tot_e, tot_x; /* edges in the full expansion */
} FragObject;

static PyTypeObject FragType;

static void frag_dealloc(FragObject *f) {
    free(f->e);
    free(f->x);
    if (f->sub) {
        for (int32_t i = 0; i < f->n_s; i++) Py_XDECREF((PyObject *)f->sub[i]);
        free(f->sub);
    }
    free(f->sub_base);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

/* An int that fits int32 (TypeError/OverflowError otherwise); 0 or -1. */
static int as_i32(PyObject *o, int32_t *out) {
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < INT32_MIN || v > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value out of the int32 range");
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* A sequence of `width`-tuples of ints as a flat int32 array (*out: malloc'd even on error, the
 * caller frees it). The sequence is copied into a tuple first: converting an item may run Python
 * code (__index__), which must not be able to free items still to be read. */
static int read_tuples(PyObject *list, int width, int32_t **out, int32_t *count, const char *what) {
    *out = NULL;
    PyObject *seq = PySequence_Tuple(list);
    if (!seq) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    if (n > INT32_MAX) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: too many entries", what);
        return -1;
    }
    *out = malloc((size_t)(n ? n : 1) * (size_t)width * sizeof(int32_t));
    if (!*out) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(seq, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != width) {
            PyErr_Format(PyExc_TypeError, "%s: expected %d-tuples", what, width);
            Py_DECREF(seq);
            return -1;
        }
        for (int k = 0; k < width; k++)
            if (as_i32(PyTuple_GET_ITEM(t, k), *out + (size_t)i * (size_t)width + (size_t)k) < 0) {
                Py_DECREF(seq);
                return -1;
            }
    }
    *count = (int32_t)n;
    Py_DECREF(seq);
    return 0;
}

/* Fragment(size, edges: [(src, lo, hi, dst)], eps: [(src, dst)], subs: [(Fragment, base)]) */
static PyObject *frag_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"size", "edges", "eps", "subs", NULL};
    int size;
    PyObject *o_e, *o_x, *o_s;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iOOO", kwlist, &size, &o_e, &o_x, &o_s)) return NULL;
    FragObject *f = (FragObject *)type->tp_alloc(type, 0);
    if (!f) return NULL;
    f->size = size;
    if (size < 0) { PyErr_SetString(PyExc_ValueError, "Fragment: negative size"); goto fail; }
    if (read_tuples(o_e, 4, &f->e, &f->n_e, "edges") < 0) goto fail;
    if (read_tuples(o_x, 2, &f->x, &f->n_x, "eps") < 0) goto fail;
    for (int32_t i = 0; i < f->n_e; i++) {
        int32_t *e = f->e + 4 * i;
        if (e[0] < 0 || e[0] >= size || e[3] < 0 || e[3] >= size || e[1] < 0 || e[2] > 255 ||
            e[1] > e[2]) {
            PyErr_SetString(PyExc_ValueError, "Fragment: invalid edge");
            goto fail;
        }
    }
    for (int32_t i = 0; i < f->n_x; i++) {
        int32_t *x = f->x + 2 * i;
        if (x[0] < 0 || x[0] >= size || x[1] < 0 || x[1] >= size) {
            PyErr_SetString(PyExc_ValueError, "Fragment: invalid epsilon edge");
            goto fail;
        }
    }
    {
        PyObject *seq = PySequence_Tuple(o_s); /* owns the items while `i` runs __index__ */
        if (!seq) goto fail;
        Py_ssize_t n = PyTuple_GET_SIZE(seq);
        if (n > INT32_MAX) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "Fragment: too many nested fragments");
            goto fail;
        }
        f->sub = calloc((size_t)(n ? n : 1), sizeof(FragObject *));
        f->sub_base = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
        if (!f->sub || !f->sub_base) { Py_DECREF(seq); PyErr_NoMemory(); goto fail; }
        f->tot_e = f->n_e;
        f->tot_x = f->n_x;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *t = PyTuple_GET_ITEM(seq, i);
            PyObject *child;
            int base;
            if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "O!i", &FragType, &child, &base)) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "subs: (Fragment, base)");
                Py_DECREF(seq);
                goto fail;
            }
            FragObject *c = (FragObject *)child;
            if (base < 0 || (int64_t)base + c->size > size) {
                PyErr_SetString(PyExc_ValueError, "Fragment: nested fragment out of range");
                Py_DECREF(seq);
                goto fail;
            }
            f->sub[i] = (FragObject *)Py_NewRef(child);
            f->sub_base[i] = base;
            f->n_s = (int32_t)(i + 1);
            f->tot_e += c->tot_e;
            f->tot_x += c->tot_x;
        }
        Py_DECREF(seq);
    }
    return (PyObject *)f;
fail:
    Py_DECREF(f);
    return NULL;
}

static PyTypeObject FragType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "structgen._native.Fragment",
    .tp_basicsize = sizeof(FragObject),
    .tp_dealloc = (destructor)frag_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An NFA fragment (see automata/nfa.py).",
    .tp_new = frag_new,
};

/* expand(n, edges: [(src, lo, hi, dst)], eps: [(src, dst)], placed: [(Fragment, base)])
 * -> (e_off, e_lo, e_hi, e_dst, x_off, x_dst), the CSR arrays (as bytes) of the whole NFA */
static PyObject *expand(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) { PyErr_SetString(PyExc_TypeError, "expand(n, edges, eps, placed)"); return NULL; }
    long n = PyLong_AsLong(args[0]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0 || n > INT32_MAX - 1) { PyErr_SetString(PyExc_ValueError, "expand: bad size"); return NULL; }
    int32_t *top_e = NULL, *top_x = NULL, n_te = 0, n_tx = 0;
    FragObject **pf = NULL;
    int32_t *pb = NULL;
    int32_t *es = NULL, *ed = NULL, *xs = NULL, *xd = NULL;
    uint8_t *elo = NULL, *ehi = NULL;
    struct { FragObject *f; int64_t base; } *stack = NULL;
    size_t stack_cap = 0;
    PyObject *result = NULL;
    PyObject *o_eoff = NULL, *o_elo = NULL, *o_ehi = NULL, *o_edst = NULL, *o_xoff = NULL, *o_xdst = NULL;
    if (read_tuples(args[1], 4, &top_e, &n_te, "edges") < 0) goto done;
    if (read_tuples(args[2], 2, &top_x, &n_tx, "eps") < 0) goto done;
    PyObject *seq = PySequence_Tuple(args[3]); /* owns the fragments until the expansion ends */
    if (!seq) goto done;
    Py_ssize_t np_ = PyTuple_GET_SIZE(seq);
    pf = malloc((size_t)(np_ ? np_ : 1) * sizeof(FragObject *));
    pb = malloc((size_t)(np_ ? np_ : 1) * sizeof(int32_t));
    if (!pf || !pb) { Py_DECREF(seq); PyErr_NoMemory(); goto done; }
    int64_t tot_e = n_te, tot_x = n_tx;
    for (Py_ssize_t i = 0; i < np_; i++) {
        PyObject *child;
        int base;
        PyObject *t = PyTuple_GET_ITEM(seq, i);
        if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "O!i", &FragType, &child, &base)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "placed: (Fragment, base)");
            Py_DECREF(seq);
            goto done;
        }
        pf[i] = (FragObject *)child;
        pb[i] = base;
        if (base < 0 || (int64_t)base + pf[i]->size > n) {
            PyErr_SetString(PyExc_ValueError, "expand: fragment out of range");
            Py_DECREF(seq);
            goto done;
        }
        tot_e += pf[i]->tot_e;
        tot_x += pf[i]->tot_x;
    }
    if (tot_e > INT32_MAX || tot_x > INT32_MAX) {
        Py_DECREF(seq);
        raise_limit("the byte NFA has too many edges", "simplify the grammar");
        goto done;
    }
    es = malloc((size_t)(tot_e ? tot_e : 1) * sizeof(int32_t));
    ed = malloc((size_t)(tot_e ? tot_e : 1) * sizeof(int32_t));
    elo = malloc((size_t)(tot_e ? tot_e : 1));
    ehi = malloc((size_t)(tot_e ? tot_e : 1));
    xs = malloc((size_t)(tot_x ? tot_x : 1) * sizeof(int32_t));
    xd = malloc((size_t)(tot_x ? tot_x : 1) * sizeof(int32_t));
    if (!es || !ed || !elo || !ehi || !xs || !xd) { Py_DECREF(seq); PyErr_NoMemory(); goto done; }
    int64_t ke = 0, kx = 0;
    for (int32_t i = 0; i < n_te; i++) {
        int32_t *e = top_e + 4 * i;
        if (e[0] < 0 || e[0] >= n || e[3] < 0 || e[3] >= n || e[1] < 0 || e[2] > 255 || e[1] > e[2]) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "expand: invalid edge");
            goto done;
        }
        es[ke] = e[0]; elo[ke] = (uint8_t)e[1]; ehi[ke] = (uint8_t)e[2]; ed[ke] = e[3]; ke++;
    }
    for (int32_t i = 0; i < n_tx; i++) {
        int32_t *x = top_x + 2 * i;
        if (x[0] < 0 || x[0] >= n || x[1] < 0 || x[1] >= n) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "expand: invalid epsilon edge");
            goto done;
        }
        xs[kx] = x[0]; xd[kx] = x[1]; kx++;
    }
    for (Py_ssize_t i = 0; i < np_; i++) {
        size_t sp = 0;
        if (grow((void **)&stack, &stack_cap, 1, sizeof(*stack)) < 0) { Py_DECREF(seq); goto done; }
        stack[sp].f = pf[i];
        stack[sp].base = pb[i];
        sp++;
        while (sp) {
            sp--;
            FragObject *f = stack[sp].f;
            int32_t base = (int32_t)stack[sp].base;
            for (int32_t k = 0; k < f->n_e; k++) {
                const int32_t *e = f->e + 4 * k;
                es[ke] = base + e[0]; elo[ke] = (uint8_t)e[1]; ehi[ke] = (uint8_t)e[2];
                ed[ke] = base + e[3]; ke++;
            }
            for (int32_t k = 0; k < f->n_x; k++) {
                xs[kx] = base + f->x[2 * k];
                xd[kx] = base + f->x[2 * k + 1];
                kx++;
            }
            if (grow((void **)&stack, &stack_cap, sp + (size_t)f->n_s, sizeof(*stack)) < 0) {
                Py_DECREF(seq);
                goto done;
            }
            for (int32_t k = f->n_s - 1; k >= 0; k--) {
                stack[sp].f = f->sub[k];
                stack[sp].base = (int64_t)base + f->sub_base[k];
                sp++;
            }
        }
    }
    Py_DECREF(seq);
    /* group by source state (counting sort; edges keep their order per state) */
    o_eoff = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n + 1) * 4);
    o_elo = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)ke);
    o_ehi = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)ke);
    o_edst = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)ke * 4);
    o_xoff = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n + 1) * 4);
    o_xdst = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)kx * 4);
    if (!o_eoff || !o_elo || !o_ehi || !o_edst || !o_xoff || !o_xdst) goto done;
    {
        int32_t *eoff = (int32_t *)PyBytes_AS_STRING(o_eoff);
        int32_t *xoff = (int32_t *)PyBytes_AS_STRING(o_xoff);
        memset(eoff, 0, (size_t)(n + 1) * 4);
        memset(xoff, 0, (size_t)(n + 1) * 4);
        for (int64_t i = 0; i < ke; i++) eoff[es[i] + 1]++;
        for (int64_t i = 0; i < kx; i++) xoff[xs[i] + 1]++;
        for (long s = 0; s < n; s++) { eoff[s + 1] += eoff[s]; xoff[s + 1] += xoff[s]; }
        int32_t *pos = malloc((size_t)(n + 1) * sizeof(int32_t));
        if (!pos) { PyErr_NoMemory(); goto done; }
        uint8_t *olo = (uint8_t *)PyBytes_AS_STRING(o_elo), *ohi = (uint8_t *)PyBytes_AS_STRING(o_ehi);
        int32_t *odst = (int32_t *)PyBytes_AS_STRING(o_edst), *oxd = (int32_t *)PyBytes_AS_STRING(o_xdst);
        memcpy(pos, eoff, (size_t)(n + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < ke; i++) {
            int32_t at = pos[es[i]]++;
            olo[at] = elo[i]; ohi[at] = ehi[i]; odst[at] = ed[i];
        }
        memcpy(pos, xoff, (size_t)(n + 1) * sizeof(int32_t));
        for (int64_t i = 0; i < kx; i++) oxd[pos[xs[i]]++] = xd[i];
        free(pos);
    }
    result = PyTuple_Pack(6, o_eoff, o_elo, o_ehi, o_edst, o_xoff, o_xdst);
done:
    Py_XDECREF(o_eoff); Py_XDECREF(o_elo); Py_XDECREF(o_ehi);
    Py_XDECREF(o_edst); Py_XDECREF(o_xoff); Py_XDECREF(o_xdst);
    free(top_e); free(top_x); free(pf); free(pb); free(es); free(ed); free(xs); free(xd);
    free(elo); free(ehi); free(stack);
    return result;
}

/* --------------------------------------------------------------------------------- Earley */

/* One chart position (automata/earley.py's EarleySet): rule items (production, dot, origin),
 * the items waiting on each symbol, scan items (terminal, DFA state, start). Immutable once
 * built; shared between chart lists. */

typedef struct {
    int32_t sym, head, tail, count;
} WaitSym;

typedef struct {
    PyObject_HEAD
    int32_t byte; /* -1: none (the first set), -2: unknown (built by complete_terminal) */
    int32_t accepting;
    int32_t n_items, cap_items;
    int32_t *items; /* triples */
    int32_t *ih;    /* item hash (construction only): item index + 1 */
    int32_t ih_cap;
    /* waiting: entries in insertion order, chained per symbol */
    int32_t n_went, cap_went;
    int32_t *went_item, *went_next;
    WaitSym *wsyms;
    int32_t n_wsyms, cap_wsyms;
    int32_t *wh; /* symbol hash: wsyms index + 1 */
    int32_t wh_cap;
    int32_t n_scans, cap_scans;
    int32_t *scans; /* triples */
    int64_t key_owner;
    int32_t key_id;
    PyObject *pykey; /* the `key` attribute (pure-Python indexes set it; unused here) */
} SetObject;

static PyTypeObject SetType;
static PyObject *NeedsBytes = NULL;
static PyObject *RebuildSet = NULL; /* earley._rebuild_set, for pickling */

static void set_dealloc(SetObject *s) {
    free(s->items); free(s->ih); free(s->went_item); free(s->went_next); free(s->wsyms);
    free(s->wh); free(s->scans);
    Py_XDECREF(s->pykey);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static SetObject *set_alloc(int32_t byte) {
    SetObject *s = PyObject_New(SetObject, &SetType);
    if (!s) return NULL;
    s->byte = byte;
    s->accepting = 0;
    s->n_items = s->cap_items = 0;
    s->items = NULL;
    s->ih = NULL;
    s->ih_cap = 0;
    s->n_went = s->cap_went = 0;
    s->went_item = s->went_next = NULL;
    s->wsyms = NULL;
    s->n_wsyms = s->cap_wsyms = 0;
    s->wh = NULL;
    s->wh_cap = 0;
    s->n_scans = s->cap_scans = 0;
    s->scans = NULL;
    s->key_owner = 0;
    s->key_id = -1;
    s->pykey = NULL;
    return s;
}

static inline uint32_t mix3(int32_t a, int32_t b, int32_t c) {
    uint64_t h = (uint64_t)(uint32_t)a * 0x9E3779B97F4A7C15ULL;
    h ^= (uint64_t)(uint32_t)b * 0xC2B2AE3D27D4EB4FULL + (h >> 29);
    h ^= (uint64_t)(uint32_t)c * 0x165667B19E3779F9ULL + (h >> 31);
    h ^= h >> 33;
    return (uint32_t)h;
}

static int set_ih_rebuild(SetObject *s, int32_t cap) {
    int32_t *ih = calloc((size_t)cap, sizeof(int32_t));
    if (!ih) return PyErr_NoMemory(), -1;
    for (int32_t k = 0; k < s->n_items; k++) {
        const int32_t *it = s->items + 3 * k;
        uint32_t i = mix3(it[0], it[1], it[2]) & (uint32_t)(cap - 1);
        while (ih[i]) i = (i + 1) & (uint32_t)(cap - 1);
        ih[i] = k + 1;
    }
    free(s->ih);
    s->ih = ih;
    s->ih_cap = cap;
    return 0;
}

/* add an item; returns 1 if new, 0 if present, -1 on error */
static int set_add_item(SetObject *s, int32_t p, int32_t d, int32_t o) {
    if (!s->ih_cap && set_ih_rebuild(s, 64) < 0) return -1;
    uint32_t mask = (uint32_t)(s->ih_cap - 1);
    uint32_t i = mix3(p, d, o) & mask;
    while (s->ih[i]) {
        const int32_t *it = s->items + 3 * (s->ih[i] - 1);
        if (it[0] == p && it[1] == d && it[2] == o) return 0;
        i = (i + 1) & mask;
    }
    if (s->n_items >= s->cap_items) {
        int32_t c = s->cap_items ? s->cap_items * 2 : 32;
        int32_t *n = realloc(s->items, (size_t)c * 3 * sizeof(int32_t));
        if (!n) return PyErr_NoMemory(), -1;
        s->items = n;
        s->cap_items = c;
    }
    int32_t k = s->n_items++;
    s->items[3 * k] = p;
    s->items[3 * k + 1] = d;
    s->items[3 * k + 2] = o;
    s->ih[i] = k + 1;
    if (s->n_items * 2 > s->ih_cap && set_ih_rebuild(s, s->ih_cap * 2) < 0) return -1;
    return 1;
}

static WaitSym *set_wsym(SetObject *s, int32_t sym, int create) {
    if (s->wh_cap) {
        uint32_t mask = (uint32_t)(s->wh_cap - 1);
        uint32_t i = mix3(sym, 7, 11) & mask;
        while (s->wh[i]) {
            WaitSym *w = s->wsyms + (s->wh[i] - 1);
            if (w->sym == sym) return w;
            i = (i + 1) & mask;
        }
    }
    if (!create) return NULL;
    if (s->n_wsyms >= s->cap_wsyms) {
        int32_t c = s->cap_wsyms ? s->cap_wsyms * 2 : 16;
        WaitSym *n = realloc(s->wsyms, (size_t)c * sizeof(WaitSym));
        if (!n) { PyErr_NoMemory(); return NULL; }
        s->wsyms = n;
        s->cap_wsyms = c;
    }
    int32_t k = s->n_wsyms++;
    s->wsyms[k].sym = sym;
    s->wsyms[k].head = s->wsyms[k].tail = -1;
    s->wsyms[k].count = 0;
    if (s->n_wsyms * 2 > s->wh_cap) {
        int32_t cap = s->wh_cap ? s->wh_cap * 2 : 32;
        int32_t *wh = calloc((size_t)cap, sizeof(int32_t));
        if (!wh) { PyErr_NoMemory(); return NULL; }
        for (int32_t j = 0; j < s->n_wsyms; j++) {
            uint32_t i = mix3(s->wsyms[j].sym, 7, 11) & (uint32_t)(cap - 1);
            while (wh[i]) i = (i + 1) & (uint32_t)(cap - 1);
            wh[i] = j + 1;
        }
        free(s->wh);
        s->wh = wh;
        s->wh_cap = cap;
    } else {
        uint32_t mask = (uint32_t)(s->wh_cap - 1);
        uint32_t i = mix3(sym, 7, 11) & mask;
        while (s->wh[i]) i = (i + 1) & mask;
        s->wh[i] = k + 1;
    }
    return s->wsyms + k;
}

static int set_add_waiting(SetObject *s, int32_t sym, int32_t item) {
    WaitSym *w = set_wsym(s, sym, 1);
    if (!w) return -1;
    if (s->n_went >= s->cap_went) {
        int32_t c = s->cap_went ? s->cap_went * 2 : 32;
        int32_t *a = realloc(s->went_item, (size_t)c * sizeof(int32_t));
        if (!a) return PyErr_NoMemory(), -1;
        s->went_item = a;
        int32_t *b = realloc(s->went_next, (size_t)c * sizeof(int32_t));
        if (!b) return PyErr_NoMemory(), -1;
        s->went_next = b;
        s->cap_went = c;
    }
    int32_t e = s->n_went++;
    s->went_item[e] = item;
    s->went_next[e] = -1;
    if (w->tail >= 0) s->went_next[w->tail] = e; else w->head = e;
    w->tail = e;
    w->count++;
    return 0;
}

static int set_add_scan(SetObject *s, int32_t t, int32_t q, int32_t j) {
    if (s->n_scans >= s->cap_scans) {
        int32_t c = s->cap_scans ? s->cap_scans * 2 : 8;
        int32_t *n = realloc(s->scans, (size_t)c * 3 * sizeof(int32_t));
        if (!n) return PyErr_NoMemory(), -1;
        s->scans = n;
        s->cap_scans = c;
    }
    int32_t k = s->n_scans++;
    s->scans[3 * k] = t;
    s->scans[3 * k + 1] = q;
    s->scans[3 * k + 2] = j;
    return 0;
}

static void set_seal(SetObject *s) {
    free(s->ih);
    s->ih = NULL;
    s->ih_cap = 0;
}

/* Python-visible views (built on each access) */
static PyObject *set_get_byte(SetObject *s, void *Py_UNUSED(c)) {
    if (s->byte == -2) Py_RETURN_NONE;
    return PyLong_FromLong(s->byte);
}
static PyObject *set_get_accepting(SetObject *s, void *Py_UNUSED(c)) { return PyBool_FromLong(s->accepting); }
static PyObject *set_get_scans(SetObject *s, void *Py_UNUSED(c)) {
    PyObject *l = PyList_New(s->n_scans);
    if (!l) return NULL;
    for (int32_t k = 0; k < s->n_scans; k++) {
        PyObject *t = Py_BuildValue("(iii)", s->scans[3 * k], s->scans[3 * k + 1], s->scans[3 * k + 2]);
        if (!t) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, k, t);
    }
    return l;
}
static PyObject *set_get_items(SetObject *s, void *Py_UNUSED(c)) {
    PyObject *st = PySet_New(NULL);
    if (!st) return NULL;
    for (int32_t k = 0; k < s->n_items; k++) {
        PyObject *t = Py_BuildValue("(iii)", s->items[3 * k], s->items[3 * k + 1], s->items[3 * k + 2]);
        if (!t || PySet_Add(st, t) < 0) { Py_XDECREF(t); Py_DECREF(st); return NULL; }
        Py_DECREF(t);
    }
    return st;
}
static PyObject *set_get_waiting(SetObject *s, void *Py_UNUSED(c)) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int32_t w = 0; w < s->n_wsyms; w++) {
        PyObject *l = PyList_New(0);
        if (!l) { Py_DECREF(d); return NULL; }
        for (int32_t e = s->wsyms[w].head; e >= 0; e = s->went_next[e]) {
            const int32_t *it = s->items + 3 * s->went_item[e];
            PyObject *t = Py_BuildValue("(iii)", it[0], it[1], it[2]);
            if (!t || PyList_Append(l, t) < 0) { Py_XDECREF(t); Py_DECREF(l); Py_DECREF(d); return NULL; }
            Py_DECREF(t);
        }
        PyObject *k = PyLong_FromLong(s->wsyms[w].sym);
        if (!k || PyDict_SetItem(d, k, l) < 0) { Py_XDECREF(k); Py_DECREF(l); Py_DECREF(d); return NULL; }
        Py_DECREF(k);
        Py_DECREF(l);
    }
    return d;
}
static PyObject *set_get_key(SetObject *s, void *Py_UNUSED(c)) {
    if (!s->pykey) Py_RETURN_NONE;
    return Py_NewRef(s->pykey);
}
static int set_set_key(SetObject *s, PyObject *v, void *Py_UNUSED(c)) {
    Py_XSETREF(s->pykey, v == Py_None ? NULL : Py_XNewRef(v));
    return 0;
}

/* pickling: (byte or None, items, waiting entries (sym, item index), scans, accepting) */
static PyObject *set_reduce(SetObject *s, PyObject *Py_UNUSED(ignored)) {
    if (!RebuildSet) { PyErr_SetString(PyExc_RuntimeError, "earley not registered"); return NULL; }
    PyObject *items = PyTuple_New(s->n_items);
    PyObject *scans = PyTuple_New(s->n_scans);
    PyObject *waiting = PyList_New(0);
    if (!items || !scans || !waiting) goto fail;
    for (int32_t k = 0; k < s->n_items; k++) {
        PyObject *t = Py_BuildValue("(iii)", s->items[3 * k], s->items[3 * k + 1], s->items[3 * k + 2]);
        if (!t) goto fail;
        PyTuple_SET_ITEM(items, k, t);
    }
    for (int32_t k = 0; k < s->n_scans; k++) {
        PyObject *t = Py_BuildValue("(iii)", s->scans[3 * k], s->scans[3 * k + 1], s->scans[3 * k + 2]);
        if (!t) goto fail;
        PyTuple_SET_ITEM(scans, k, t);
    }
    for (int32_t w = 0; w < s->n_wsyms; w++)
        for (int32_t e = s->wsyms[w].head; e >= 0; e = s->went_next[e]) {
            PyObject *t = Py_BuildValue("(ii)", s->wsyms[w].sym, s->went_item[e]);
            if (!t || PyList_Append(waiting, t) < 0) { Py_XDECREF(t); goto fail; }
            Py_DECREF(t);
        }
    PyObject *byte = s->byte == -2 ? Py_NewRef(Py_None) : PyLong_FromLong(s->byte);
    if (!byte) goto fail;
    return Py_BuildValue("(O(NNNNO))", RebuildSet, byte, items, waiting, scans,
                         s->accepting ? Py_True : Py_False);
fail:
    Py_XDECREF(items); Py_XDECREF(scans); Py_XDECREF(waiting);
    return NULL;
}

/* EarleySet.build(byte, items, waiting, scans, accepting): the inverse of __reduce__ */
static PyObject *set_build(PyObject *Py_UNUSED(cls), PyObject *args) {
    PyObject *byte, *items, *waiting, *scans;
    int accepting;
    if (!PyArg_ParseTuple(args, "OOOOp", &byte, &items, &waiting, &scans, &accepting)) return NULL;
    int32_t b = -2;
    if (byte != Py_None) {
        long v = PyLong_AsLong(byte);
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (v < -1 || v > 255) { /* -1: the first set (no byte) */
            PyErr_SetString(PyExc_ValueError, "EarleySet: byte out of range");
            return NULL;
        }
        b = (int32_t)v;
    }
    /* the numbers are checked against a grammar where a parser uses the set (a set is not tied
     * to one parser): only their signs here */
    SetObject *s = set_alloc(b);
    if (!s) return NULL;
    s->accepting = accepting;
    PyObject *seq = NULL;
    seq = PySequence_Tuple(items);
    if (!seq) goto fail;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        int p, d, o;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(seq, i), "iii", &p, &d, &o)) goto fail;
        if (p < 0 || d < 0 || o < 0 || d == INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "EarleySet: bad item");
            goto fail;
        }
        int added = set_add_item(s, p, d, o);
        if (added < 0) goto fail;
        if (!added) { /* the waiting entries index the items as given */
            PyErr_SetString(PyExc_ValueError, "EarleySet: duplicate item");
            goto fail;
        }
    }
    Py_DECREF(seq);
    seq = PySequence_Tuple(waiting);
    if (!seq) goto fail;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        int sym, item;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(seq, i), "ii", &sym, &item)) goto fail;
        if (item < 0 || item >= s->n_items) {
            PyErr_SetString(PyExc_ValueError, "EarleySet: bad waiting entry");
            goto fail;
        }
        if (set_add_waiting(s, sym, item) < 0) goto fail;
    }
    Py_DECREF(seq);
    seq = PySequence_Tuple(scans);
    if (!seq) goto fail;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        int t, q, j;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(seq, i), "iii", &t, &q, &j)) goto fail;
        if (t < 0 || q < 0 || j < 0) {
            PyErr_SetString(PyExc_ValueError, "EarleySet: bad scan");
            goto fail;
        }
        if (set_add_scan(s, t, q, j) < 0) goto fail;
    }
    Py_DECREF(seq);
    set_seal(s);
    return (PyObject *)s;
fail:
    Py_XDECREF(seq);
    Py_DECREF(s);
    return NULL;
}

static PyGetSetDef set_getset[] = {
    {"byte", (getter)set_get_byte, NULL, "The byte that led here (None: unknown).", NULL},
    {"accepting", (getter)set_get_accepting, NULL, "Whether the sentence may end here.", NULL},
    {"scans", (getter)set_get_scans, NULL, "Scan items (terminal, dfa state, start).", NULL},
    {"items", (getter)set_get_items, NULL, "Rule items (production, dot, origin).", NULL},
    {"waiting", (getter)set_get_waiting, NULL, "Items waiting on each symbol.", NULL},
    {"key", (getter)set_get_key, (setter)set_set_key, "Configuration key (pure indexes).", NULL},
    {NULL}};

static PyMethodDef set_methods[] = {
    {"__reduce__", (PyCFunction)set_reduce, METH_NOARGS, "Pickle support."},
    {"build", (PyCFunction)set_build, METH_VARARGS | METH_CLASS, "Rebuild from parts."},
    {NULL}};

static PyTypeObject SetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "structgen._native.EarleySet",
    .tp_basicsize = sizeof(SetObject),
    .tp_dealloc = (destructor)set_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One Earley chart position (immutable once built).",
    .tp_getset = set_getset,
    .tp_methods = set_methods,
};

/* The parser: productions, nullable nonterminals, predicates, terminal DFAs. */
typedef struct {
    PyObject_HEAD
    int32_t n_prods, n_nts, n_terms;
    int32_t *lhs, *rhs_off, *rhs;
    int32_t *bylhs_off, *bylhs;
    uint8_t *nullable;
    PyObject **pred; /* per nonterminal: a callable or NULL */
    DfaObject **terms;
    int32_t *term_init;
    uint8_t *term_nullable;
    int8_t *term_init_out; /* -1 unknown */
    PyObject *verdict_memo; /* dict (lhs, span) -> bool, bounded */
} EarleyObject;

static PyTypeObject EarleyType;

/* GC: the predicates are arbitrary callables (a user's Check may hold the compiled grammar, and so
 * this parser): they are the only references that can close a cycle. The terminal DFAs and the
 * verdict memo ((int, bytes) -> bool) cannot. */
static int earley_traverse(EarleyObject *e, visitproc visit, void *arg) {
    if (e->pred)
        for (int32_t i = 0; i < e->n_nts; i++) Py_VISIT(e->pred[i]);
    return 0;
}

static int earley_clear(EarleyObject *e) {
    if (e->pred) /* a cleared predicate reads as "no check": the object stays usable */
        for (int32_t i = 0; i < e->n_nts; i++) Py_CLEAR(e->pred[i]);
    return 0;
}

static void earley_dealloc(EarleyObject *e) {
    PyObject_GC_UnTrack(e);
    free(e->lhs); free(e->rhs_off); free(e->rhs); free(e->bylhs_off); free(e->bylhs);
    free(e->nullable); free(e->term_init); free(e->term_nullable); free(e->term_init_out);
    if (e->pred) {
        for (int32_t i = 0; i < e->n_nts; i++) Py_XDECREF(e->pred[i]);
        free(e->pred);
    }
    if (e->terms) {
        for (int32_t i = 0; i < e->n_terms; i++) Py_XDECREF((PyObject *)e->terms[i]);
        free(e->terms);
    }
    Py_XDECREF(e->verdict_memo);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

/* Earley(lhs: int32[P], rhs_off: int32[P+1], rhs: int32[], n_nts, nullable: uint8[n_nts],
 *        predicates: dict nt -> callable, terms: list of Dfa) */
static PyObject *earley_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"lhs", "rhs_off", "rhs", "n_nts", "nullable", "predicates", "terms",
                             NULL};
    PyObject *o_lhs, *o_roff, *o_rhs, *o_null, *o_pred, *o_terms;
    int n_nts;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOiOO!O!", kwlist, &o_lhs, &o_roff, &o_rhs,
                                     &n_nts, &o_null, &PyDict_Type, &o_pred, &PyList_Type,
                                     &o_terms))
        return NULL;
    if (n_nts < 0 || n_nts > INT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "Earley: bad number of nonterminals");
        return NULL;
    }
    EarleyObject *e = (EarleyObject *)type->tp_alloc(type, 0);
    if (!e) return NULL;
    Py_ssize_t np1, nr, nn, np_;
    if (copy_i32(o_lhs, &e->lhs, &np_, "lhs") < 0) goto fail;
    if (copy_i32(o_roff, &e->rhs_off, &np1, "rhs_off") < 0) goto fail;
    if (copy_i32(o_rhs, &e->rhs, &nr, "rhs") < 0) goto fail;
    if (copy_u8(o_null, &e->nullable, &nn, "nullable") < 0) goto fail;
    e->n_prods = (int32_t)np_;
    e->n_nts = n_nts;
    e->n_terms = (int32_t)PyList_GET_SIZE(o_terms);
    if (np1 != np_ + 1 || nn != n_nts || np_ < 1 || np_ > INT32_MAX - 1 || e->rhs_off[0] != 0 ||
        e->rhs_off[np_] != nr) {
        PyErr_SetString(PyExc_ValueError, "Earley: inconsistent grammar arrays");
        goto fail;
    }
    for (Py_ssize_t p = 0; p < np_; p++) {
        if (e->lhs[p] < 0 || e->lhs[p] >= n_nts || e->rhs_off[p] > e->rhs_off[p + 1]) {
            PyErr_SetString(PyExc_ValueError, "Earley: bad production");
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < nr; i++) {
        int32_t sym = e->rhs[i];
        if (sym >= n_nts || (sym < 0 && ~sym >= e->n_terms)) {
            PyErr_SetString(PyExc_ValueError, "Earley: symbol out of range");
            goto fail;
        }
    }
    /* productions by left-hand side (ascending production ids, as bnf.by_lhs) */
    e->bylhs_off = calloc((size_t)n_nts + 1, sizeof(int32_t));
    e->bylhs = malloc((size_t)(np_ ? np_ : 1) * sizeof(int32_t));
    e->pred = calloc((size_t)(n_nts ? n_nts : 1), sizeof(PyObject *));
    e->terms = calloc((size_t)(e->n_terms ? e->n_terms : 1), sizeof(DfaObject *));
    e->term_init = malloc((size_t)(e->n_terms ? e->n_terms : 1) * sizeof(int32_t));
    e->term_nullable = malloc((size_t)(e->n_terms ? e->n_terms : 1));
    e->term_init_out = malloc((size_t)(e->n_terms ? e->n_terms : 1));
    if (!e->bylhs_off || !e->bylhs || !e->pred || !e->terms || !e->term_init ||
        !e->term_nullable || !e->term_init_out) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t p = 0; p < np_; p++) e->bylhs_off[e->lhs[p] + 1]++;
    for (int32_t i = 0; i < n_nts; i++) e->bylhs_off[i + 1] += e->bylhs_off[i];
    {
        int32_t *pos = malloc((size_t)(n_nts + 1) * sizeof(int32_t));
        if (!pos) { PyErr_NoMemory(); goto fail; }
        memcpy(pos, e->bylhs_off, (size_t)(n_nts + 1) * sizeof(int32_t));
        for (Py_ssize_t p = 0; p < np_; p++) e->bylhs[pos[e->lhs[p]]++] = (int32_t)p;
        free(pos);
    }
    {
        Py_ssize_t it = 0;
        PyObject *k, *v;
        while (PyDict_Next(o_pred, &it, &k, &v)) {
            long nt = PyLong_AsLong(k);
            if (nt == -1 && PyErr_Occurred()) goto fail;
            if (nt < 0 || nt >= n_nts) {
                PyErr_SetString(PyExc_ValueError, "Earley: predicate nonterminal out of range");
                goto fail;
            }
            Py_XSETREF(e->pred[nt], Py_NewRef(v));
        }
    }
    for (int32_t t = 0; t < e->n_terms; t++) {
        PyObject *d = PyList_GET_ITEM(o_terms, t);
        if (check_dfa(d) < 0) goto fail;
        e->terms[t] = (DfaObject *)Py_NewRef(d);
        e->term_init[t] = e->terms[t]->initial;
        e->term_nullable[t] = e->terms[t]->accepting[e->term_init[t]];
        e->term_init_out[t] = -1;
    }
    e->verdict_memo = PyDict_New();
    if (!e->verdict_memo) goto fail;
    return (PyObject *)e;
fail:
    Py_DECREF(e);
    return NULL;
}

/* A chart view: the first n sets of a Python list, then local new sets */
typedef struct {
    PyObject *base;
    Py_ssize_t n;
    SetObject **local;
    size_t n_local, cap_local;
} View;

/* The set at position 0 <= i < view_len(v); NULL with TypeError/IndexError if the chart list
 * holds something else there (sets of the pure-Python parser) or has shrunk (a predicate runs
 * Python code in between). */
static SetObject *view_get(View *v, Py_ssize_t i) {
    if (i >= v->n) return v->local[i - v->n];
    if (i >= PyList_GET_SIZE(v->base)) {
        PyErr_SetString(PyExc_IndexError, "the chart list is shorter than its state");
        return NULL;
    }
    PyObject *o = PyList_GET_ITEM(v->base, i);
    if (!PyObject_TypeCheck(o, &SetType)) {
        PyErr_SetString(PyExc_TypeError, "the chart holds sets of another implementation");
        return NULL;
    }
    return (SetObject *)o;
}
static inline Py_ssize_t view_len(View *v) { return v->n + (Py_ssize_t)v->n_local; }

static int foreign_set(void) {
    PyErr_SetString(PyExc_ValueError, "a chart set does not belong to this parser's grammar");
    return -1;
}

/* per-call scratch (no shared buffers: a predicate runs Python code, and another thread may
 * use the same parser meanwhile) */
typedef struct {
    int32_t *agenda;
    size_t cap;
    uint32_t *tstamp; /* per terminal: the closure that predicted its scan */
    uint32_t stamp;
} Ctx;

static int ctx_init(EarleyObject *e, Ctx *c) {
    c->agenda = NULL;
    c->cap = 0;
    c->stamp = 0;
    c->tstamp = calloc((size_t)(e->n_terms ? e->n_terms : 1), sizeof(uint32_t));
    if (!c->tstamp) return PyErr_NoMemory(), -1;
    return 0;
}

static void ctx_free(Ctx *c) {
    free(c->agenda);
    free(c->tstamp);
}

static int push_agenda(Ctx *c, size_t *n, int32_t item) {
    if (grow((void **)&c->agenda, &c->cap, *n + 1, sizeof(int32_t)) < 0) return -1;
    c->agenda[(*n)++] = item;
    return 0;
}

/* add (p, d, o) to s, and to the agenda if new */
static inline int add_item(Ctx *c, SetObject *s, size_t *na, int32_t p, int32_t d, int32_t o) {
    int r = set_add_item(s, p, d, o);
    if (r < 0) return -1;
    if (r == 1 && push_agenda(c, na, s->n_items - 1) < 0) return -1;
    return 0;
}

/* The bytes between positions o and pos (s: the set at pos); NULL with NeedsBytes set if a byte
 * is unknown. */
static PyObject *span_bytes(View *v, SetObject *s, Py_ssize_t o, Py_ssize_t pos) {
    Py_ssize_t len = pos - o;
    PyObject *out = PyBytes_FromStringAndSize(NULL, len);
    if (!out) return NULL;
    char *buf = PyBytes_AS_STRING(out);
    for (Py_ssize_t k = o + 1; k <= pos; k++) {
        SetObject *at = k == pos ? s : view_get(v, k);
        if (!at) { Py_DECREF(out); return NULL; }
        int32_t b = at->byte;
        if (b < 0) {
            Py_DECREF(out);
            PyErr_SetNone(NeedsBytes ? NeedsBytes : PyExc_RuntimeError);
            return NULL;
        }
        buf[k - o - 1] = (char)b;
    }
    return out;
}

/* verdict of predicate `pred` (of nonterminal lhs) on the span: 1, 0, or -1 (error) */
static int predicate_verdict(EarleyObject *e, int32_t lhs, PyObject *span) {
    PyObject *key = Py_BuildValue("(iO)", lhs, span);
    if (!key) return -1;
    PyObject *hit = PyDict_GetItemWithError(e->verdict_memo, key);
    if (hit) { Py_DECREF(key); return hit == Py_True; }
    if (PyErr_Occurred()) { Py_DECREF(key); return -1; }
    PyObject *r = PyObject_CallOneArg(e->pred[lhs], span);
    if (!r) { Py_DECREF(key); return -1; }
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (ok < 0) { Py_DECREF(key); return -1; }
    if (PyDict_GET_SIZE(e->verdict_memo) > 4096) PyDict_Clear(e->verdict_memo);
    if (PyDict_SetItem(e->verdict_memo, key, ok ? Py_True : Py_False) < 0) {
        Py_DECREF(key);
        return -1;
    }
    Py_DECREF(key);
    return ok;
}

static int term_init_has_out(EarleyObject *e, int32_t t) {
    if (e->term_init_out[t] < 0) {
        DfaObject *d = e->terms[t];
        if (dfa_compute_row(d, e->term_init[t]) < 0) return -1;
        e->term_init_out[t] = (int8_t)d->has_out[e->term_init[t]];
    }
    return e->term_init_out[t];
}

typedef struct {
    int32_t lhs, o, verdict;
} Verdict;

/* Predict and complete at position pos (the view holds positions < pos; s is the set at pos).
 * The agenda (item indices of s) is e->agenda[0..na). Mirrors EarleyParser._closure. */
static int earley_closure(EarleyObject *e, Ctx *c, View *v, Py_ssize_t pos, SetObject *s, size_t na) {
    uint32_t st = ++c->stamp;
    if (st == 0) {
        memset(c->tstamp, 0, (size_t)(e->n_terms ? e->n_terms : 1) * sizeof(uint32_t));
        st = c->stamp = 1;
    }
    /* scans already in s were begun earlier (j < pos): predicted ones start here */
    Verdict *verdicts = NULL;
    size_t n_verdicts = 0, cap_verdicts = 0;
    while (na) {
        int32_t k = c->agenda[--na];
        int32_t p = s->items[3 * k], d = s->items[3 * k + 1], o = s->items[3 * k + 2];
        /* items come from this parser's sets or EarleySet.build (non-negative numbers) */
        if (p >= e->n_prods || o > pos) { foreign_set(); goto fail; }
        int32_t r0 = e->rhs_off[p], len = e->rhs_off[p + 1] - r0;
        if (d > len) { foreign_set(); goto fail; }
        if (d == len) {
            if (p == 0) { s->accepting = 1; continue; }
            int32_t lhs = e->lhs[p];
            if (e->pred[lhs]) {
                int verdict = -1;
                for (size_t i = 0; i < n_verdicts; i++)
                    if (verdicts[i].lhs == lhs && verdicts[i].o == o) { verdict = verdicts[i].verdict; break; }
                if (verdict < 0) {
                    PyObject *span = o == pos ? PyBytes_FromStringAndSize(NULL, 0)
                                              : span_bytes(v, s, o, pos);
                    if (!span) goto fail;
                    verdict = predicate_verdict(e, lhs, span);
                    Py_DECREF(span);
                    if (verdict < 0) goto fail;
                    if (grow((void **)&verdicts, &cap_verdicts, n_verdicts + 1, sizeof(Verdict)) < 0)
                        goto fail;
                    verdicts[n_verdicts].lhs = lhs;
                    verdicts[n_verdicts].o = o;
                    verdicts[n_verdicts].verdict = verdict;
                    n_verdicts++;
                }
                if (!verdict) continue;
            }
            SetObject *src = o == pos ? s : view_get(v, o);
            if (!src) goto fail;
            WaitSym *w = set_wsym(src, lhs, 0);
            if (!w) { if (PyErr_Occurred()) goto fail; continue; }
            int32_t count = w->count, ent = w->head; /* a snapshot, as list(...) in Python */
            for (int32_t k2 = 0; k2 < count; k2++, ent = src->went_next[ent]) {
                const int32_t *it = src->items + 3 * src->went_item[ent];
                if (add_item(c, s, &na, it[0], it[1] + 1, it[2]) < 0) goto fail;
                w = NULL; /* src may be s: its tables may move */
            }
            continue;
        }
        int32_t sym = e->rhs[r0 + d];
        if (set_add_waiting(s, sym, k) < 0) goto fail;
        if (sym >= 0) {
            for (int32_t i = e->bylhs_off[sym]; i < e->bylhs_off[sym + 1]; i++)
                if (add_item(c, s, &na, e->bylhs[i], 0, (int32_t)pos) < 0) goto fail;
            if (e->nullable[sym] && add_item(c, s, &na, p, d + 1, o) < 0) goto fail;
        } else {
            int32_t t = ~sym;
            if (c->tstamp[t] != st) {
                c->tstamp[t] = st;
                int out = term_init_has_out(e, t);
                if (out < 0) goto fail;
                if (out && set_add_scan(s, t, e->term_init[t], (int32_t)pos) < 0) goto fail;
            }
            if (e->term_nullable[t] && add_item(c, s, &na, p, d + 1, o) < 0) goto fail;
        }
    }
    free(verdicts);
    return 0;
fail:
    free(verdicts);
    return -1;
}

/* The set after `byte` from the last set of the view (None-equivalent: *out = NULL). */
static int earley_step(EarleyObject *e, Ctx *c, View *v, int byte, SetObject **out) {
    Py_ssize_t pos = view_len(v);
    SetObject *cur = view_get(v, pos - 1);
    if (!cur) return -1;
    SetObject *nxt = set_alloc(byte);
    if (!nxt) return -1;
    size_t na = 0;
    for (int32_t k = 0; k < cur->n_scans; k++) {
        int32_t t = cur->scans[3 * k], q = cur->scans[3 * k + 1], j = cur->scans[3 * k + 2];
        if (t >= e->n_terms || q >= e->terms[t]->n_states || j >= pos) { foreign_set(); goto fail; }
        DfaObject *d = e->terms[t];
        int32_t q2 = dfa_next(d, q, byte);
        if (q2 < 0) goto fail;
        if (!q2) continue;
        if (dfa_compute_row(d, q2) < 0) goto fail;
        if (d->has_out[q2] && set_add_scan(nxt, t, q2, j) < 0) goto fail;
        if (d->accepting[q2]) {
            SetObject *src = view_get(v, j);
            if (!src) goto fail;
            WaitSym *w = set_wsym(src, ~t, 0);
            if (!w) { if (PyErr_Occurred()) goto fail; continue; }
            for (int32_t ent = w->head; ent >= 0; ent = src->went_next[ent]) {
                const int32_t *it = src->items + 3 * src->went_item[ent];
                if (add_item(c, nxt, &na, it[0], it[1] + 1, it[2]) < 0) goto fail;
            }
        }
    }
    if (na && earley_closure(e, c, v, pos, nxt, na) < 0) goto fail;
    set_seal(nxt);
    if (!nxt->n_scans && !nxt->accepting) {
        Py_DECREF(nxt);
        *out = NULL;
        return 0;
    }
    *out = nxt;
    return 0;
fail:
    Py_DECREF(nxt);
    return -1;
}

static int check_list(PyObject *sets, Py_ssize_t n) {
    if (!PyList_Check(sets)) {
        PyErr_SetString(PyExc_TypeError, "expected the chart's list of sets");
        return -1;
    }
    if (n < 1 || n > PyList_GET_SIZE(sets)) {
        PyErr_SetString(PyExc_ValueError, "chart length out of range");
        return -1;
    }
    for (Py_ssize_t i = n - 1; i >= 0 && i >= n - 1; i--)
        if (!PyObject_TypeCheck(PyList_GET_ITEM(sets, i), &SetType)) {
            PyErr_SetString(PyExc_TypeError, "the chart holds sets of another implementation");
            return -1;
        }
    return 0;
}

/* advance(sets: list, n: int, data: bytes) -> list of the new sets, or None if a byte is
 * rejected. Reads positions < n of `sets` (never changes the list). */
static PyObject *earley_advance(EarleyObject *e, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "advance(sets, n, data)"); return NULL; }
    PyObject *sets = args[0];
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (check_list(sets, n) < 0) return NULL;
    Buf b = BUF_INIT;
    if (get_buf(args[2], &b, 1, "data") < 0) { rel_buf(&b); return NULL; }
    View v = {sets, n, NULL, 0, 0};
    PyObject *result = NULL;
    const uint8_t *p = b.view.buf;
    Ctx c;
    if (ctx_init(e, &c) < 0) { rel_buf(&b); return NULL; }
    Py_INCREF(sets); /* the list must outlive a predicate that might touch it */
    for (Py_ssize_t i = 0; i < b.view.len; i++) {
        SetObject *nxt;
        if (earley_step(e, &c, &v, p[i], &nxt) < 0) goto done;
        if (!nxt) { result = Py_NewRef(Py_None); goto done; }
        if (grow((void **)&v.local, &v.cap_local, v.n_local + 1, sizeof(SetObject *)) < 0) {
            Py_DECREF(nxt);
            goto done;
        }
        v.local[v.n_local++] = nxt;
    }
    result = PyList_New((Py_ssize_t)v.n_local);
    if (result)
        for (size_t i = 0; i < v.n_local; i++) {
            PyList_SET_ITEM(result, (Py_ssize_t)i, (PyObject *)v.local[i]);
            v.local[i] = NULL;
        }
done:
    for (size_t i = 0; i < v.n_local; i++) Py_XDECREF(v.local[i]);
    free(v.local);
    ctx_free(&c);
    rel_buf(&b);
    Py_DECREF(sets);
    return result;
}

/* complete_terminal(sets, n, t, j) -> the set right after terminal t (begun at j) ends at
 * position n, or None; raises NeedsBytes where a check would need the terminal's bytes. */
static PyObject *earley_complete_terminal(EarleyObject *e, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) { PyErr_SetString(PyExc_TypeError, "complete_terminal(sets, n, t, j)"); return NULL; }
    PyObject *sets = args[0];
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    long t = PyLong_AsLong(args[2]);
    if (t == -1 && PyErr_Occurred()) return NULL;
    long j = PyLong_AsLong(args[3]);
    if (j == -1 && PyErr_Occurred()) return NULL;
    if (check_list(sets, n) < 0) return NULL;
    if (t < 0 || t >= e->n_terms || j < 0 || j >= n) {
        PyErr_SetString(PyExc_ValueError, "complete_terminal: scan out of range");
        return NULL;
    }
    View v = {sets, n, NULL, 0, 0};
    Ctx c;
    if (ctx_init(e, &c) < 0) return NULL;
    SetObject *nxt = set_alloc(-2);
    if (!nxt) { ctx_free(&c); return NULL; }
    Py_INCREF(sets);
    size_t na = 0;
    SetObject *src = view_get(&v, j);
    if (!src) goto fail;
    WaitSym *w = set_wsym(src, ~(int32_t)t, 0);
    if (w)
        for (int32_t ent = w->head; ent >= 0; ent = src->went_next[ent]) {
            const int32_t *it = src->items + 3 * src->went_item[ent];
            if (add_item(&c, nxt, &na, it[0], it[1] + 1, it[2]) < 0) goto fail;
        }
    if (na && earley_closure(e, &c, &v, n, nxt, na) < 0) goto fail;
    Py_DECREF(sets);
    ctx_free(&c);
    set_seal(nxt);
    if (!nxt->n_scans && !nxt->accepting) { Py_DECREF(nxt); Py_RETURN_NONE; }
    return (PyObject *)nxt;
fail:
    Py_DECREF(sets);
    ctx_free(&c);
    Py_DECREF(nxt);
    return NULL;
}

/* drop_failing(sets, n, trie, base, sinks: int64 level ids, mask: writable int32 words)
 * For each sink node below trie node `base`: if the bytes from base down to it are rejected
 * from the chart (the first n sets of `sets`), clear the bits of the tokens ending there. */
static PyObject *earley_drop_failing(EarleyObject *e, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "drop_failing(sets, n, trie, base, sinks, mask)");
        return NULL;
    }
    PyObject *sets = args[0];
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    long base = PyLong_AsLong(args[3]);
    if (base == -1 && PyErr_Occurred()) return NULL;
    if (check_list(sets, n) < 0) return NULL;
    if (!PyObject_TypeCheck(args[2], &TrieType)) {
        PyErr_SetString(PyExc_TypeError, "drop_failing: expected a Trie");
        return NULL;
    }
    TrieObject *t = (TrieObject *)args[2];
    if (base < 0 || base >= t->n) { PyErr_SetString(PyExc_IndexError, "drop_failing: base"); return NULL; }
    Buf bs = BUF_INIT, bm = BUF_INIT;
    if (get_buf(args[4], &bs, 8, "sinks") < 0) { rel_buf(&bs); return NULL; }
    if (PyObject_GetBuffer(args[5], &bm.view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        rel_buf(&bs);
        return NULL;
    }
    bm.ok = 1;
    PyObject *result = NULL;
    uint8_t *path = NULL;
    Ctx c;
    int ctx_ok = 0;
    if (bm.view.len < (Py_ssize_t)t->words * 4 || (uintptr_t)bm.view.buf % 4) {
        PyErr_SetString(PyExc_ValueError, "drop_failing: mask too short or not aligned");
        goto done;
    }
    if (ctx_init(e, &c) < 0) goto done;
    ctx_ok = 1;
    path = malloc((size_t)t->max_depth + 1);
    if (!path) { PyErr_NoMemory(); goto done; }
    Py_INCREF(sets);
    {
        uint32_t *mask = bm.view.buf;
        const int64_t *sinks = bs.view.buf;
        Py_ssize_t ns = bs.view.len / 8;
        int32_t ib = t->dfs_of[base];
        int failed = 0;
        for (Py_ssize_t k = 0; k < ns && !failed; k++) {
            int64_t sink = sinks[k];
            if (sink < 0 || sink >= t->n) { PyErr_SetString(PyExc_IndexError, "drop_failing: sink"); failed = 1; break; }
            int32_t is = t->dfs_of[sink];
            if (is <= ib || is >= t->skip[ib]) { PyErr_SetString(PyExc_ValueError, "drop_failing: not below base"); failed = 1; break; }
            int32_t len = t->depth[is] - t->depth[ib];
            for (int32_t j = len - 1, i = is; j >= 0; j--, i = t->parent_dfs[i]) path[j] = t->byte[i];
            View v = {sets, n, NULL, 0, 0};
            int alive = 1;
            for (int32_t j = 0; j < len; j++) {
                SetObject *nxt;
                if (earley_step(e, &c, &v, path[j], &nxt) < 0) { failed = 1; break; }
                if (!nxt) { alive = 0; break; }
                if (grow((void **)&v.local, &v.cap_local, v.n_local + 1, sizeof(SetObject *)) < 0) {
                    Py_DECREF(nxt);
                    failed = 1;
                    break;
                }
                v.local[v.n_local++] = nxt;
            }
            for (size_t j = 0; j < v.n_local; j++) Py_DECREF(v.local[j]);
            free(v.local);
            if (failed) break;
            if (!alive)
                for (int32_t q = t->tok_off[is]; q < t->tok_off[is + 1]; q++) {
                    int32_t tid = t->tok_ids[q];
                    mask[tid >> 5] &= ~(1u << (tid & 31));
                }
        }
        Py_DECREF(sets);
        if (!failed) result = Py_NewRef(Py_None);
    }
done:
    free(path);
    if (ctx_ok) ctx_free(&c);
    rel_buf(&bs);
    rel_buf(&bm);
    return result;
}

/* initial() -> the set before any byte */
static PyObject *earley_initial(EarleyObject *e, PyObject *Py_UNUSED(ignored)) {
    SetObject *s = set_alloc(-1);
    if (!s) return NULL;
    PyObject *empty = PyList_New(0);
    if (!empty) { Py_DECREF(s); return NULL; }
    View v = {empty, 0, NULL, 0, 0};
    size_t na = 0;
    Ctx c;
    if (ctx_init(e, &c) < 0) { Py_DECREF(empty); Py_DECREF(s); return NULL; }
    if (add_item(&c, s, &na, 0, 0, 0) < 0 || earley_closure(e, &c, &v, 0, s, na) < 0) {
        ctx_free(&c);
        Py_DECREF(empty);
        Py_DECREF(s);
        return NULL;
    }
    ctx_free(&c);
    Py_DECREF(empty);
    set_seal(s);
    return (PyObject *)s;
}

static PyObject *earley_single_live_byte(EarleyObject *e, PyObject *arg) {
    /* the only byte that keeps some scan of the set alive: -1 if none or several */
    if (!PyObject_TypeCheck(arg, &SetType)) { PyErr_SetString(PyExc_TypeError, "expected a set"); return NULL; }
    SetObject *s = (SetObject *)arg;
    int found = -1;
    for (int32_t k = 0; k < s->n_scans; k++) {
        int32_t t = s->scans[3 * k], q = s->scans[3 * k + 1];
        if (t >= e->n_terms || q >= e->terms[t]->n_states) return foreign_set(), NULL;
        DfaObject *d = e->terms[t];
        if (dfa_compute_row(d, q) < 0) return NULL;
        const int32_t *r = d->table + (size_t)q * 256;
        int one = -1, count = 0;
        for (int b = 0; b < 256; b++)
            if (r[b]) { if (!count) one = b; count++; }
        if (count != 1) return PyLong_FromLong(-1);
        if (found >= 0 && found != one) return PyLong_FromLong(-1);
        found = one;
    }
    return PyLong_FromLong(found);
}

static PyMethodDef earley_methods[] = {
    {"initial", (PyCFunction)earley_initial, METH_NOARGS, "The set before any byte."},
    {"advance", (PyCFunction)(void (*)(void))earley_advance, METH_FASTCALL,
     "advance(sets, n, data) -> new sets or None."},
    {"complete_terminal", (PyCFunction)(void (*)(void))earley_complete_terminal, METH_FASTCALL,
     "complete_terminal(sets, n, t, j) -> set or None."},
    {"single_live_byte", (PyCFunction)earley_single_live_byte, METH_O,
     "The one byte every scan of a set allows, or -1."},
    {"drop_failing", (PyCFunction)(void (*)(void))earley_drop_failing, METH_FASTCALL,
     "Clear the tokens of sink nodes whose bytes the chart rejects."},
    {NULL}};

static PyTypeObject EarleyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "structgen._native.Earley",
    .tp_basicsize = sizeof(EarleyObject),
    .tp_dealloc = (destructor)earley_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)earley_traverse,
    .tp_clear = (inquiry)earley_clear,
    .tp_doc = "An Earley recogniser over bytes with DFA terminals (see automata/earley.py).",
    .tp_methods = earley_methods,
    .tp_new = earley_new,
};

/* Configurations: canonical ids of chart sets' kernels (tokens/cfg_index.py _configuration) */
typedef struct {
    PyObject_HEAD
    int64_t serial;
    int32_t n, max;
    int64_t *off;
    int32_t *len;
    uint64_t *hash;
    int32_t *pool;
    size_t pool_cap, pool_used, cap;
    int32_t *ht;
    size_t ht_cap;
    int32_t *sig;
    size_t sig_cap;
    Py_ssize_t *stack;
    size_t stack_cap;
} ConfigsObject;

static PyTypeObject ConfigsType;
static int64_t configs_serial = 0;

static void configs_dealloc(ConfigsObject *c) {
    free(c->off); free(c->len); free(c->hash); free(c->pool); free(c->ht); free(c->sig);
    free(c->stack);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *configs_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"max_configurations", NULL};
    int max;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i", kwlist, &max)) return NULL;
    ConfigsObject *c = (ConfigsObject *)type->tp_alloc(type, 0);
    if (!c) return NULL;
    c->serial = ++configs_serial;
    c->max = max;
    return (PyObject *)c;
}

static int cmp_triple(const void *a, const void *b) {
    const int32_t *x = a, *y = b;
    for (int i = 0; i < 3; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

static int32_t configs_intern(ConfigsObject *c, const int32_t *sig, size_t n) {
    uint64_t h = hash_i32(sig, n);
    if (c->ht_cap) {
        size_t i = (size_t)h & (c->ht_cap - 1);
        while (c->ht[i]) {
            int32_t id = c->ht[i] - 1;
            if (c->hash[id] == h && (size_t)c->len[id] == n &&
                memcmp(c->pool + c->off[id], sig, n * sizeof(int32_t)) == 0)
                return id;
            i = (i + 1) & (c->ht_cap - 1);
        }
    }
    if (c->n >= c->max) return -2;
    if ((size_t)c->n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int64_t *o = realloc(c->off, cap * sizeof(int64_t));
        if (!o) return PyErr_NoMemory(), -1;
        c->off = o;
        int32_t *l = realloc(c->len, cap * sizeof(int32_t));
        if (!l) return PyErr_NoMemory(), -1;
        c->len = l;
        uint64_t *hh = realloc(c->hash, cap * sizeof(uint64_t));
        if (!hh) return PyErr_NoMemory(), -1;
        c->hash = hh;
        c->cap = cap;
    }
    if (grow((void **)&c->pool, &c->pool_cap, c->pool_used + n, sizeof(int32_t)) < 0) return -1;
    memcpy(c->pool + c->pool_used, sig, n * sizeof(int32_t));
    int32_t id = c->n++;
    c->off[id] = (int64_t)c->pool_used;
    c->len[id] = (int32_t)n;
    c->hash[id] = h;
    c->pool_used += n;
    if ((size_t)c->n * 2 > c->ht_cap) {
        size_t cap = c->ht_cap ? c->ht_cap * 2 : 256;
        int32_t *ht = calloc(cap, sizeof(int32_t));
        if (!ht) return PyErr_NoMemory(), -1;
        for (int32_t k = 0; k < c->n; k++) {
            size_t i = (size_t)c->hash[k] & (cap - 1);
            while (ht[i]) i = (i + 1) & (cap - 1);
            ht[i] = k + 1;
        }
        free(c->ht);
        c->ht = ht;
        c->ht_cap = cap;
    } else {
        size_t i = (size_t)h & (c->ht_cap - 1);
        while (c->ht[i]) i = (i + 1) & (c->ht_cap - 1);
        c->ht[i] = id + 1;
    }
    return id;
}

/* Set `from` (an origin or scan start in the set at `at`) must have its key before `at`: pushed
 * on the stack (and *missing set) if it has none yet. 0, or -1 with ValueError/TypeError when it
 * does not lie before `at` or is not a native set. */
static int configs_need(ConfigsObject *c, PyObject *sets, Py_ssize_t at, int32_t from, size_t *sp,
                        int *missing) {
    if (from < 0 || from > at) {
        PyErr_SetString(PyExc_ValueError, "key: an item or scan begins after its set");
        return -1;
    }
    PyObject *o = PyList_GET_ITEM(sets, from);
    if (!PyObject_TypeCheck(o, &SetType)) {
        PyErr_SetString(PyExc_TypeError, "key: the chart holds sets of another implementation");
        return -1;
    }
    if (((SetObject *)o)->key_owner == c->serial) return 0;
    if (grow((void **)&c->stack, &c->stack_cap, *sp + 1, sizeof(Py_ssize_t)) < 0) return -1;
    c->stack[(*sp)++] = from;
    *missing = 1;
    return 0;
}

/* key(sets: list, pos) -> configuration id, or None past max_configurations */
static PyObject *configs_key(ConfigsObject *c, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "key(sets, pos)"); return NULL; }
    PyObject *sets = args[0];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) return NULL;
    if (!PyList_Check(sets) || pos < 0 || pos >= PyList_GET_SIZE(sets)) {
        PyErr_SetString(PyExc_ValueError, "key: bad chart position");
        return NULL;
    }
    size_t sp = 0;
    if (grow((void **)&c->stack, &c->stack_cap, 1, sizeof(Py_ssize_t)) < 0) return NULL;
    c->stack[sp++] = pos;
    while (sp) {
        Py_ssize_t at = c->stack[sp - 1];
        PyObject *so = PyList_GET_ITEM(sets, at);
        if (!PyObject_TypeCheck(so, &SetType)) {
            PyErr_SetString(PyExc_TypeError, "key: the chart holds sets of another implementation");
            return NULL;
        }
        SetObject *s = (SetObject *)so;
        if (s->key_owner == c->serial) { sp--; continue; }
        int missing = 0;
        /* origins and scan starts lie strictly before `at` (except `at` itself): the walk
         * terminates, and every set it reads is checked to be a native set */
        for (int32_t k = 0; k < s->n_items; k++) {
            int32_t d = s->items[3 * k + 1], o = s->items[3 * k + 2];
            if (!d || o == at) continue;
            if (configs_need(c, sets, at, o, &sp, &missing) < 0) return NULL;
        }
        for (int32_t k = 0; k < s->n_scans; k++) {
            int32_t j = s->scans[3 * k + 2];
            if (j == at) continue;
            if (configs_need(c, sets, at, j, &sp, &missing) < 0) return NULL;
        }
        if (missing) continue;
        if (c->n >= c->max) Py_RETURN_NONE;
        /* signature: sorted kernel item triples, sorted earlier-scan triples, accepting */
        size_t need = 3 + 3 * (size_t)(s->n_items + s->n_scans);
        if (grow((void **)&c->sig, &c->sig_cap, need, sizeof(int32_t)) < 0) return NULL;
        int32_t *sig = c->sig;
        size_t ni = 0;
        for (int32_t k = 0; k < s->n_items; k++) {
            int32_t p = s->items[3 * k], d = s->items[3 * k + 1], o = s->items[3 * k + 2];
            if (!d) continue;
            sig[1 + 3 * ni] = p;
            sig[2 + 3 * ni] = d;
            sig[3 + 3 * ni] = o == at ? -1 : ((SetObject *)PyList_GET_ITEM(sets, o))->key_id;
            ni++;
        }
        sig[0] = (int32_t)ni;
        if (ni > 1) qsort(sig + 1, ni, 3 * sizeof(int32_t), cmp_triple);
        size_t base = 1 + 3 * ni, ns = 0;
        for (int32_t k = 0; k < s->n_scans; k++) {
            int32_t j = s->scans[3 * k + 2];
            if (j == at) continue;
            sig[base + 1 + 3 * ns] = s->scans[3 * k];
            sig[base + 2 + 3 * ns] = s->scans[3 * k + 1];
            sig[base + 3 + 3 * ns] = ((SetObject *)PyList_GET_ITEM(sets, j))->key_id;
            ns++;
        }
        sig[base] = (int32_t)ns;
        if (ns > 1) qsort(sig + base + 1, ns, 3 * sizeof(int32_t), cmp_triple);
        size_t total = base + 1 + 3 * ns;
        sig[total++] = s->accepting;
        int32_t id = configs_intern(c, sig, total);
        if (id == -1) return NULL;
        if (id == -2) Py_RETURN_NONE;
        s->key_owner = c->serial;
        s->key_id = id;
        sp--;
    }
    return PyLong_FromLong(((SetObject *)PyList_GET_ITEM(sets, pos))->key_id);
}

static PyObject *configs_len(ConfigsObject *c, void *Py_UNUSED(x)) { return PyLong_FromLong(c->n); }

static PyMethodDef configs_methods[] = {
    {"key", (PyCFunction)(void (*)(void))configs_key, METH_FASTCALL,
     "key(sets, pos) -> configuration id or None."},
    {NULL}};

static PyGetSetDef configs_getset[] = {
    {"count", (getter)configs_len, NULL, "Configurations interned.", NULL},
    {NULL}};

static PyTypeObject ConfigsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "structgen._native.Configs",
    .tp_basicsize = sizeof(ConfigsObject),
    .tp_dealloc = (destructor)configs_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Interned parse configurations of one CFG index.",
    .tp_methods = configs_methods,
    .tp_getset = configs_getset,
    .tp_new = configs_new,
};

/* --------------------------------------------------------------------------------- module */

static PyObject *set_errors(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!PyExceptionClass_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_set_errors: expected an exception class");
        return NULL;
    }
    Py_XSETREF(LimitExceeded, Py_NewRef(arg));
    Py_RETURN_NONE;
}

/* _set_earley(NeedsBytes, rebuild_set): the exception class and the unpickling function */
static PyObject *set_earley(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyExceptionClass_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_set_earley(NeedsBytes: exception class, rebuild: callable)");
        return NULL;
    }
    Py_XSETREF(NeedsBytes, Py_NewRef(args[0]));
    Py_XSETREF(RebuildSet, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* csr(edges: list of lists of (lo, hi, dst), eps: list of lists of dst)
 * -> (e_off, e_lo, e_hi, e_dst, x_off, x_dst) as bytes (int32 / uint8 arrays)
 * Converting a number may run Python code (__index__) that changes the lists: the outer lists are
 * snapshotted, what is being read is held, and a change of the counts raises RuntimeError. */
static PyObject *csr_from_lists(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "csr(edges: list, eps: list)");
        return NULL;
    }
    PyObject *edges = PySequence_Tuple(args[0]);
    PyObject *eps = edges ? PySequence_Tuple(args[1]) : NULL;
    PyObject *o_eoff = NULL, *o_elo = NULL, *o_ehi = NULL, *o_edst = NULL, *o_xoff = NULL,
             *o_xdst = NULL, *held = NULL;
    if (!eps) goto fail;
    Py_ssize_t n = PyTuple_GET_SIZE(edges);
    if (PyTuple_GET_SIZE(eps) != n) {
        PyErr_SetString(PyExc_ValueError, "csr: edges and eps differ in length");
        goto fail;
    }
    if (n > INT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "csr: too many states");
        goto fail;
    }
    Py_ssize_t ne = 0, nx = 0;
    for (Py_ssize_t s = 0; s < n; s++) {
        PyObject *l = PyTuple_GET_ITEM(edges, s), *x = PyTuple_GET_ITEM(eps, s);
        if (!PyList_Check(l) || !PyList_Check(x)) {
            PyErr_SetString(PyExc_TypeError, "csr: expected lists");
            goto fail;
        }
        ne += PyList_GET_SIZE(l);
        nx += PyList_GET_SIZE(x);
    }
    if (ne > INT32_MAX || nx > INT32_MAX) {
        raise_limit("the byte NFA has too many edges", "simplify the grammar");
        goto fail;
    }
    o_eoff = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    o_elo = PyBytes_FromStringAndSize(NULL, ne);
    o_ehi = PyBytes_FromStringAndSize(NULL, ne);
    o_edst = PyBytes_FromStringAndSize(NULL, ne * 4);
    o_xoff = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    o_xdst = PyBytes_FromStringAndSize(NULL, nx * 4);
    if (!o_eoff || !o_elo || !o_ehi || !o_edst || !o_xoff || !o_xdst) goto fail;
    int32_t *eoff = (int32_t *)PyBytes_AS_STRING(o_eoff), *edst = (int32_t *)PyBytes_AS_STRING(o_edst);
    int32_t *xoff = (int32_t *)PyBytes_AS_STRING(o_xoff), *xdst = (int32_t *)PyBytes_AS_STRING(o_xdst);
    uint8_t *elo = (uint8_t *)PyBytes_AS_STRING(o_elo), *ehi = (uint8_t *)PyBytes_AS_STRING(o_ehi);
    Py_ssize_t ke = 0, kx = 0;
    for (Py_ssize_t s = 0; s < n; s++) {
        eoff[s] = (int32_t)ke;
        xoff[s] = (int32_t)kx;
        PyObject *l = PyTuple_GET_ITEM(edges, s), *x = PyTuple_GET_ITEM(eps, s);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l); i++) {
            if (ke >= ne) goto changed;
            held = Py_NewRef(PyList_GET_ITEM(l, i));
            if (!PyTuple_Check(held) || PyTuple_GET_SIZE(held) != 3) {
                PyErr_SetString(PyExc_TypeError, "csr: an edge is not a (lo, hi, dst) tuple");
                goto fail;
            }
            long lo = PyLong_AsLong(PyTuple_GET_ITEM(held, 0));
            if (lo == -1 && PyErr_Occurred()) goto fail;
            long hi = PyLong_AsLong(PyTuple_GET_ITEM(held, 1));
            if (hi == -1 && PyErr_Occurred()) goto fail;
            long dst = PyLong_AsLong(PyTuple_GET_ITEM(held, 2));
            if (dst == -1 && PyErr_Occurred()) goto fail;
            Py_CLEAR(held);
            if (lo < 0 || hi > 255 || lo > hi || dst < 0 || dst >= n) {
                PyErr_SetString(PyExc_ValueError, "csr: invalid edge");
                goto fail;
            }
            elo[ke] = (uint8_t)lo; ehi[ke] = (uint8_t)hi; edst[ke] = (int32_t)dst; ke++;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(x); i++) {
            if (kx >= nx) goto changed;
            held = Py_NewRef(PyList_GET_ITEM(x, i));
            long dst = PyLong_AsLong(held);
            Py_CLEAR(held);
            if (dst == -1 && PyErr_Occurred()) goto fail;
            if (dst < 0 || dst >= n) { PyErr_SetString(PyExc_ValueError, "csr: invalid eps"); goto fail; }
            xdst[kx++] = (int32_t)dst;
        }
    }
    if (ke != ne || kx != nx) goto changed;
    eoff[n] = (int32_t)ke;
    xoff[n] = (int32_t)kx;
    Py_DECREF(edges);
    Py_DECREF(eps);
    return Py_BuildValue("(NNNNNN)", o_eoff, o_elo, o_ehi, o_edst, o_xoff, o_xdst);
changed:
    PyErr_SetString(PyExc_RuntimeError, "csr: the edge lists changed while being read");
fail:
    Py_XDECREF(held);
    Py_XDECREF(edges); Py_XDECREF(eps);
    Py_XDECREF(o_eoff); Py_XDECREF(o_elo); Py_XDECREF(o_ehi);
    Py_XDECREF(o_edst); Py_XDECREF(o_xoff); Py_XDECREF(o_xdst);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"_set_errors", set_errors, METH_O, "Register structgen.errors.LimitExceeded."},
    {"_set_earley", (PyCFunction)(void (*)(void))set_earley, METH_FASTCALL,
     "Register earley.NeedsBytes and earley._rebuild_set."},
    {"csr", (PyCFunction)(void (*)(void))csr_from_lists, METH_FASTCALL,
     "CSR arrays of a ByteNFA's edge lists."},
    {"expand", (PyCFunction)(void (*)(void))expand, METH_FASTCALL,
     "CSR arrays of an NFA given as placed fragments."},
    {NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "structgen._native",
    .m_doc = "C accelerators for structgen (optional; see structgen/_accel.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&DfaType) < 0 || PyType_Ready(&TrieType) < 0 || PyType_Ready(&SetType) < 0 ||
        PyType_Ready(&EarleyType) < 0 || PyType_Ready(&ConfigsType) < 0 || PyType_Ready(&FragType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "ABI", NATIVE_ABI) < 0) goto fail;
    /* PyModule_AddType: the module's reference is taken only on success (no leak on failure) */
    PyTypeObject *types[] = {&DfaType, &TrieType, &SetType, &EarleyType, &ConfigsType, &FragType};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyModule_AddType(m, types[i]) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
