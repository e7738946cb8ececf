/* fold/bn_gemm.c: BatchNormalization -> Gemm (BN before the layer, on A).
 * With transA = 0, A's axis 1 holds the K features: Gemm(A * s + t) =
 * alpha * A (diag(s) B') + (alpha * t B' + beta * C), so B' row k is scaled by
 * s_k and C' = alpha * t B' + beta * C (shape as for Gemm -> BN), beta = 1.
 * With transA = 1 the BN's axis is not the features: declined. */
#include "internal.h"

/* C's shape: rows (0 when C is not 2-D) and columns (1 when absent or a scalar). */
static void c_shape(const bnf_array *c, int64_t *rows, int64_t *c_rows, int64_t *c_cols)
{
    *rows = c && c->rank == 2 ? c->dims[0] : 0;
    *c_rows = c && c->rank == 2 ? c->dims[0] : 1;
    *c_cols = c && c->rank == 2 ? c->dims[1] : c && c->rank == 1 ? c->dims[0] : 1;
}

bnf_status bnf_fold_gemm_rows_match(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *c = job->b;
    int64_t trans_b = bnf_attr_int(job->layer, "transB", 0);
    int64_t k_dim, n_dim, rows, c_rows, c_cols;

    if (bnf_attr_int(job->layer, "transA", 0))
        return bnf_fold_decline(job, BNF_UNSUPPORTED_LAYER, "transA = 1: the BN normalises A's "
                                "rows, not the features the Gemm reads");
    if (w->rank != 2)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "B has rank %zu, a Gemm needs 2", w->rank);
    k_dim = trans_b ? w->dims[1] : w->dims[0];
    n_dim = trans_b ? w->dims[0] : w->dims[1];
    if (k_dim != job->bn->c)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "the Gemm reads %lld features, the BN "
                                "has %lld channels", (long long)k_dim, (long long)job->bn->c);
    if (c && c->rank > 2)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "C has rank %zu", c->rank);
    c_shape(c, &rows, &c_rows, &c_cols);
    if ((c_cols != 1 && c_cols != n_dim) || c_rows < 1)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "C does not broadcast to [M, %lld]",
                                (long long)n_dim);
    /* B[k, n] * s_k, or B[n, k] * s_k when transposed */
    bnf_fold_scale(job, trans_b ? 1 : (size_t)(n_dim ? n_dim : 1), k_dim ? (size_t)k_dim : 1, 0);
    return BNF_OK;
}

bnf_status bnf_fold_gemm_rows_fold(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *c = job->b;
    int64_t trans_b = bnf_attr_int(job->layer, "transB", 0);
    double alpha = bnf_attr_float(job->layer, "alpha", 1.0);
    double beta = bnf_attr_float(job->layer, "beta", 1.0);
    int64_t k_dim = trans_b ? w->dims[1] : w->dims[0], n_dim = trans_b ? w->dims[0] : w->dims[1];
    int64_t rows, c_rows, c_cols;

    c_shape(c, &rows, &c_rows, &c_cols);
    job->new_b.rank = rows ? 2 : 1;
    job->new_b.n = (size_t)((rows ? rows : 1) * n_dim);
    job->new_b.dims = bnf_malloc(2 * sizeof *job->new_b.dims);
    job->new_b.v = bnf_calloc(job->new_b.n ? job->new_b.n : 1, sizeof *job->new_b.v);
    if (!job->new_b.dims || !job->new_b.v)
        return BNF_ERR_NOMEM;
    job->new_b.dims[0] = rows ? rows : n_dim;
    job->new_b.dims[1] = n_dim;
    for (int64_t k = 0; k < k_dim; k++)
        for (int64_t n = 0; n < n_dim; n++) {
            size_t at = trans_b ? (size_t)(n * k_dim + k) : (size_t)(k * n_dim + n);
            job->new_b.v[n] += alpha * job->bn->t[k] * w->v[at]; /* row 0 for now */
        }
    for (int64_t r = (rows ? rows : 1); r-- > 0;)
        for (int64_t n = 0; n < n_dim; n++) {
            double cv = c ? c->v[(size_t)((c_rows > 1 ? r : 0) * c_cols + (c_cols > 1 ? n : 0))] : 0;
            job->new_b.v[(size_t)(r * n_dim + n)] = job->new_b.v[n] + beta * cv;
        }
    return BNF_OK;
}

static int64_t channels(const Onnx__NodeProto *layer, const bnf_array *w)
{
    if (w->rank != 2)
        return -1;
    return bnf_attr_int(layer, "transB", 0) ? w->dims[1] : w->dims[0];
}

const bnf_fold_pattern bnf_fold_bn_gemm = {
    .layer = &bnf_layer_gemm, .position = BNF_BEFORE_LAYER, .channels = channels,
    .match = bnf_fold_gemm_rows_match, .fold = bnf_fold_gemm_rows_fold, .bias_reads_weight = 1,
    .finish = bnf_fold_gemm_finish,
};
