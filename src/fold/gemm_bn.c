/* fold/gemm_bn.c: Gemm -> BatchNormalization.
 * Y = alpha * A' B' + beta * C with B' = B or B^T: output column n of B' is
 * scaled by s_n (B[:, n] when transB = 0, B[n, :] when transB = 1); alpha stays;
 * C' = s * (beta * C) + t broadcast over [M, N], then beta = 1.
 * Shape of C': absent, scalar or [N] -> [N]; [1, N] -> [1, N]; [M, N] or
 * [M, 1] -> [M, N]. */
#include "internal.h"

/* C's shape as rows x columns (1 x 1 when absent or a scalar). */
static void c_shape(const bnf_array *c, int64_t *rows, int64_t *cols)
{
    *rows = c && c->rank == 2 ? c->dims[0] : 1;
    *cols = c && c->rank == 2 ? c->dims[1] : c && c->rank == 1 ? c->dims[0] : 1;
}

bnf_status bnf_fold_gemm_columns_match(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *c = job->b;
    int64_t trans_b = bnf_attr_int(job->layer, "transB", 0);
    int64_t k_dim, n_dim, c_rows, c_cols;

    if (w->rank != 2)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "B has rank %zu, a Gemm needs 2", w->rank);
    n_dim = trans_b ? w->dims[0] : w->dims[1];
    k_dim = trans_b ? w->dims[1] : w->dims[0];
    if (n_dim != job->bn->c)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH,
                                "the Gemm has %lld output columns, the BN %lld",
                                (long long)n_dim, (long long)job->bn->c);
    c_shape(c, &c_rows, &c_cols);
    if (c && c->rank > 2)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "C has rank %zu", c->rank);
    if ((c_cols != 1 && c_cols != n_dim) || c_rows < 1)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH,
                                "C of shape [%lld, %lld] does not broadcast to [M, %lld]",
                                (long long)c_rows, (long long)c_cols, (long long)n_dim);
    /* B[k, n] * s_n, or B[n, k] * s_n when transposed */
    bnf_fold_scale(job, trans_b ? (size_t)(k_dim ? k_dim : 1) : 1, n_dim ? (size_t)n_dim : 1, 0);
    return BNF_OK;
}

bnf_status bnf_fold_gemm_columns_fold(bnf_fold_job *job)
{
    const bnf_array *c = job->b;
    double beta = bnf_attr_float(job->layer, "beta", 1.0);
    int64_t n_dim = job->bn->c, c_rows, c_cols;
    /* [1, N] stays 2-D; [M, N] and [M, 1] become [M, N] */
    int64_t rows = c && c->rank == 2 ? c->dims[0] : 0;

    c_shape(c, &c_rows, &c_cols);
    job->new_b.rank = rows ? 2 : 1;
    job->new_b.n = (size_t)((rows ? rows : 1) * n_dim);
    job->new_b.dims = bnf_malloc(2 * sizeof *job->new_b.dims);
    job->new_b.v = bnf_malloc((job->new_b.n ? job->new_b.n : 1) * sizeof *job->new_b.v);
    if (!job->new_b.dims || !job->new_b.v)
        return BNF_ERR_NOMEM;
    if (rows) {
        job->new_b.dims[0] = rows;
        job->new_b.dims[1] = n_dim;
    } else {
        job->new_b.dims[0] = n_dim;
    }
    for (int64_t r = 0; r < (rows ? rows : 1); r++)
        for (int64_t n = 0; n < n_dim; n++) {
            double cv = 0;
            if (c)
                cv = c->v[(size_t)((c_rows > 1 ? r : 0) * c_cols + (c_cols > 1 ? n : 0))];
            job->new_b.v[(size_t)(r * n_dim + n)] =
                job->bn->s[n] * (beta * cv) + job->bn->t[n];
        }
    return BNF_OK;
}

bnf_status bnf_fold_gemm_finish(Onnx__NodeProto *layer, bnf_err *err)
{
    if (bnf_attr_float(layer, "beta", 1.0) != 1.0)
        return bnf_node_set_attr_float(layer, "beta", 1.0f, err);
    return BNF_OK;
}

static int64_t channels(const Onnx__NodeProto *layer, const bnf_array *w)
{
    if (w->rank != 2)
        return -1;
    return bnf_attr_int(layer, "transB", 0) ? w->dims[0] : w->dims[1];
}

const bnf_fold_pattern bnf_fold_gemm_bn = {
    .layer = &bnf_layer_gemm, .position = BNF_AFTER_LAYER, .channels = channels,
    .match = bnf_fold_gemm_columns_match, .fold = bnf_fold_gemm_columns_fold,
    .finish = bnf_fold_gemm_finish,
};
