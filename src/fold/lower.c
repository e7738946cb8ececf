/* lower.c: --lower-standalone.  A BatchNormalization no layer can take
 * becomes Mul(X, S) -> Add(., T), with S = s and T = t (bn.c) as constants
 * shaped [C, 1, ..., 1] so that they broadcast over axis 1: what every runtime
 * runs fast, and what a later pass may fold into a layer.  Only BNs skipped for
 * a reason of place (no layer, or a layer that cannot take them) are lowered:
 * a BN skipped for its parameters computes something else. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

static int lowerable(const char *code)
{
    static const bnf_code codes[] = {BNF_NO_LAYER, BNF_LAYER_MULTI_CONSUMER,
                                     BNF_LAYER_GRAPH_OUTPUT, BNF_PADDING, BNF_UNSUPPORTED_LAYER};
    for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++)
        if (strcmp(code, bnf_code_name(codes[k])) == 0)
            return 1;
    return 0;
}

/* Says in the BN's reason why it stays a BatchNormalization. */
static void not_lowered(bnf_bn_info *e, const char *fmt, ...)
{
    char why[200], *more;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if ((more = bnf_malloc(strlen(S(e->reason)) + strlen(why) + 20))) {
        sprintf(more, "%s (not lowered: %s)", S(e->reason), why);
        bnf_free(e->reason);
        e->reason = more;
    }
}

/* The first of S (which = "S") or T (which = "T") that its type cannot hold
 * (not finite, or flushed to zero), as an index + 1; 0 when all fit. */
static size_t unrepresentable(int32_t dtype, const bnf_bn *bn, const char **which)
{
    for (int k = 0; k < 2; k++) {
        const double *v = k ? bn->t : bn->s;
        for (int64_t c = 0; c < bn->c; c++) {
            double r = bnf_round_to(dtype, v[c]);
            if (!isfinite(r) || (r == 0 && v[c] != 0)) {
                *which = k ? "T" : "S";
                return (size_t)c + 1;
            }
        }
    }
    return 0;
}

bnf_status bnf_fold_lower(const bnf_fold_site *site, bnf_names *names, size_t i, bnf_bn_info *e,
                          int32_t *lowered_dtype, bnf_err *err)
{
    Onnx__GraphProto *g = site->gi->g;
    Onnx__NodeProto *node = g->node[i], *mul = NULL, *add = NULL;
    const char *x = bnf_node_input(node, 0), *s_name, *t_name, *mid;
    bnf_code code = BNF_NO_CODE;
    char reason[240], *candidates[4] = {0};
    int rank;
    int32_t dtype;
    int64_t dims[BNF_MAX_RANK] = {0};
    Onnx__TensorProto *ts = NULL, *tt = NULL;
    bnf_const_kind kind;
    bnf_array scale = {0};
    bnf_bn bn;
    size_t shift = 0;
    bnf_status rc;

    if (e->folded || !e->reason_code || !x || !bnf_node_output0(node) ||
        !lowerable(e->reason_code))
        return BNF_OK;
    if ((rc = bnf_bn_read(site->m, site->gi, node, site->opset, &bn, &code, reason, sizeof reason,
                          err)))
        return rc;
    rank = bnf_graph_rank(site->gi, x);
    if (code || rank < 2 || rank > BNF_MAX_RANK) {
        if (!code)
            not_lowered(e, "the rank of its input is not known");
        goto out;
    }
    /* S and T take X's type (the output's, T); from opset 15 on scale's (T1) may
     * differ from it, before that it is the same */
    dtype = bnf_graph_elem_type(site->gi, S(node->output[0]));
    if (!dtype && site->opset < 15) {
        if ((rc = bnf_graph_const(site->m, site->gi, node->input[1], &kind, &scale, err)))
            goto out;
        dtype = kind == BNF_CONST_YES ? scale.dtype : 0;
    }
    if (!dtype) {
        not_lowered(e, "the type of its input is not known");
        goto out;
    }
    {
        const char *which = "S";
        size_t bad = unrepresentable(dtype, &bn, &which);
        if (bad) { /* as a fold whose weight would not fit (NON_FINITE) */
            double v = (*which == 'S' ? bn.s : bn.t)[bad - 1];
            not_lowered(e, "its %s[%zu] = %g %s in %s", which, bad - 1, v,
                        isfinite(bnf_round_to(dtype, v)) ? "flushes to zero" : "is not finite",
                        bnf_dtype_name(dtype));
            goto out;
        }
    }
    dims[0] = bn.c;
    for (int d = 1; d < rank - 1; d++)
        dims[d] = 1;
    s_name = bnf_names_fresh(names, S(node->output[0]), "_bnfold_scale", err);
    t_name = s_name ? bnf_names_fresh(names, S(node->output[0]), "_bnfold_shift", err) : NULL;
    mid = t_name ? bnf_names_fresh(names, S(node->output[0]), "_bnfold_scaled", err) : NULL;
    if (!mid) {
        rc = err ? err->code : BNF_ERR_NOMEM;
        goto out;
    }
    if ((rc = bnf_proto_new(s_name, dtype, dims, (size_t)rank - 1, bn.s, (size_t)bn.c, &ts, err)) ||
        (rc = bnf_proto_new(t_name, dtype, dims, (size_t)rank - 1, bn.t, (size_t)bn.c, &tt, err)))
        goto out;
    {
        const char *mul_in[2] = {x, s_name}, *add_in[2] = {mid, t_name};
        const char *mul_out[1] = {mid}, *add_out[1] = {S(node->output[0])};
        char mname[300], aname[300];
        snprintf(mname, sizeof mname, "%s_bnfold_mul", S(node->name));
        snprintf(aname, sizeof aname, "%s_bnfold_add", S(node->name));
        mul = bnf_node_new("Mul", mname, mul_in, 2, mul_out, 1);
        add = bnf_node_new("Add", aname, add_in, 2, add_out, 1);
    }
    for (size_t k = 1; k < 5 && k < node->n_input; k++)
        candidates[k - 1] = bnf_strdup(S(node->input[k]));
    if (!mul || !add || !candidates[0] || !candidates[1] || !candidates[2] || !candidates[3]) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = bnf_fold_add_tensor(site, ts, &shift, err);
    ts = NULL;
    if (!rc)
        rc = bnf_fold_add_tensor(site, tt, &shift, err);
    tt = NULL;
    if (rc)
        goto out;
    i += shift;
    bnf_graph_remove_node(site->gi, i);
    rc = bnf_graph_insert_node(site->gi, i, mul, err);
    mul = NULL;
    if (!rc)
        rc = bnf_graph_insert_node(site->gi, i + 1, add, err);
    add = NULL;
    if (rc || (rc = bnf_graph_reindex(site->gi, err)) ||
        (rc = bnf_graph_collect(site->gi, candidates, 4, err)))
        goto out;
    e->lowered = 1;
    *lowered_dtype = dtype;
    site->m->changed = 1;
out:
    for (int k = 0; k < 4; k++)
        bnf_free(candidates[k]);
    if (mul)
        onnx__node_proto__free_unpacked(mul, bnf_model_alloc(site->m));
    if (add)
        onnx__node_proto__free_unpacked(add, bnf_model_alloc(site->m));
    if (ts)
        onnx__tensor_proto__free_unpacked(ts, bnf_model_alloc(site->m));
    if (tt)
        onnx__tensor_proto__free_unpacked(tt, bnf_model_alloc(site->m));
    bnf_array_release(&scale);
    bnf_bn_release(&bn);
    return rc;
}
