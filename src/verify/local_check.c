/* local_check.c: one fold checked on its own, on the node as it will be
 * written: this needs only the layer's and the BN's kernels, so it works on
 * any model. */
#include "verify/verify.h"

#include <math.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

static bnf_status array_to_tensor(const bnf_array *a, bnf_tensor *t, bnf_err *err)
{
    bnf_status rc = bnf_tensor_alloc(t, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, a->dims, a->rank, err);
    if (!rc)
        for (size_t i = 0; i < a->n; i++)
            ((float *)t->data)[i] = (float)bnf_round_to(a->dtype, a->v[i]);
    return rc;
}

/* A stored tensor as the float tensor the layer's kernel reads (double
 * weights narrowed, as the evaluator's Conv and Gemm compute in float). */
/* A stored weight as the kernels read it, float: its bytes in place when they
 * are float32 and aligned (*borrowed = 1: not to be freed), else decoded. */
static bnf_status stored_as_float(const bnf_model *m, const Onnx__TensorProto *p, bnf_tensor *t,
                                  int *borrowed, bnf_err *err)
{
    bnf_tensor d = {0};
    bnf_status rc;
    size_t n;
    const void *in = NULL;

    *borrowed = 0;
    if (p->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && !bnf_proto_is_external(p) &&
        p->n_dims <= BNF_MAX_RANK && bnf_numel(p->dims, p->n_dims, "", &n, NULL) == BNF_OK) {
        if (p->has_raw_data && p->raw_data.len == n * sizeof(float))
            in = p->raw_data.data;
        else if (!p->has_raw_data && p->n_float_data == n)
            in = p->float_data;
        if (in && n && (uintptr_t)in % sizeof(float) == 0) {
            t->dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
            t->rank = p->n_dims;
            memcpy(t->dims, p->dims, p->n_dims * sizeof *p->dims);
            t->n = n;
            t->data = (void *)(uintptr_t)in;
            *borrowed = 1;
            return BNF_OK;
        }
    }
    rc = bnf_tensor_from_proto(m, p, t, err);
    if (rc || t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        return rc;
    d = *t;
    memset(t, 0, sizeof *t);
    if (!(rc = bnf_tensor_alloc(t, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, d.dims, d.rank, err)))
        for (size_t i = 0; i < d.n; i++)
            ((float *)t->data)[i] = (float)((const double *)d.data)[i];
    bnf_tensor_release(&d);
    return rc;
}

/* Lets go of a weight stored_as_float made: a borrowed one's pages go back
 * to the page cache (a mapped model's), a decoded one is freed. */
static void stored_release(const bnf_model *m, bnf_tensor *t, int borrowed)
{
    if (borrowed) {
        if (m)
            bnf_mapped_release_range(m, t->data, t->n * sizeof(float));
        memset(t, 0, sizeof *t);
    } else {
        bnf_tensor_release(t);
    }
}

static bnf_status run_node(const Onnx__NodeProto *n, int64_t opset, const bnf_tensor *const *in,
                           size_t n_in, bnf_tensor *out, bnf_err *err)
{
    const bnf_op_def *def = bnf_op_find(n->op_type, opset);
    bnf_tensor *outs[1] = {out};
    bnf_op_ctx ctx;
    if (!def)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "the evaluator has no %s kernel for opset %lld",
                        S(n->op_type), (long long)opset);
    memset(&ctx, 0, sizeof ctx);
    ctx.node = n;
    ctx.opset = opset;
    ctx.in = in;
    ctx.n_in = n_in;
    ctx.out = outs;
    ctx.n_out = 1;
    ctx.threads = 1;
    ctx.err = err;
    return def->run(&ctx);
}

/* A scratch copy of a node, to finish the way a fold finishes the real one. */
static Onnx__NodeProto *node_copy(const Onnx__NodeProto *n)
{
    size_t len = onnx__node_proto__get_packed_size(n);
    uint8_t *buf = bnf_malloc(len ? len : 1);
    Onnx__NodeProto *copy = NULL;
    if (buf) {
        onnx__node_proto__pack(n, buf);
        copy = onnx__node_proto__unpack(&bnf_pbc_allocator, len, buf);
        bnf_free(buf);
    }
    return copy;
}

bnf_status bnf_verify_fold_local(const bnf_model *m, const bnf_graph *gi, const bnf_fold_job *job,
                                 int64_t opset, const bnf_verify_options *o, double *rel_err,
                                 int *pass, bnf_err *err)
{
    const bnf_fold_pattern *pat = job->pat;
    const Onnx__NodeProto *layer = job->layer, *affine = job->affine;
    bnf_tensor x = {0}, tw = {0}, tb = {0}, tnw = {0}, tnb = {0}, y = {0}, z = {0}, out = {0};
    bnf_tensor params[8];
    const bnf_tensor *in[8];
    int64_t dims[BNF_MAX_RANK];
    size_t rank = 0, n_aff = affine->n_input < 8 ? affine->n_input : 8;
    int after = pat->position == BNF_AFTER_LAYER;
    const char *data_in = after ? S(layer->output[0]) : S(affine->input[0]);
    bnf_array w = {0};
    int tw_borrowed = 0, tnw_borrowed = 0;
    bnf_const_kind kind;
    Onnx__NodeProto *folded = NULL;
    bnf_verify_result r;
    bnf_status rc;

    memset(params, 0, sizeof params);
    memset(&r, 0, sizeof r);
    *pass = 0;
    *rel_err = NAN;
    /* the weights before and after, as the kernels read them: from where the
     * model and the fold keep them (a Constant's value_floats as numbers) */
    if (job->w_stored) {
        rc = stored_as_float(m, job->w_stored, &tw, &tw_borrowed, err);
    } else if (!(rc = bnf_graph_const(m, gi, layer->input[1], &kind, &w, err))) {
        rc = kind == BNF_CONST_YES ? array_to_tensor(&w, &tw, err)
                                   : bnf_fail(err, BNF_ERR_INVALID, "weight '%s' is no longer "
                                              "readable", layer->input[1]);
    }
    if (rc || (rc = stored_as_float(m, job->new_w, &tnw, &tnw_borrowed, err)) ||
        (rc = pat->layer->input_shape(layer, job->w, job->b, dims, &rank, err)) ||
        (rc = bnf_tensor_random(&x, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, rank, 12345, err)) ||
        (job->b && (rc = array_to_tensor(job->b, &tb, err))) ||
        (rc = array_to_tensor(&job->new_b, &tnb, err)))
        goto out;
    /* the affine node's constant operands, as they are in the model */
    for (size_t i = 0; i < n_aff; i++) {
        bnf_array a;
        if (!affine->input[i] || !*affine->input[i] || strcmp(affine->input[i], data_in) == 0)
            continue;
        if ((rc = bnf_graph_const(m, gi, affine->input[i], &kind, &a, err)))
            goto out;
        if (kind != BNF_CONST_YES) {
            rc = bnf_fail(err, BNF_ERR_INVALID, "operand '%s' is no longer readable",
                          affine->input[i]);
            goto out;
        }
        rc = array_to_tensor(&a, &params[i], err);
        bnf_array_release(&a);
        if (rc)
            goto out;
    }
#define AFFINE_INPUTS(data)                                                             \
    for (size_t i = 0; i < n_aff; i++)                                                  \
        in[i] = affine->input[i] && strcmp(S(affine->input[i]), data_in) == 0 ? (data) \
                                                                             : &params[i];
    /* original: the two nodes in their order */
    if (after) {
        in[0] = &x;
        in[1] = &tw;
        in[2] = job->b ? &tb : NULL;
        if ((rc = run_node(layer, opset, in, job->b ? 3 : 2, &y, err)))
            goto out;
        AFFINE_INPUTS(&y)
        if ((rc = run_node(affine, opset, in, n_aff, &z, err)))
            goto out;
    } else {
        AFFINE_INPUTS(&x)
        if ((rc = run_node(affine, opset, in, n_aff, &y, err)))
            goto out;
        in[0] = &y;
        in[1] = &tw;
        in[2] = job->b ? &tb : NULL;
        if ((rc = run_node(layer, opset, in, job->b ? 3 : 2, &z, err)))
            goto out;
    }
#undef AFFINE_INPUTS
    /* folded: the layer as the fold writes it, with its new tensors */
    if (!(folded = node_copy(layer))) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (pat->finish && (rc = pat->finish(folded, err)))
        goto out;
    in[0] = &x;
    in[1] = &tnw;
    in[2] = &tnb;
    if ((rc = run_node(folded, opset, in, 3, &out, err)))
        goto out;
    *pass = bnf_values_agree("output", S(affine->output[0]), &z, &out, o, &r);
    *rel_err = r.worst_rel;
out:
    /* the pages of both weights read: back to the page cache */
    for (int k = 0; k < 2; k++) {
        const Onnx__TensorProto *t = k ? job->new_w : job->w_stored;
        if (t && t->has_raw_data)
            bnf_mapped_release_range(m, t->raw_data.data, t->raw_data.len);
    }
    if (folded)
        onnx__node_proto__free_unpacked(folded, &bnf_pbc_allocator);
    bnf_array_release(&w);
    bnf_tensor_release(&x);
    stored_release(m, &tw, tw_borrowed);
    bnf_tensor_release(&tb);
    stored_release(m, &tnw, tnw_borrowed);
    bnf_tensor_release(&tnb);
    bnf_tensor_release(&y);
    bnf_tensor_release(&z);
    bnf_tensor_release(&out);
    for (int i = 0; i < 8; i++)
        bnf_tensor_release(&params[i]);
    return rc;
}
