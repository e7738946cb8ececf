/* eval/compare.c: NaN-aware elementwise comparison of two tensors. */
#include "eval.h"

#include <math.h>
#include <string.h>

void bnf_tensor_compare(const bnf_tensor *got, const bnf_tensor *want, double rtol, double atol,
                        bnf_compare_result *r)
{
    double worst_excess = -INFINITY;
    memset(r, 0, sizeof *r);
    r->shape_ok = got->rank == want->rank && got->n == want->n &&
                  (got->rank == 0 || memcmp(got->dims, want->dims, got->rank * sizeof *got->dims) == 0);
    if (!r->shape_ok)
        return;
    for (size_t i = 0; i < got->n; i++) {
        double a = bnf_get_f64(got, i), b = bnf_get_f64(want, i), d;
        if (isnan(a) || isnan(b)) {
            if (isnan(a) && isnan(b))
                continue;
            r->n_bad++;
            r->max_abs = INFINITY;
            if (worst_excess < INFINITY) {
                worst_excess = INFINITY;
                r->worst = i;
            }
            continue;
        }
        if (isfinite(b) && fabs(b) > r->max_want)
            r->max_want = fabs(b);
        if (a == b) /* also equal infinities */
            continue;
        d = fabs(a - b);
        if (d > r->max_abs)
            r->max_abs = d;
        if (b != 0 && d / fabs(b) > r->max_rel)
            r->max_rel = d / fabs(b);
        if (!(d <= atol + rtol * fabs(b))) {
            double excess = d - (atol + rtol * fabs(b));
            r->n_bad++;
            if (!(excess <= worst_excess)) {
                worst_excess = excess;
                r->worst = i;
            }
        }
    }
    r->pass = r->n_bad == 0;
}

void bnf_tensor_stats(const bnf_tensor *t, double *min, double *max, double *mean)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    size_t finite = 0;
    for (size_t i = 0; i < t->n; i++) {
        double v = bnf_get_f64(t, i);
        if (isnan(v))
            continue;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        if (isfinite(v)) {
            sum += v;
            finite++;
        }
    }
    *min = t->n ? lo : NAN;
    *max = t->n ? hi : NAN;
    *mean = finite ? sum / (double)finite : NAN;
}
