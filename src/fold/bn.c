/* bn.c: what a BatchNormalization node means, per opset, and its parameters.
 *
 * Y = (X - mean) / sqrt(var + eps) * scale + B over axis 1, which we write as
 * Y = X * s + t with s = scale / sqrt(var + eps) and t = B - mean * s, computed
 * in double.  The same s and t serve every fold, so every fold agrees with the
 * operator's definition in one place. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void bnf_bn_release(bnf_bn *bn)
{
    bnf_free(bn->s);
    bnf_free(bn->t);
    memset(bn, 0, sizeof *bn);
}

/* The BatchNormalization version in force for a model opset. */
static int bn_version(int64_t opset)
{
    static const int versions[] = {15, 14, 9, 7, 6, 1};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        if (opset >= versions[i])
            return versions[i];
    return 1;
}

static int output_named(const Onnx__NodeProto *n, size_t i)
{
    return i < n->n_output && n->output[i] && *n->output[i];
}

/* Why the node is not in inference mode, or NULL when it is. */
static bnf_code training_reason(const bnf_graph *gi, const Onnx__NodeProto *n, int version,
                                char *reason, size_t size)
{
    if (version <= 6 && bnf_attr_int(n, "is_test", 0) == 0) {
        snprintf(reason, size, "is_test=0 (training mode, opset %d)", version);
        return BNF_TRAINING_MODE;
    }
    if (version >= 14 && bnf_attr_int(n, "training_mode", 0) != 0) {
        snprintf(reason, size, "training_mode=1");
        return BNF_TRAINING_MODE;
    }
    for (size_t i = 1; i < n->n_output; i++) {
        if (!output_named(n, i))
            continue;
        /* From opset 7 to 13 the optional outputs themselves select training mode. */
        if ((version >= 7 && version < 14) || bnf_graph_uses(gi, n->output[i]) > 0) {
            snprintf(reason, size, "output %zu ('%s') is %s: training-mode statistics", i,
                     n->output[i], bnf_graph_uses(gi, n->output[i]) ? "used" : "requested");
            return BNF_TRAINING_MODE;
        }
    }
    return BNF_NO_CODE;
}

static const char *param_names[] = {"scale", "B", "mean", "var"};

bnf_status bnf_bn_read(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *node,
                       int64_t opset, bnf_bn *bn, bnf_code *code, char *reason,
                       size_t reason_size, bnf_err *err)
{
    int version = bn_version(opset);
    bnf_array p[4];
    bnf_status rc = BNF_OK;
    const char *nname = node->name ? node->name : "";

    memset(bn, 0, sizeof *bn);
    memset(p, 0, sizeof p);
    bn->c = -1;
    bn->eps = bnf_attr_float(node, "epsilon", 1e-5);
    bn->min_var = NAN;
    bn->max_abs_scale = NAN;
    *code = BNF_NO_CODE;
    reason[0] = '\0';

    if (opset > BNF_BN_NEWEST_OPSET) {
        *code = BNF_UNKNOWN_OPSET;
        snprintf(reason, reason_size, "ai.onnx opset %lld: BatchNormalization is known up to "
                 "opset %d", (long long)opset, BNF_BN_NEWEST_OPSET);
        return BNF_OK;
    }
    if (node->n_input < 5) {
        return bnf_fail(err, BNF_ERR_INVALID,
                        "BatchNormalization node '%s' has %zu inputs, needs 5", nname,
                        node->n_input);
    }
    for (int i = 0; i < 4; i++) {
        bnf_const_kind kind;
        const char *in = bnf_node_input(node, (size_t)i + 1);
        if (!in) {
            rc = bnf_fail(err, BNF_ERR_INVALID, "BatchNormalization node '%s' has no %s input",
                          nname, param_names[i]);
            goto out;
        }
        if ((rc = bnf_graph_const(m, gi, in, &kind, &p[i], err)))
            goto out;
        if (kind != BNF_CONST_YES && !*code) {
            *code = kind == BNF_CONST_NO            ? BNF_PARAM_NOT_CONSTANT
                    : kind == BNF_CONST_OVERRIDABLE ? BNF_PARAM_OVERRIDABLE
                                                    : BNF_UNSUPPORTED_DTYPE;
            snprintf(reason, reason_size,
                     kind == BNF_CONST_NO ? "%s '%s' is computed at run time"
                     : kind == BNF_CONST_OVERRIDABLE
                         ? "%s '%s' is an initializer also listed as a graph input: a user may "
                           "override it"
                         : "%s '%s' is not float, double, float16 or bfloat16",
                     param_names[i], in);
        }
    }
    if (*code)
        goto mode;
    bn->c = (int64_t)p[0].n;
    for (int i = 0; i < 4; i++) {
        if (p[i].n != p[0].n || p[i].rank != 1) {
            if (version <= 7 && bnf_attr_int(node, "spatial", 1) == 0)
                break; /* reported below */
            *code = BNF_SHAPE_MISMATCH;
            snprintf(reason, reason_size, "%s '%s' has %zu values in %zu dimensions, %s has %zu",
                     param_names[i], node->input[i + 1], p[i].n, p[i].rank, param_names[0],
                     p[0].n);
            goto mode;
        }
    }
    if (version <= 7 && bnf_attr_int(node, "spatial", 1) == 0) {
        *code = BNF_SPATIAL;
        snprintf(reason, reason_size, "spatial=0: parameters per element, not per channel");
        goto mode;
    }
    bn->s = bnf_malloc((p[0].n ? p[0].n : 1) * sizeof *bn->s);
    bn->t = bnf_malloc((p[0].n ? p[0].n : 1) * sizeof *bn->t);
    if (!bn->s || !bn->t) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    bn->max_abs_scale = 0;
    bn->min_var = INFINITY;
    for (size_t c = 0; c < p[0].n; c++) {
        double var = p[3].v[c];
        bn->s[c] = p[0].v[c] / sqrt(var + bn->eps);
        bn->t[c] = p[1].v[c] - p[2].v[c] * bn->s[c];
        /* a NaN, once seen, stays: the statistic is then "not a number" */
        if (!isnan(bn->min_var) && (isnan(var) || var < bn->min_var))
            bn->min_var = var;
        if (!isnan(bn->max_abs_scale) && (isnan(bn->s[c]) || fabs(bn->s[c]) > bn->max_abs_scale))
            bn->max_abs_scale = fabs(bn->s[c]);
        if (!isfinite(bn->s[c]) || !isfinite(bn->t[c])) {
            if (!*code) {
                *code = BNF_NON_FINITE;
                snprintf(reason, reason_size,
                         "channel %zu: var %g, epsilon %g give a non-finite scale or shift", c,
                         var, bn->eps);
            }
        }
    }
mode:
    {
        /* Training mode outranks parameter problems: it is the first thing to fix. */
        char why[160];
        bnf_code tcode = training_reason(gi, node, version, why, sizeof why);
        if (tcode) {
            *code = tcode;
            snprintf(reason, reason_size, "%s", why);
        }
    }
out:
    for (int i = 0; i < 4; i++)
        bnf_array_release(&p[i]);
    if (rc || *code) {
        bnf_free(bn->s);
        bnf_free(bn->t);
        bn->s = bn->t = NULL;
    }
    return rc;
}
