/* fold/matmul_bn.c: MatMul -> BatchNormalization, with a constant 2-D B.
 * BN normalises axis 1 of its input, which is B's output column only when the
 * MatMul output is [M, N] (A of rank 2): the MatMul then becomes a Gemm with
 * B's columns scaled and C = t.  For [batch, T, N] axis 1 is T: declined. */
#include "internal.h"

#include <string.h>

static bnf_status match(bnf_fold_job *job)
{
    if (job->in_rank != 2)
        return bnf_fold_decline(job, BNF_UNSUPPORTED_LAYER,
                                job->in_rank < 0
                                    ? "the rank of the MatMul's input is not known (no shape "
                                      "information): BN's axis 1 is B's column only for rank 2"
                                    : "the MatMul's input has rank %d: BN's axis 1 is not B's "
                                      "output column",
                                job->in_rank);
    return bnf_fold_gemm_columns_match(job);
}

bnf_status bnf_fold_to_gemm(Onnx__NodeProto *layer, bnf_err *err)
{
    char *gemm = bnf_strdup("Gemm");
    if (!gemm)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    bnf_free(layer->op_type);
    layer->op_type = gemm; /* alpha = beta = 1, no transposes: Gemm's defaults */
    return BNF_OK;
}

static int64_t channels(const Onnx__NodeProto *layer, const bnf_array *w)
{
    (void)layer;
    return w->rank == 2 ? w->dims[1] : -1;
}

const bnf_fold_pattern bnf_fold_matmul_bn = {
    .layer = &bnf_layer_matmul, .position = BNF_AFTER_LAYER, .channels = channels,
    .match = match, .fold = bnf_fold_gemm_columns_fold, .finish = bnf_fold_to_gemm,
};
