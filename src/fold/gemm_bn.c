/* fold/gemm_bn.c: Gemm -> BatchNormalization.
 * Y = alpha * A' B' + beta * C with B' = B or B^T: output column n of B' is
 * scaled by s_n (B[:, n] when transB = 0, B[n, :] when transB = 1); alpha stays;
 * C' = s * (beta * C) + t broadcast over [M, N], then beta = 1.
 * Shape of C': absent, scalar or [N] -> [N]; [1, N] -> [1, N]; [M, N] or
 * [M, 1] -> [M, N]. */
#include "internal.h"

#include <stdlib.h>

bnf_status bnf_fold_gemm_columns(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *c = job->b;
    int64_t trans_b = bnf_attr_int(job->layer, "transB", 0);
    double beta = bnf_attr_float(job->layer, "beta", 1.0);
    int64_t k_dim, n_dim, rows = 0, c_rows = 1, c_cols = 1;

    if (w->rank != 2)
        return bnf_fold_decline(job, "SHAPE_MISMATCH", "B has rank %zu, a Gemm needs 2", w->rank);
    n_dim = trans_b ? w->dims[0] : w->dims[1];
    k_dim = trans_b ? w->dims[1] : w->dims[0];
    if (n_dim != job->bn->c)
        return bnf_fold_decline(job, "SHAPE_MISMATCH", "the Gemm has %lld output columns, the BN %lld",
                                (long long)n_dim, (long long)job->bn->c);
    if (c) {
        if (c->rank > 2)
            return bnf_fold_decline(job, "SHAPE_MISMATCH", "C has rank %zu", c->rank);
        if (c->rank == 2) {
            c_rows = c->dims[0];
            c_cols = c->dims[1];
        } else if (c->rank == 1) {
            c_cols = c->dims[0];
        }
        if ((c_cols != 1 && c_cols != n_dim) || c_rows < 1)
            return bnf_fold_decline(job, "SHAPE_MISMATCH",
                                    "C of shape [%lld, %lld] does not broadcast to [M, %lld]",
                                    (long long)c_rows, (long long)c_cols, (long long)n_dim);
        if (c->rank == 2)
            rows = c_rows; /* [1, N] stays 2-D; [M, N] and [M, 1] become [M, N] */
    }
    /* B[k, n] * s_n, or B[n, k] * s_n when transposed */
    bnf_fold_scale(job, trans_b ? (size_t)(k_dim ? k_dim : 1) : 1, n_dim ? (size_t)n_dim : 1);

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

const bnf_fold_pattern bnf_fold_gemm_bn = {"Gemm", BNF_AFTER_LAYER, channels,
                                           bnf_fold_gemm_columns, bnf_fold_gemm_finish};
