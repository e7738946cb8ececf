/* fold.c: the folding pass.  Finds every BatchNormalization of the main graph,
 * folds it into the layer that produces its input when a pattern of the table
 * below allows, and repeats until nothing changes (Conv -> BN -> BN folds both).
 *
 * A fold never changes a tensor in place: it writes new tensors under fresh
 * names, points the layer at them, gives the layer the BN's output name (it may
 * be a graph output), removes the BN, then removes whatever became unused. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Adding a fold: one file in fold/, one line here. */
static const bnf_fold_pattern *const patterns[] = {
    &bnf_fold_conv,
    &bnf_fold_conv_transpose,
    &bnf_fold_gemm,
};

#define S(x) ((x) ? (x) : "")

bnf_status bnf_fold_decline(bnf_fold_job *job, const char *code, const char *fmt, ...)
{
    va_list ap;
    job->code = code;
    va_start(ap, fmt);
    vsnprintf(job->reason, sizeof job->reason, fmt, ap);
    va_end(ap);
    return BNF_OK;
}

static int is_op(const Onnx__NodeProto *n, const char *op)
{
    return n->op_type && strcmp(n->op_type, op) == 0 &&
           (!n->domain || !*n->domain || strcmp(n->domain, "ai.onnx") == 0);
}

static const bnf_fold_pattern *pattern_for(const Onnx__NodeProto *n)
{
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        if (is_op(n, patterns[i]->op_type))
            return patterns[i];
    return NULL;
}

typedef struct {
    bnf_model *m;
    const bnf_fold_options *opts;
    double loosen;                    /* tolerance factor of the coarsest folded type */
    bnf_graph gi;
    bnf_names names;
    int64_t opset;
    bnf_report *r;
    const Onnx__NodeProto **bn_nodes; /* report entry i describes bn_nodes[i] */
} fold_ctx;

/* Folded float16 / bfloat16 weights are rounded to 11 / 8 significant bits:
 * an honest fold then differs from the original by about that much, so the
 * checks widen their tolerance by the type's rounding error over float's. */
static double type_loosening(int32_t dtype)
{
    if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16)
        return 50;  /* rtol 1e-4 -> 5e-3 */
    if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16)
        return 400; /* rtol 1e-4 -> 4e-2 */
    return 1;
}

static bnf_bn_info *entry_for(fold_ctx *cx, const Onnx__NodeProto *n)
{
    for (size_t i = 0; i < cx->r->n_bns; i++)
        if (cx->bn_nodes[i] == n)
            return &cx->r->bns[i];
    return NULL;
}

static void skip(bnf_bn_info *e, const char *code, const char *reason)
{
    e->folded = 0;
    e->reason_code = code;
    free(e->reason);
    e->reason = bnf_strdup(reason);
}

static const char *const_reason(bnf_const_kind kind)
{
    switch (kind) {
    case BNF_CONST_NO: return "PARAM_NOT_CONSTANT";
    case BNF_CONST_OVERRIDABLE: return "PARAM_OVERRIDABLE";
    default: return "UNSUPPORTED_DTYPE";
    }
}

/* Whether every value survives the cast to dtype: no overflow, and no value that
 * is not zero flushed to zero.  Writes the first offender into why. */
static int representable(int32_t dtype, const double *v, size_t n, const char *what, char *why,
                         size_t size)
{
    for (size_t i = 0; i < n; i++) {
        double r = bnf_round_to(dtype, v[i]);
        if (!isfinite(v[i]) || !isfinite(r)) {
            snprintf(why, size, "folded %s[%zu] = %g is not finite in %s", what, i, v[i],
                     bnf_dtype_name(dtype));
            return 0;
        }
        if (r == 0 && v[i] != 0) {
            snprintf(why, size, "folded %s[%zu] = %g flushes to zero in %s", what, i, v[i],
                     bnf_dtype_name(dtype));
            return 0;
        }
    }
    return 1;
}

/* Tries to fold the BN at node index i.  *folded tells whether the graph changed;
 * otherwise the entry says why not. */
static bnf_status try_fold(fold_ctx *cx, size_t i, int *folded, bnf_err *err)
{
    Onnx__GraphProto *g = cx->gi.g;
    Onnx__NodeProto *bn_node = g->node[i], *layer;
    bnf_bn_info *e = entry_for(cx, bn_node);
    const bnf_fold_pattern *pat;
    bnf_fold_job job;
    bnf_bn bn;
    bnf_array w = {0}, b = {0};
    bnf_const_kind kind;
    const char *code = NULL, *x, *bias_name, *new_w_name, *new_b_name;
    char reason[240];
    char *candidates[8] = {0};
    size_t n_cand = 0;
    Onnx__TensorProto *tw = NULL, *tb = NULL;
    int32_t bias_dtype;
    intptr_t li;
    bnf_status rc;

    *folded = 0;
    memset(&job, 0, sizeof job);
    if (!e)
        return BNF_OK; /* a BN that a fold created: none do today */
    rc = bnf_bn_read(cx->m, &cx->gi, bn_node, cx->opset, &bn, &code, reason, sizeof reason, err);
    if (rc)
        return rc;
    e->channels = bn.c;
    e->epsilon = bn.eps;
    e->min_var = bn.min_var;
    e->max_abs_scale = bn.max_abs_scale;
    x = bnf_node_input(bn_node, 0);
    layer = x && bnf_strmap_get(cx->gi.producer, x, &li) ? g->node[li] : NULL;
    if (layer) { /* reported whatever the decision */
        free(e->layer);
        free(e->layer_op);
        e->layer = bnf_strdup(S(layer->name));
        e->layer_op = bnf_strdup(S(layer->op_type));
        if (!e->layer || !e->layer_op) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if (code) {
        skip(e, code, reason);
        goto out;
    }
    if (!layer) {
        snprintf(reason, sizeof reason, "its input '%s' is not produced by a node (graph input)",
                 S(x));
        skip(e, "NO_LAYER", reason);
        goto out;
    }
    pat = pattern_for(layer);
    if (!pat || strcmp(layer->output[0], x) != 0) {
        snprintf(reason, sizeof reason, "its input comes from %s '%s', which does not fold",
                 S(layer->op_type), S(layer->name));
        skip(e, "NO_LAYER", reason);
        goto out;
    }
    if (bnf_graph_is_output(&cx->gi, x)) {
        snprintf(reason, sizeof reason, "%s output '%s' is also a graph output", pat->op_type, x);
        skip(e, "LAYER_GRAPH_OUTPUT", reason);
        goto out;
    }
    if (bnf_graph_uses(&cx->gi, x) != 1) {
        snprintf(reason, sizeof reason, "%s output '%s' has %zu consumers; folding would change "
                 "the others", pat->op_type, x, bnf_graph_uses(&cx->gi, x));
        skip(e, "LAYER_MULTI_CONSUMER", reason);
        goto out;
    }
    for (size_t k = 1; k <= 2; k++) {
        const char *in = bnf_node_input(layer, k);
        bnf_array *dst = k == 1 ? &w : &b;
        if (!in) {
            if (k == 1) {
                snprintf(reason, sizeof reason, "%s '%s' has no weight input", pat->op_type,
                         S(layer->name));
                skip(e, "UNSUPPORTED_LAYER", reason);
                goto out;
            }
            continue;
        }
        if ((rc = bnf_graph_const(cx->m, &cx->gi, in, &kind, dst, err)))
            goto out;
        if (kind != BNF_CONST_YES) {
            snprintf(reason, sizeof reason, "%s %s '%s' is %s", pat->op_type,
                     k == 1 ? "weight" : "bias", in,
                     kind == BNF_CONST_NO ? "computed at run time"
                     : kind == BNF_CONST_OVERRIDABLE
                         ? "an initializer also listed as a graph input: a user may override it"
                         : "not float, double, float16 or bfloat16");
            skip(e, const_reason(kind), reason);
            goto out;
        }
    }
    job.layer = layer;
    job.w = &w;
    job.b = b.v ? &b : NULL;
    job.bn = &bn;
    job.new_w = malloc((w.n ? w.n : 1) * sizeof *job.new_w);
    if (!job.new_w) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (pat->fold(&job) != BNF_OK) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory folding '%s'", S(bn_node->name));
        goto out;
    }
    if (job.code) {
        skip(e, job.code, job.reason);
        goto out;
    }
    bias_dtype = b.v ? b.dtype : w.dtype;
    if (!representable(w.dtype, job.new_w, w.n, "weight", reason, sizeof reason) ||
        !representable(bias_dtype, job.new_b.v, job.new_b.n, "bias", reason, sizeof reason)) {
        skip(e, "NON_FINITE", reason);
        goto out;
    }

    if (cx->opts->break_for_testing)
        for (size_t k = 0; k < w.n; k++)
            job.new_w[k] *= 1.01;
    if (cx->opts->verify) {
        int pass;
        bnf_verify_options vo = cx->opts->check;
        double loosen = type_loosening(w.dtype);
        vo.rtol *= loosen;
        vo.atol *= loosen;
        if (loosen > cx->loosen)
            cx->loosen = loosen;
        if ((rc = bnf_verify_fold_local(cx->m, &cx->gi, layer, bn_node, cx->opset, &w, job.b,
                                        job.new_w, &job.new_b, &vo, &e->local_err, &pass, err)))
            goto out;
        if (!pass) {
            rc = bnf_fail(err, BNF_ERR_CHECK,
                          "folding BN '%s' into %s '%s' changes its result (max |diff| / max "
                          "|output| = %.3g): nothing written", S(bn_node->name), pat->op_type,
                          S(layer->name), e->local_err);
            goto out;
        }
    }

    /* Rewrite: new tensors, the layer points at them and takes the BN's output. */
    bias_name = bnf_node_input(layer, 2);
    new_w_name = bnf_names_fresh(&cx->names, layer->input[1], "_bnfold", err);
    new_b_name = new_w_name ? bnf_names_fresh(&cx->names, bias_name ? bias_name
                                              : layer->input[1], bias_name ? "_bnfold"
                                              : "_bias_bnfold", err) : NULL;
    if (!new_b_name) {
        rc = err ? err->code : BNF_ERR_NOMEM;
        goto out;
    }
    if ((rc = bnf_tensor_new(new_w_name, w.dtype, w.dims, w.rank, job.new_w, w.n, &tw, err)) ||
        (rc = bnf_tensor_new(new_b_name, bias_dtype, job.new_b.dims, job.new_b.rank, job.new_b.v,
                             job.new_b.n, &tb, err)))
        goto out;
    candidates[n_cand++] = bnf_strdup(layer->input[1]);
    if (bias_name)
        candidates[n_cand++] = bnf_strdup(bias_name);
    for (size_t k = 1; k < 5; k++)
        candidates[n_cand++] = bnf_strdup(bn_node->input[k]);
    for (size_t k = 0; k < n_cand; k++)
        if (!candidates[k]) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
    rc = bnf_graph_add_initializer(&cx->gi, tw, err);
    tw = NULL;
    if (rc)
        goto out;
    rc = bnf_graph_add_initializer(&cx->gi, tb, err);
    tb = NULL;
    if (rc || (rc = bnf_node_set_input(layer, 1, new_w_name, err)) ||
        (rc = bnf_node_set_input(layer, 2, new_b_name, err)) ||
        (rc = bnf_node_set_output(layer, 0, bn_node->output[0], err)) ||
        (pat->finish && (rc = pat->finish(layer, err))))
        goto out;
    /* the layer's old output is gone: drop its now stale shape annotation */
    for (size_t k = 0; k < g->n_value_info; k++) {
        if (g->value_info[k]->name && strcmp(g->value_info[k]->name, x) == 0) {
            onnx__value_info_proto__free_unpacked(g->value_info[k], NULL);
            memmove(&g->value_info[k], &g->value_info[k + 1],
                    (g->n_value_info - k - 1) * sizeof *g->value_info);
            g->n_value_info--;
            break;
        }
    }
    bnf_graph_remove_node(g, i);
    e->folded = 1;
    e->reason_code = NULL;
    free(e->reason);
    e->reason = NULL;
    free(e->new_weight);
    free(e->new_bias);
    e->new_weight = bnf_strdup(new_w_name);
    e->new_bias = bnf_strdup(new_b_name);
    if (!e->new_weight || !e->new_bias) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    cx->m->changed = 1;
    *folded = 1;
    bnf_graph_release(&cx->gi);
    if ((rc = bnf_graph_index(&cx->gi, g, cx->gi.ir_version, err)))
        goto out;
    rc = bnf_graph_collect(&cx->gi, candidates, n_cand, err);
out:
    for (size_t k = 0; k < n_cand; k++)
        free(candidates[k]);
    if (tw)
        onnx__tensor_proto__free_unpacked(tw, NULL);
    if (tb)
        onnx__tensor_proto__free_unpacked(tb, NULL);
    free(job.new_w);
    bnf_array_free(&job.new_b);
    bnf_array_free(&w);
    bnf_array_free(&b);
    bnf_bn_release(&bn);
    if (rc == BNF_OK && e && !e->folded && !e->reason)
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return rc;
}

/* Compares the folded model with the original (bytes, taken over).  An
 * evaluator that lacks an operator is not a failure: the report says the check
 * did not run, and why.  A difference is: BNF_ERR_CHECK. */
static bnf_status end_to_end(bnf_model *model, uint8_t *orig_bytes, size_t orig_n,
                             const bnf_fold_options *opts, double loosen, bnf_report *r,
                             bnf_err *err)
{
    bnf_model *orig = NULL;
    bnf_err e2 = {0};
    bnf_status rc;
    r->e2e_requested = 1;
    if ((rc = bnf_model_from_bytes(orig_bytes, orig_n, model->path, model->dir, 0, &orig, err)))
        return rc;
    {
        bnf_verify_options vo = opts->check;
        vo.rtol *= loosen;
        vo.atol *= loosen;
        rc = bnf_verify_models(orig, model, &vo, &r->e2e, &e2);
    }
    bnf_model_free(orig);
    if (rc == BNF_ERR_NOMEM)
        return bnf_fail(err, rc, "%s", e2.msg);
    if (rc) {
        r->e2e.ran = 0;
        snprintf(r->e2e.reason, sizeof r->e2e.reason, "%s", e2.msg);
        return BNF_OK;
    }
    if (!r->e2e.equivalent)
        return bnf_fail(err, BNF_ERR_CHECK, "the folded model computes something else: %s; "
                        "nothing written", r->e2e.reason);
    return BNF_OK;
}

bnf_status bnf_fold(bnf_model *model, const bnf_fold_options *opts, bnf_report **report,
                    bnf_err *err)
{
    fold_ctx cx;
    bnf_status rc;
    Onnx__GraphProto *g;
    size_t k = 0;

    bnf_fold_options defaults;
    uint8_t *orig_bytes = NULL;
    size_t orig_n = 0;

    if (!opts) {
        bnf_fold_defaults(&defaults);
        opts = &defaults;
    }
    memset(&cx, 0, sizeof cx);
    cx.opts = opts;
    cx.loosen = 1;
    *report = NULL;
    if (!model || !model->proto->graph)
        return bnf_fail(err, BNF_ERR_INVALID, "the model has no graph");
    g = model->proto->graph;
    cx.m = model;
    cx.opset = bnf_model_opset(model->proto, "");
    if (opts->verify) { /* the model as it is now, to compare with at the end */
        if (model->changed) {
            if ((rc = bnf_model_serialize(model, &orig_bytes, &orig_n, err)))
                return rc;
        } else if ((orig_bytes = malloc(model->n_bytes ? model->n_bytes : 1))) {
            memcpy(orig_bytes, model->bytes, model->n_bytes);
            orig_n = model->n_bytes;
        } else {
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
    }
    if ((rc = bnf_report_begin(model, "fold", &cx.r, err)))
        return rc;
    cx.bn_nodes = calloc(cx.r->n_bns ? cx.r->n_bns : 1, sizeof *cx.bn_nodes);
    if (!cx.bn_nodes) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < g->n_node; i++)
        if (is_op(g->node[i], "BatchNormalization"))
            cx.bn_nodes[k++] = g->node[i];
    if ((rc = bnf_names_collect(&cx.names, model->proto, err)) ||
        (rc = bnf_graph_index(&cx.gi, g, model->proto->ir_version, err)))
        goto out;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < g->n_node && !changed; i++) {
            if (!is_op(g->node[i], "BatchNormalization"))
                continue;
            if ((rc = try_fold(&cx, i, &changed, err)))
                goto out;
        }
    }
    for (size_t i = 0; i < cx.r->n_bns; i++)
        cx.r->n_folded += cx.r->bns[i].folded ? 1 : 0;
    for (size_t i = 0; i < g->n_node; i++)
        cx.r->n_bns_after += is_op(g->node[i], "BatchNormalization") ? 1 : 0;
    if (opts->verify && cx.r->n_folded) {
        cx.r->verified_local = 1;
        cx.r->local_worst = 0;
        for (size_t i = 0; i < cx.r->n_bns; i++)
            if (cx.r->bns[i].folded && cx.r->bns[i].local_err > cx.r->local_worst)
                cx.r->local_worst = cx.r->bns[i].local_err;
        rc = end_to_end(model, orig_bytes, orig_n, opts, cx.loosen, cx.r, err);
        orig_bytes = NULL; /* end_to_end took it */
        if (rc)
            goto out;
    }
out:
    free(orig_bytes);
    bnf_graph_release(&cx.gi);
    bnf_names_release(&cx.names);
    free(cx.bn_nodes);
    if (rc) {
        bnf_report_free(cx.r);
        return rc;
    }
    *report = cx.r;
    return BNF_OK;
}

bnf_status bnf_inspect(const bnf_model *model, bnf_report **report, bnf_err *err)
{
    bnf_model *copy = NULL;
    uint8_t *bytes = NULL;
    size_t n = 0;
    bnf_status rc;

    *report = NULL;
    if (model->changed) {
        if ((rc = bnf_model_serialize((bnf_model *)model, &bytes, &n, err)))
            return rc;
    } else {
        bytes = malloc(model->n_bytes ? model->n_bytes : 1);
        if (!bytes)
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        memcpy(bytes, model->bytes, model->n_bytes);
        n = model->n_bytes;
    }
    if ((rc = bnf_model_from_bytes(bytes, n, model->path, model->dir, 0, &copy, err)))
        return rc;
    {
        bnf_fold_options o;
        bnf_fold_defaults(&o);
        o.verify = 0; /* inspect only says what fold would do */
        rc = bnf_fold(copy, &o, report, err);
    }
    if (!rc)
        (*report)->command = "inspect";
    bnf_model_free(copy);
    return rc;
}
