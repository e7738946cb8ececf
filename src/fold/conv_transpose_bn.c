/* fold/conv_transpose_bn.c: ConvTranspose -> BatchNormalization.
 * W[C_in, M/g, k...]: W[i, j, ...] feeds output channel
 * o = (i / (C_in/g)) * (M/g) + j, so W'[i, j, ...] = W[i, j, ...] * s_o.
 * Scaling axis 0 instead is the classic silent bug.  Bias as for Conv. */
#include "internal.h"

static bnf_status match(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *b = job->b;
    int64_t g = bnf_attr_int(job->layer, "group", 1), c_in, m_per_g, m_out;
    size_t inner;

    if (w->rank < 3)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH,
                                "weight has rank %zu, a ConvTranspose needs 3 or more", w->rank);
    c_in = w->dims[0];
    m_per_g = w->dims[1];
    if (g <= 0 || c_in % g != 0)
        return bnf_fold_decline(job, BNF_UNSUPPORTED_LAYER,
                                "group %lld does not divide the %lld input channels",
                                (long long)g, (long long)c_in);
    m_out = m_per_g * g;
    if (m_out != job->bn->c)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH,
                                "the ConvTranspose has %lld output channels, the BN %lld",
                                (long long)m_out, (long long)job->bn->c);
    if (b && (b->rank != 1 || b->n != (size_t)m_out))
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "bias has %zu values, expected %lld",
                                b->n, (long long)m_out);
    inner = (c_in && m_per_g) ? w->n / (size_t)(c_in * m_per_g) : 0;
    inner = inner ? inner : 1;
    /* W[i, j, ...] * s[(i / (C_in/g)) * (M/g) + j]: groups of C_in/g rows of W */
    bnf_fold_scale(job, inner, m_per_g ? (size_t)m_per_g : 1,
                   g == 1 ? 0 : (size_t)(c_in / g) * (size_t)m_per_g * inner);
    return BNF_OK;
}

static int64_t channels(const Onnx__NodeProto *layer, const bnf_array *w)
{
    return w->rank >= 3 ? w->dims[1] * bnf_attr_int(layer, "group", 1) : -1;
}

const bnf_fold_pattern bnf_fold_conv_transpose_bn = {
    .layer = &bnf_layer_conv_transpose, .position = BNF_AFTER_LAYER, .channels = channels,
    .match = match, .fold = bnf_fold_channel_bias,
};
