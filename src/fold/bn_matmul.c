/* fold/bn_matmul.c: BatchNormalization -> MatMul, with a constant 2-D B.
 * BN normalises axis 1 of its input, which is the K features a MatMul reads
 * only when that input is [M, K] (rank 2).  Then
 * MatMul(x * s + t, B) = x (diag(s) B) + t B: B's row k is scaled by s_k and
 * the MatMul becomes a Gemm with C = t B (alpha = beta = 1, no transposes),
 * Gemm's input-row fold (bn_gemm.c).  Of another rank, axis 1 is not the
 * features: declined. */
#include "internal.h"

static bnf_status match(bnf_fold_job *job)
{
    if (job->in_rank != 2)
        return bnf_fold_decline(job, BNF_UNSUPPORTED_LAYER,
                                job->in_rank < 0
                                    ? "the rank of the MatMul's input is not known (no shape "
                                      "information): BN's axis 1 is the features only for rank 2"
                                    : "the MatMul's input has rank %d: BN's axis 1 is not the "
                                      "features the MatMul reads",
                                job->in_rank);
    return bnf_fold_gemm_rows_match(job);
}

static int64_t channels(const Onnx__NodeProto *layer, const bnf_array *w)
{
    (void)layer;
    return w->rank == 2 ? w->dims[0] : -1;
}

const bnf_fold_pattern bnf_fold_bn_matmul = {
    .layer = &bnf_layer_matmul, .position = BNF_BEFORE_LAYER, .channels = channels,
    .match = match, .fold = bnf_fold_gemm_rows_fold, .bias_reads_weight = 1,
    .finish = bnf_fold_to_gemm,
};
