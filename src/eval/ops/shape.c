/*
 * eval/ops/shape.c: operators that move elements without computing on them:
 * Flatten, Reshape, Transpose, Concat, Split, Slice, Gather, Shape, Squeeze,
 * Unsqueeze, Expand, Identity, Dropout (inference only) and Tile (Where is in elementwise.c).
 *
 * They work on any evaluator type by copying bytes of bnf_eval_size(dtype),
 * with memcpy of whole rows wherever the layout allows it.  Shape-like inputs
 * (shape, axes, starts, repeats ...) are int64 or int32 tensors of rank 0 or 1
 * and are checked before any output is allocated.
 */
#include "../eval.h"

#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------ */

static size_t prod(const int64_t *dims, size_t from, size_t to)
{
    size_t p = 1;
    for (size_t i = from; i < to; i++)
        p *= (size_t)dims[i];
    return p;
}

/* Output 0 as a copy of x's data under another shape (same element count). */
static bnf_status copy_as(bnf_op_ctx *ctx, const bnf_tensor *x, const int64_t *dims, size_t rank)
{
    bnf_tensor *y;
    bnf_status rc = bnf_out(ctx, 0, x->dtype, dims, rank, &y);
    if (rc)
        return rc;
    if (y->n != x->n)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": %zu elements cannot become %zu",
                        BNF_NODE_ARG(ctx), x->n, y->n);
    memcpy(y->data, x->data, x->n * bnf_eval_size(x->dtype));
    return BNF_OK;
}

/* Copies es-byte elements: dst is dense with shape dims, the source element of
 * index (i0..ir) is at src + sum(ik * sstride[k]) bytes (strides may be 0 or
 * negative).  Axes of size 1 are dropped and mergeable axes merged first. */
static void strided_copy(char *dst, const char *src, const int64_t *dims_in,
                         const int64_t *sstride_in, size_t rank_in, size_t es)
{
    int64_t dims[BNF_MAX_RANK], ss[BNF_MAX_RANK], cnt[BNF_MAX_RANK];
    size_t rank = 0, rows = 1;
    for (size_t i = 0; i < rank_in; i++) {
        if (dims_in[i] == 0)
            return;
        if (dims_in[i] == 1)
            continue;
        if (rank > 0 && ss[rank - 1] == sstride_in[i] * dims_in[i]) {
            dims[rank - 1] *= dims_in[i];
            ss[rank - 1] = sstride_in[i];
            continue;
        }
        dims[rank] = dims_in[i];
        ss[rank] = sstride_in[i];
        rank++;
    }
    if (rank == 0) {
        memcpy(dst, src, es);
        return;
    }
    for (size_t i = 0; i + 1 < rank; i++) {
        rows *= (size_t)dims[i];
        cnt[i] = 0;
    }
    int64_t n = dims[rank - 1], ls = ss[rank - 1];
    const char *s = src;
    for (size_t r = 0; r < rows; r++) {
        if (ls == (int64_t)es) {
            memcpy(dst, s, (size_t)n * es);
        } else {
            switch (es) {
            case 1:
                for (int64_t j = 0; j < n; j++)
                    dst[j] = s[j * ls];
                break;
            case 4:
                for (int64_t j = 0; j < n; j++)
                    memcpy(dst + j * 4, s + j * ls, 4);
                break;
            case 8:
                for (int64_t j = 0; j < n; j++)
                    memcpy(dst + j * 8, s + j * ls, 8);
                break;
            default:
                for (int64_t j = 0; j < n; j++)
                    memcpy(dst + j * (int64_t)es, s + j * ls, es);
                break;
            }
        }
        dst += (size_t)n * es;
        for (size_t k = rank - 1; k-- > 0;) {
            s += ss[k];
            if (++cnt[k] < dims[k])
                break;
            s -= ss[k] * cnt[k];
            cnt[k] = 0;
        }
    }
}

/* Byte strides of a dense tensor's axes. */
static void dense_strides(const bnf_tensor *t, int64_t *strides)
{
    int64_t s = (int64_t)bnf_eval_size(t->dtype);
    for (size_t i = t->rank; i-- > 0;) {
        strides[i] = s;
        s *= t->dims[i];
    }
}

/* ---- Identity, Dropout ---------------------------------------------------------- */

static bnf_status op_identity(bnf_op_ctx *ctx)
{
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, NULL);
    return rc ? rc : copy_as(ctx, ctx->in[0], ctx->in[0]->dims, ctx->in[0]->rank);
}

/* Dropout at inference: Y = X, and the optional mask is all ones (T before opset
 * 10, bool from 10).  Training (is_test=0 before 7, training_mode from 12) is
 * supported only with ratio 0, where it drops nothing. */
static bnf_status op_dropout(bnf_op_ctx *ctx)
{
    bnf_status rc = bnf_need_inputs(ctx, 1, ctx->opset >= 12 ? 3 : 1, NULL);
    const bnf_tensor *x, *ratio, *training;
    bnf_tensor *mask;
    if (rc)
        return rc;
    x = ctx->in[0];
    if (ctx->opset < 7 && bnf_ctx_int(ctx, "is_test", 0) == 0)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED,
                        BNF_NODE_FMT
                        ": is_test=0 asks for training-mode dropout, which is not supported",
                        BNF_NODE_ARG(ctx));
    if ((ratio = bnf_opt_in(ctx, 1))) {
        if (ratio->n != 1 || (ratio->dtype != BNF_T_FLOAT && ratio->dtype != BNF_T_DOUBLE))
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": 'ratio' must be a real scalar", BNF_NODE_ARG(ctx));
    }
    if ((training = bnf_opt_in(ctx, 2))) {
        if (training->n != 1 || training->dtype != BNF_T_BOOL)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": 'training_mode' must be a bool scalar",
                            BNF_NODE_ARG(ctx));
        /* training with ratio 0 drops nothing: the same as inference */
        if (((const uint8_t *)training->data)[0] && !(ratio && bnf_get_f64(ratio, 0) == 0))
            return bnf_fail(
                ctx->err, BNF_ERR_UNSUPPORTED,
                BNF_NODE_FMT
                ": training_mode is true with a non-zero ratio; random dropout is not supported",
                BNF_NODE_ARG(ctx));
    }
    if ((rc = copy_as(ctx, x, x->dims, x->rank)))
        return rc;
    if (ctx->n_out < 2 || !ctx->out[1])
        return BNF_OK;
    if (ctx->opset >= 10) {
        if ((rc = bnf_out(ctx, 1, BNF_T_BOOL, x->dims, x->rank, &mask)))
            return rc;
        memset(mask->data, 1, mask->n);
    } else {
        if ((rc = bnf_out(ctx, 1, x->dtype, x->dims, x->rank, &mask)))
            return rc;
        for (size_t i = 0; i < mask->n; i++)
            bnf_set_f64(mask, i, 1.0);
    }
    return BNF_OK;
}

/* ---- Flatten, Reshape, Squeeze, Unsqueeze ----------------------------------------- */

static bnf_status op_flatten(bnf_op_ctx *ctx)
{
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, NULL);
    const bnf_tensor *x;
    int64_t axis, dims[2];
    if (rc)
        return rc;
    x = ctx->in[0];
    axis = bnf_ctx_int(ctx, "axis", 1);
    if (ctx->opset < 11 && axis < 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": negative axis %lld needs opset 11", BNF_NODE_ARG(ctx),
                        (long long)axis);
    if ((rc = bnf_norm_axis(ctx, axis, x->rank, 1, &axis)))
        return rc;
    dims[0] = (int64_t)prod(x->dims, 0, (size_t)axis);
    dims[1] = (int64_t)prod(x->dims, (size_t)axis, x->rank);
    return copy_as(ctx, x, dims, 2);
}

static bnf_status reshape_to(bnf_op_ctx *ctx, const bnf_tensor *x, const int64_t *shape, size_t n,
                             int allowzero)
{
    int64_t dims[BNF_MAX_RANK], known = 1;
    size_t infer = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        int64_t v = shape[i];
        if (v == 0 && !allowzero) {
            if (i >= x->rank)
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": shape[%zu] is 0 (copy) but the input has rank %zu",
                                BNF_NODE_ARG(ctx), i, x->rank);
            v = x->dims[i];
        }
        if (v == -1) {
            if (infer != SIZE_MAX)
                return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": shape has two -1",
                                BNF_NODE_ARG(ctx));
            infer = i;
            continue;
        }
        if (v < 0)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": shape[%zu] is %lld",
                            BNF_NODE_ARG(ctx), i, (long long)v);
        if (v != 0 && known > INT64_MAX / v)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": shape overflows",
                            BNF_NODE_ARG(ctx));
        dims[i] = v;
        known *= v;
    }
    if (infer != SIZE_MAX) {
        if (known == 0 || (uint64_t)x->n % (uint64_t)known)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": cannot infer the -1 of the shape from %zu elements",
                            BNF_NODE_ARG(ctx), x->n);
        dims[infer] = (int64_t)((uint64_t)x->n / (uint64_t)known);
    } else if ((uint64_t)known != (uint64_t)x->n) {
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": shape holds %lld elements, the input %zu",
                        BNF_NODE_ARG(ctx), (long long)known, x->n);
    }
    return copy_as(ctx, x, dims, n);
}

/* Reshape-1: the shape is an attribute. */
static bnf_status op_reshape_v1(bnf_op_ctx *ctx)
{
    int64_t shape[BNF_MAX_RANK];
    size_t n;
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, NULL);
    if (rc)
        return rc;
    n = bnf_ctx_ints(ctx, "shape", shape, BNF_MAX_RANK);
    if (n > BNF_MAX_RANK)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": shape of rank %zu",
                        BNF_NODE_ARG(ctx), n);
    return reshape_to(ctx, ctx->in[0], shape, n, 0);
}

/* Reshape-5: shape input; allowzero from 14. */
static bnf_status op_reshape_v5(bnf_op_ctx *ctx)
{
    int64_t shape[BNF_MAX_RANK], allowzero = 0;
    size_t n;
    bnf_status rc = bnf_need_inputs(ctx, 2, 2, NULL);
    if (rc || (rc = bnf_read_ints(ctx, ctx->in[1], "shape", shape, BNF_MAX_RANK, &n)))
        return rc;
    if (ctx->opset >= 14)
        allowzero = bnf_ctx_int(ctx, "allowzero", 0);
    if (allowzero != 0 && allowzero != 1)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": allowzero is %lld",
                        BNF_NODE_ARG(ctx), (long long)allowzero);
    return reshape_to(ctx, ctx->in[0], shape, n, (int)allowzero);
}

/* Squeeze: axes attribute before 13, optional input from 13; none = all 1s. */
static bnf_status op_squeeze(bnf_op_ctx *ctx)
{
    int64_t axes[BNF_MAX_RANK], dims[BNF_MAX_RANK];
    int drop[BNF_MAX_RANK] = {0};
    size_t n = 0, rank = 0;
    int have_axes = 0;
    const bnf_tensor *x;
    bnf_status rc = bnf_need_inputs(ctx, 1, ctx->opset >= 13 ? 2 : 1, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    if (ctx->opset >= 13) {
        if (bnf_opt_in(ctx, 1)) {
            if ((rc = bnf_read_ints(ctx, ctx->in[1], "axes", axes, BNF_MAX_RANK, &n)))
                return rc;
            have_axes = 1;
        }
    } else if (bnf_node_attr(ctx->node, "axes")) {
        n = bnf_ctx_ints(ctx, "axes", axes, BNF_MAX_RANK);
        if (n > BNF_MAX_RANK)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": %zu axes", BNF_NODE_ARG(ctx),
                            n);
        have_axes = 1;
    }
    if (have_axes) {
        for (size_t i = 0; i < n; i++) {
            int64_t a;
            if ((rc = bnf_norm_axis(ctx, axes[i], x->rank, 0, &a)))
                return rc;
            if (x->dims[a] != 1)
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": cannot squeeze axis %lld of size %lld",
                                BNF_NODE_ARG(ctx), (long long)a, (long long)x->dims[a]);
            drop[a] = 1;
        }
    } else {
        for (size_t i = 0; i < x->rank; i++)
            drop[i] = x->dims[i] == 1;
    }
    for (size_t i = 0; i < x->rank; i++)
        if (!drop[i])
            dims[rank++] = x->dims[i];
    return copy_as(ctx, x, dims, rank);
}

/* Unsqueeze: axes attribute before 13, input from 13; axes index the output. */
static bnf_status op_unsqueeze(bnf_op_ctx *ctx)
{
    int64_t axes[BNF_MAX_RANK], dims[BNF_MAX_RANK];
    int ins[BNF_MAX_RANK] = {0};
    size_t n, out_rank, k = 0;
    const bnf_tensor *x;
    size_t n_in = ctx->opset >= 13 ? 2 : 1;
    bnf_status rc = bnf_need_inputs(ctx, n_in, n_in, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    if (ctx->opset >= 13) {
        if ((rc = bnf_read_ints(ctx, ctx->in[1], "axes", axes, BNF_MAX_RANK, &n)))
            return rc;
    } else {
        n = bnf_ctx_ints(ctx, "axes", axes, BNF_MAX_RANK);
        if (n > BNF_MAX_RANK)
            return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": %zu axes",
                            BNF_NODE_ARG(ctx), n);
    }
    if (n == 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": no axes", BNF_NODE_ARG(ctx));
    out_rank = x->rank + n;
    if (out_rank > BNF_MAX_RANK)
        return bnf_fail(ctx->err, BNF_ERR_UNSUPPORTED, BNF_NODE_FMT ": output rank %zu is over %d",
                        BNF_NODE_ARG(ctx), out_rank, BNF_MAX_RANK);
    for (size_t i = 0; i < n; i++) {
        int64_t a;
        if ((rc = bnf_norm_axis(ctx, axes[i], out_rank, 0, &a)))
            return rc;
        if (ins[a])
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axis %lld repeated",
                            BNF_NODE_ARG(ctx), (long long)a);
        ins[a] = 1;
    }
    for (size_t i = 0; i < out_rank; i++)
        dims[i] = ins[i] ? 1 : x->dims[k++];
    return copy_as(ctx, x, dims, out_rank);
}

/* ---- Transpose ---------------------------------------------------------------------- */

static bnf_status op_transpose(bnf_op_ctx *ctx)
{
    int64_t perm[BNF_MAX_RANK], dims[BNF_MAX_RANK], st[BNF_MAX_RANK], ss[BNF_MAX_RANK];
    int seen[BNF_MAX_RANK] = {0};
    size_t n;
    const bnf_tensor *x;
    bnf_tensor *y;
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    n = bnf_ctx_ints(ctx, "perm", perm, BNF_MAX_RANK);
    if (!bnf_node_attr(ctx->node, "perm")) {
        n = x->rank;
        for (size_t i = 0; i < n; i++)
            perm[i] = (int64_t)(n - 1 - i);
    }
    if (n != x->rank)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": perm has %zu values for rank %zu", BNF_NODE_ARG(ctx), n,
                        x->rank);
    for (size_t i = 0; i < n; i++) {
        if (perm[i] < 0 || perm[i] >= (int64_t)n || seen[perm[i]])
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": perm is not a permutation",
                            BNF_NODE_ARG(ctx));
        seen[perm[i]] = 1;
    }
    dense_strides(x, st);
    for (size_t i = 0; i < n; i++) {
        dims[i] = x->dims[perm[i]];
        ss[i] = st[perm[i]];
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, dims, n, &y)))
        return rc;
    if (y->n)
        strided_copy(y->data, x->data, dims, ss, n, bnf_eval_size(x->dtype));
    return BNF_OK;
}

/* ---- Concat, Split -------------------------------------------------------------------- */

static bnf_status op_concat(bnf_op_ctx *ctx)
{
    const bnf_tensor *x0;
    bnf_tensor *y;
    int64_t axis, dims[BNF_MAX_RANK];
    size_t es, outer;
    char *dst;
    bnf_status rc = bnf_need_inputs(ctx, 1, SIZE_MAX, NULL);
    if (rc)
        return rc;
    x0 = ctx->in[0];
    if (ctx->opset < 4)
        axis = bnf_ctx_int(ctx, "axis", 1);
    else if (!bnf_node_attr(ctx->node, "axis"))
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": no axis", BNF_NODE_ARG(ctx));
    else
        axis = bnf_ctx_int(ctx, "axis", 0);
    if (x0->rank == 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": cannot concatenate scalars",
                        BNF_NODE_ARG(ctx));
    if ((rc = bnf_norm_axis(ctx, axis, x0->rank, 0, &axis)))
        return rc;
    memcpy(dims, x0->dims, x0->rank * sizeof *dims);
    dims[axis] = 0;
    for (size_t k = 0; k < ctx->n_in; k++) {
        const bnf_tensor *x = ctx->in[k];
        if (x->dtype != x0->dtype || x->rank != x0->rank)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": input %zu differs in type or rank from input 0",
                            BNF_NODE_ARG(ctx), k);
        for (size_t i = 0; i < x->rank; i++)
            if ((int64_t)i != axis && x->dims[i] != x0->dims[i])
                return bnf_fail(ctx->err, BNF_ERR_INVALID,
                                BNF_NODE_FMT ": input %zu has dimension %zu = %lld, input 0 %lld",
                                BNF_NODE_ARG(ctx), k, i, (long long)x->dims[i],
                                (long long)x0->dims[i]);
        if (dims[axis] > INT64_MAX - x->dims[axis])
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": size overflows",
                            BNF_NODE_ARG(ctx));
        dims[axis] += x->dims[axis];
    }
    if ((rc = bnf_out(ctx, 0, x0->dtype, dims, x0->rank, &y)))
        return rc;
    es = bnf_eval_size(x0->dtype);
    outer = prod(dims, 0, (size_t)axis);
    dst = y->data;
    for (size_t o = 0; o < outer; o++)
        for (size_t k = 0; k < ctx->n_in; k++) {
            const bnf_tensor *x = ctx->in[k];
            size_t chunk = x->n / outer * es;
            memcpy(dst, (const char *)x->data + o * chunk, chunk);
            dst += chunk;
        }
    return BNF_OK;
}

/* Split: sizes from the `split` attribute (before 13, and input 1 at opset 1),
 * the `split` input (13+), num_outputs (18+), else equal parts. */
static bnf_status op_split(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *split_in = NULL;
    int64_t axis, dim, *sizes = NULL, total = 0;
    size_t n_out = ctx->n_out, es, outer, inner, off = 0;
    const Onnx__AttributeProto *split_attr = NULL;
    bnf_status rc = bnf_need_inputs(ctx, 1, ctx->opset >= 13 || ctx->opset < 2 ? 2 : 1, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    if (n_out == 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": no outputs", BNF_NODE_ARG(ctx));
    if (x->rank == 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": cannot split a scalar",
                        BNF_NODE_ARG(ctx));
    if ((rc = bnf_norm_axis(ctx, bnf_ctx_int(ctx, "axis", 0), x->rank, 0, &axis)))
        return rc;
    dim = x->dims[axis];
    if (!(sizes = bnf_malloc(n_out * sizeof *sizes)))
        return bnf_nomem(ctx);
    if (ctx->opset >= 13 || ctx->opset < 2)
        split_in = bnf_opt_in(ctx, 1);
    if (ctx->opset < 13)
        split_attr = bnf_node_attr(ctx->node, "split");
    if (split_in) {
        size_t n;
        if (split_in->n != n_out) {
            rc = bnf_fail(ctx->err, BNF_ERR_INVALID,
                          BNF_NODE_FMT ": 'split' has %zu values for %zu outputs",
                          BNF_NODE_ARG(ctx), split_in->n, n_out);
            goto out;
        }
        if ((rc = bnf_read_ints(ctx, split_in, "split", sizes, n_out, &n)))
            goto out;
    } else if (split_attr) {
        if (bnf_ctx_ints(ctx, "split", sizes, n_out) != n_out) {
            rc = bnf_fail(ctx->err, BNF_ERR_INVALID,
                          BNF_NODE_FMT ": 'split' has %zu values for %zu outputs",
                          BNF_NODE_ARG(ctx), split_attr->n_ints, n_out);
            goto out;
        }
    } else if (ctx->opset >= 18 && bnf_node_attr(ctx->node, "num_outputs")) {
        int64_t num = bnf_ctx_int(ctx, "num_outputs", 0), chunk, left = dim;
        if (num != (int64_t)n_out) {
            rc = bnf_fail(ctx->err, BNF_ERR_INVALID,
                          BNF_NODE_FMT ": num_outputs is %lld but the node has %zu outputs",
                          BNF_NODE_ARG(ctx), (long long)num, n_out);
            goto out;
        }
        chunk = dim / num + (dim % num != 0);
        for (size_t i = 0; i < n_out; i++) {
            sizes[i] = chunk < left ? chunk : left;
            left -= sizes[i];
        }
    } else {
        if (dim % (int64_t)n_out) {
            rc = bnf_fail(ctx->err, BNF_ERR_INVALID,
                          BNF_NODE_FMT ": dimension %lld does not split into %zu equal parts",
                          BNF_NODE_ARG(ctx), (long long)dim, n_out);
            goto out;
        }
        for (size_t i = 0; i < n_out; i++)
            sizes[i] = dim / (int64_t)n_out;
    }
    for (size_t i = 0; i < n_out; i++) {
        if (sizes[i] < 0 || sizes[i] > dim - total) {
            rc = bnf_fail(ctx->err, BNF_ERR_INVALID,
                          BNF_NODE_FMT ": split sizes do not add up to dimension %lld",
                          BNF_NODE_ARG(ctx), (long long)dim);
            goto out;
        }
        total += sizes[i];
    }
    if (total != dim) {
        rc = bnf_fail(ctx->err, BNF_ERR_INVALID,
                      BNF_NODE_FMT ": split sizes add up to %lld, dimension is %lld",
                      BNF_NODE_ARG(ctx), (long long)total, (long long)dim);
        goto out;
    }
    es = bnf_eval_size(x->dtype);
    outer = prod(x->dims, 0, (size_t)axis);
    inner = prod(x->dims, (size_t)axis + 1, x->rank) * es;
    for (size_t i = 0; i < n_out; i++) {
        int64_t dims[BNF_MAX_RANK];
        bnf_tensor *y;
        size_t chunk = (size_t)sizes[i] * inner;
        if (ctx->out[i]) {
            memcpy(dims, x->dims, x->rank * sizeof *dims);
            dims[axis] = sizes[i];
            if ((rc = bnf_out(ctx, i, x->dtype, dims, x->rank, &y)))
                goto out;
            for (size_t o = 0; o < outer; o++)
                memcpy((char *)y->data + o * chunk,
                       (const char *)x->data + (o * (size_t)dim) * inner + off, chunk);
        }
        off += chunk;
    }
out:
    bnf_free(sizes);
    return rc;
}

/* ---- Slice -------------------------------------------------------------------------------- */

/* Slices x given per-listed-axis starts/ends/steps (steps may be NULL = 1). */
static bnf_status slice_run(bnf_op_ctx *ctx, const int64_t *starts, const int64_t *ends,
                            const int64_t *axes, const int64_t *steps, size_t n)
{
    const bnf_tensor *x = ctx->in[0];
    int64_t begin[BNF_MAX_RANK], step[BNF_MAX_RANK], dims[BNF_MAX_RANK], st[BNF_MAX_RANK],
        ss[BNF_MAX_RANK];
    int seen[BNF_MAX_RANK] = {0};
    const char *src;
    bnf_tensor *y;
    bnf_status rc;
    for (size_t i = 0; i < x->rank; i++) {
        begin[i] = 0;
        step[i] = 1;
        dims[i] = x->dims[i];
    }
    for (size_t k = 0; k < n; k++) {
        int64_t a = k, d, s = steps ? steps[k] : 1, b = starts[k], e = ends[k];
        if (axes && (rc = bnf_norm_axis(ctx, axes[k], x->rank, 0, &a)))
            return rc;
        if (!axes && k >= x->rank)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": %zu starts for rank %zu",
                            BNF_NODE_ARG(ctx), n, x->rank);
        if (seen[a])
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": axis %lld repeated",
                            BNF_NODE_ARG(ctx), (long long)a);
        seen[a] = 1;
        d = x->dims[a];
        if (s == 0)
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": step 0 on axis %lld",
                            BNF_NODE_ARG(ctx), (long long)a);
        /* a step longer than the axis takes at most one element either way */
        if (s > d)
            s = d + 1;
        if (s < -d)
            s = -d - 1;
        if (b < 0)
            b += d;
        if (e < 0)
            e += d;
        if (s > 0) {
            b = b < 0 ? 0 : b > d ? d : b;
            e = e < 0 ? 0 : e > d ? d : e;
            dims[a] = e > b ? (e - b + s - 1) / s : 0;
        } else {
            b = b < 0 ? 0 : b > d - 1 ? d - 1 : b;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            dims[a] = b > e ? (b - e + (-s) - 1) / (-s) : 0;
        }
        begin[a] = b;
        step[a] = s;
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, dims, x->rank, &y)))
        return rc;
    if (!y->n)
        return BNF_OK;
    dense_strides(x, st);
    src = x->data;
    for (size_t i = 0; i < x->rank; i++) {
        src += begin[i] * st[i];
        ss[i] = step[i] * st[i];
    }
    strided_copy(y->data, src, dims, ss, x->rank, bnf_eval_size(x->dtype));
    return BNF_OK;
}

/* Slice-1: starts, ends, axes attributes. */
static bnf_status op_slice_v1(bnf_op_ctx *ctx)
{
    int64_t starts[BNF_MAX_RANK], ends[BNF_MAX_RANK], axes[BNF_MAX_RANK];
    size_t ns, ne, na;
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, NULL);
    if (rc)
        return rc;
    ns = bnf_ctx_ints(ctx, "starts", starts, BNF_MAX_RANK);
    ne = bnf_ctx_ints(ctx, "ends", ends, BNF_MAX_RANK);
    na = bnf_ctx_ints(ctx, "axes", axes, BNF_MAX_RANK);
    if (ns != ne || ns > BNF_MAX_RANK || (bnf_node_attr(ctx->node, "axes") && na != ns))
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": starts, ends and axes differ in length", BNF_NODE_ARG(ctx));
    return slice_run(ctx, starts, ends, bnf_node_attr(ctx->node, "axes") ? axes : NULL, NULL, ns);
}

/* Slice-10: starts, ends, optional axes and steps inputs. */
static bnf_status op_slice_v10(bnf_op_ctx *ctx)
{
    int64_t starts[BNF_MAX_RANK], ends[BNF_MAX_RANK], axes[BNF_MAX_RANK], steps[BNF_MAX_RANK];
    size_t ns, ne, na, nst;
    const bnf_tensor *ta, *tst;
    bnf_status rc = bnf_need_inputs(ctx, 3, 5, NULL);
    if (rc || (rc = bnf_read_ints(ctx, ctx->in[1], "starts", starts, BNF_MAX_RANK, &ns)) ||
        (rc = bnf_read_ints(ctx, ctx->in[2], "ends", ends, BNF_MAX_RANK, &ne)))
        return rc;
    ta = bnf_opt_in(ctx, 3);
    tst = bnf_opt_in(ctx, 4);
    if (ta && (rc = bnf_read_ints(ctx, ta, "axes", axes, BNF_MAX_RANK, &na)))
        return rc;
    if (tst && (rc = bnf_read_ints(ctx, tst, "steps", steps, BNF_MAX_RANK, &nst)))
        return rc;
    if (ns != ne || (ta && na != ns) || (tst && nst != ns))
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": starts, ends, axes and steps differ in length",
                        BNF_NODE_ARG(ctx));
    return slice_run(ctx, starts, ends, ta ? axes : NULL, tst ? steps : NULL, ns);
}

/* ---- Gather, Shape ------------------------------------------------------------------------ */

static bnf_status op_gather(bnf_op_ctx *ctx)
{
    const bnf_tensor *x, *ind;
    int64_t axis, dim, dims[BNF_MAX_RANK * 2];
    size_t rank = 0, es, outer, inner, nidx;
    bnf_tensor *y;
    char *dst;
    bnf_status rc = bnf_need_inputs(ctx, 2, 2, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    ind = ctx->in[1];
    if (ind->dtype != BNF_T_INT64 && ind->dtype != BNF_T_INT32)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": indices must be int64 or int32",
                        BNF_NODE_ARG(ctx));
    if (x->rank == 0)
        return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": data must have rank >= 1",
                        BNF_NODE_ARG(ctx));
    if ((rc = bnf_norm_axis(ctx, bnf_ctx_int(ctx, "axis", 0), x->rank, 0, &axis)))
        return rc;
    dim = x->dims[axis];
    nidx = ind->n;
    for (size_t i = 0; i < nidx; i++) {
        int64_t v = bnf_get_i64(ind, i);
        if (v < -dim || v >= dim)
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": index %lld is out of range for dimension %lld",
                            BNF_NODE_ARG(ctx), (long long)v, (long long)dim);
    }
    for (size_t i = 0; i < (size_t)axis; i++)
        dims[rank++] = x->dims[i];
    for (size_t i = 0; i < ind->rank; i++)
        dims[rank++] = ind->dims[i];
    for (size_t i = (size_t)axis + 1; i < x->rank; i++)
        dims[rank++] = x->dims[i];
    if ((rc = bnf_out(ctx, 0, x->dtype, dims, rank, &y)))
        return rc;
    es = bnf_eval_size(x->dtype);
    outer = prod(x->dims, 0, (size_t)axis);
    inner = prod(x->dims, (size_t)axis + 1, x->rank) * es;
    dst = y->data;
    for (size_t o = 0; o < outer; o++) {
        const char *src = (const char *)x->data + o * (size_t)dim * inner;
        for (size_t i = 0; i < nidx; i++) {
            int64_t v = bnf_get_i64(ind, i);
            if (v < 0)
                v += dim;
            memcpy(dst, src + (size_t)v * inner, inner);
            dst += inner;
        }
    }
    return BNF_OK;
}

/* Shape: the dims as int64; start/end (clamped) from opset 15. */
static bnf_status op_shape(bnf_op_ctx *ctx)
{
    const bnf_tensor *x;
    bnf_tensor *y;
    int64_t r, start = 0, end, dims[1];
    bnf_status rc = bnf_need_inputs(ctx, 1, 1, NULL);
    if (rc)
        return rc;
    x = ctx->in[0];
    r = (int64_t)x->rank;
    end = r;
    if (ctx->opset >= 15) {
        start = bnf_ctx_int(ctx, "start", 0);
        end = bnf_ctx_int(ctx, "end", r);
    }
    if (start < 0)
        start = start < -r ? 0 : start + r;
    if (end < 0)
        end = end < -r ? 0 : end + r;
    start = start > r ? r : start;
    end = end > r ? r : end;
    dims[0] = end > start ? end - start : 0;
    if ((rc = bnf_out(ctx, 0, BNF_T_INT64, dims, 1, &y)))
        return rc;
    for (int64_t i = 0; i < dims[0]; i++)
        ((int64_t *)y->data)[i] = x->dims[start + i];
    return BNF_OK;
}

/* ---- Expand, Tile -------------------------------------------------------------------- */

/* Byte strides that broadcast t to (dims, rank): 0 along broadcast axes. */
static void bcast_strides(const bnf_tensor *t, const int64_t *dims, size_t rank, int64_t *ss)
{
    int64_t st[BNF_MAX_RANK];
    size_t off = rank - t->rank;
    dense_strides(t, st);
    for (size_t i = 0; i < rank; i++)
        ss[i] = i < off || (t->dims[i - off] == 1 && dims[i] != 1) ? 0 : st[i - off];
}

static bnf_status op_expand(bnf_op_ctx *ctx)
{
    const bnf_tensor *x;
    int64_t shape[BNF_MAX_RANK], dims[BNF_MAX_RANK], ss[BNF_MAX_RANK];
    size_t n, rank;
    bnf_tensor *y;
    bnf_status rc = bnf_need_inputs(ctx, 2, 2, NULL);
    if (rc || (rc = bnf_read_ints(ctx, ctx->in[1], "shape", shape, BNF_MAX_RANK, &n)))
        return rc;
    x = ctx->in[0];
    rank = n > x->rank ? n : x->rank;
    for (size_t i = 0; i < rank; i++) {
        int64_t d = i < rank - x->rank ? 1 : x->dims[i - (rank - x->rank)];
        int64_t s = i < rank - n ? 1 : shape[i - (rank - n)];
        if (s < 0 || (d != s && d != 1 && s != 1))
            return bnf_fail(ctx->err, BNF_ERR_INVALID,
                            BNF_NODE_FMT ": dimension %lld does not broadcast to %lld",
                            BNF_NODE_ARG(ctx), (long long)d, (long long)s);
        dims[i] = d == 1 ? s : d;
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, dims, rank, &y)))
        return rc;
    if (y->n) {
        bcast_strides(x, dims, rank, ss);
        strided_copy(y->data, x->data, dims, ss, rank, bnf_eval_size(x->dtype));
    }
    return BNF_OK;
}

/* Fills dst (shape in->dims * rep, from axis a on) by tiling src. */
static void tile_rec(char *dst, const char *src, const int64_t *in_dims, const int64_t *rep,
                     size_t rank, size_t a, size_t es)
{
    size_t in_inner = es, out_inner = es, block;
    for (size_t i = a + 1; i < rank; i++) {
        in_inner *= (size_t)in_dims[i];
        out_inner *= (size_t)(in_dims[i] * rep[i]);
    }
    if (a + 1 == rank)
        memcpy(dst, src, (size_t)in_dims[a] * es);
    else
        for (int64_t i = 0; i < in_dims[a]; i++)
            tile_rec(dst + (size_t)i * out_inner, src + (size_t)i * in_inner, in_dims, rep, rank,
                     a + 1, es);
    block = (size_t)in_dims[a] * out_inner;
    for (int64_t r = 1; r < rep[a]; r++)
        memcpy(dst + (size_t)r * block, dst, block);
}

static bnf_status op_tile(bnf_op_ctx *ctx)
{
    const bnf_tensor *x;
    int64_t rep[BNF_MAX_RANK], dims[BNF_MAX_RANK];
    size_t n;
    bnf_tensor *y;
    bnf_status rc = bnf_need_inputs(ctx, 2, 2, NULL);
    if (rc || (rc = bnf_read_ints(ctx, ctx->in[1], "repeats", rep, BNF_MAX_RANK, &n)))
        return rc;
    x = ctx->in[0];
    if (n != x->rank)
        return bnf_fail(ctx->err, BNF_ERR_INVALID,
                        BNF_NODE_FMT ": repeats has %zu values for rank %zu", BNF_NODE_ARG(ctx), n,
                        x->rank);
    for (size_t i = 0; i < n; i++) {
        if (rep[i] < 0 || (rep[i] > 0 && x->dims[i] > INT64_MAX / rep[i]))
            return bnf_fail(ctx->err, BNF_ERR_INVALID, BNF_NODE_FMT ": repeats[%zu] is %lld",
                            BNF_NODE_ARG(ctx), i, (long long)rep[i]);
        dims[i] = x->dims[i] * rep[i];
    }
    if ((rc = bnf_out(ctx, 0, x->dtype, dims, n, &y)))
        return rc;
    if (y->n) {
        if (n == 0)
            memcpy(y->data, x->data, bnf_eval_size(x->dtype));
        else
            tile_rec(y->data, x->data, x->dims, rep, n, 0, bnf_eval_size(x->dtype));
    }
    return BNF_OK;
}

/* Kernels that changed only in where an argument lives (Squeeze, Unsqueeze,
 * Split, Dropout ...) read ctx->opset and have one entry. */
const bnf_op_def bnf_ops_shape[] = {
    {"Identity", 1, op_identity},
    {"Dropout", 1, op_dropout},
    {"Flatten", 1, op_flatten},
    {"Reshape", 1, op_reshape_v1},
    {"Reshape", 5, op_reshape_v5},
    {"Squeeze", 1, op_squeeze},
    {"Unsqueeze", 1, op_unsqueeze},
    {"Transpose", 1, op_transpose},
    {"Concat", 1, op_concat},
    {"Split", 1, op_split},
    {"Slice", 1, op_slice_v1},
    {"Slice", 10, op_slice_v10},
    {"Gather", 1, op_gather},
    {"Shape", 1, op_shape},
    {"Expand", 8, op_expand},
    {"Tile", 6, op_tile},
    {NULL, 0, NULL},
};
