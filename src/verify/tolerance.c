/* tolerance.c: when two values are the same value, for both checks (the
 * local check of one fold, local_check.c, and the end-to-end check of the
 * whole model, end_to_end.c), and the checks' defaults.
 *
 * Tolerance: an element passes when |b - a| <= atol * max|a| + rtol * |a|, with
 * a the original's value and max|a| the largest magnitude of that value, so one
 * default serves values of any scale.  The defaults (1e-4, 1e-4) follow what
 * float32 allows deep in a network: folding changes the order of roundings,
 * and a BN with a tiny variance amplifies the difference downstream (up to
 * about 2e-5 of max|a| in torchvision models with randomised statistics). */
#include "verify/verify.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void bnf_verify_defaults(bnf_verify_options *o)
{
    memset(o, 0, sizeof *o);
    o->random_sets = 3;
    o->seed = 1;
    o->rtol = 1e-4;
    o->atol = 1e-4;
}

static void index_string(const bnf_tensor *t, size_t flat, char *buf, size_t size)
{
    size_t used = 0, rem = flat;
    size_t idx[BNF_MAX_RANK];
    for (size_t d = t->rank; d-- > 0;) {
        idx[d] = t->dims[d] ? rem % (size_t)t->dims[d] : 0;
        rem = t->dims[d] ? rem / (size_t)t->dims[d] : 0;
    }
    used += (size_t)snprintf(buf, size, "[");
    for (size_t d = 0; d < t->rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%zu", d ? ", " : "", idx[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* bnf_tensor_compare(b, a, rtol, atol, c) for two float32 tensors of one
 * shape, on the floats themselves (not through the per-element getter); with
 * atol < 0, atol = atol_rel * max|a|, max|a| found in a first pass.  The
 * same arithmetic as bnf_tensor_compare, element for element. */
static void compare_f32(const float *a, const float *b, size_t n, double rtol, double atol_rel,
                        bnf_compare_result *c)
{
    double maxw = 0, worst_excess = -INFINITY, atol;
    for (size_t i = 0; i < n; i++) {
        double w = fabs((double)a[i]);
        if (!isnan(a[i]) && !isnan(b[i]) && isfinite(w) && w > maxw)
            maxw = w;
    }
    c->max_want = maxw;
    atol = atol_rel * maxw;
    for (size_t i = 0; i < n; i++) {
        double x = b[i], y = a[i], d;
        if (x == y)
            continue; /* also equal infinities */
        if (isnan(x) || isnan(y)) {
            if (isnan(x) && isnan(y))
                continue;
            c->n_bad++;
            c->max_abs = INFINITY;
            if (worst_excess < INFINITY) {
                worst_excess = INFINITY;
                c->worst = i;
            }
            continue;
        }
        d = fabs(x - y);
        if (d > c->max_abs)
            c->max_abs = d;
        if (y != 0 && d / fabs(y) > c->max_rel)
            c->max_rel = d / fabs(y);
        if (!(d <= atol + rtol * fabs(y))) {
            double excess = d - (atol + rtol * fabs(y));
            c->n_bad++;
            if (!(excess <= worst_excess)) {
                worst_excess = excess;
                c->worst = i;
            }
        }
    }
    c->pass = c->n_bad == 0;
}

/* Compares b against a under the scaled tolerance; updates r.  Returns 1 if ok. */
int bnf_values_agree(const char *kind, const char *name, const bnf_tensor *a,
                          const bnf_tensor *b, const bnf_verify_options *o, bnf_verify_result *r)
{
    bnf_compare_result c;
    double scale = 0, atol;
    memset(&c, 0, sizeof c);
    c.shape_ok = a->rank == b->rank && a->n == b->n &&
                 (a->rank == 0 || memcmp(a->dims, b->dims, a->rank * sizeof *a->dims) == 0);
    if (c.shape_ok && a->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
        b->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        /* the vectorised screen; the exact pass only when an element fails */
        if (bnf_f32_within(a->data, b->data, a->n, o->rtol, o->atol, &c.max_want,
                           &c.max_abs))
            c.pass = 1;
        else
            compare_f32(a->data, b->data, a->n, o->rtol, o->atol, &c);
        scale = c.max_want;
    } else {
        bnf_tensor_compare(b, a, 0, 0, &c); /* to learn max|a| */
        scale = c.max_want;
        atol = o->atol * scale;
        bnf_tensor_compare(b, a, o->rtol, atol, &c);
    }
    if (!c.shape_ok) {
        snprintf(r->reason, sizeof r->reason, "%s '%s' has a different shape", kind, name);
        snprintf(r->worst_output, sizeof r->worst_output, "%s", name);
        return 0;
    }
    if (c.max_abs > r->worst_abs)
        r->worst_abs = c.max_abs;
    if (scale > 0 && c.max_abs / scale > r->worst_rel)
        r->worst_rel = c.max_abs / scale;
    if (!c.pass) {
        char where[96];
        index_string(a, c.worst, where, sizeof where);
        snprintf(r->worst_output, sizeof r->worst_output, "%s", name);
        snprintf(r->worst_element, sizeof r->worst_element, "%s", where);
        snprintf(r->reason, sizeof r->reason,
                 "%s '%s' differs: %zu elements outside tolerance, worst at %s: %.9g vs %.9g "
                 "(max |diff| %.3g, max |value| %.3g)",
                 kind, name, c.n_bad, where, bnf_get_f64(b, c.worst), bnf_get_f64(a, c.worst),
                 c.max_abs, scale);
        return 0;
    }
    if (!r->worst_output[0] || (scale > 0 && c.max_abs / scale >= r->worst_rel))
        snprintf(r->worst_output, sizeof r->worst_output, "%s", name);
    return 1;
}

