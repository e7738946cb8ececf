/* layers.c: the layer types folds go into, as the patterns and the local
 * check see them (bnf_fold_layer): the rank of the layer's output and the
 * input the local check feeds it.  One entry per layer type, whichever side
 * of it a BatchNormalization is. */
#include "internal.h"

#include <string.h>

#define S(x) ((x) ? (x) : "")

/* The check's inputs stay below this many values (the kernels' extent first
 * shrinks toward what the kernel needs). */
#define CHECK_VALUES ((int64_t)1 << 22)
#define CHECK_VALUES_MAX ((int64_t)1 << 24)

/* Conv and ConvTranspose, W[M, C/g, k...] and W[C, M/g, k...]: batch 1, the
 * input channels W expects, and per spatial axis an extent that fits the
 * kernel with its dilation (no padding assumed) and a few strides more; with
 * auto_pad SAME_*, one that SAME pads nothing when any does (3 strides, and
 * the kernel's span when that is less than a stride), so that a fold that is
 * exact at the model's size is exact in the check too. */
static bnf_status conv_like_shape(const Onnx__NodeProto *layer, const bnf_array *w, int transpose,
                                  int64_t *dims, size_t *rank, bnf_err *err)
{
    int64_t g = bnf_attr_int(layer, "group", 1);
    const Onnx__AttributeProto *dil = bnf_node_attr(layer, "dilations");
    const Onnx__AttributeProto *str = bnf_node_attr(layer, "strides");
    const Onnx__AttributeProto *pads = bnf_node_attr(layer, "pads");
    const Onnx__AttributeProto *ap = bnf_node_attr(layer, "auto_pad");
    int same = !transpose && ap && ap->has_s && ap->s.len > 4 && memcmp(ap->s.data, "SAME", 4) == 0;
    int64_t least[BNF_MAX_RANK], total;

    if (w->rank < 3 || w->rank > BNF_MAX_RANK)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "weight of rank %zu", w->rank);
    if (g < 1 || g > (1 << 20) || w->dims[0] % g != 0 || w->dims[1] > (1 << 20))
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "%s '%s': group %lld does not fit the "
                        "weight's %lld channels", S(layer->op_type), S(layer->name),
                        (long long)g, (long long)w->dims[0]);
    for (size_t i = 0; pads && i < pads->n_ints; i++)
        if (pads->ints[i] < 0 || pads->ints[i] > 4096)
            return bnf_fail(err, BNF_ERR_UNSUPPORTED, "%s '%s': pads of %lld are too large "
                            "to check locally", S(layer->op_type), S(layer->name),
                            (long long)pads->ints[i]);
    dims[0] = 1;
    dims[1] = transpose ? w->dims[0] : w->dims[1] * g;
    total = dims[1];
    for (size_t d = 2; d < w->rank; d++) {
        int64_t k = w->dims[d];
        int64_t dl = dil && d - 2 < dil->n_ints ? dil->ints[d - 2] : 1;
        int64_t st = str && d - 2 < str->n_ints ? str->ints[d - 2] : 1;
        dl = dl > 0 ? dl : 1;
        st = st > 0 && st < 64 ? st : 1;
        if (k < 1 || k > 4096 || dl > 4096 || (k - 1) * dl + 1 > 4096)
            return bnf_fail(err, BNF_ERR_UNSUPPORTED, "%s '%s': a kernel extent of %lld x "
                            "dilation %lld is too large to check locally", S(layer->op_type),
                            S(layer->name), (long long)k, (long long)dl);
        /* the kernel must fit (no padding assumed); a few strides more show more */
        least[d] = transpose ? 1 : (k - 1) * dl + 1;
        dims[d] = transpose ? 5 : least[d] + 2 * st + 3;
        if (same && least[d] <= st) /* SAME pads (ceil(n / st) - 1) st + span - n: 0 */
            least[d] = dims[d] = 3 * st + (least[d] < st ? least[d] : 0);
        total *= dims[d];
        if (total > ((int64_t)1 << 40))
            total = (int64_t)1 << 40;
    }
    /* keep the check small: shrink the extents toward what the kernel needs */
    for (int guard = 0; total > CHECK_VALUES && guard < 64; guard++) {
        total = dims[1];
        for (size_t d = 2; d < w->rank; d++) {
            if (dims[d] > least[d])
                dims[d] = least[d] + (dims[d] - least[d]) / 2;
            total *= dims[d];
            if (total > ((int64_t)1 << 40))
                total = (int64_t)1 << 40;
        }
    }
    if (total > CHECK_VALUES_MAX)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "%s '%s' needs an input of %lld values "
                        "or more: too large to check locally", S(layer->op_type),
                        S(layer->name), (long long)total);
    *rank = w->rank;
    return BNF_OK;
}

static bnf_status conv_shape(const Onnx__NodeProto *layer, const bnf_array *w,
                             const bnf_array *b, int64_t *dims, size_t *rank, bnf_err *err)
{
    (void)b;
    return conv_like_shape(layer, w, 0, dims, rank, err);
}

static bnf_status conv_transpose_shape(const Onnx__NodeProto *layer, const bnf_array *w,
                                       const bnf_array *b, int64_t *dims, size_t *rank,
                                       bnf_err *err)
{
    (void)b;
    return conv_like_shape(layer, w, 1, dims, rank, err);
}

/* A convolution's output has the rank of its weight. */
static int weight_rank(const Onnx__NodeProto *layer, const bnf_array *w, int in_rank)
{
    (void)layer;
    (void)in_rank;
    return (int)w->rank;
}

/* Gemm: A of M rows (C's when C has them, else 3) and K columns (or its
 * transpose with transA). */
static bnf_status gemm_shape(const Onnx__NodeProto *layer, const bnf_array *w, const bnf_array *b,
                             int64_t *dims, size_t *rank, bnf_err *err)
{
    int64_t m = b && b->rank == 2 && b->dims[0] > 1 ? b->dims[0] : 3;
    int64_t k = bnf_attr_int(layer, "transB", 0) ? w->dims[1] : w->dims[0];
    (void)err;
    *rank = 2;
    dims[0] = bnf_attr_int(layer, "transA", 0) ? k : m;
    dims[1] = bnf_attr_int(layer, "transA", 0) ? m : k;
    return BNF_OK;
}

static int rank_2(const Onnx__NodeProto *layer, const bnf_array *w, int in_rank)
{
    (void)layer;
    (void)w;
    (void)in_rank;
    return 2;
}

/* MatMul with a constant 2-D B: A is [3, K]. */
static bnf_status matmul_shape(const Onnx__NodeProto *layer, const bnf_array *w,
                               const bnf_array *b, int64_t *dims, size_t *rank, bnf_err *err)
{
    (void)layer;
    (void)b;
    if (w->rank != 2)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "MatMul weight of rank %zu", w->rank);
    *rank = 2;
    dims[0] = 3;
    dims[1] = w->dims[0];
    return BNF_OK;
}

/* A MatMul's output has its input's rank (B is 2-D). */
static int input_rank(const Onnx__NodeProto *layer, const bnf_array *w, int in_rank)
{
    (void)layer;
    (void)w;
    return in_rank;
}

const bnf_fold_layer bnf_layer_conv = {"Conv", weight_rank, conv_shape};
const bnf_fold_layer bnf_layer_conv_transpose = {"ConvTranspose", weight_rank,
                                                 conv_transpose_shape};
const bnf_fold_layer bnf_layer_gemm = {"Gemm", rank_2, gemm_shape};
const bnf_fold_layer bnf_layer_matmul = {"MatMul", input_rank, matmul_shape};
