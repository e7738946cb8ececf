/* driver.c: the folding pass.
 *
 * An affine node (BatchNormalization, or Mul / Add by a per-channel constant)
 * next to a layer folds into the layer's weights when a pattern of the table
 * below allows (fold.h says what a pattern is).  The pass repeats until
 * nothing changes (Conv -> BN -> BN, Conv -> BN -> Mul -> Add fold completely),
 * graph by graph in the walk's order: the main graph, its subgraphs, the
 * model-local functions.
 *
 * One fold goes through five phases, each a function below working on one
 * `attempt`: match (the graph allows it and the pattern takes it), read (the
 * weight's values, when they are needed), compute (the new weight and bias,
 * every value representable in its type), check (the local check of the node
 * as it will be written) and rewrite (the graph).  A fold never changes a
 * tensor in place: it writes new tensors under fresh names, points the layer
 * at them, takes the node out (the layer inherits its output name, which may
 * be a graph output), then removes whatever became unused.  Every BN of the
 * input gets a report entry saying what became of it.  No layer's op type is
 * named here: the patterns know their layers. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Adding a fold: one file in fold/ defining bnf_fold_<name>, one line here. */
#define BNF_FOLD_PATTERNS(X) \
    X(conv_bn)               \
    X(conv_transpose_bn)     \
    X(gemm_bn)               \
    X(matmul_bn)             \
    X(bn_conv)               \
    X(bn_gemm)               \
    X(bn_matmul)             \
    /* (the end of the table) */

#define DECLARE(name) extern const bnf_fold_pattern bnf_fold_##name;
BNF_FOLD_PATTERNS(DECLARE)
#undef DECLARE
#define ENTRY(name) &bnf_fold_##name,
static const bnf_fold_pattern *const patterns[] = {BNF_FOLD_PATTERNS(ENTRY)};
#undef ENTRY

#define S(x) ((x) ? (x) : "")

void bnf_fold_scale(bnf_fold_job *job, size_t inner, size_t per_group, size_t group)
{
    job->scaling.inner = inner;
    job->scaling.per_group = per_group;
    job->scaling.group = group;
}

bnf_status bnf_fold_decline(bnf_fold_job *job, bnf_code code, const char *fmt, ...)
{
    va_list ap;
    job->code = code;
    va_start(ap, fmt);
    vsnprintf(job->reason, sizeof job->reason, fmt, ap);
    va_end(ap);
    return BNF_OK;
}

static const bnf_fold_pattern *pattern_for(const Onnx__NodeProto *n, bnf_fold_position pos)
{
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++)
        if (patterns[i]->position == pos && bnf_is_op(n, patterns[i]->layer->op_type))
            return patterns[i];
    return NULL;
}

typedef struct {
    bnf_model *m;
    const bnf_fold_options *opts;
    double loosen;                    /* tolerance factor of the coarsest folded type */
    bnf_fold_site site;               /* the graph being folded */
    bnf_names names;
    int64_t model_opset;
    bnf_report *r;
    const Onnx__NodeProto **bn_nodes; /* report entry i describes bn_nodes[i] */
    unsigned char *examined;          /* health of entry i read */
    size_t cap_bns;
    char **pending;                   /* names a subgraph fold stopped using: an enclosing
                                         graph may own them */
    size_t n_pending;
    int dry_run;                      /* inspect: decide, reading weight values only when
                                         read_weights or 16-bit (a fold overflows those) */
    int read_weights;
    int foresee_check;                /* inspect of a fold that would check: say UNVERIFIED
                                         where the local check could not run */
} fold_ctx;

bnf_status bnf_fold_add_tensor(const bnf_fold_site *site, Onnx__TensorProto *t, size_t *shift,
                               bnf_err *err)
{
    Onnx__NodeProto *c;
    const char *out[1];
    if (!site->in_function)
        return bnf_graph_add_initializer(site->gi, t, err);
    out[0] = t->name;
    c = bnf_node_new("Constant", t->name, NULL, 0, out, 1);
    if (!c || !(c->attribute = bnf_malloc(sizeof *c->attribute)) ||
        !(c->attribute[0] = bnf_malloc(sizeof **c->attribute))) {
        if (c)
            onnx__node_proto__free_unpacked(c, bnf_model_alloc(site->m));
        onnx__tensor_proto__free_unpacked(t, bnf_model_alloc(site->m));
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    onnx__attribute_proto__init(c->attribute[0]);
    c->n_attribute = 1;
    c->attribute[0]->t = t;
    c->attribute[0]->has_type = 1;
    c->attribute[0]->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (!(c->attribute[0]->name = bnf_strdup("value"))) {
        onnx__node_proto__free_unpacked(c, bnf_model_alloc(site->m));
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    (*shift)++;
    return bnf_graph_insert_node(site->gi, 0, c, err);
}

/* Why a fold did not happen: a stable code and a sentence. */
typedef struct {
    bnf_code code;
    char text[240];
} why_not;

static void say(why_not *w, bnf_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(why_not *w, bnf_code code, const char *fmt, ...)
{
    va_list ap;
    w->code = code;
    va_start(ap, fmt);
    vsnprintf(w->text, sizeof w->text, fmt, ap);
    va_end(ap);
}

/* Folded float16 / bfloat16 weights (and a lowered BN's constants) are rounded
 * to 11 / 8 significant bits: an honest fold then differs from the original by
 * about that much, so the checks widen their tolerance by the type's rounding
 * error over float's. */
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

static bnf_code const_reason(bnf_const_kind kind)
{
    switch (kind) {
    case BNF_CONST_NO: return BNF_PARAM_NOT_CONSTANT;
    case BNF_CONST_OVERRIDABLE: return BNF_PARAM_OVERRIDABLE;
    default: return BNF_UNSUPPORTED_DTYPE;
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
        if (!isfinite(v[i]) || !isfinite(r) || (r == 0 && v[i] != 0)) {
            say(w, BNF_NON_FINITE, "folded %s[%zu] = %g %s in %s", what, i, v[i],
                isfinite(v[i]) && isfinite(r) ? "flushes to zero" : "is not finite",
                bnf_dtype_name(dtype));
            return 0;
        }
    }
    return 1;
}

/* The per-channel affine map of a Mul or Add whose other operand is a constant
 * shaped for `channels` channels on axis 1 of a rank-`rank` value: a scalar, or
 * 1 everywhere but axis 1.  *w is said when it is not one. */
static bnf_status affine_of_const(fold_ctx *cx, const Onnx__NodeProto *n, const char *x,
                                  int64_t channels, int rank, bnf_bn *out, why_not *w,
                                  bnf_err *err)
{
    const char *k_name = strcmp(S(bnf_node_input(n, 0)), x) == 0 ? bnf_node_input(n, 1)
                                                                : bnf_node_input(n, 0);
    int is_mul = bnf_is_op(n, "Mul");
    bnf_const_kind kind;
    bnf_array k;
    bnf_status rc;

    memset(out, 0, sizeof *out);
    if (!k_name || n->n_input != 2)
        return say(w, BNF_NO_LAYER, "not a two-input node"), BNF_OK;
    if ((rc = bnf_graph_const(cx->m, cx->site.gi, k_name, &kind, &k, err)))
        return rc;
    if (kind != BNF_CONST_YES) {
        say(w, const_reason(kind), "%s operand '%s' is %s", n->op_type, k_name, const_words(kind));
        return BNF_OK;
    }
    if (rank < 2 || k.rank > (size_t)rank) {
        say(w, BNF_SHAPE_MISMATCH, "constant of rank %zu on a value of rank %d", k.rank, rank);
        goto out;
    }
    for (size_t d = 0; d < k.rank; d++) {
        size_t axis = (size_t)rank - k.rank + d;
        if (k.dims[d] != 1 && !(axis == 1 && k.dims[d] == channels)) {
            say(w, BNF_SHAPE_MISMATCH, "constant '%s' is not per channel (dimension %zu is %lld)",
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
    bnf_array_release(&k);
    return rc;
}

/* ---- one fold, in phases ----------------------------------------------------------- */

/* One attempt at folding the affine node at index `at` into `layer`. */
typedef struct {
    fold_ctx *cx;
    size_t at;
    Onnx__NodeProto *node, *layer;
    const bnf_fold_pattern *pat;
    const char *link;                 /* the value between the two nodes */
    bnf_fold_job job;
    bnf_bn own;                       /* a Mul / Add's map (the BN's is given) */
    const Onnx__TensorProto *w_proto; /* W as stored, or NULL (a Constant's value_floats) */
    bnf_array w, b;                   /* W (dims; values when read) and the bias */
    int32_t bias_dtype;
    Onnx__TensorProto *tw, *tb;       /* the new tensors, until the graph has them */
    why_not why;                      /* set when the fold is not made */
    double local_err;
    const char *new_w_name, *new_b_name;
} attempt;

/* Match: the graph allows the fold (the value between the two nodes read by
 * nothing else, the weight and bias constant) and the pattern takes it. */
static bnf_status fold_match(attempt *a, bnf_err *err)
{
    fold_ctx *cx = a->cx;
    const bnf_fold_pattern *pat = a->pat;
    const char *op = pat->layer->op_type;
    int after = pat->position == BNF_AFTER_LAYER;
    bnf_const_kind kind;
    bnf_status rc;

    if (after && !a->layer->n_output)
        return say(&a->why, BNF_NO_LAYER, "the layer has no output"), BNF_OK;
    a->link = after ? S(a->layer->output[0]) : S(a->node->output[0]);
    if (after && strcmp(S(bnf_node_input(a->node, 0)), a->link) != 0 &&
        (a->job.bn || strcmp(S(bnf_node_input(a->node, 1)), a->link) != 0))
        return say(&a->why, BNF_NO_LAYER, "it does not read the %s's output as its data", op),
               BNF_OK;
    if (!after && strcmp(S(bnf_node_input(a->layer, 0)), a->link) != 0)
        return say(&a->why, BNF_NO_LAYER, "its output is not the %s's data input", op), BNF_OK;
    if (bnf_graph_is_output(cx->site.gi, a->link))
        return say(&a->why, BNF_LAYER_GRAPH_OUTPUT, "%s output '%s' is also a graph output",
                   after ? op : a->node->op_type, a->link), BNF_OK;
    if (bnf_graph_uses(cx->site.gi, a->link) != 1)
        return say(&a->why, BNF_LAYER_MULTI_CONSUMER, "%s output '%s' has %zu consumers; folding "
                   "would change the others", after ? op : a->node->op_type, a->link,
                   bnf_graph_uses(cx->site.gi, a->link)), BNF_OK;
    for (size_t k = 1; k <= 2; k++) {
        const char *in = bnf_node_input(a->layer, k);
        if (!in) {
            if (k == 1)
                return say(&a->why, BNF_UNSUPPORTED_LAYER, "%s '%s' has no weight input", op,
                           S(a->layer->name)), BNF_OK;
            continue;
        }
        /* W's values are read once the pattern has taken it */
        if ((rc = k == 1 ? bnf_graph_const_shape(cx->m, cx->site.gi, in, &a->w_proto, &kind,
                                                 &a->w, err)
                         : bnf_graph_const(cx->m, cx->site.gi, in, &kind, &a->b, err)))
            return rc;
        if (kind != BNF_CONST_YES)
            return say(&a->why, const_reason(kind), "%s %s '%s' is %s", op,
                       k == 1 ? "weight" : "bias", in, const_words(kind)), BNF_OK;
    }
    a->job.pat = pat;
    a->job.layer = a->layer;
    a->job.affine = a->node;
    a->job.w = &a->w;
    a->job.w_stored = a->w_proto;
    a->job.b = a->b.v ? &a->b : NULL;
    a->job.in_rank = bnf_graph_shape(cx->site.gi, S(bnf_node_input(a->layer, 0)), a->job.in_dims,
                                     BNF_MAX_RANK);
    if (!a->job.bn) { /* Mul or Add: its constant, read for this layer's channels */
        int64_t channels = pat->channels(a->layer, &a->w);
        if (channels < 0)
            return say(&a->why, BNF_SHAPE_MISMATCH, "the %s weight has rank %zu", op, a->w.rank),
                   BNF_OK;
        if ((rc = affine_of_const(cx, a->node, a->link, channels,
                                  pat->layer->out_rank(a->layer, &a->w, a->job.in_rank), &a->own,
                                  &a->why, err)) ||
            a->why.code)
            return rc;
        a->job.bn = &a->own;
    }
    if (pat->match(&a->job) != BNF_OK)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory folding '%s'", S(a->node->name));
    if (a->job.code)
        say(&a->why, a->job.code, "%s", a->job.reason);
    a->bias_dtype = a->b.v ? a->b.dtype : a->w.dtype;
    return BNF_OK;
}

/* Read: W's values, when the bias needs them or there is no stored tensor to
 * stream from; in inspect's dry run of a large model, float32 and float64
 * weights are not read at all (*unread). */
static bnf_status fold_read(attempt *a, int *unread, bnf_err *err)
{
    fold_ctx *cx = a->cx;
    int narrow = bnf_dtype(a->w.dtype)->size == 2; /* float16, bfloat16: a fold can overflow */
    bnf_const_kind kind;
    *unread = cx->dry_run && !narrow && !cx->read_weights && !a->pat->bias_reads_weight;
    if (*unread || a->w.v || (a->w_proto && !a->pat->bias_reads_weight))
        return BNF_OK;
    bnf_array_release(&a->w);
    return bnf_graph_const(cx->m, cx->site.gi, a->layer->input[1], &kind, &a->w, err);
}

/* Whether value `name` of the graph is made by a node that is not a Constant
 * or an Identity (so not a constant operand a Mul or Add could fold with). */
static int made_by_layer(const bnf_graph *gi, const char *name)
{
    intptr_t idx;
    const Onnx__NodeProto *n;
    if (!name || !bnf_strmap_get(gi->producer, name, &idx) || idx < 0)
        return 0;
    n = gi->g->node[idx];
    return !bnf_is_op(n, "Constant") && !bnf_is_op(n, "Identity");
}

/* Whether node n (reading or making `link`, a value of the layer) could fold
 * into the layer: a BatchNormalization, or a Mul / Add whose other operand is
 * not the output of a computing node (a residual Add is not). */
static int may_take_layer(const bnf_graph *gi, const Onnx__NodeProto *n, const char *link)
{
    const char *other;
    if (bnf_is_op(n, "BatchNormalization"))
        return 1;
    if (!(bnf_is_op(n, "Mul") || bnf_is_op(n, "Add")) || n->n_input != 2)
        return 0;
    other = strcmp(S(n->input[0]), link) == 0 ? n->input[1] : n->input[0];
    return !made_by_layer(gi, other);
}

/* Whether another fold could take the layer once this one is made, and so read
 * the values of its new weight: a node next to it (reading its output, or
 * making its data input) that may fold into it. */
static int layer_may_fold_again(const attempt *a)
{
    const bnf_graph *gi = a->cx->site.gi;
    const Onnx__GraphProto *g = gi->g;
    int after = a->pat->position == BNF_AFTER_LAYER;
    const char *in = S(bnf_node_input(after ? a->layer : a->node, 0));
    const char *out = S(bnf_node_output0(after ? a->node : a->layer));
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (n == a->node || n == a->layer)
            continue;
        for (size_t k = 0; k < n->n_output; k++)
            if (*in && n->output[k] && strcmp(n->output[k], in) == 0 &&
                may_take_layer(gi, n, in))
                return 1;
        for (size_t k = 0; k < n->n_input; k++)
            if (*out && n->input[k] && strcmp(n->input[k], out) == 0 &&
                may_take_layer(gi, n, out))
                return 1;
    }
    return 0;
}

/* Compute: W' (streamed from W's bytes, or from its values) and the new bias,
 * every value representable in its type. */
static bnf_status fold_compute(attempt *a, int unread, bnf_err *err)
{
    fold_ctx *cx = a->cx;
    const bnf_bn *bn = a->job.bn;
    const double *s = bn->s;
    double *broken = NULL;
    size_t bad = 0;
    double bad_value = 0;
    bnf_status rc = BNF_OK;

    if (cx->opts->break_for_testing) { /* a wrong fold, for the tests of the checks */
        if (!(broken = bnf_malloc((size_t)(bn->c ? bn->c : 1) * sizeof *broken)))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        for (int64_t c = 0; c < bn->c; c++)
            broken[c] = bn->s[c] * 1.01;
        s = broken;
    }
    if (unread) {
        /* inspect of a big model: a tensor of the shape, for folds after this one */
        rc = bnf_proto_new("", a->w.dtype, a->w.dims, a->w.rank, NULL, a->w.n, &a->tw, err);
    } else if (a->w_proto) {
        /* a dry run keeps the values only when a later fold of a chain may read
         * them; else it checks them as they are made (no copy, no spill) and
         * leaves a tensor of the shape */
        int keep = !cx->dry_run || layer_may_fold_again(a);
        rc = bnf_proto_scaled(cx->m, a->w_proto, "", s, &a->job.scaling, keep ? &a->tw : NULL,
                              &bad, &bad_value, err);
        if (!rc && !keep && !bad)
            rc = bnf_proto_stand_in(cx->m, a->w_proto, a->w.dtype, a->w.dims, a->w.rank, a->w.n,
                                    &a->tw, err);
        if (!rc && bad)
            say(&a->why, BNF_NON_FINITE, "folded weight[%zu] = %g %s in %s", bad - 1, bad_value,
                isfinite(bnf_round_to(a->w.dtype, bad_value)) ? "flushes to zero"
                                                              : "is not finite",
                bnf_dtype_name(a->w.dtype));
    } else { /* a Constant's value_floats: from the values */
        double *v = bnf_malloc((a->w.n ? a->w.n : 1) * sizeof *v);
        bnf_scaling_pos pos = {0};
        if (!v) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
        memcpy(v, a->w.v, a->w.n * sizeof *v);
        bnf_scale_by_channel(v, a->w.n, s, &a->job.scaling, &pos);
        if (representable(a->w.dtype, v, a->w.n, "weight", &a->why) &&
            !(rc = bnf_proto_new("", a->w.dtype, a->w.dims, a->w.rank, v, a->w.n, &a->tw, err)) &&
            !cx->dry_run)
            bnf_mapped_spill(cx->m, a->tw); /* big new weights wait in a file, not in memory */
        bnf_free(v);
    }
    if (rc || a->why.code)
        goto out;
    /* the pages read: back to the page cache (not in inspect of a model it
     * reads whole anyway: giving back costs more than the pages) */
    if (a->w_proto && a->w_proto->has_raw_data && !(cx->dry_run && cx->read_weights))
        bnf_mapped_release_range(cx->m, a->w_proto->raw_data.data, a->w_proto->raw_data.len);
    a->job.new_w = a->tw;
    if (a->pat->fold(&a->job) != BNF_OK) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory folding '%s'", S(a->node->name));
        goto out;
    }
    representable(a->bias_dtype, a->job.new_b.v, a->job.new_b.n, "bias", &a->why);
out:
    bnf_free(broken);
    return rc;
}

/* Check: the fold on its own, on the node as it will be written.  A fold the
 * evaluator cannot check is not made. */
static bnf_status fold_check(attempt *a, bnf_err *err)
{
    fold_ctx *cx = a->cx;
    bnf_verify_options vo = cx->opts->check;
    double loosen = type_loosening(a->w.dtype);
    int pass;
    bnf_status rc;

    struct timespec t0;
    vo.rtol *= loosen;
    vo.atol *= loosen;
    if (loosen > cx->loosen)
        cx->loosen = loosen;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = bnf_verify_fold_local(cx->m, cx->site.gi, &a->job, cx->site.opset, &vo, &a->local_err,
                               &pass, err);
    cx->r->ms.local_check = (isnan(cx->r->ms.local_check) ? 0 : cx->r->ms.local_check) +
                            bnf_ms_since(&t0);
    if (rc == BNF_ERR_UNSUPPORTED) {
        say(&a->why, BNF_UNVERIFIED, "the fold cannot be checked: %s", err ? err->msg : "");
        if (err)
            memset(err, 0, sizeof *err);
        return BNF_OK;
    }
    if (!rc && !pass)
        rc = bnf_fail(err, BNF_ERR_CHECK,
                      "folding %s '%s' into %s '%s' changes its result (max |diff| / max "
                      "|output| = %.3g): nothing written", S(a->node->op_type), S(a->node->name),
                      a->pat->layer->op_type, S(a->layer->name), a->local_err);
    return rc;
}

/* What inspect says of the check fold would make: the local check's input
 * is made for the layer, or the fold is UNVERIFIED as fold_check would find. */
static bnf_status foresee_check(attempt *a, bnf_err *err)
{
    int64_t dims[BNF_MAX_RANK];
    size_t rank;
    bnf_err why = {0};
    bnf_status rc = a->pat->layer->input_shape(a->layer, &a->w, a->job.b, dims, &rank, &why);
    (void)err;
    if (rc == BNF_ERR_UNSUPPORTED)
        say(&a->why, BNF_UNVERIFIED, "the fold cannot be checked: %s", why.msg);
    return rc == BNF_ERR_NOMEM ? bnf_fail(err, rc, "%s", why.msg) : BNF_OK;
}

/* Rewrite: the new tensors in, the layer reading them (finished by its
 * pattern), the node out, and what became unused removed. */
static bnf_status fold_rewrite(attempt *a, bnf_err *err)
{
    fold_ctx *cx = a->cx;
    Onnx__NodeProto *layer = a->layer, *node = a->node;
    const char *bias_name = bnf_node_input(layer, 2);
    char *candidates[8] = {0}, *link = NULL, *name = NULL;
    size_t n_cand = 0, shift = 0;
    bnf_status rc;

    a->new_w_name = bnf_names_fresh(&cx->names, layer->input[1], "_bnfold", err);
    a->new_b_name = a->new_w_name ? bnf_names_fresh(&cx->names, bias_name ? bias_name
                                                    : layer->input[1], bias_name ? "_bnfold"
                                                    : "_bias_bnfold", err) : NULL;
    if (!a->new_b_name)
        return err ? err->code : BNF_ERR_NOMEM;
    if (!(name = bnf_strdup(a->new_w_name)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    bnf_free(a->tw->name);
    a->tw->name = name;
    if ((rc = bnf_proto_new(a->new_b_name, a->bias_dtype, a->job.new_b.dims, a->job.new_b.rank,
                             a->job.new_b.v, a->job.new_b.n, &a->tb, err)))
        return rc;
    candidates[n_cand++] = bnf_strdup(layer->input[1]);
    if (bias_name)
        candidates[n_cand++] = bnf_strdup(bias_name);
    for (size_t k = 0; k < node->n_input && n_cand < 8; k++)
        if (node->input[k] && *node->input[k] && strcmp(node->input[k], a->link) != 0)
            candidates[n_cand++] = bnf_strdup(node->input[k]);
    for (size_t k = 0; k < n_cand; k++)
        if (!candidates[k]) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
    if (!(link = bnf_strdup(a->link))) { /* a->link lives in a string the rewrite frees */
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = bnf_fold_add_tensor(&cx->site, a->tw, &shift, err);
    a->tw = NULL;
    if (rc)
        goto out;
    rc = bnf_fold_add_tensor(&cx->site, a->tb, &shift, err);
    a->tb = NULL;
    if (rc || (rc = bnf_node_set_input(layer, 1, a->new_w_name, err)) ||
        (rc = bnf_node_set_input(layer, 2, a->new_b_name, err)) ||
        (a->pat->position == BNF_AFTER_LAYER
             ? (rc = bnf_node_set_output(layer, 0, node->output[0], err))
             : (rc = bnf_node_set_input(layer, 0, node->input[0], err))) ||
        (a->pat->finish && (rc = a->pat->finish(layer, err))))
        goto out;
    bnf_graph_forget_value_info(cx->site.gi, link); /* the value between the nodes is gone */
    bnf_graph_remove_node(cx->site.gi, a->at + shift);
    cx->m->changed = 1;
    if ((rc = bnf_graph_reindex(cx->site.gi, err)) ||
        (rc = bnf_graph_collect(cx->site.gi, candidates, n_cand, err)))
        goto out;
    if (cx->site.gi->outer) { /* the enclosing graphs look at them once this one is done */
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
    bnf_free(link);
    for (size_t k = 0; k < n_cand; k++)
        bnf_free(candidates[k]);
    return rc;
}

/* What a fold did, for the report. */
typedef struct {
    int folded;
    const char *new_w, *new_b; /* the new tensors' names (owned by the pass's names) */
    double local_err;
} done;

/* Tries to fold the node at index i (a BN whose map is bn, or a Mul / Add
 * when bn is NULL) into `layer` by pattern pat.  On success the graph has
 * changed and d says how; otherwise *why says why not. */
static bnf_status try_fold(fold_ctx *cx, size_t i, Onnx__NodeProto *layer,
                           const bnf_fold_pattern *pat, const bnf_bn *bn, done *d, why_not *why,
                           bnf_err *err)
{
    attempt a;
    int unread = 0;
    bnf_status rc;

    memset(&a, 0, sizeof a);
    a.cx = cx;
    a.at = i;
    a.node = cx->site.gi->g->node[i];
    a.layer = layer;
    a.pat = pat;
    a.job.bn = bn;
    a.local_err = NAN;
    memset(d, 0, sizeof *d);
    if ((rc = fold_match(&a, err)) || a.why.code || (rc = fold_read(&a, &unread, err)) ||
        (rc = fold_compute(&a, unread, err)) || a.why.code ||
        (cx->opts->verify && ((rc = fold_check(&a, err)) || a.why.code)) ||
        (cx->foresee_check && ((rc = foresee_check(&a, err)) || a.why.code)) ||
        (rc = fold_rewrite(&a, err)))
        goto out;
    d->folded = 1;
    d->local_err = a.local_err;
    d->new_w = a.new_w_name;
    d->new_b = a.new_b_name;
out:
    *why = a.why;
    if (a.tw)
        onnx__tensor_proto__free_unpacked(a.tw, bnf_model_alloc(cx->m));
    if (a.tb)
        onnx__tensor_proto__free_unpacked(a.tb, bnf_model_alloc(cx->m));
    bnf_array_release(&a.job.new_b);
    bnf_array_release(&a.w);
    bnf_array_release(&a.b);
    bnf_bn_release(&a.own);
    return rc;
}

/* ---- the fold of one node ------------------------------------------------------------ */

/* Records a fold: `node_op` and `node_name` are copies (the node is gone). */
static bnf_status add_action(fold_ctx *cx, const char *node_op, const char *node_name,
                             const char *layer_name, const char *layer_op, bnf_fold_position pos,
                             const done *d, bnf_err *err)
{
    bnf_report *r = cx->r;
    bnf_fold_action *grown, *a;
    if (cx->opts->progress)
        cx->opts->progress(cx->opts->progress_ctx, "fold", r->n_actions + 1,
                           r->n_bns > r->n_actions ? r->n_bns : r->n_actions + 1);
    grown = bnf_realloc(r->actions, (r->n_actions + 1) * sizeof *grown);
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

/* The layer a BN folds (or would fold) into, as the input has it (a MatMul
 * that became a Gemm stays a MatMul). */
static bnf_status set_layer(bnf_bn_info *e, const Onnx__NodeProto *layer, const char *op,
                            bnf_err *err)
{
    bnf_free(e->layer);
    bnf_free(e->layer_op);
    e->layer = bnf_strdup(S(layer->name));
    e->layer_op = bnf_strdup(op);
    if (!e->layer || !e->layer_op)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

/* A node reading `name` as its input 0 that a BN before a layer could fold
 * into, or NULL. */
static const Onnx__NodeProto *layer_reading(const bnf_graph *gi, const char *name)
{
    for (size_t i = 0; i < gi->g->n_node; i++)
        if (strcmp(S(bnf_node_input(gi->g->node[i], 0)), name) == 0 &&
            pattern_for(gi->g->node[i], BNF_BEFORE_LAYER))
            return gi->g->node[i];
    return NULL;
}

/* Whether `name` is an input or initializer of the graph itself (not of an
 * enclosing one). */
static int own_value(const bnf_graph *gi, const char *name)
{
    return bnf_strmap_get(gi->input, name, NULL) || bnf_strmap_get(gi->init, name, NULL);
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
    const bnf_graph *gi = cx->site.gi;
    bnf_status rc;
    *converted = 0;
    for (size_t k = 1; k < node->n_output; k++)
        if (node->output[k] && *node->output[k] &&
            (bnf_graph_uses(gi, node->output[k]) || bnf_graph_is_output(gi, node->output[k]))) {
            snprintf(reason, size, "training mode, and its output '%s' (batch statistics) is "
                     "used: --assume-inference cannot drop it", node->output[k]);
            return BNF_OK;
        }
    if (cx->site.opset <= 6 && (rc = bnf_node_set_attr_int(node, "is_test", 1, err)))
        return rc;
    if (cx->site.opset >= 14 && (rc = bnf_node_set_attr_int(node, "training_mode", 0, err)))
        return rc;
    for (size_t k = 1; k < node->n_output; k++)
        bnf_free(node->output[k]);
    node->n_output = node->n_output ? 1 : 0;
    cx->m->changed = 1;
    *converted = 1;
    return BNF_OK;
}

/* Fills report entry e with what became of its BN: folded as d says, or not,
 * for the reason w. */
static bnf_status settle(bnf_bn_info *e, const done *d, const why_not *w, bnf_err *err)
{
    e->folded = d->folded;
    e->reason_code = d->folded ? NULL : bnf_code_name(w->code);
    bnf_free(e->reason);
    bnf_free(e->new_weight);
    bnf_free(e->new_bias);
    e->reason = e->new_weight = e->new_bias = NULL;
    if (d->folded) {
        e->local_err = d->local_err;
        e->new_weight = bnf_strdup(d->new_w);
        e->new_bias = bnf_strdup(d->new_b);
        if (!e->new_weight || !e->new_bias)
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    } else if (!(e->reason = bnf_strdup(w->text))) {
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    return BNF_OK;
}

/* A BatchNormalization at node index i: into the layer before it, else into
 * the layer after it. */
static bnf_status try_bn(fold_ctx *cx, size_t i, int *folded, bnf_err *err)
{
    const bnf_graph *gi = cx->site.gi;
    Onnx__NodeProto *node = gi->g->node[i], *before = NULL, *after;
    bnf_bn_info *e = entry_for(cx, node);
    const bnf_fold_pattern *pat_b = NULL, *pat_a;
    const char *x = bnf_node_input(node, 0);
    bnf_code code = BNF_NO_CODE;
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
        say(&w, BNF_NO_LAYER, "the node has no output");
        return settle(e, &d, &w, err);
    }
    if ((rc = bnf_bn_read(cx->m, gi, node, cx->site.opset, &bn, &code, reason, sizeof reason,
                          err)))
        return rc;
    if (!cx->examined[e - cx->r->bns]) { /* health: once, on the BN as the input has it */
        cx->examined[e - cx->r->bns] = 1;
        if ((rc = bnf_bn_health(cx->m, gi, node, code == BNF_TRAINING_MODE,
                                (size_t)(e - cx->r->bns), cx->r, err)))
            goto out;
    }
    if (code == BNF_TRAINING_MODE && cx->opts->assume_inference) {
        int converted = 0;
        if ((rc = to_inference(cx, node, &converted, reason, sizeof reason, err)))
            goto out;
        if (converted) {
            e->assumed_inference = 1;
            bnf_bn_release(&bn);
            if ((rc = bnf_bn_read(cx->m, gi, node, cx->site.opset, &bn, &code, reason,
                                  sizeof reason, err)))
                return rc;
        }
    }
    e->channels = bn.c;
    e->epsilon = bn.eps;
    e->min_var = bn.min_var;
    e->max_abs_scale = bn.max_abs_scale;
    if (x && bnf_strmap_get(gi->producer, x, &li))
        before = gi->g->node[li];
    after = node->n_output ? sole_consumer(gi, S(node->output[0])) : NULL;
    pat_b = before ? pattern_for(before, BNF_AFTER_LAYER) : NULL;
    pat_a = after ? pattern_for(after, BNF_BEFORE_LAYER) : NULL;
    if (before && (rc = set_layer(e, before, S(before->op_type), err)))
        goto out;
    if (code) {
        say(&w, code, "%s", reason);
        goto settled;
    }
    if (pat_b) {
        char op[64];
        snprintf(op, sizeof op, "%s", S(before->op_type)); /* MatMul may become Gemm */
        if ((rc = try_fold(cx, i, before, pat_b, &bn, &d, &w, err)))
            goto out;
        if (d.folded) {
            rc = add_action(cx, "BatchNormalization", e->name, S(before->name), op,
                            BNF_AFTER_LAYER, &d, err);
            goto settled;
        }
    }
    if (pat_a) {
        why_not w2 = {0};
        char op[64];
        snprintf(op, sizeof op, "%s", S(after->op_type));
        if ((rc = try_fold(cx, i, after, pat_a, &bn, &d, &w2, err)))
            goto out;
        if (d.folded) {
            e->before_layer = 1;
            if ((rc = set_layer(e, after, op, err)))
                goto out;
            rc = add_action(cx, "BatchNormalization", e->name, S(after->name), op,
                            BNF_BEFORE_LAYER, &d, err);
            goto settled;
        }
        if (!pat_b) { /* the layer after is the one that could have taken it */
            w = w2;
            e->before_layer = 1;
            if ((rc = set_layer(e, after, op, err)))
                goto out;
        }
    }
    if (!pat_b && !pat_a) {
        const char *y = S(node->output[0]);
        const Onnx__NodeProto *reader = after ? NULL : layer_reading(gi, y);
        if (reader && bnf_graph_is_output(gi, y)) {
            say(&w, BNF_LAYER_GRAPH_OUTPUT, "its output '%s' is also a graph output; folding it "
                "into %s '%s' would change it", y, S(reader->op_type), S(reader->name));
            e->before_layer = 1;
            if ((rc = set_layer(e, reader, S(reader->op_type), err)))
                goto out;
        } else if (reader) {
            say(&w, BNF_LAYER_MULTI_CONSUMER, "its output '%s' has %zu readers; folding it into "
                "%s '%s' would change the others", y, bnf_graph_uses(gi, y),
                S(reader->op_type), S(reader->name));
            e->before_layer = 1;
            if ((rc = set_layer(e, reader, S(reader->op_type), err)))
                goto out;
        } else if (before)
            say(&w, BNF_NO_LAYER, "its input comes from %s '%s', which does not fold%s",
                S(before->op_type), S(before->name),
                after ? ", and the node after it does not take it either" : "");
        else if (gi->outer && !own_value(gi, S(x)))
            say(&w, BNF_NO_LAYER, "its input '%s' comes from an enclosing graph, and no layer "
                "after it takes it", S(x));
        else
            say(&w, BNF_NO_LAYER, "its input '%s' is not produced by a node (graph input)%s",
                S(x), after ? ", and the node after it does not take it" : "");
    }
settled:
    if (!rc)
        rc = settle(e, &d, &w, err);
    *folded = d.folded;
out:
    bnf_bn_release(&bn);
    return rc;
}

/* A Mul or Add by a per-channel constant at node index i, into the layer
 * before it.  Nothing is reported when it does not fold: most do not. */
static bnf_status try_affine(fold_ctx *cx, size_t i, int *folded, bnf_err *err)
{
    const bnf_graph *gi = cx->site.gi;
    Onnx__NodeProto *node = gi->g->node[i], *layer = NULL;
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
        if (x && bnf_strmap_get(gi->producer, x, &li) &&
            pattern_for(gi->g->node[li], BNF_AFTER_LAYER) &&
            strcmp(S(gi->g->node[li]->output[0]), x) == 0)
            layer = gi->g->node[li];
    }
    if (!layer)
        return BNF_OK;
    pat = pattern_for(layer, BNF_AFTER_LAYER);
    snprintf(op, sizeof op, "%s", S(layer->op_type));
    snprintf(node_op, sizeof node_op, "%s", S(node->op_type));
    if (!(node_name = bnf_strdup(S(node->name))))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if (!(rc = try_fold(cx, i, layer, pat, NULL, &d, &w, err)) && d.folded)
        rc = add_action(cx, node_op, node_name, S(layer->name), op, BNF_AFTER_LAYER, &d, err);
    *folded = d.folded;
    bnf_free(node_name);
    return rc;
}

/* Compares the folded model with the original.  An evaluator that lacks an
 * operator is not a failure: the report says the check did not run, and why.
 * A difference is: BNF_ERR_CHECK. */
static bnf_status end_to_end(bnf_model *model, bnf_model *orig, const bnf_fold_options *opts,
                             double loosen, bnf_report *r, bnf_err *err)
{
    bnf_verify_options vo = opts->check;
    bnf_err e2 = {0};
    bnf_status rc;

    r->e2e_requested = 1;
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
    rc = bnf_verify_models_noise(orig, model, &vo, &r->e2e, &r->e2e_noise, &e2);
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

/* ---- the walks of the pass ------------------------------------------------------------ */

/* A report entry for every BN, in the walk's order. */
static bnf_status collect_bn(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    fold_ctx *cx = ctx;
    bnf_report *r = cx->r;
    const Onnx__NodeProto *n = s->g->node[i];
    bnf_bn_info *b;
    if (!bnf_is_op(n, "BatchNormalization"))
        return BNF_OK;
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
    b->path = bnf_strdup(s->path);
    if (!b->name || !b->output || !b->path)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

static bnf_status count_bn(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    (void)err;
    *(size_t *)ctx += bnf_is_op(s->g->node[i], "BatchNormalization");
    return BNF_OK;
}

/* The fold pass's view of the graph it enters: indexed, and for a function
 * body that body's own opset and Constant nodes for new tensors. */
static bnf_status enter_site(fold_ctx *cx, bnf_scope *s, bnf_fold_site *saved, bnf_err *err)
{
    bnf_status rc;
    *saved = cx->site;
    cx->site.gi = NULL;
    if (s->function) {
        cx->site.in_function = 1;
        for (size_t i = 0; i < s->function->n_opset_import; i++) /* its own, if it says */
            if (bnf_is_onnx_domain(s->function->opset_import[i]->domain))
                cx->site.opset = s->function->opset_import[i]->version;
    }
    rc = bnf_scope_index(s, cx->m, cx->m->proto->ir_version, err);
    cx->site.gi = s->gi;
    return rc;
}

static bnf_status site_enter(void *ctx, bnf_scope *s, bnf_err *err)
{
    fold_ctx *cx = ctx;
    bnf_fold_site *saved = bnf_malloc(sizeof *saved);
    if (!saved)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    s->data = saved;
    return enter_site(cx, s, saved, err);
}

/* --assume-inference, before anything else: the converted model is the one the
 * checks compare with (a training-mode BN computes something else by design). */
static bnf_status convert_node(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    fold_ctx *cx = ctx;
    Onnx__NodeProto *n = s->g->node[i];
    bnf_bn_info *e = bnf_is_op(n, "BatchNormalization") ? entry_for(cx, n) : NULL;
    bnf_code code = BNF_NO_CODE;
    char reason[240];
    bnf_bn bn;
    int converted = 0;
    bnf_status rc;
    if (!e)
        return BNF_OK;
    if ((rc = bnf_bn_read(cx->m, s->gi, n, cx->site.opset, &bn, &code, reason, sizeof reason,
                          err)))
        return rc;
    bnf_bn_release(&bn);
    if (code != BNF_TRAINING_MODE)
        return BNF_OK;
    cx->examined[e - cx->r->bns] = 1;
    if (!(rc = bnf_bn_health(cx->m, s->gi, n, 1, (size_t)(e - cx->r->bns), cx->r, err)) &&
        !(rc = to_inference(cx, n, &converted, reason, sizeof reason, err)) && converted) {
        e->assumed_inference = 1;
        rc = bnf_graph_reindex(s->gi, err);
    }
    return rc;
}

static bnf_status site_leave(void *ctx, bnf_scope *s, bnf_status rc, bnf_err *err)
{
    fold_ctx *cx = ctx;
    (void)err;
    if (s->data) {
        cx->site = *(bnf_fold_site *)s->data;
        bnf_free(s->data);
        s->data = NULL;
    }
    bnf_scope_unindex(s);
    return rc;
}

/* Folds a graph to a fixed point (its subgraphs, which may read its values,
 * are walked next). */
static bnf_status fold_enter(void *ctx, bnf_scope *s, bnf_err *err)
{
    fold_ctx *cx = ctx;
    Onnx__GraphProto *g = s->g;
    bnf_status rc;
    if ((rc = site_enter(ctx, s, err)))
        return rc;
    for (int changed = 1; changed && !rc;) {
        changed = 0;
        for (size_t i = 0; i < g->n_node && !changed && !rc; i++) {
            const Onnx__NodeProto *n = g->node[i];
            if (bnf_is_op(n, "BatchNormalization"))
                rc = try_bn(cx, i, &changed, err);
            else if (bnf_is_op(n, "Mul") || bnf_is_op(n, "Add"))
                rc = try_affine(cx, i, &changed, err);
        }
    }
    for (size_t i = 0; i < g->n_node && !rc && cx->opts->lower_standalone; i++) {
        size_t before = g->n_node;
        bnf_bn_info *e = bnf_is_op(g->node[i], "BatchNormalization") ? entry_for(cx, g->node[i])
                                                                     : NULL;
        int32_t dtype = 0;
        if (e && !(rc = bnf_fold_lower(&cx->site, &cx->names, i, e, &dtype, err)) && e->lowered &&
            type_loosening(dtype) > cx->loosen)
            cx->loosen = type_loosening(dtype); /* S and T rounded to 16 bits */
        i += g->n_node - before; /* nodes inserted in front, and Mul + Add for the BN */
    }
    return rc;
}

/* Then the weights of the graph that folds in its subgraphs stopped using. */
static bnf_status fold_leave(void *ctx, bnf_scope *s, bnf_status rc, bnf_err *err)
{
    fold_ctx *cx = ctx;
    if (!rc && s->gi && cx->n_pending && !(rc = bnf_graph_reindex(s->gi, err)))
        rc = bnf_graph_collect(s->gi, cx->pending, cx->n_pending, err);
    return site_leave(ctx, s, rc, err);
}

static const bnf_visitor bn_collector = {.node = collect_bn};
static const bnf_visitor bn_counter = {.node = count_bn};
static const bnf_visitor converter = {
    .enter = site_enter, .node = convert_node, .leave = site_leave,
};
static const bnf_visitor folder = {.enter = fold_enter, .leave = fold_leave};

/* --freeze-inputs: an initializer listed as a graph input stops being an input. */
static size_t freeze_inputs(bnf_model *m)
{
    Onnx__GraphProto *g = m->proto->graph;
    size_t kept = 0, frozen = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        int is_init = 0;
        for (size_t k = 0; k < g->n_initializer && !is_init; k++)
            is_init = g->input[i]->name && g->initializer[k]->name &&
                      strcmp(g->input[i]->name, g->initializer[k]->name) == 0;
        if (is_init) {
            onnx__value_info_proto__free_unpacked(g->input[i], bnf_model_alloc(m));
            frozen++;
        } else {
            g->input[kept++] = g->input[i];
        }
    }
    g->n_input = kept;
    return frozen;
}

/* inspect reads a model's float32/float64 weights (to foresee a fold that
 * overflows) when they are no more than this; beyond, only 16-bit ones. */
#define INSPECT_READS_WEIGHTS (256ull << 20)

/* dry_run: inspect's fold of a private copy; foresee: of a fold that would check. */
static bnf_status fold_model(bnf_model *model, const bnf_fold_options *opts, int dry_run,
                             int foresee, bnf_report **report, bnf_err *err)
{
    fold_ctx cx;
    bnf_status rc;
    bnf_fold_options defaults;
    bnf_model *orig = NULL;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    *report = NULL;
    if (!model || !model->proto->graph)
        return bnf_fail(err, BNF_ERR_INVALID, "the model has no graph");
    if (!opts) {
        bnf_fold_defaults(&defaults);
        opts = &defaults;
    }
    memset(&cx, 0, sizeof cx);
    cx.opts = opts;
    cx.dry_run = dry_run;
    cx.foresee_check = dry_run && foresee;
    if (dry_run) { /* weights read to foresee NON_FINITE, unless there are many */
        uint64_t total = 0;
        for (size_t i = 0; i < model->proto->graph->n_initializer; i++)
            total += bnf_proto_nbytes(model->proto->graph->initializer[i]);
        cx.read_weights = total <= INSPECT_READS_WEIGHTS;
    }
    cx.loosen = 1;
    cx.m = model;
    cx.site.m = model;
    cx.site.opset = bnf_model_opset(model->proto, "");
    if ((rc = bnf_report_begin(model, "fold", &cx.r, err)) ||
        (rc = bnf_walk_model(&bn_collector, &cx, model->proto, err)) ||
        (rc = bnf_names_collect(&cx.names, model->proto, err)) ||
        (opts->assume_inference &&
         (rc = bnf_walk_graph(&converter, &cx, model->proto->graph, err))))
        goto out;
    /* the model as it is now, to compare with at the end */
    if (opts->verify && (rc = bnf_model_clone(model, &orig, err)))
        goto out;
    if (opts->freeze_inputs && model->proto->ir_version >= 4 &&
        (cx.r->n_frozen_inputs = freeze_inputs(model)))
        model->changed = 1;
    if ((rc = bnf_walk_model(&folder, &cx, model->proto, err)) ||
        (rc = bnf_walk_model(&bn_counter, &cx.r->n_bns_after, model->proto, err)))
        goto out;
    for (size_t i = 0; i < cx.r->n_bns; i++) {
        cx.r->n_folded += cx.r->bns[i].folded ? 1 : 0;
        cx.r->n_lowered += cx.r->bns[i].lowered ? 1 : 0;
    }
    if (opts->verify && cx.r->n_actions) {
        cx.r->verified_local = 1;
        cx.r->local_worst = 0;
        for (size_t i = 0; i < cx.r->n_actions; i++)
            if (cx.r->actions[i].local_err > cx.r->local_worst)
                cx.r->local_worst = cx.r->actions[i].local_err;
    }
    /* the pass itself: all but the checks */
    cx.r->ms.fold = bnf_ms_since(&t0) - (isnan(cx.r->ms.local_check) ? 0 : cx.r->ms.local_check);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (opts->verify && (cx.r->n_actions || cx.r->n_lowered || cx.r->n_frozen_inputs ||
                         model->changed) &&
        (rc = end_to_end(model, orig, opts, cx.loosen, cx.r, err)))
        goto out;
    if (cx.r->e2e_requested)
        cx.r->ms.end_to_end = bnf_ms_since(&t1);
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

void bnf_fold_defaults(bnf_fold_options *o)
{
    memset(o, 0, sizeof *o);
    o->verify = 1;
    bnf_verify_defaults(&o->check);
}

bnf_status bnf_fold(bnf_model *model, const bnf_fold_options *opts, bnf_report **report,
                    bnf_err *err)
{
    return fold_model(model, opts, 0, 0, report, err);
}

bnf_status bnf_inspect(const bnf_model *model, bnf_report **report, bnf_err *err)
{
    return bnf_inspect_with(model, NULL, report, err);
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
    rc = fold_model(copy, &o, 1, opts ? opts->verify : 1, report, err);
    if (!rc)
        (*report)->command = "inspect";
    bnf_model_free(copy);
    return rc;
}
