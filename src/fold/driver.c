/* fold.c: the folding pass.
 *
 * An affine node (BatchNormalization, or Mul / Add by a per-channel constant)
 * next to a layer (Conv, ConvTranspose, Gemm, MatMul) folds into the layer's
 * weights when a pattern of the table below allows: layer -> node for all of
 * them, BN -> layer where that is exact.  The pass repeats until nothing
 * changes (Conv -> BN -> BN, Conv -> BN -> Mul -> Add fold completely).
 *
 * A fold never changes a tensor in place: it writes new tensors under fresh
 * names, points the layer at them, takes the node out (the layer inherits its
 * output name, which may be a graph output), then removes whatever became
 * unused.  Every BN of the input gets a report entry saying what became of it. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Adding a fold: one file in fold/, one line here. */
static const bnf_fold_pattern *const patterns[] = {
    &bnf_fold_conv_bn,   &bnf_fold_conv_transpose_bn, &bnf_fold_gemm_bn,
    &bnf_fold_matmul_bn, &bnf_fold_bn_conv,           &bnf_fold_bn_gemm,
};

#define S(x) ((x) ? (x) : "")

void bnf_fold_scale(bnf_fold_job *job, size_t inner, size_t channels)
{
    job->scaled = 1;
    job->scale_inner = inner;
    job->scale_channels = channels;
}

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

static const bnf_fold_pattern *pattern_for(const Onnx__NodeProto *n, bnf_fold_position pos)
{
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        if (patterns[i]->position == pos && is_op(n, patterns[i]->op_type))
            return patterns[i];
    return NULL;
}

typedef struct {
    bnf_model *m;
    const bnf_fold_options *opts;
    double loosen;                    /* tolerance factor of the coarsest folded type */
    bnf_graph *gi;                    /* the graph being folded */
    bnf_names names;
    int64_t opset;
    bnf_report *r;
    const Onnx__NodeProto **bn_nodes; /* report entry i describes bn_nodes[i] */
    unsigned char *examined;          /* health of entry i read */
    size_t cap_bns;
    char **pending;                   /* names a subgraph fold stopped using: an enclosing
                                         graph may own them */
    size_t n_pending;
    int in_function;                  /* folding a function body: no initializers there */
    int dry_run;                      /* inspect: decide, reading weight values only when
                                         read_weights or 16-bit (a fold overflows those) */
    int read_weights;
} fold_ctx;

/* Puts a new tensor in the graph: an initializer, or in a function body (which
 * has none) a Constant node at the front; *shift counts the nodes inserted. */
static bnf_status add_tensor(fold_ctx *cx, Onnx__TensorProto *t, size_t *shift, bnf_err *err)
{
    Onnx__NodeProto *c;
    const char *out[1];
    if (!cx->in_function)
        return bnf_graph_add_initializer(cx->gi, t, err);
    out[0] = t->name;
    c = bnf_node_new("Constant", t->name, NULL, 0, out, 1);
    if (!c || !(c->attribute = bnf_malloc(sizeof *c->attribute)) ||
        !(c->attribute[0] = bnf_malloc(sizeof **c->attribute))) {
        if (c)
            onnx__node_proto__free_unpacked(c, &bnf_pbc_allocator);
        onnx__tensor_proto__free_unpacked(t, &bnf_pbc_allocator);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    onnx__attribute_proto__init(c->attribute[0]);
    c->n_attribute = 1;
    c->attribute[0]->t = t;
    c->attribute[0]->has_type = 1;
    c->attribute[0]->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (!(c->attribute[0]->name = bnf_strdup("value"))) {
        onnx__node_proto__free_unpacked(c, &bnf_pbc_allocator);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    (*shift)++;
    return bnf_graph_insert_node(cx->gi->g, 0, c, err);
}

/* Why a fold did not happen: a stable code and a sentence. */
typedef struct {
    const char *code;
    char text[240];
} why_not;

static void say(why_not *w, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(why_not *w, const char *code, const char *fmt, ...)
{
    va_list ap;
    w->code = code;
    va_start(ap, fmt);
    vsnprintf(w->text, sizeof w->text, fmt, ap);
    va_end(ap);
}

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

static const char *const_reason(bnf_const_kind kind)
{
    switch (kind) {
    case BNF_CONST_NO: return "PARAM_NOT_CONSTANT";
    case BNF_CONST_OVERRIDABLE: return "PARAM_OVERRIDABLE";
    default: return "UNSUPPORTED_DTYPE";
    }
}

static const char *const_words(bnf_const_kind kind)
{
    switch (kind) {
    case BNF_CONST_NO: return "computed at run time";
    case BNF_CONST_OVERRIDABLE:
        return "an initializer also listed as a graph input: a user may override it";
    default: return "not float, double, float16 or bfloat16";
    }
}

/* Whether every value survives the cast to dtype: no overflow, and no value that
 * is not zero flushed to zero.  Writes the first offender into why. */
static int representable(int32_t dtype, const double *v, size_t n, const char *what, why_not *w)
{
    for (size_t i = 0; i < n; i++) {
        double r = bnf_round_to(dtype, v[i]);
        if (!isfinite(v[i]) || !isfinite(r)) {
            say(w, "NON_FINITE", "folded %s[%zu] = %g is not finite in %s", what, i, v[i],
                bnf_dtype_name(dtype));
            return 0;
        }
        if (r == 0 && v[i] != 0) {
            say(w, "NON_FINITE", "folded %s[%zu] = %g flushes to zero in %s", what, i, v[i],
                bnf_dtype_name(dtype));
            return 0;
        }
    }
    return 1;
}

/* The per-channel affine map of a Mul or Add whose other operand is a constant
 * shaped for `channels` channels on axis 1 of a rank-`rank` value: a scalar, or
 * 1 everywhere but axis 1.  Returns 0 with *w said when it is not one. */
static bnf_status affine_of_const(fold_ctx *cx, const Onnx__NodeProto *n, const char *x,
                                  int64_t channels, int rank, bnf_bn *out, why_not *w,
                                  bnf_err *err)
{
    const char *k_name = strcmp(S(bnf_node_input(n, 0)), x) == 0 ? bnf_node_input(n, 1)
                                                                : bnf_node_input(n, 0);
    int is_mul = is_op(n, "Mul");
    bnf_const_kind kind;
    bnf_array k;
    bnf_status rc;

    memset(out, 0, sizeof *out);
    if (!k_name || n->n_input != 2)
        return say(w, "NO_LAYER", "not a two-input node"), BNF_OK;
    if ((rc = bnf_graph_const(cx->m, cx->gi, k_name, &kind, &k, err)))
        return rc;
    if (kind != BNF_CONST_YES) {
        say(w, const_reason(kind), "%s operand '%s' is %s", n->op_type, k_name, const_words(kind));
        return BNF_OK;
    }
    if (rank < 2 || k.rank > (size_t)rank) {
        say(w, "SHAPE_MISMATCH", "constant of rank %zu on a value of rank %d", k.rank, rank);
        goto out;
    }
    for (size_t d = 0; d < k.rank; d++) {
        size_t axis = (size_t)rank - k.rank + d;
        if (k.dims[d] != 1 && !(axis == 1 && k.dims[d] == channels)) {
            say(w, "SHAPE_MISMATCH", "constant '%s' is not per channel (dimension %zu is %lld)",
                k_name, d, (long long)k.dims[d]);
            goto out;
        }
    }
    out->c = channels;
    out->s = bnf_malloc((size_t)(channels ? channels : 1) * sizeof *out->s);
    out->t = bnf_malloc((size_t)(channels ? channels : 1) * sizeof *out->t);
    if (!out->s || !out->t) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t c = 0; c < channels; c++) {
        double v = k.v[k.n == 1 ? 0 : (size_t)c];
        out->s[c] = is_mul ? v : 1.0;
        out->t[c] = is_mul ? 0.0 : v;
    }
out:
    bnf_array_free(&k);
    return rc;
}

/* What a successful attempt did, for the report. */
typedef struct {
    const char *new_w, *new_b;
    double local_err;
} done;

/* Tries to fold `node` (at index i; an affine map `bn`, or NULL for Mul/Add,
 * read here) into `layer` at position pos.  On success the graph has changed
 * (*folded = 1) and d says how; otherwise *w says why not. */
static bnf_status attempt(fold_ctx *cx, size_t i, Onnx__NodeProto *layer,
                          const bnf_fold_pattern *pat, const bnf_bn *bn_in, int *folded,
                          done *d, why_not *w, bnf_err *err)
{
    Onnx__GraphProto *g = cx->gi->g;
    Onnx__NodeProto *node = g->node[i];
    bnf_fold_job job;
    bnf_bn own = {0};
    const bnf_bn *bn = bn_in;
    const Onnx__TensorProto *w_proto = NULL;
    int narrow, stream, unread = 0;
    bnf_array wt = {0}, b = {0};
    bnf_const_kind kind;
    const char *link, *bias_name, *new_w_name, *new_b_name;
    char *candidates[8] = {0}, *link_copy = NULL;
    size_t n_cand = 0;
    Onnx__TensorProto *tw = NULL, *tb = NULL;
    int32_t bias_dtype;
    int64_t channels;
    size_t shift = 0;
    bnf_status rc = BNF_OK;

    *folded = 0;
    memset(&job, 0, sizeof job);
    /* the value between the two nodes: the layer's output, or the node's */
    link = pat->position == BNF_AFTER_LAYER ? S(layer->output[0]) : S(node->output[0]);
    if (pat->position == BNF_AFTER_LAYER && !layer->n_output)
        return say(w, "NO_LAYER", "the layer has no output"), BNF_OK;
    if (pat->position == BNF_AFTER_LAYER && strcmp(S(bnf_node_input(node, 0)), link) != 0 &&
        (bn_in || strcmp(S(bnf_node_input(node, 1)), link) != 0))
        return say(w, "NO_LAYER", "it does not read the %s's output as its data", pat->op_type),
               BNF_OK;
    if (pat->position == BNF_BEFORE_LAYER && strcmp(S(bnf_node_input(layer, 0)), link) != 0)
        return say(w, "NO_LAYER", "its output is not the %s's data input", pat->op_type), BNF_OK;
    if (bnf_graph_is_output(cx->gi, link))
        return say(w, "LAYER_GRAPH_OUTPUT", "%s output '%s' is also a graph output",
                   pat->position == BNF_AFTER_LAYER ? pat->op_type : node->op_type, link), BNF_OK;
    if (bnf_graph_uses(cx->gi, link) != 1)
        return say(w, "LAYER_MULTI_CONSUMER", "%s output '%s' has %zu consumers; folding would "
                   "change the others", pat->position == BNF_AFTER_LAYER ? pat->op_type
                   : node->op_type, link, bnf_graph_uses(cx->gi, link)), BNF_OK;
    for (size_t k = 1; k <= 2; k++) {
        const char *in = bnf_node_input(layer, k);
        bnf_array *dst = k == 1 ? &wt : &b;
        if (!in) {
            if (k == 1) {
                say(w, "UNSUPPORTED_LAYER", "%s '%s' has no weight input", pat->op_type,
                    S(layer->name));
                goto out;
            }
            continue;
        }
        /* the weight's values are read only once the pattern has accepted it */
        if ((rc = k == 1 ? bnf_graph_const_shape(cx->m, cx->gi, in, &w_proto, &kind, dst, err)
                         : bnf_graph_const(cx->m, cx->gi, in, &kind, dst, err)))
            goto out;
        if (kind != BNF_CONST_YES) {
            say(w, const_reason(kind), "%s %s '%s' is %s", pat->op_type, k == 1 ? "weight" : "bias",
                in, const_words(kind));
            goto out;
        }
    }
    channels = pat->channels(layer, &wt);
    job.in_rank = bnf_graph_rank(cx->gi, S(bnf_node_input(layer, 0)));
    if (!bn) { /* Mul or Add: its constant, read for this layer's channels */
        int rank = is_op(layer, "Conv") || is_op(layer, "ConvTranspose") ? (int)wt.rank
                   : is_op(layer, "Gemm") ? 2 : job.in_rank;
        if (channels < 0) {
            say(w, "SHAPE_MISMATCH", "the %s weight has rank %zu", pat->op_type, wt.rank);
            goto out;
        }
        if ((rc = affine_of_const(cx, node, link, channels, rank, &own, w, err)) || w->code)
            goto out;
        bn = &own;
    }
    job.layer = layer;
    job.w = &wt;
    job.b = b.v ? &b : NULL;
    job.bn = bn;
    /* First the pattern's checks on the weight's shape (and the bias, read). */
    if (pat->fold(&job) != BNF_OK) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory folding '%s'", S(node->name));
        goto out;
    }
    if (job.code) {
        say(w, job.code, "%s", job.reason);
        goto out;
    }
    bias_dtype = b.v ? b.dtype : wt.dtype;
    narrow = bnf_dtype(wt.dtype)->size == 2; /* float16, bfloat16: a fold can overflow them */
    /* Then the new weight: streamed from the old one's bytes when nothing needs
     * it as numbers (no local check); not at all in a dry run, but for the
     * overflow check of 16-bit types; else as numbers. */
    stream = job.scaled && w_proto && !cx->opts->verify && !cx->opts->break_for_testing;
    if (cx->dry_run && !narrow && !cx->read_weights) {
        /* inspect of a big model: no weight values (nor a bias made of them) */
        unread = pat->position == BNF_BEFORE_LAYER;
    } else if (stream || (cx->dry_run && job.scaled && w_proto)) {
        size_t bad;
        double bad_value;
        /* the tensor itself also in a dry run: a later fold of a chain reads it */
        if ((rc = bnf_tensor_scaled(cx->m, w_proto, "", bn->s, job.scale_inner,
                                    job.scale_channels, &tw, &bad, &bad_value, err)))
            goto out;
        if (bad) {
            say(w, "NON_FINITE", "folded weight[%zu] = %g %s in %s", bad - 1, bad_value,
                isfinite(bnf_round_to(wt.dtype, bad_value)) ? "flushes to zero" : "is not finite",
                bnf_dtype_name(wt.dtype));
            goto out;
        }
    } else {
        bnf_array_free(&wt);
        if ((rc = bnf_graph_const(cx->m, cx->gi, layer->input[1], &kind, &wt, err)))
            goto out;
        if (!(job.new_w = bnf_malloc((wt.n ? wt.n : 1) * sizeof *job.new_w))) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (job.scaled) {
            size_t k = 0, c = 0;
            memcpy(job.new_w, wt.v, wt.n * sizeof *job.new_w);
            bnf_scale_by_channel(job.new_w, wt.n, bn->s, job.scale_inner, job.scale_channels,
                                 &k, &c);
        } else { /* the pattern again, with the values */
            bnf_array_free(&job.new_b);
            memset(&job.new_b, 0, sizeof job.new_b);
            if (pat->fold(&job) != BNF_OK) {
                rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory folding '%s'", S(node->name));
                goto out;
            }
        }
        if (!representable(wt.dtype, job.new_w, wt.n, "weight", w))
            goto out;
    }
    if (!unread && !representable(bias_dtype, job.new_b.v, job.new_b.n, "bias", w))
        goto out;
    if (w_proto && w_proto->has_raw_data) /* the pages read: back to the page cache */
        bnf_mapped_release_range(w_proto->raw_data.data, w_proto->raw_data.len);

    if (cx->opts->break_for_testing && job.new_w)
        for (size_t k = 0; k < wt.n; k++)
            job.new_w[k] *= 1.01;
    d->local_err = NAN;
    if (cx->opts->verify) {
        int pass;
        bnf_verify_options vo = cx->opts->check;
        double loosen = type_loosening(wt.dtype);
        Onnx__NodeProto as_folded = *layer;
        char gemm[] = "Gemm";
        vo.rtol *= loosen;
        vo.atol *= loosen;
        if (loosen > cx->loosen)
            cx->loosen = loosen;
        if (pat->finish == bnf_fold_gemm_finish || is_op(layer, "MatMul"))
            as_folded.op_type = gemm; /* beta is set to 1 by the check itself */
        rc = bnf_verify_fold_local(cx->m, cx->gi, layer, node, pat->position, &as_folded,
                                   cx->opset, &wt, job.b, job.new_w, &job.new_b, &vo,
                                   &d->local_err, &pass, err);
        if (rc == BNF_ERR_UNSUPPORTED) { /* a fold nobody can check is not made */
            say(w, "UNVERIFIED", "the fold cannot be checked: %s", err ? err->msg : "");
            if (err)
                memset(err, 0, sizeof *err);
            rc = BNF_OK;
            goto out;
        }
        if (rc)
            goto out;
        if (!pass) {
            rc = bnf_fail(err, BNF_ERR_CHECK,
                          "folding %s '%s' into %s '%s' changes its result (max |diff| / max "
                          "|output| = %.3g): nothing written", S(node->op_type), S(node->name),
                          pat->op_type, S(layer->name), d->local_err);
            goto out;
        }
    }

    /* Rewrite: new tensors, the layer points at them, the node goes. */
    bias_name = bnf_node_input(layer, 2);
    new_w_name = bnf_names_fresh(&cx->names, layer->input[1], "_bnfold", err);
    new_b_name = new_w_name ? bnf_names_fresh(&cx->names, bias_name ? bias_name
                                              : layer->input[1], bias_name ? "_bnfold"
                                              : "_bias_bnfold", err) : NULL;
    if (!new_b_name) {
        rc = err ? err->code : BNF_ERR_NOMEM;
        goto out;
    }
    if (tw) { /* streamed: it has its bytes, not yet its name */
        char *name = bnf_strdup(new_w_name);
        if (!name) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
        bnf_free(tw->name);
        tw->name = name;
    } else if ((rc = bnf_tensor_new(new_w_name, wt.dtype, wt.dims, wt.rank, job.new_w, wt.n,
                                    &tw, err))) {
        goto out;
    } else if (!cx->dry_run) {
        bnf_mapped_spill(cx->m, tw); /* big new weights wait in a file, not in memory */
    }
    if ((rc = bnf_tensor_new(new_b_name, bias_dtype, job.new_b.dims, job.new_b.rank, job.new_b.v,
                             job.new_b.n, &tb, err)))
        goto out;
    candidates[n_cand++] = bnf_strdup(layer->input[1]);
    if (bias_name)
        candidates[n_cand++] = bnf_strdup(bias_name);
    for (size_t k = 0; k < node->n_input && n_cand < 8; k++)
        if (node->input[k] && *node->input[k] && strcmp(node->input[k], link) != 0)
            candidates[n_cand++] = bnf_strdup(node->input[k]);
    for (size_t k = 0; k < n_cand; k++)
        if (!candidates[k]) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
    if (!(link_copy = bnf_strdup(link))) { /* `link` lives in a string the rewrite frees */
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = add_tensor(cx, tw, &shift, err);
    tw = NULL;
    if (rc)
        goto out;
    rc = add_tensor(cx, tb, &shift, err);
    tb = NULL;
    if (rc || (rc = bnf_node_set_input(layer, 1, new_w_name, err)) ||
        (rc = bnf_node_set_input(layer, 2, new_b_name, err)) ||
        (pat->position == BNF_AFTER_LAYER
             ? (rc = bnf_node_set_output(layer, 0, node->output[0], err))
             : (rc = bnf_node_set_input(layer, 0, node->input[0], err))) ||
        (pat->finish && (rc = pat->finish(layer, err))))
        goto out;
    /* the value between the two nodes is gone: drop its stale shape annotation */
    for (size_t k = 0; k < g->n_value_info; k++) {
        if (g->value_info[k]->name && strcmp(g->value_info[k]->name, link_copy) == 0) {
            onnx__value_info_proto__free_unpacked(g->value_info[k], &bnf_pbc_allocator);
            memmove(&g->value_info[k], &g->value_info[k + 1],
                    (g->n_value_info - k - 1) * sizeof *g->value_info);
            g->n_value_info--;
            break;
        }
    }
    d->new_w = new_w_name;
    d->new_b = new_b_name;
    bnf_graph_remove_node(g, i + shift);
    cx->m->changed = 1;
    *folded = 1;
    if ((rc = bnf_graph_reindex(cx->gi, err)))
        goto out;
    if ((rc = bnf_graph_collect(cx->gi, candidates, n_cand, err)))
        goto out;
    if (cx->gi->outer) { /* the enclosing graphs look at them once this one is done */
        char **grown = bnf_realloc(cx->pending, (cx->n_pending + n_cand) * sizeof *grown);
        if (!grown) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
        cx->pending = grown;
        for (size_t k = 0; k < n_cand; k++) {
            cx->pending[cx->n_pending++] = candidates[k];
            candidates[k] = NULL;
        }
    }
out:
    bnf_free(link_copy);
    for (size_t k = 0; k < n_cand; k++)
        bnf_free(candidates[k]);
    if (tw)
        onnx__tensor_proto__free_unpacked(tw, &bnf_pbc_allocator);
    if (tb)
        onnx__tensor_proto__free_unpacked(tb, &bnf_pbc_allocator);
    bnf_free(job.new_w);
    bnf_array_free(&job.new_b);
    bnf_array_free(&wt);
    bnf_array_free(&b);
    bnf_bn_release(&own);
    return rc;
}

/* Records a fold; `node_op` and `node_name` are copies (the node is gone). */
static bnf_status add_action(fold_ctx *cx, const char *node_op, const char *node_name,
                             const char *layer_name, const char *layer_op, bnf_fold_position pos,
                             const done *d, bnf_err *err)
{
    bnf_report *r = cx->r;
    if (cx->opts->progress)
        cx->opts->progress(cx->opts->progress_ctx, "fold", r->n_actions + 1,
                           r->n_bns > r->n_actions ? r->n_bns : r->n_actions + 1);
    bnf_fold_action *grown = bnf_realloc(r->actions, (r->n_actions + 1) * sizeof *grown), *a;
    if (!grown)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    r->actions = grown;
    a = &r->actions[r->n_actions++];
    memset(a, 0, sizeof *a);
    a->position = pos == BNF_AFTER_LAYER ? "after" : "before";
    a->local_err = d->local_err;
    a->op = bnf_strdup(node_op);
    a->node = bnf_strdup(node_name);
    a->layer = bnf_strdup(layer_name);
    a->layer_op = bnf_strdup(layer_op);
    a->weight = bnf_strdup(d->new_w);
    a->bias = bnf_strdup(d->new_b);
    if (!a->op || !a->node || !a->layer || !a->layer_op || !a->weight || !a->bias)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

static bnf_status set_layer(bnf_bn_info *e, const Onnx__NodeProto *layer, bnf_err *err)
{
    bnf_free(e->layer);
    bnf_free(e->layer_op);
    e->layer = bnf_strdup(S(layer->name));
    e->layer_op = bnf_strdup(S(layer->op_type));
    if (!e->layer || !e->layer_op)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

/* The only node reading `name` as its input 0, or NULL. */
static Onnx__NodeProto *sole_consumer(const bnf_graph *gi, const char *name)
{
    Onnx__NodeProto *found = NULL;
    if (bnf_graph_uses(gi, name) != 1)
        return NULL;
    for (size_t i = 0; i < gi->g->n_node && !found; i++)
        if (strcmp(S(bnf_node_input(gi->g->node[i], 0)), name) == 0)
            found = gi->g->node[i];
    return found;
}

/* --assume-inference: a training-mode BN whose extra outputs nobody reads
 * becomes an inference BN (its running statistics then normalise). */
static bnf_status to_inference(fold_ctx *cx, Onnx__NodeProto *node, int *converted, char *reason,
                               size_t size, bnf_err *err)
{
    bnf_status rc;
    *converted = 0;
    for (size_t k = 1; k < node->n_output; k++)
        if (node->output[k] && *node->output[k] &&
            (bnf_graph_uses(cx->gi, node->output[k]) || bnf_graph_is_output(cx->gi, node->output[k]))) {
            snprintf(reason, size, "training mode, and its output '%s' (batch statistics) is "
                     "used: --assume-inference cannot drop it", node->output[k]);
            return BNF_OK;
        }
    if (cx->opset <= 6 && (rc = bnf_node_set_attr_int(node, "is_test", 1, err)))
        return rc;
    if (cx->opset >= 14 && (rc = bnf_node_set_attr_int(node, "training_mode", 0, err)))
        return rc;
    for (size_t k = 1; k < node->n_output; k++)
        bnf_free(node->output[k]);
    node->n_output = node->n_output ? 1 : 0;
    cx->m->changed = 1;
    *converted = 1;
    return BNF_OK;
}

/* --lower-standalone: a BN no layer takes, at node index i, becomes
 * Mul(X, S) -> Add(., T) with S and T shaped [C, 1, ..., 1]. */
static bnf_status lower_bn(fold_ctx *cx, size_t i, bnf_err *err)
{
    static const char *const lowerable[] = {"NO_LAYER", "LAYER_MULTI_CONSUMER",
                                            "LAYER_GRAPH_OUTPUT", "PADDING", "UNSUPPORTED_LAYER"};
    Onnx__GraphProto *g = cx->gi->g;
    Onnx__NodeProto *node = g->node[i], *mul = NULL, *add = NULL;
    bnf_bn_info *e = entry_for(cx, node);
    const char *code = NULL, *x = bnf_node_input(node, 0), *s_name, *t_name, *mid;
    char reason[240], *candidates[4] = {0};
    int ok = 0, rank;
    int32_t dtype;
    int64_t dims[BNF_MAX_RANK] = {0};
    Onnx__TensorProto *ts = NULL, *tt = NULL;
    bnf_const_kind kind;
    bnf_array scale = {0};
    bnf_bn bn;
    size_t shift = 0;
    bnf_status rc;

    if (!e || e->folded || !e->reason_code || !x || !bnf_node_output0(node))
        return BNF_OK;
    for (size_t k = 0; k < sizeof lowerable / sizeof lowerable[0]; k++)
        ok |= strcmp(e->reason_code, lowerable[k]) == 0;
    if (!ok)
        return BNF_OK;
    if ((rc = bnf_bn_read(cx->m, cx->gi, node, cx->opset, &bn, &code, reason, sizeof reason, err)))
        return rc;
    rank = bnf_graph_rank(cx->gi, x);
    if (code || rank < 2 || rank > BNF_MAX_RANK) {
        if (!code) {
            char *more = bnf_malloc(strlen(S(e->reason)) + 80);
            if (more) {
                sprintf(more, "%s (not lowered: the rank of '%s' is not known)", S(e->reason),
                        rank < 2 ? "X" : "X");
                bnf_free(e->reason);
                e->reason = more;
            }
        }
        goto out;
    }
    dtype = bnf_graph_elem_type(cx->gi, x);
    if (!dtype) {
        if ((rc = bnf_graph_const(cx->m, cx->gi, node->input[1], &kind, &scale, err)))
            goto out;
        dtype = kind == BNF_CONST_YES ? scale.dtype : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    }
    dims[0] = bn.c;
    for (int d = 1; d < rank - 1; d++)
        dims[d] = 1;
    s_name = bnf_names_fresh(&cx->names, S(node->output[0]), "_bnfold_scale", err);
    t_name = s_name ? bnf_names_fresh(&cx->names, S(node->output[0]), "_bnfold_shift", err) : NULL;
    mid = t_name ? bnf_names_fresh(&cx->names, S(node->output[0]), "_bnfold_scaled", err) : NULL;
    if (!mid) {
        rc = err ? err->code : BNF_ERR_NOMEM;
        goto out;
    }
    if ((rc = bnf_tensor_new(s_name, dtype, dims, (size_t)rank - 1, bn.s, (size_t)bn.c, &ts, err)) ||
        (rc = bnf_tensor_new(t_name, dtype, dims, (size_t)rank - 1, bn.t, (size_t)bn.c, &tt, err)))
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
    rc = add_tensor(cx, ts, &shift, err);
    ts = NULL;
    if (!rc)
        rc = add_tensor(cx, tt, &shift, err);
    tt = NULL;
    if (rc)
        goto out;
    i += shift;
    bnf_graph_remove_node(g, i);
    rc = bnf_graph_insert_node(g, i, mul, err);
    mul = NULL;
    if (!rc)
        rc = bnf_graph_insert_node(g, i + 1, add, err);
    add = NULL;
    if (rc || (rc = bnf_graph_reindex(cx->gi, err)) ||
        (rc = bnf_graph_collect(cx->gi, candidates, 4, err)))
        goto out;
    e->lowered = 1;
    cx->m->changed = 1;
out:
    for (int k = 0; k < 4; k++)
        bnf_free(candidates[k]);
    if (mul)
        onnx__node_proto__free_unpacked(mul, &bnf_pbc_allocator);
    if (add)
        onnx__node_proto__free_unpacked(add, &bnf_pbc_allocator);
    if (ts)
        onnx__tensor_proto__free_unpacked(ts, &bnf_pbc_allocator);
    if (tt)
        onnx__tensor_proto__free_unpacked(tt, &bnf_pbc_allocator);
    bnf_array_free(&scale);
    bnf_bn_release(&bn);
    return rc;
}

/* A BatchNormalization at node index i: into the layer before it, else into
 * the layer after it. */
static bnf_status try_bn(fold_ctx *cx, size_t i, int *folded, bnf_err *err)
{
    Onnx__GraphProto *g = cx->gi->g;
    Onnx__NodeProto *node = g->node[i], *before = NULL, *after;
    bnf_bn_info *e = entry_for(cx, node);
    const bnf_fold_pattern *pat_b = NULL, *pat_a;
    const char *code = NULL, *x = bnf_node_input(node, 0);
    char reason[240];
    why_not w = {0};
    done d = {0};
    bnf_bn bn;
    intptr_t li;
    bnf_status rc;

    *folded = 0;
    if (!e)
        return BNF_OK; /* e->name keeps the node's name once the node is gone */
    if (!bnf_node_output0(node)) { /* nothing reads it: nothing to fold either */
        e->folded = 0;
        e->reason_code = "NO_LAYER";
        bnf_free(e->reason);
        if (!(e->reason = bnf_strdup("the node has no output")))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        return BNF_OK;
    }
    if ((rc = bnf_bn_read(cx->m, cx->gi, node, cx->opset, &bn, &code, reason, sizeof reason, err)))
        return rc;
    if (!cx->examined[e - cx->r->bns]) { /* health: once, on the BN as the input has it */
        cx->examined[e - cx->r->bns] = 1;
        if ((rc = bnf_bn_health(cx->m, cx->gi, node, code && !strcmp(code, "TRAINING_MODE"),
                                (size_t)(e - cx->r->bns), cx->r, err)))
            goto out;
    }
    if (code && !strcmp(code, "TRAINING_MODE") && cx->opts->assume_inference) {
        int converted = 0;
        if ((rc = to_inference(cx, node, &converted, reason, sizeof reason, err)))
            goto out;
        if (converted) {
            e->assumed_inference = 1;
            bnf_bn_release(&bn);
            if ((rc = bnf_bn_read(cx->m, cx->gi, node, cx->opset, &bn, &code, reason,
                                  sizeof reason, err)))
                return rc;
        }
    }
    e->channels = bn.c;
    e->epsilon = bn.eps;
    e->min_var = bn.min_var;
    e->max_abs_scale = bn.max_abs_scale;
    if (x && bnf_strmap_get(cx->gi->producer, x, &li))
        before = g->node[li];
    after = node->n_output ? sole_consumer(cx->gi, S(node->output[0])) : NULL;
    pat_b = before ? pattern_for(before, BNF_AFTER_LAYER) : NULL;
    pat_a = after ? pattern_for(after, BNF_BEFORE_LAYER) : NULL;
    if (before && (rc = set_layer(e, before, err)))
        goto out;
    if (code) {
        say(&w, code, "%s", reason);
        goto out;
    }
    if (pat_b) {
        char op[64];
        snprintf(op, sizeof op, "%s", S(before->op_type));
        if ((rc = attempt(cx, i, before, pat_b, &bn, folded, &d, &w, err)))
            goto out;
        if (*folded) {
            rc = add_action(cx, "BatchNormalization", e->name, S(before->name), op,
                            BNF_AFTER_LAYER, &d, err);
            goto out;
        }
    }
    if (pat_a) {
        why_not w2 = {0};
        char op[64];
        snprintf(op, sizeof op, "%s", S(after->op_type));
        if ((rc = attempt(cx, i, after, pat_a, &bn, folded, &d, &w2, err)))
            goto out;
        if (*folded) {
            e->before_layer = 1;
            if ((rc = set_layer(e, after, err)))
                goto out;
            rc = add_action(cx, "BatchNormalization", e->name, S(after->name), op,
                            BNF_BEFORE_LAYER, &d, err);
            goto out;
        }
        if (!pat_b) { /* the layer after is the one that could have taken it */
            w = w2;
            e->before_layer = 1;
            if ((rc = set_layer(e, after, err)))
                goto out;
        }
    }
    if (!pat_b && !pat_a) {
        if (before)
            say(&w, "NO_LAYER", "its input comes from %s '%s', which does not fold%s",
                S(before->op_type), S(before->name),
                after ? ", and the node after it does not take it either" : "");
        else
            say(&w, "NO_LAYER", "its input '%s' is not produced by a node (graph input)", S(x));
    }
out:
    if (!rc) {
        e->folded = *folded;
        e->reason_code = *folded ? NULL : w.code;
        bnf_free(e->reason);
        e->reason = NULL;
        bnf_free(e->new_weight);
        bnf_free(e->new_bias);
        e->new_weight = e->new_bias = NULL;
        if (*folded) {
            e->local_err = d.local_err;
            e->new_weight = bnf_strdup(cx->r->actions[cx->r->n_actions - 1].weight);
            e->new_bias = bnf_strdup(cx->r->actions[cx->r->n_actions - 1].bias);
            if (!e->new_weight || !e->new_bias)
                rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        } else if (!(e->reason = bnf_strdup(w.text))) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
    }
    bnf_bn_release(&bn);
    return rc;
}

/* A Mul or Add by a per-channel constant at node index i, into the layer
 * before it.  Nothing is reported when it does not fold: most do not. */
static bnf_status try_affine(fold_ctx *cx, size_t i, int *folded, bnf_err *err)
{
    Onnx__GraphProto *g = cx->gi->g;
    Onnx__NodeProto *node = g->node[i], *layer = NULL;
    const bnf_fold_pattern *pat;
    why_not w = {0};
    done d = {0};
    intptr_t li;
    char op[64], node_op[16], *node_name;
    bnf_status rc;

    *folded = 0;
    if (!bnf_node_output0(node))
        return BNF_OK;
    for (size_t k = 0; k < 2 && !layer; k++) {
        const char *x = bnf_node_input(node, k);
        if (x && bnf_strmap_get(cx->gi->producer, x, &li) &&
            pattern_for(g->node[li], BNF_AFTER_LAYER) && strcmp(S(g->node[li]->output[0]), x) == 0)
            layer = g->node[li];
    }
    if (!layer)
        return BNF_OK;
    pat = pattern_for(layer, BNF_AFTER_LAYER);
    snprintf(op, sizeof op, "%s", S(layer->op_type));
    snprintf(node_op, sizeof node_op, "%s", S(node->op_type));
    if (!(node_name = bnf_strdup(S(node->name))))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if (!(rc = attempt(cx, i, layer, pat, NULL, folded, &d, &w, err)) && *folded)
        rc = add_action(cx, node_op, node_name, S(layer->name), op, BNF_AFTER_LAYER, &d, err);
    bnf_free(node_name);
    return rc;
}

/* Compares the folded model with the original.  An evaluator that lacks an
 * operator is not a failure: the report says the check did not run, and why.
 * A difference is: BNF_ERR_CHECK. */
static bnf_status end_to_end(bnf_model *model, bnf_model *orig, const bnf_fold_options *opts,
                             double loosen, bnf_report *r, bnf_err *err)
{
    bnf_err e2 = {0};
    bnf_status rc;
    r->e2e_requested = 1;
    {
        bnf_verify_options vo = opts->check;
        vo.rtol *= loosen;
        vo.atol *= loosen;
        vo.progress = opts->progress;
        vo.progress_ctx = opts->progress_ctx;
        /* Each fold was checked on its own at the tolerance; here the values
         * inside the model are checked for wiring, at ten times it: a BN that
         * subtracts a large mean loses float32 digits in both models alike
         * (resnet50 with random statistics: 1.2e-4 of the value's range). */
        if (vo.values_loosen <= 0)
            vo.values_loosen = 10;
        rc = bnf_verify_models(orig, model, &vo, &r->e2e, &e2);
    }
    bnf_mapped_release(model);
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

/* ---- the pass over graphs -------------------------------------------------------- */

/* Adds report entries for the BNs of g and, recursively, of its subgraphs. */
static bnf_status collect_bns(fold_ctx *cx, const Onnx__GraphProto *g, const char *path, int depth,
                              bnf_err *err)
{
    bnf_report *r = cx->r;
    bnf_status rc;
    if (depth > BNF_MAX_NESTING)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "subgraphs nested too deep");
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (is_op(n, "BatchNormalization")) {
            bnf_bn_info *b;
            if (r->n_bns == cx->cap_bns) {
                size_t cap = cx->cap_bns ? cx->cap_bns * 2 : 16;
                bnf_bn_info *nb = bnf_realloc(r->bns, cap * sizeof *nb);
                const Onnx__NodeProto **nn = nb ? bnf_realloc(cx->bn_nodes, cap * sizeof *nn) : NULL;
                unsigned char *ne = nn ? bnf_realloc(cx->examined, cap) : NULL;
                if (nb)
                    r->bns = nb;
                if (nn)
                    cx->bn_nodes = nn;
                if (!ne)
                    return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
                cx->examined = ne;
                cx->cap_bns = cap;
            }
            cx->bn_nodes[r->n_bns] = n;
            cx->examined[r->n_bns] = 0;
            b = &r->bns[r->n_bns++];
            memset(b, 0, sizeof *b);
            b->channels = -1;
            b->epsilon = b->min_var = b->max_abs_scale = b->local_err = NAN;
            b->name = bnf_strdup(S(n->name));
            b->output = bnf_strdup(n->n_output ? S(n->output[0]) : "");
            b->path = bnf_strdup(path);
            if (!b->name || !b->output || !b->path)
                return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
        for (size_t a = 0; a < n->n_attribute; a++) {
            const Onnx__AttributeProto *at = n->attribute[a];
            for (size_t k = 0; k < (at->g ? 1 : 0) + at->n_graphs; k++) {
                const Onnx__GraphProto *sub = at->g && k == 0 ? at->g : at->graphs[k - (at->g ? 1 : 0)];
                char sub_path[512];
                snprintf(sub_path, sizeof sub_path, "%s%snode '%s' %s", path, *path ? " / " : "",
                         S(n->name), S(at->name));
                if ((rc = collect_bns(cx, sub, sub_path, depth + 1, err)))
                    return rc;
            }
        }
    }
    return BNF_OK;
}

static size_t count_bns(const Onnx__GraphProto *g, int depth)
{
    size_t n = 0;
    if (depth > BNF_MAX_NESTING)
        return 0;
    for (size_t i = 0; i < g->n_node; i++) {
        n += is_op(g->node[i], "BatchNormalization");
        for (size_t a = 0; a < g->node[i]->n_attribute; a++) {
            const Onnx__AttributeProto *at = g->node[i]->attribute[a];
            if (at->g)
                n += count_bns(at->g, depth + 1);
            for (size_t k = 0; k < at->n_graphs; k++)
                n += count_bns(at->graphs[k], depth + 1);
        }
    }
    return n;
}

/* --assume-inference, before anything else: the converted model is the one the
 * checks compare with (a training-mode BN computes something else by design). */
static bnf_status convert_graph(fold_ctx *cx, Onnx__GraphProto *g, const bnf_graph *outer,
                                int depth, bnf_err *err)
{
    bnf_graph gi, *saved = cx->gi;
    bnf_status rc;
    if (depth > BNF_MAX_NESTING)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "subgraphs nested too deep");
    if ((rc = bnf_graph_index(&gi, g, cx->m->proto->ir_version, err)))
        return rc;
    gi.outer = outer;
    cx->gi = &gi;
    for (size_t i = 0; i < g->n_node && !rc; i++) {
        Onnx__NodeProto *n = g->node[i];
        bnf_bn_info *e = is_op(n, "BatchNormalization") ? entry_for(cx, n) : NULL;
        const char *code = NULL;
        char reason[240];
        bnf_bn bn;
        int converted = 0;
        if (e) {
            if ((rc = bnf_bn_read(cx->m, &gi, n, cx->opset, &bn, &code, reason, sizeof reason, err)))
                break;
            bnf_bn_release(&bn);
            if (code && !strcmp(code, "TRAINING_MODE")) {
                cx->examined[e - cx->r->bns] = 1;
                if (!(rc = bnf_bn_health(cx->m, &gi, n, 1, (size_t)(e - cx->r->bns), cx->r, err)) &&
                    !(rc = to_inference(cx, n, &converted, reason, sizeof reason, err)) &&
                    converted) {
                    e->assumed_inference = 1;
                    rc = bnf_graph_reindex(&gi, err);
                }
            }
        }
        for (size_t a = 0; a < n->n_attribute && !rc; a++) {
            Onnx__AttributeProto *at = n->attribute[a];
            if (at->g)
                rc = convert_graph(cx, at->g, &gi, depth + 1, err);
            for (size_t k = 0; k < at->n_graphs && !rc; k++)
                rc = convert_graph(cx, at->graphs[k], &gi, depth + 1, err);
        }
    }
    bnf_graph_release(&gi);
    cx->gi = saved;
    return rc;
}

/* --freeze-inputs: an initializer listed as a graph input stops being an input. */
static size_t freeze_inputs(Onnx__GraphProto *g)
{
    size_t kept = 0, frozen = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        int is_init = 0;
        for (size_t k = 0; k < g->n_initializer && !is_init; k++)
            is_init = g->input[i]->name && g->initializer[k]->name &&
                      strcmp(g->input[i]->name, g->initializer[k]->name) == 0;
        if (is_init) {
            onnx__value_info_proto__free_unpacked(g->input[i], &bnf_pbc_allocator);
            frozen++;
        } else {
            g->input[kept++] = g->input[i];
        }
    }
    g->n_input = kept;
    return frozen;
}

/* Folds g to a fixed point, then its subgraphs (which may read g's values). */
static bnf_status fold_graph(fold_ctx *cx, Onnx__GraphProto *g, const bnf_graph *outer, int depth,
                             bnf_err *err)
{
    bnf_graph gi;
    bnf_graph *saved = cx->gi;
    bnf_status rc;

    if (depth > BNF_MAX_NESTING)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "subgraphs nested too deep");
    if ((rc = bnf_graph_index(&gi, g, cx->m->proto->ir_version, err)))
        return rc;
    gi.outer = outer;
    cx->gi = &gi;
    for (int changed = 1; changed && !rc;) {
        changed = 0;
        for (size_t i = 0; i < g->n_node && !changed && !rc; i++) {
            const Onnx__NodeProto *n = g->node[i];
            if (is_op(n, "BatchNormalization"))
                rc = try_bn(cx, i, &changed, err);
            else if (is_op(n, "Mul") || is_op(n, "Add"))
                rc = try_affine(cx, i, &changed, err);
        }
    }
    for (size_t i = 0; i < g->n_node && !rc && cx->opts->lower_standalone; i++) {
        size_t before = g->n_node;
        if (is_op(g->node[i], "BatchNormalization"))
            rc = lower_bn(cx, i, err);
        i += g->n_node - before; /* constants inserted in front of a function body */
    }
    for (size_t i = 0; i < g->n_node && !rc; i++) {
        Onnx__NodeProto *n = g->node[i];
        for (size_t a = 0; a < n->n_attribute && !rc; a++) {
            Onnx__AttributeProto *at = n->attribute[a];
            if (at->g)
                rc = fold_graph(cx, at->g, &gi, depth + 1, err);
            for (size_t k = 0; k < at->n_graphs && !rc; k++)
                rc = fold_graph(cx, at->graphs[k], &gi, depth + 1, err);
        }
    }
    /* weights of this graph that folded subgraphs stopped using */
    if (!rc && cx->n_pending && !(rc = bnf_graph_reindex(&gi, err)))
        rc = bnf_graph_collect(&gi, cx->pending, cx->n_pending, err);
    bnf_graph_release(&gi);
    cx->gi = saved;
    return rc;
}

/* A function body seen as a graph: its nodes, and its inputs and outputs as
 * value infos (names borrowed from the function). */
typedef struct {
    Onnx__GraphProto g;
    Onnx__ValueInfoProto *vi;
    Onnx__ValueInfoProto **in, **out;
} function_view;

static int view_function(function_view *v, Onnx__FunctionProto *f)
{
    memset(v, 0, sizeof *v);
    onnx__graph_proto__init(&v->g);
    v->vi = bnf_calloc(f->n_input + f->n_output + 1, sizeof *v->vi);
    v->in = bnf_calloc(f->n_input + 1, sizeof *v->in);
    v->out = bnf_calloc(f->n_output + 1, sizeof *v->out);
    if (!v->vi || !v->in || !v->out)
        return -1;
    for (size_t i = 0; i < f->n_input; i++) {
        onnx__value_info_proto__init(&v->vi[i]);
        v->vi[i].name = f->input[i];
        v->in[i] = &v->vi[i];
    }
    for (size_t i = 0; i < f->n_output; i++) {
        onnx__value_info_proto__init(&v->vi[f->n_input + i]);
        v->vi[f->n_input + i].name = f->output[i];
        v->out[i] = &v->vi[f->n_input + i];
    }
    v->g.name = f->name;
    v->g.node = f->node;
    v->g.n_node = f->n_node;
    v->g.input = v->in;
    v->g.n_input = f->n_input;
    v->g.output = v->out;
    v->g.n_output = f->n_output;
    return 0;
}

static void unview_function(function_view *v)
{
    bnf_free(v->vi);
    bnf_free(v->in);
    bnf_free(v->out);
}

static bnf_status collect_function_bns(fold_ctx *cx, const Onnx__ModelProto *p, bnf_err *err)
{
    bnf_status rc = BNF_OK;
    for (size_t f = 0; f < p->n_functions && !rc; f++) {
        function_view v;
        char path[300];
        snprintf(path, sizeof path, "function '%s'", S(p->functions[f]->name));
        if (view_function(&v, p->functions[f]) != 0)
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        else
            rc = collect_bns(cx, &v.g, path, 1, err);
        unview_function(&v);
    }
    return rc;
}

/* Folds a model-local function's body; new weights become Constant nodes. */
static bnf_status fold_function(fold_ctx *cx, Onnx__FunctionProto *f, bnf_err *err)
{
    function_view v;
    int64_t model_opset = cx->opset;
    bnf_status rc;
    if (view_function(&v, f) != 0) {
        unview_function(&v);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < f->n_opset_import; i++) /* the body's own opset, if it says */
        if (!f->opset_import[i]->domain || !*f->opset_import[i]->domain)
            cx->opset = f->opset_import[i]->version;
    cx->in_function = 1;
    rc = fold_graph(cx, &v.g, NULL, 1, err);
    cx->in_function = 0;
    cx->opset = model_opset;
    f->node = v.g.node; /* the body may have moved and changed length */
    f->n_node = v.g.n_node;
    unview_function(&v);
    return rc;
}

/* inspect reads a model's float32/float64 weights (to foresee a fold that
 * overflows) when they are no more than this; beyond, only 16-bit ones. */
#define INSPECT_READS_WEIGHTS (256ull << 20)

static bnf_status fold_model(bnf_model *model, const bnf_fold_options *opts, int dry_run,
                             bnf_report **report, bnf_err *err)
{
    fold_ctx cx;
    bnf_status rc;
    bnf_fold_options defaults;
    bnf_model *orig = NULL;

    if (!opts) {
        bnf_fold_defaults(&defaults);
        opts = &defaults;
    }
    memset(&cx, 0, sizeof cx);
    cx.opts = opts;
    cx.dry_run = dry_run;
    if (dry_run) { /* weights read to foresee NON_FINITE, unless there are many */
        uint64_t total = 0;
        for (size_t i = 0; model->proto->graph && i < model->proto->graph->n_initializer; i++)
            total += bnf_tensor_nbytes(model->proto->graph->initializer[i]);
        cx.read_weights = total <= INSPECT_READS_WEIGHTS;
    }
    cx.loosen = 1;
    *report = NULL;
    if (!model || !model->proto->graph)
        return bnf_fail(err, BNF_ERR_INVALID, "the model has no graph");
    cx.m = model;
    cx.opset = bnf_model_opset(model->proto, "");
    if ((rc = bnf_report_begin(model, "fold", &cx.r, err)))
        goto out;
    if ((rc = collect_bns(&cx, model->proto->graph, "", 0, err)) ||
        (rc = collect_function_bns(&cx, model->proto, err)) ||
        (rc = bnf_names_collect(&cx.names, model->proto, err)) ||
        (opts->assume_inference && (rc = convert_graph(&cx, model->proto->graph, NULL, 0, err))))
        goto out;
    /* the model as it is now, to compare with at the end */
    if (opts->verify && (rc = bnf_model_clone(model, &orig, err)))
        goto out;
    if (opts->freeze_inputs && model->proto->ir_version >= 4 &&
        (cx.r->n_frozen_inputs = freeze_inputs(model->proto->graph)))
        model->changed = 1;
    if ((rc = fold_graph(&cx, model->proto->graph, NULL, 0, err)))
        goto out;
    for (size_t f = 0; f < model->proto->n_functions && !rc; f++)
        rc = fold_function(&cx, model->proto->functions[f], err);
    if (rc)
        goto out;
    for (size_t i = 0; i < cx.r->n_bns; i++) {
        cx.r->n_folded += cx.r->bns[i].folded ? 1 : 0;
        cx.r->n_lowered += cx.r->bns[i].lowered ? 1 : 0;
    }
    cx.r->n_bns_after = count_bns(model->proto->graph, 0);
    for (size_t f = 0; f < model->proto->n_functions; f++) {
        function_view v;
        if (view_function(&v, model->proto->functions[f]) == 0)
            cx.r->n_bns_after += count_bns(&v.g, 1);
        unview_function(&v);
    }
    if (opts->verify && cx.r->n_actions) {
        cx.r->verified_local = 1;
        cx.r->local_worst = 0;
        for (size_t i = 0; i < cx.r->n_actions; i++)
            if (cx.r->actions[i].local_err > cx.r->local_worst)
                cx.r->local_worst = cx.r->actions[i].local_err;
    }
    if (opts->verify && (cx.r->n_actions || cx.r->n_lowered || cx.r->n_frozen_inputs ||
                         model->changed)) {
        rc = end_to_end(model, orig, opts, cx.loosen, cx.r, err);
        if (rc)
            goto out;
    }
out:
    bnf_model_free(orig);
    for (size_t i = 0; i < cx.n_pending; i++)
        bnf_free(cx.pending[i]);
    bnf_free(cx.pending);
    bnf_names_release(&cx.names);
    bnf_free(cx.bn_nodes);
    bnf_free(cx.examined);
    if (rc) {
        bnf_report_free(cx.r);
        return rc;
    }
    *report = cx.r;
    return BNF_OK;
}

bnf_status bnf_inspect(const bnf_model *model, bnf_report **report, bnf_err *err)
{
    return bnf_inspect_with(model, NULL, report, err);
}

bnf_status bnf_fold(bnf_model *model, const bnf_fold_options *opts, bnf_report **report,
                    bnf_err *err)
{
    return fold_model(model, opts, 0, report, err);
}

bnf_status bnf_inspect_with(const bnf_model *model, const bnf_fold_options *opts,
                            bnf_report **report, bnf_err *err)
{
    bnf_model *copy = NULL;
    bnf_fold_options o;
    bnf_status rc;

    *report = NULL;
    /* a fold of a private copy, reading no weights it can do without */
    if ((rc = bnf_model_clone(model, &copy, err)))
        return rc;
    if (opts)
        o = *opts;
    else
        bnf_fold_defaults(&o);
    o.verify = 0; /* inspect only says what fold would do */
    o.break_for_testing = 0;
    rc = fold_model(copy, &o, 1, report, err);
    if (!rc)
        (*report)->command = "inspect";
    bnf_model_free(copy);
    return rc;
}
