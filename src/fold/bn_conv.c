/* fold/bn_conv.c: BatchNormalization -> Conv (BN before the layer).
 * Conv(x * s + t) = Conv'(x) with W'[m, c, ...] = W[m, c, ...] * s_c and
 * b'_m = b_m + sum_{c,k} W[m, c, k] * t_c, c running over the input channels
 * of m's group.  Exact only when the Conv pads nothing: zero padding of the
 * normalised input is not zero padding of the raw input.  auto_pad SAME_UPPER
 * / SAME_LOWER pads (ceil(in / s) - 1) * s + (k - 1) * d + 1 - in in all per
 * axis: nothing when the kernel spans one element, or from the input's known
 * size (a kernel equal to a stride that divides it, say). */
#include "internal.h"

#include <string.h>

/* Whether auto_pad SAME_* pads nothing on any axis (sizes as far as known). */
static int same_pads_nothing(const bnf_fold_job *job)
{
    const Onnx__AttributeProto *dil = bnf_node_attr(job->layer, "dilations");
    const Onnx__AttributeProto *str = bnf_node_attr(job->layer, "strides");
    const bnf_array *w = job->w;
    for (size_t d = 2; d < w->rank; d++) {
        int64_t dl = dil && d - 2 < dil->n_ints ? dil->ints[d - 2] : 1;
        int64_t st = str && d - 2 < str->n_ints ? str->ints[d - 2] : 1;
        int64_t span = (w->dims[d] - 1) * dl + 1, in;
        if (span == 1)
            continue;
        if (job->in_rank != (int)w->rank || (in = job->in_dims[d]) < 1 || st < 1)
            return 0;
        if (((in + st - 1) / st - 1) * st + span - in > 0)
            return 0;
    }
    return 1;
}

static bnf_status match(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *b = job->b;
    const Onnx__AttributeProto *pads = bnf_node_attr(job->layer, "pads");
    const Onnx__AttributeProto *ap = bnf_node_attr(job->layer, "auto_pad");
    int64_t g = bnf_attr_int(job->layer, "group", 1), m_out, c_per_g, m_per_g;
    size_t inner;

    int same = ap && ap->has_s && ap->s.len > 4 && memcmp(ap->s.data, "SAME", 4) == 0;
    if (w->rank < 3)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "weight of rank %zu", w->rank);
    if (same ? !same_pads_nothing(job)
             : ap && ap->has_s && !(ap->s.len == 6 && memcmp(ap->s.data, "NOTSET", 6) == 0) &&
                   !(ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0))
        return bnf_fold_decline(job, BNF_PADDING, "the Conv pads its input (auto_pad %.*s%s): "
                                "padding the normalised input is not padding the raw one",
                                (int)ap->s.len, (const char *)ap->s.data,
                                same ? ", with this kernel and the input's size" : "");
    for (size_t i = 0; !same && pads && i < pads->n_ints; i++)
        if (pads->ints[i] != 0)
            return bnf_fold_decline(job, BNF_PADDING, "the Conv pads its input: padding the "
                                    "normalised input with zeros is not padding the raw one");
    if (w->rank < 3 || g <= 0 || w->dims[0] % g != 0)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "weight of rank %zu with group %lld",
                                w->rank, (long long)g);
    m_out = w->dims[0];
    c_per_g = w->dims[1];
    m_per_g = m_out / g;
    if (c_per_g * g != job->bn->c)
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "the Conv reads %lld channels, the BN "
                                "has %lld", (long long)(c_per_g * g), (long long)job->bn->c);
    if (b && (b->rank != 1 || b->n != (size_t)m_out))
        return bnf_fold_decline(job, BNF_SHAPE_MISMATCH, "bias has %zu values, expected %lld",
                                b->n, (long long)m_out);
    inner = (m_out && c_per_g) ? w->n / (size_t)(m_out * c_per_g) : 0;
    inner = inner ? inner : 1;
    /* W[m, c, ...] * s[(m / (M/g)) * (C/g) + c]: groups of M/g rows of W */
    bnf_fold_scale(job, inner, c_per_g ? (size_t)c_per_g : 1,
                   g == 1 ? 0 : (size_t)m_per_g * (size_t)c_per_g * inner);
    return BNF_OK;
}

/* b'_m = b_m + sum over m's group's input channels c and the kernel of W * t_c */
static bnf_status fold(bnf_fold_job *job)
{
    const bnf_array *w = job->w, *b = job->b;
    int64_t g = bnf_attr_int(job->layer, "group", 1);
    int64_t m_out = w->dims[0], c_per_g = w->dims[1], m_per_g = m_out / g;
    size_t inner = (m_out && c_per_g) ? w->n / (size_t)(m_out * c_per_g) : 0;

    job->new_b.rank = 1;
    job->new_b.n = (size_t)m_out;
    job->new_b.dims = bnf_malloc(sizeof *job->new_b.dims);
    job->new_b.v = bnf_malloc((size_t)(m_out ? m_out : 1) * sizeof *job->new_b.v);
    if (!job->new_b.dims || !job->new_b.v)
        return BNF_ERR_NOMEM;
    job->new_b.dims[0] = m_out;
    for (int64_t m = 0; m < m_out; m++) {
        double acc = b ? b->v[m] : 0.0;
        for (int64_t cl = 0; cl < c_per_g; cl++) {
            int64_t c = (m / m_per_g) * c_per_g + cl;
            size_t base = ((size_t)m * (size_t)c_per_g + (size_t)cl) * inner;
            for (size_t k = 0; k < inner; k++)
                acc += w->v[base + k] * job->bn->t[c];
        }
        job->new_b.v[m] = acc;
    }
    return BNF_OK;
}

static int64_t channels(const Onnx__NodeProto *layer, const bnf_array *w)
{
    return w->rank >= 3 ? w->dims[1] * bnf_attr_int(layer, "group", 1) : -1;
}

const bnf_fold_pattern bnf_fold_bn_conv = {
    .layer = &bnf_layer_conv, .position = BNF_BEFORE_LAYER, .channels = channels,
    .match = match, .fold = fold, .bias_reads_weight = 1,
};
