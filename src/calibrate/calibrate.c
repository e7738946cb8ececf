/*
 * calibrate/calibrate.c: BatchNormalization running statistics re-estimated
 * from data (bnfold calibrate).
 *
 * Every calibration set goes through the main graph node by node, all sets
 * together (one run each, stepped, as the end-to-end check steps its runs).
 * When the next node is a BN to calibrate, its input is in every run: the
 * statistics of each channel over every set, sample and position are taken
 * (per set in two passes, mean then squared deviations, in double; the sets
 * combined by Chan's rule, so the result does not depend on how the samples
 * are split into sets), the BN's output in every run is replaced by what the
 * BN computes with the new statistics, and the runs go on.  So each BN is
 * measured with every BN before it already recalibrated: the distribution the
 * deployed model gives it.  One pass, as many node runs as `bnfold run` of
 * each set; the nodes that make a BN's input, and the BN, run unfused.
 *
 * The estimator is the population variance, sum (x - mean)^2 / n over all n
 * values of a channel.  PyTorch's running_var averages the unbiased variance
 * of each training batch (n / (n - 1) times larger: 1.0005 for a batch of 8
 * images of 16 x 16 positions); with thousands of values per channel the two
 * agree to a few parts in 10^4 or better.
 *
 * Only the statistics change: scale, B and epsilon stay, and so do the names,
 * the order and every other tensor.  New statistics replace a statistic
 * tensor in place when only this BN reads it, else go into new initializers.
 */
#include "internal.h"

#include "eval/eval.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define S(x) ((x) ? (x) : "")

void bnf_calibrate_defaults(bnf_calibrate_options *o)
{
    memset(o, 0, sizeof *o);
}

void bnf_calibration_free(bnf_calibration *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_bns; i++)
        bnf_free(c->bns[i].name);
    bnf_free(c->bns);
    bnf_free(c->findings);
    bnf_free(c);
}

/* One BN to calibrate: where it is and what is new. */
typedef struct target {
    const Onnx__NodeProto *node;
    int64_t c;
    double eps;
    double *gamma, *beta;   /* c each */
    double *mean, *var;     /* the old statistics, then the new */
    double *old_mean, *old_var;
    int32_t stat_dtype[2];  /* of the mean and the variance tensors */
    int done;
} target;

/* Per channel: count, mean and sum of squared deviations, combined over sets. */
typedef struct {
    double n, mean, m2;
} moments;

static void moments_merge(moments *a, const moments *b)
{
    double n = a->n + b->n, d;
    if (b->n == 0)
        return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    d = b->mean - a->mean;
    a->mean += d * b->n / n;
    a->m2 += b->m2 + d * d * a->n * b->n / n;
    a->n = n;
}

static double value_at(const bnf_tensor *x, size_t i)
{
    return x->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? ((const double *)x->data)[i]
                                                             : ((const float *)x->data)[i];
}

/* sum of p[0 .. n) - shift (shift 0) or of its squares (shift the mean), in
 * double; eight partial sums, so that the additions do not wait on each other */
static double run_sum_f32(const float *p, size_t n, double shift, int squares)
{
    double a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            double d = (double)p[i + j] - shift;
            a[j] += squares ? d * d : d;
        }
    for (; i < n; i++) {
        double d = (double)p[i] - shift;
        a[0] += squares ? d * d : d;
    }
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SUM_AVX2 1
/* The same with AVX2: four doubles a vector, two vectors of partial sums. */
__attribute__((target("avx2,fma"))) static double run_sum_f32_avx2(const float *p, size_t n,
                                                                   double shift, int squares)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), vs = _mm256_set1_pd(shift);
    double lanes[4], rest;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + i)), vs);
        __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + i + 4)), vs);
        if (squares) {
            a0 = _mm256_fmadd_pd(d0, d0, a0);
            a1 = _mm256_fmadd_pd(d1, d1, a1);
        } else {
            a0 = _mm256_add_pd(a0, d0);
            a1 = _mm256_add_pd(a1, d1);
        }
    }
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    rest = run_sum_f32(p + i, n - i, shift, squares);
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + rest;
}
#endif

static double run_sum(const bnf_tensor *x, size_t at, size_t n, double shift, int squares)
{
    double s = 0;
#ifdef SUM_AVX2
    if (x->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE && n >= 16 &&
        bnf_cpu_isa() >= BNF_ISA_AVX2)
        return run_sum_f32_avx2((const float *)x->data + at, n, shift, squares);
#endif
    if (x->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        return run_sum_f32((const float *)x->data + at, n, shift, squares);
    for (size_t i = 0; i < n; i++) {
        double d = value_at(x, at + i) - shift;
        s += squares ? d * d : d;
    }
    return s;
}

typedef struct {
    const bnf_tensor *x;
    int64_t c;
    size_t outer, inner;
    moments *acc;
    const struct target *t; /* normalise */
    bnf_tensor *y;
} channel_loop;

/* Channels [lo, hi) of one set: their moments added to acc (the mean, then the
 * squared deviations from it). */
static void measure_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const channel_loop *l = arg;
    (void)tid;
    for (size_t ch = lo; ch < hi; ch++) {
        moments m = {(double)(l->outer * l->inner), 0, 0};
        double sum = 0;
        for (size_t o = 0; o < l->outer; o++)
            sum += run_sum(l->x, (o * (size_t)l->c + ch) * l->inner, l->inner, 0, 0);
        m.mean = m.n ? sum / m.n : 0;
        for (size_t o = 0; o < l->outer; o++)
            m.m2 += run_sum(l->x, (o * (size_t)l->c + ch) * l->inner, l->inner, m.mean, 1);
        moments_merge(&l->acc[ch], &m);
    }
}

static channel_loop loop_of(const bnf_tensor *x, int64_t c)
{
    channel_loop l = {x, c, (size_t)x->dims[0], 1, NULL, NULL, NULL};
    for (size_t d = 2; d < x->rank; d++)
        l.inner *= (size_t)x->dims[d];
    return l;
}

/* One set's moments of x (N x C x ...) per channel, added to acc; channels
 * shared out over the session's threads. */
static void measure(bnf_pool *pool, const bnf_tensor *x, int64_t c, moments *acc)
{
    bnf_op_ctx ctx = {0};
    channel_loop l = loop_of(x, c);
    l.acc = acc;
    ctx.pool = pool;
    bnf_parallel(&ctx, bnf_par_threads(&ctx, (size_t)c, 2 * x->n), (size_t)c, measure_range, &l);
}

/* y = (x - mean) / sqrt(var + eps) * gamma + beta for channels [lo, hi). */
static void normalise_range(void *arg, size_t tid, size_t lo, size_t hi)
{
    const channel_loop *l = arg;
    const struct target *t = l->t;
    (void)tid;
    for (size_t o = 0; o < l->outer; o++)
        for (size_t ch = lo; ch < hi; ch++) {
            double s = t->gamma[ch] / sqrt(t->var[ch] + t->eps);
            double sh = t->beta[ch] - t->mean[ch] * s;
            size_t base = (o * (size_t)t->c + ch) * l->inner;
            if (l->y->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
                for (size_t k = 0; k < l->inner; k++)
                    ((double *)l->y->data)[base + k] = value_at(l->x, base + k) * s + sh;
            } else {
                const float *xp = (const float *)l->x->data + base;
                float *yp = (float *)l->y->data + base, sf = (float)s, hf = (float)sh;
                for (size_t k = 0; k < l->inner; k++)
                    yp[k] = xp[k] * sf + hf;
            }
        }
}

static void normalise(bnf_pool *pool, const bnf_tensor *x, const struct target *t, bnf_tensor *y)
{
    bnf_op_ctx ctx = {0};
    channel_loop l = loop_of(x, t->c);
    l.t = t;
    l.y = y;
    ctx.pool = pool;
    bnf_parallel(&ctx, bnf_par_threads(&ctx, (size_t)t->c, x->n), (size_t)t->c, normalise_range,
                 &l);
}

static void target_release(target *t)
{
    bnf_free(t->gamma);
    bnf_free(t->beta);
    bnf_free(t->mean);
    bnf_free(t->var);
    bnf_free(t->old_mean);
    bnf_free(t->old_var);
}

static int wanted(const bnf_calibrate_options *o, const Onnx__NodeProto *n)
{
    if (!o || !o->n_only)
        return 1;
    for (size_t i = 0; i < o->n_only; i++)
        if (o->only[i] && !strcmp(o->only[i], S(n->name)))
            return 1;
    return 0;
}

/* Reads BN node n's parameters into t; an error names what is wrong. */
static bnf_status target_read(const bnf_model *m, const bnf_graph *gi, int64_t opset,
                              const Onnx__NodeProto *n, target *t, bnf_err *err)
{
    bnf_array p[4] = {{0}};
    bnf_bn bn = {0};
    bnf_code code = BNF_NO_CODE;
    char reason[200] = "";
    bnf_status rc;
    memset(t, 0, sizeof *t);
    t->node = n;
    if (n->n_input < 5)
        return bnf_fail(err, BNF_ERR_INVALID, "BatchNormalization '%s' has %zu inputs, not 5",
                        S(n->name), n->n_input);
    if ((rc = bnf_bn_read(m, gi, n, opset, &bn, &code, reason, sizeof reason, err)))
        return rc;
    t->eps = bn.eps;
    bnf_bn_release(&bn);
    if (code == BNF_TRAINING_MODE)
        return bnf_fail(err, BNF_ERR_INVALID, "BatchNormalization '%s' is in training mode (%s): "
                        "it normalises with each batch's own statistics, there are none to "
                        "calibrate", S(n->name), reason);
    for (int k = 0; k < 4 && !rc; k++) {
        bnf_const_kind kind;
        if ((rc = bnf_graph_const(m, gi, n->input[k + 1], &kind, &p[k], err)))
            break;
        if (kind != BNF_CONST_YES)
            rc = bnf_fail(err, BNF_ERR_INVALID, "BatchNormalization '%s': its %s '%s' is not a "
                          "constant", S(n->name),
                          (const char *[]){"scale", "B", "mean", "var"}[k], S(n->input[k + 1]));
        else if (p[k].n != p[0].n)
            rc = bnf_fail(err, BNF_ERR_INVALID, "BatchNormalization '%s': its parameters have "
                          "%zu and %zu channels", S(n->name), p[0].n, p[k].n);
    }
    if (!rc) {
        size_t c = p[0].n ? p[0].n : 1;
        t->c = (int64_t)p[0].n;
        t->stat_dtype[0] = p[2].dtype;
        t->stat_dtype[1] = p[3].dtype;
        t->gamma = p[0].v, p[0].v = NULL;
        t->beta = p[1].v, p[1].v = NULL;
        t->mean = p[2].v, p[2].v = NULL;
        t->var = p[3].v, p[3].v = NULL;
        t->old_mean = bnf_malloc(c * sizeof *t->old_mean);
        t->old_var = bnf_malloc(c * sizeof *t->old_var);
        if (!t->old_mean || !t->old_var)
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        else {
            memcpy(t->old_mean, t->mean, (size_t)t->c * sizeof *t->mean);
            memcpy(t->old_var, t->var, (size_t)t->c * sizeof *t->var);
        }
    }
    for (int k = 0; k < 4; k++)
        bnf_array_release(&p[k]);
    if (rc)
        target_release(t);
    return rc;
}

/* The BN's output, as it is made: recomputed from its input (still held by
 * the run until the node is done) with the new statistics. */
typedef struct {
    bnf_run *run;
    const target *t;
    bnf_pool *pool;
} renormalise_ctx;

static bnf_status renormalise(void *ctx, const char *name, bnf_tensor *value, bnf_err *err)
{
    const renormalise_ctx *c = ctx;
    const bnf_tensor *x = bnf_run_value(c->run, S(c->t->node->input[0]), NULL);
    if (strcmp(name, S(c->t->node->output[0])) != 0)
        return BNF_OK;
    if (!x || x->n != value->n || x->dtype != value->dtype)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "BatchNormalization '%s': its output is not "
                        "of its input's shape and type", S(c->t->node->name));
    normalise(c->pool, x, c->t, value);
    return BNF_OK;
}

/* The runs at a BN to calibrate: its input in every run measured, its
 * statistics replaced, then the BN run in each, its output recomputed. */
static bnf_status calibrate_at(bnf_pool *pool, bnf_run **runs, size_t n_sets, size_t i,
                               target *t, uint64_t *samples, bnf_err *err)
{
    const char *x_name = S(t->node->input[0]);
    moments *acc = bnf_calloc((size_t)(t->c ? t->c : 1), sizeof *acc);
    bnf_status rc = BNF_OK;
    if (!acc)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n_sets && !rc; k++) {
        const bnf_tensor *x = bnf_run_value(runs[k], x_name, NULL);
        if (!x)
            rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "BatchNormalization '%s': its input '%s' "
                          "is not a value the graph computes (a graph input or a constant)",
                          S(t->node->name), x_name);
        else if ((x->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
                  x->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) ||
                 x->rank < 2 || x->dims[1] != t->c)
            rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "BatchNormalization '%s': its input '%s' "
                          "is %s of rank %zu with %lld channels; calibration takes float or "
                          "double N x %lld x ...", S(t->node->name), x_name,
                          bnf_dtype_name(x->dtype), x->rank,
                          (long long)(x->rank > 1 ? x->dims[1] : 0), (long long)t->c);
        else
            measure(pool, x, t->c, acc);
    }
    if (!rc) {
        for (int64_t ch = 0; ch < t->c; ch++) {
            t->mean[ch] = acc[ch].mean;
            t->var[ch] = acc[ch].n ? acc[ch].m2 / acc[ch].n : 0;
        }
        if (t->c && !*samples)
            *samples = (uint64_t)acc[0].n;
    }
    for (size_t k = 0; k < n_sets && !rc; k++) {
        renormalise_ctx c = {runs[k], t, pool};
        rc = bnf_run_node(runs[k], i, renormalise, &c, err);
    }
    t->done = !rc;
    bnf_free(acc);
    return rc;
}

/* An observer that looks at nothing: given to bnf_run_node, it makes the node
 * run unfused, so that a BN's input exists as a value. */
static bnf_status unfused(void *ctx, const char *name, bnf_tensor *value, bnf_err *err)
{
    (void)ctx, (void)name, (void)value, (void)err;
    return BNF_OK;
}

/* Writes t's new statistic k (0 mean, 1 variance) into the model: in place
 * when only this BN reads the tensor, else as a new initializer. */
static bnf_status store(bnf_model *m, bnf_graph *gi, bnf_names *names, target *t, int k,
                        bnf_err *err)
{
    Onnx__GraphProto *g = gi->g;
    Onnx__NodeProto *n = (Onnx__NodeProto *)t->node;
    const char *old = n->input[k + 3];
    const double *v = k ? t->var : t->mean;
    Onnx__TensorProto *nt = NULL;
    intptr_t idx;
    int64_t dims[1] = {t->c};
    const char *name;
    char *keep = NULL;
    bnf_status rc;
    if (bnf_strmap_get(gi->init, old, &idx) && idx >= 0 && bnf_graph_uses(gi, old) == 1 &&
        !bnf_strmap_get(gi->input, old, NULL)) {
        Onnx__TensorProto *was = g->initializer[idx];
        if ((rc = bnf_proto_new(S(was->name), t->stat_dtype[k], was->dims, was->n_dims, v,
                                (size_t)t->c, &nt, err)))
            return rc;
        g->initializer[idx] = nt;
        onnx__tensor_proto__free_unpacked(was, bnf_model_alloc(m));
        return bnf_graph_reindex(gi, err);
    }
    /* a new initializer; what made the old value goes if nothing else reads it
     * (an exporter's Identity of one tensor shared by every BN, say), and then
     * the new one takes the old name */
    name = bnf_names_fresh(names, S(n->name), k ? "_calibrated_var" : "_calibrated_mean", err);
    if (!name)
        return err ? err->code : BNF_ERR_NOMEM;
    if (!(keep = bnf_strdup(old)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if ((rc = bnf_proto_new(name, t->stat_dtype[k], dims, 1, v, (size_t)t->c, &nt, err)) ||
        (rc = bnf_graph_add_initializer(gi, nt, err)) ||
        (rc = bnf_node_set_input(n, (size_t)k + 3, name, err)) ||
        (rc = bnf_graph_reindex(gi, err)) || (rc = bnf_graph_collect(gi, &keep, 1, err)))
        goto out;
    if (!bnf_strmap_get(gi->producer, keep, NULL) && !bnf_strmap_get(gi->init, keep, NULL) &&
        !bnf_strmap_get(gi->input, keep, NULL) && !bnf_strmap_get(gi->output, keep, NULL) &&
        !bnf_graph_uses(gi, keep)) {
        char *renamed = bnf_strdup(keep);
        if (!renamed) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
        bnf_free(nt->name);
        nt->name = renamed;
        if ((rc = bnf_node_set_input(n, (size_t)k + 3, keep, err)))
            goto out;
        rc = bnf_graph_reindex(gi, err);
    }
out:
    bnf_free(keep);
    return rc;
}

static void summary(const double *v, int64_t c, double out[3])
{
    out[0] = INFINITY, out[1] = -INFINITY, out[2] = 0;
    for (int64_t i = 0; i < c; i++) {
        out[0] = v[i] < out[0] ? v[i] : out[0];
        out[1] = v[i] > out[1] ? v[i] : out[1];
        out[2] += v[i] / (double)c;
    }
    if (!c)
        out[0] = out[1] = 0;
}

static bnf_status report_of(const target *ts, size_t n, bnf_calibration *c, bnf_err *err)
{
    if (!(c->bns = bnf_calloc(n ? n : 1, sizeof *c->bns)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const target *t = &ts[i];
        bnf_calibrated_bn *b = &c->bns[c->n_bns++];
        if (!(b->name = bnf_strdup(S(t->node->name))))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        b->channels = t->c;
        summary(t->old_mean, t->c, b->mean_before);
        summary(t->mean, t->c, b->mean_after);
        summary(t->old_var, t->c, b->var_before);
        summary(t->var, t->c, b->var_after);
        for (int64_t ch = 0; ch < t->c; ch++) {
            double dv = fabs(t->var[ch] - t->old_var[ch]) /
                        (t->old_var[ch] > 0 ? t->old_var[ch] : 1e-300);
            double dm = fabs(t->mean[ch] - t->old_mean[ch]) /
                        sqrt(fabs(t->old_var[ch]) + t->eps);
            b->max_var_change = dv > b->max_var_change ? dv : b->max_var_change;
            b->max_mean_shift = dm > b->max_mean_shift ? dm : b->max_mean_shift;
        }
    }
    return BNF_OK;
}

/* Counts r's findings by code into c, as before (after = 0) or after. */
static bnf_status count_findings(const bnf_report *r, int after, bnf_calibration *c,
                                 bnf_err *err)
{
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *f = &r->findings[i];
        size_t k = 0;
        while (k < c->n_findings && strcmp(c->findings[k].code, f->code) != 0)
            k++;
        if (k == c->n_findings) {
            bnf_finding_change *g = bnf_realloc(c->findings, (k + 1) * sizeof *g);
            if (!g)
                return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            c->findings = g;
            c->findings[c->n_findings++] = (bnf_finding_change){f->code, f->severity, 0, 0};
        }
        if (after)
            c->findings[k].after++;
        else
            c->findings[k].before++;
    }
    return BNF_OK;
}

static void shape_text(char *buf, size_t n, int32_t dtype, const int64_t *dims, size_t rank)
{
    int w = snprintf(buf, n, "%s [", bnf_dtype_name(dtype));
    for (size_t d = 0; d < rank && w > 0 && (size_t)w < n; d++)
        w += snprintf(buf + w, n - (size_t)w, "%s%lld", d ? ", " : "", (long long)dims[d]);
    if (w > 0 && (size_t)w < n)
        snprintf(buf + w, n - (size_t)w, "]");
}

/* Set k's tensors have the types and ranks of the model's inputs, and their
 * sizes where the model fixes one above 1 (the batch may differ). */
static bnf_status fits(const bnf_session *s, const bnf_tensors *in, size_t k, bnf_err *err)
{
    for (size_t i = 0; i < in->n; i++) {
        int64_t shape[BNF_MAX_RANK];
        size_t rank = 0;
        int32_t dtype = 0;
        const bnf_tensor *t = &in->t[i];
        int ok;
        bnf_status rc;
        if ((rc = bnf_session_input_shape(s, i, NULL, 0, &dtype, shape, &rank, err)))
            return rc;
        ok = t->dtype == dtype && t->rank == rank;
        for (size_t d = 1; ok && d < rank; d++)
            ok = shape[d] <= 1 || t->dims[d] == shape[d];
        if (!ok) {
            char got[160], want[160];
            shape_text(got, sizeof got, t->dtype, t->dims, t->rank);
            shape_text(want, sizeof want, dtype, shape, rank);
            return bnf_fail(err, BNF_ERR_INVALID, "calibration set %zu: input '%s' is %s; the "
                            "model takes %s (the first dimension may differ)", k + 1,
                            bnf_session_input_name(s, i), got, want);
        }
    }
    return BNF_OK;
}

bnf_status bnf_calibrate(bnf_model *model, const bnf_input_set *sets, size_t n_sets,
                         const bnf_calibrate_options *o, bnf_calibration **out, bnf_err *err)
{
    Onnx__GraphProto *g;
    bnf_graph gi = {0};
    bnf_names names = {0};
    bnf_session *s = NULL;
    bnf_session_options so = {0};
    bnf_run **runs = NULL;
    bnf_tensors *in = NULL;
    target *ts = NULL;
    uint8_t *make_unfused = NULL;
    size_t n_t = 0, n_nodes, named = 0;
    int64_t opset;
    uint64_t samples = 0;
    bnf_calibration *c = NULL;
    bnf_report *health = NULL;
    struct timespec t0;
    bnf_status rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    *out = NULL;
    if (!model || !(g = model->proto->graph))
        return bnf_fail(err, BNF_ERR_INVALID, "the model has no graph");
    if (!n_sets)
        return bnf_fail(err, BNF_ERR_INVALID, "no calibration data: give at least one input set");
    if (!(c = bnf_calloc(1, sizeof *c)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if ((rc = bnf_inspect(model, &health, err)) || (rc = count_findings(health, 0, c, err)))
        goto out;
    bnf_report_free(health);
    health = NULL;
    opset = bnf_model_opset(model->proto, "");
    if ((rc = bnf_graph_index(&gi, model, g, model->proto->ir_version, err)))
        goto out;
    if (!(ts = bnf_calloc(g->n_node + 1, sizeof *ts))) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!bnf_is_op(n, "BatchNormalization") || !wanted(o, n))
            continue;
        if ((rc = target_read(model, &gi, opset, n, &ts[n_t], err)))
            goto out;
        n_t++;
    }
    for (size_t k = 0; o && k < o->n_only; k++) { /* every name given is a BN of the graph */
        int found = 0;
        for (size_t i = 0; i < n_t && !found; i++)
            found = !strcmp(S(ts[i].node->name), S(o->only[k]));
        named += found;
        if (!found) {
            rc = bnf_fail(err, BNF_ERR_INVALID, "--only: no BatchNormalization named '%s' in "
                          "the main graph", S(o->only[k]));
            goto out;
        }
    }
    if (!n_t) {
        rc = bnf_fail(err, BNF_ERR_INVALID, "the model's main graph has no BatchNormalization "
                      "to calibrate");
        goto out;
    }
    so.threads = o ? o->threads : 0;
    if ((rc = bnf_session_new(model, &so, &s, err)))
        goto out;
    bnf_session_lean(s);
    n_nodes = bnf_session_n_nodes(s);
    runs = bnf_calloc(n_sets, sizeof *runs);
    in = bnf_calloc(n_sets, sizeof *in);
    make_unfused = bnf_calloc(n_nodes + 1, 1);
    if (!runs || !in || !make_unfused) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_nodes; i++) { /* a BN, and what makes a BN's input, unfused */
        const Onnx__NodeProto *n = bnf_session_node(s, i);
        for (size_t k = 0; k < n_t && !make_unfused[i]; k++)
            for (size_t j = 0; j < n->n_output; j++)
                if (n == ts[k].node ||
                    (n->output[j] && !strcmp(n->output[j], S(ts[k].node->input[0]))))
                    make_unfused[i] = 1;
    }
    for (size_t k = 0; k < n_sets; k++) {
        if (sets[k].n < bnf_session_n_inputs(s)) {
            rc = bnf_fail(err, BNF_ERR_INVALID, "calibration set %zu gives %zu of the model's %zu "
                          "inputs (the first missing: '%s')", k + 1, sets[k].n,
                          bnf_session_n_inputs(s), bnf_session_input_name(s, sets[k].n));
            goto out;
        }
        if ((rc = bnf_session_make_inputs(s, sets[k].tensors, sets[k].n, NULL, 0, 1, &in[k],
                                          err)) ||
            (rc = fits(s, &in[k], k, err)) || (rc = bnf_run_new(s, &runs[k], err)) ||
            (rc = bnf_run_start(runs[k], in[k].ptr, err)))
            goto out;
    }
    for (size_t i = 0; i < n_nodes && !rc; i++) {
        const Onnx__NodeProto *n = bnf_session_node(s, i);
        target *t = NULL;
        for (size_t k = 0; k < n_t && !t; k++)
            if (ts[k].node == n)
                t = &ts[k];
        if (t) {
            rc = calibrate_at(bnf_session_pool(s), runs, n_sets, i, t, &samples, err);
        } else {
            for (size_t k = 0; k < n_sets && !rc; k++)
                rc = bnf_run_node(runs[k], i, make_unfused[i] ? unfused : NULL, NULL, err);
        }
        bnf_session_node_release(s, i);
    }
    if (rc)
        goto out;
    for (size_t k = 0; k < n_t; k++)
        if (!ts[k].done) {
            rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "BatchNormalization '%s' did not run",
                          S(ts[k].node->name));
            goto out;
        }
    /* the runs and the session read the model's tensors: the new statistics go in after */
    for (size_t k = 0; k < n_sets; k++) {
        bnf_run_end(runs[k]);
        bnf_run_free(runs[k]);
        runs[k] = NULL;
    }
    bnf_session_free(s);
    s = NULL;
    if ((rc = bnf_names_collect(&names, model->proto, err)) || (rc = bnf_graph_reindex(&gi, err)))
        goto out;
    for (size_t k = 0; k < n_t && !rc; k++)
        if (!(rc = store(model, &gi, &names, &ts[k], 0, err)))
            rc = store(model, &gi, &names, &ts[k], 1, err);
    if (rc)
        goto out;
    model->changed = 1;
    if ((rc = bnf_inspect(model, &health, err)) || (rc = count_findings(health, 1, c, err)))
        goto out;
    c->n_sets = n_sets;
    c->samples = samples;
    if ((rc = report_of(ts, n_t, c, err)))
        goto out;
    c->ms = bnf_ms_since(&t0);
    *out = c;
    c = NULL;
    (void)named;
out:
    bnf_calibration_free(c);
    bnf_report_free(health);
    for (size_t k = 0; runs && k < n_sets; k++) {
        if (runs[k]) {
            bnf_run_end(runs[k]);
            bnf_run_free(runs[k]);
        }
    }
    for (size_t k = 0; in && k < n_sets; k++)
        bnf_tensors_release(&in[k]);
    bnf_free(runs);
    bnf_free(in);
    bnf_free(make_unfused);
    bnf_session_free(s);
    for (size_t k = 0; k < n_t; k++)
        target_release(&ts[k]);
    bnf_free(ts);
    bnf_names_release(&names);
    bnf_graph_release(&gi);
    return rc;
}

/* ---- the report ---------------------------------------------------------------------- */

void bnf_calibration_write_text(const bnf_calibration *c, FILE *f)
{
    fprintf(f, "%-32s %8s  %-30s  %-30s  %10s %10s\n", "BatchNormalization", "channels",
            "mean before -> after (avg)", "var before -> after (avg)", "max dvar/v",
            "max dmean/sd");
    for (size_t i = 0; i < c->n_bns; i++) {
        const bnf_calibrated_bn *b = &c->bns[i];
        char m[64], v[64];
        snprintf(m, sizeof m, "%.4g -> %.4g", b->mean_before[2], b->mean_after[2]);
        snprintf(v, sizeof v, "%.4g -> %.4g", b->var_before[2], b->var_after[2]);
        fprintf(f, "%-32s %8lld  %-30s  %-30s  %10.3g %10.3g\n", b->name,
                (long long)b->channels, m, v, b->max_var_change, b->max_mean_shift);
    }
    fprintf(f, "\n%zu BatchNormalization calibrated on %zu input set(s), %llu values per "
            "channel for the first; %.0f ms\n", c->n_bns, c->n_sets,
            (unsigned long long)c->samples, c->ms);
    for (size_t i = 0; i < c->n_findings; i++)
        fprintf(f, "health %s %s: %zu BN(s) before, %zu after\n", c->findings[i].severity,
                c->findings[i].code, c->findings[i].before, c->findings[i].after);
    if (!c->n_findings)
        fprintf(f, "health: no findings before or after\n");
}

static void json_triple(FILE *f, const char *key, const double v[3])
{
    fprintf(f, "\"%s\": {\"min\": ", key);
    bnf_json_num(f, v[0]);
    fputs(", \"max\": ", f);
    bnf_json_num(f, v[1]);
    fputs(", \"mean\": ", f);
    bnf_json_num(f, v[2]);
    fputs("}", f);
}

void bnf_calibration_write_json(const bnf_calibration *c, FILE *f)
{
    bnf_json_head(f, "calibrate");
    fprintf(f, ",\n  \"sets\": %zu,\n  \"values_per_channel\": %llu,\n  \"batchnorms\": [",
            c->n_sets, (unsigned long long)c->samples);
    for (size_t i = 0; i < c->n_bns; i++) {
        const bnf_calibrated_bn *b = &c->bns[i];
        fputs(i ? ",\n    {" : "\n    {", f);
        fputs("\"name\": ", f);
        bnf_json_str(f, b->name);
        fprintf(f, ", \"channels\": %lld, ", (long long)b->channels);
        json_triple(f, "mean_before", b->mean_before);
        fputs(", ", f);
        json_triple(f, "mean_after", b->mean_after);
        fputs(", ", f);
        json_triple(f, "var_before", b->var_before);
        fputs(", ", f);
        json_triple(f, "var_after", b->var_after);
        fputs(", \"max_var_change\": ", f);
        bnf_json_num(f, b->max_var_change);
        fputs(", \"max_mean_shift\": ", f);
        bnf_json_num(f, b->max_mean_shift);
        fputs("}", f);
    }
    fputs("\n  ],\n  \"findings\": [", f);
    for (size_t i = 0; i < c->n_findings; i++) {
        fputs(i ? ",\n    {\"code\": " : "\n    {\"code\": ", f);
        bnf_json_str(f, c->findings[i].code);
        fputs(", \"severity\": ", f);
        bnf_json_str(f, c->findings[i].severity);
        fprintf(f, ", \"before\": %zu, \"after\": %zu}", c->findings[i].before,
                c->findings[i].after);
    }
    fprintf(f, "%s],\n  \"ms\": %.1f\n}\n", c->n_findings ? "\n  " : "", c->ms);
}
