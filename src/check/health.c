/* health.c: what is numerically suspicious in a BatchNormalization.
 *
 * Every finding has a stable code (the BN_* codes of report/codes.h, with
 * their default severity and meaning), a severity and the channels it
 * concerns.  Thresholds: a tiny variance is below 1e-6, a large scale
 * |gamma / sqrt(var + eps)| above 1e4 (float16's range once folded); epsilon
 * <= 0 is an error when a variance is 0 too. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

typedef struct {
    bnf_report *r;
    size_t bn;
} sink;

/* Adds a finding for the channels where pred(i) holds (none: no finding). */
static bnf_status add(sink *k, bnf_code code, const char *severity, const int *hit, size_t n,
                      int whole, const char *msg, bnf_err *err)
{
    bnf_finding *grown, *f;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += hit[i] != 0;
    if (!count && !whole)
        return BNF_OK;
    grown = bnf_realloc(k->r->findings, (k->r->n_findings + 1) * sizeof *grown);
    if (!grown)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    k->r->findings = grown;
    f = &grown[k->r->n_findings++];
    memset(f, 0, sizeof *f);
    f->code = bnf_code_name(code);
    f->severity = severity ? severity : bnf_code_severity(code);
    f->bn = k->bn;
    f->n_channels = whole ? 0 : count;
    for (size_t i = 0, j = 0; i < n && j < 16 && !whole; i++)
        if (hit[i])
            f->channels[j++] = (int64_t)i;
    snprintf(f->message, sizeof f->message, "%s", msg);
    return BNF_OK;
}

bnf_status bnf_bn_health(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *bn,
                         int training, size_t bn_index, bnf_report *r, bnf_err *err)
{
    bnf_array p[4];
    sink k = {r, bn_index};
    double eps = bnf_attr_float(bn, "epsilon", 1e-5);
    int *hit = NULL, readable = 1, any_zero = 0;
    size_t c = 0;
    bnf_status rc = BNF_OK;
    char msg[200];

    memset(p, 0, sizeof p);
    if (training &&
        (rc = add(&k, BNF_BN_TRAINING_MODE, NULL, NULL, 0, 1,
                  "training-mode BatchNormalization: it normalises with batch statistics", err)))
        return rc;
    for (int i = 0; i < 4 && readable; i++) {
        bnf_const_kind kind;
        const char *in = bnf_node_input(bn, (size_t)i + 1);
        if (!in || (rc = bnf_graph_const(m, gi, in, &kind, &p[i], err)) || kind != BNF_CONST_YES)
            readable = 0;
    }
    if (rc || !readable)
        goto out; /* not constants: nothing to judge */
    c = p[0].n;
    for (int i = 1; i < 4; i++)
        if (p[i].n != c)
            goto out; /* shapes disagree: the fold reports it */
    hit = bnf_calloc(c ? c : 1, sizeof *hit);
    if (!hit) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
#define CHECK(code, cond, text)                                       \
    do {                                                                   \
        for (size_t i = 0; i < c; i++)                                     \
            hit[i] = (cond);                                               \
        snprintf(msg, sizeof msg, "%s", text);                             \
        if ((rc = add(&k, code, NULL, hit, c, 0, msg, err)))               \
            goto out;                                                      \
    } while (0)
    CHECK(BNF_BN_NONFINITE,
          !isfinite(p[0].v[i]) || !isfinite(p[1].v[i]) || !isfinite(p[2].v[i]) || !isfinite(p[3].v[i]),
          "NaN or Inf in scale, B, mean or variance");
    CHECK(BNF_BN_NEG_VAR, p[3].v[i] < 0, "negative running variance");
    CHECK(BNF_BN_ZERO_VAR, p[3].v[i] == 0, "running variance is exactly 0");
    CHECK(BNF_BN_TINY_VAR, p[3].v[i] > 0 && p[3].v[i] < 1e-6,
          "running variance below 1e-6: the channel is scaled by up to 1/sqrt(eps)");
    snprintf(msg, sizeof msg, "per-channel scale |gamma/sqrt(var+eps)| above 1e4: folded weights "
             "may overflow float16");
    for (size_t i = 0; i < c; i++)
        hit[i] = fabs(p[0].v[i] / sqrt(p[3].v[i] + eps)) > 1e4;
    if ((rc = add(&k, BNF_BN_LARGE_SCALE, NULL, hit, c, 0, msg, err)))
        goto out;
    CHECK(BNF_BN_DEAD_CHANNEL, p[0].v[i] == 0,
          "gamma is 0: the channel's output is the constant B");
#undef CHECK
    for (size_t i = 0; i < c; i++)
        any_zero |= p[3].v[i] == 0;
    if (!(eps > 0)) {
        snprintf(msg, sizeof msg, "epsilon is %g%s", eps,
                 any_zero ? " and a variance is 0: division by zero" : "");
        if ((rc = add(&k, BNF_BN_EPS_NONPOS, any_zero ? "error" : NULL, NULL, 0, 1, msg, err)))
            goto out;
    }
    if (c > 1) {
        int untrained = 1;
        for (size_t i = 0; i < c && untrained; i++)
            untrained = p[2].v[i] == 0 && p[3].v[i] == 1;
        if (untrained &&
            (rc = add(&k, BNF_BN_UNTRAINED, NULL, NULL, 0, 1,
                      "running mean all 0 and variance all 1: statistics look never trained "
                      "(exported before any were collected?)", err)))
            goto out;
    }
out:
    bnf_free(hit);
    for (int i = 0; i < 4; i++)
        bnf_array_release(&p[i]);
    return rc;
}
