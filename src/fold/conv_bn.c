/* fold/conv_bn.c: Conv -> BatchNormalization.
 * W[M, C/g, k...]: output channel m is W's axis 0 whatever the group, so
 * W'[m, ...] = W[m, ...] * s_m and b'_m = b_m * s_m + t_m (b = 0 if absent). */
#include "internal.h"

static bnf_status match(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *b = job->b;
    int64_t m_out;
    size_t inner;

    if (w->rank < 3)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH,
                                "weight has rank %zu, a Conv needs 3 or more", w->rank);
    m_out = w->dims[0];
    if (m_out != job->bn->c)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH,
                                "the Conv has %lld output channels, the BN %lld",
                                (long long)m_out, (long long)job->bn->c);
    if (b && (b->rank != 1 || b->n != (size_t)m_out))
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "bias has %zu values, expected %lld",
                                b->n, (long long)m_out);
    inner = m_out ? w->n / (size_t)m_out : 0;
    bnf_fold_scale(job, inner ? inner : 1, m_out ? (size_t)m_out : 1, 0); /* W[m, ...] * s_m */
    return BNF_OK;
}

bnf_status bnf_fold_channel_bias(bnf_fold_job *job)
{
    const bnf_array *b = job->b;
    size_t m_out = (size_t)job->bn->c;
    job->new_b.rank = 1;
    job->new_b.n = m_out;
    job->new_b.dims = bnf_malloc(sizeof *job->new_b.dims);
    job->new_b.v = bnf_malloc((m_out ? m_out : 1) * sizeof *job->new_b.v);
    if (!job->new_b.dims || !job->new_b.v)
        return BNF_ERR_NOMEM;
    job->new_b.dims[0] = (int64_t)m_out;
    for (size_t m = 0; m < m_out; m++)
        job->new_b.v[m] = (b ? b->v[m] : 0.0) * job->bn->s[m] + job->bn->t[m];
    return BNF_OK;
}

static int64_t channels(const Onnx__NodeProto *layer, const bnf_array *w)
{
    (void)layer;
    return w->rank >= 3 ? w->dims[0] : -1;
}

const bnf_fold_pattern bnf_fold_conv_bn = {
    .layer = &bnf_layer_conv, .position = BNF_AFTER_LAYER, .channels = channels,
    .match = match, .fold = bnf_fold_channel_bias,
};
