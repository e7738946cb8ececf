/* testutil.h: helpers shared by the cmocka tests.  Tests run from the
 * repository root (make unit), so test data paths are relative to it. */
#ifndef BNF_TESTUTIL_H
#define BNF_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "eval/eval.h"

#define MODELS "testdata/models/"

static inline bnf_model *load_model(const char *path)
{
    bnf_model *m = NULL;
    bnf_err err = {0};
    if (bnf_model_load(path, &m, &err) != BNF_OK)
        fail_msg("loading %s: %s", path, err.msg);
    return m;
}

/* The model dir name suffix, e.g. load_named(MODELS, "conv2d", ".expected.onnx"). */
static inline bnf_model *load_named(const char *dir, const char *name, const char *suffix)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s%s", dir, name, suffix);
    return load_model(path);
}

/* Reads value `name` of the main graph as a constant (initializer, Constant
 * node or through Identity); fails the test when it is not one. */
static inline void read_const(const bnf_model *m, const char *name, bnf_array *out)
{
    bnf_graph gi;
    bnf_err err = {0};
    bnf_const_kind kind;
    assert_int_equal(bnf_graph_index(&gi, m, m->proto->graph, m->proto->ir_version, &err), BNF_OK);
    if (bnf_graph_const(m, &gi, name, &kind, out, &err) != BNF_OK)
        fail_msg("reading %s: %s", name, err.msg);
    if (kind != BNF_CONST_YES)
        fail_msg("'%s' is not a constant (kind %d)", name, (int)kind);
    bnf_graph_release(&gi);
}

static inline const Onnx__NodeProto *node_producing(const bnf_model *m, const char *output)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (strcmp(g->node[i]->output[k], output) == 0)
                return g->node[i];
    return NULL;
}

static inline size_t count_op(const bnf_model *m, const char *op)
{
    size_t n = 0;
    for (size_t i = 0; i < m->proto->graph->n_node; i++)
        n += strcmp(m->proto->graph->node[i]->op_type, op) == 0;
    return n;
}

/* Every element within atol + rtol * |expected|, same shape. */
static inline void assert_close(const bnf_array *got, const bnf_array *want, double rtol,
                                double atol, const char *what)
{
    if (got->rank != want->rank)
        fail_msg("%s: rank %zu, expected %zu", what, got->rank, want->rank);
    for (size_t i = 0; i < got->rank; i++)
        if (got->dims[i] != want->dims[i])
            fail_msg("%s: dim %zu is %lld, expected %lld", what, i, (long long)got->dims[i],
                     (long long)want->dims[i]);
    assert_int_equal(got->n, want->n);
    for (size_t i = 0; i < got->n; i++)
        if (!(fabs(got->v[i] - want->v[i]) <= atol + rtol * fabs(want->v[i])))
            fail_msg("%s[%zu] = %.9g, expected %.9g", what, i, got->v[i], want->v[i]);
}

/* A whole file, in memory from malloc (free it with free). */
static inline uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long size;
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return buf;
}

/* The file at path holds exactly the n bytes of want. */
static inline int file_holds(const char *path, const uint8_t *want, size_t n)
{
    size_t got_n;
    uint8_t *got = slurp(path, &got_n);
    int same = got_n == n && memcmp(got, want, n) == 0;
    free(got);
    return same;
}

/* Files a and b hold the same bytes. */
static inline int same_files(const char *a, const char *b)
{
    size_t n;
    uint8_t *bytes = slurp(a, &n);
    int same = file_holds(b, bytes, n);
    free(bytes);
    return same;
}

/* A fresh empty directory under /tmp; the caller removes it. */
static inline char *temp_dir(void)
{
    char *d = bnf_strdup("/tmp/bnfold-test-XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

#endif
