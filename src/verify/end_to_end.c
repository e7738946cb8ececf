/* end_to_end.c: the original and the folded model compared on the same
 * inputs, every output and every value both compute under one name. */
#include "verify/verify.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- end to end, in lockstep -------------------------------------------------------
 *
 * Three runs go through the two graphs together, node by node, on the same
 * inputs: A (the original), B (the folded model) corrected, and B on its own.
 * A value both graphs make under one name (a fold keeps the BN's output name)
 * is compared the moment both runs have it, A's and B-corrected's, and then
 * B-corrected goes on with A's value: each value is checked against what its
 * own nodes make of the same inputs, so the rounding of fifty layers does not
 * pile up into one comparison.  B on its own gives the outputs, compared with
 * A's: where rounding does pile up.  B's nodes run as soon as every shared
 * value they read is corrected, so the runs stay a few nodes apart and memory
 * holds a few values of each, not a whole run's.
 *
 * Every input set goes through a node before the next node runs: the
 * sessions are lean, a node's decoded or packed weights are made once for
 * it, used by every set's runs and given back after it.  The first value
 * found outside tolerance (earliest node, then lowest set) stops the check. */

enum { WAITING, A_FIRST, B_FIRST, SETTLED };

/* A value both graphs make, in one input set. */
typedef struct {
    int state;            /* WAITING until one run made it */
    bnf_tensor held;      /* A_FIRST: A's value; B_FIRST and no reader left: B's */
} shared;

typedef struct lockstep lockstep;

/* One input set's runs and shared values. */
typedef struct {
    lockstep *ls;
    bnf_tensors in;
    bnf_run *ra, *rc, *ri; /* A, B corrected, B on its own */
    shared *vals;          /* ls->n */
    size_t compared;
} set_runs;

struct lockstep {
    bnf_strmap *index;    /* name -> index in names */
    char **names;
    size_t n;
    set_runs *sets;
    size_t n_sets;
    const bnf_verify_options *o;  /* tolerance of the values */
    bnf_verify_result *r;
    int failed;
};

static void set_release(set_runs *s, size_t n)
{
    for (size_t i = 0; s->vals && i < n; i++)
        bnf_tensor_release(&s->vals[i].held);
    bnf_free(s->vals);
    bnf_run_free(s->ra);
    bnf_run_free(s->rc);
    bnf_run_free(s->ri);
    bnf_tensors_release(&s->in); /* the runs borrowed them */
    memset(s, 0, sizeof *s);
}

static void lockstep_release(lockstep *ls)
{
    for (size_t k = 0; ls->sets && k < ls->n_sets; k++)
        set_release(&ls->sets[k], ls->n);
    bnf_free(ls->sets);
    for (size_t i = 0; i < ls->n; i++)
        bnf_free(ls->names[i]);
    bnf_free(ls->names);
    bnf_strmap_free(ls->index);
    memset(ls, 0, sizeof *ls);
}

/* The names made by a node in both main graphs, graph outputs excluded (they
 * are compared from B on its own). */
static bnf_status lockstep_collect(lockstep *ls, const bnf_model *a, const bnf_model *b,
                                   bnf_err *err)
{
    const Onnx__GraphProto *ga = a->proto->graph, *gb = b->proto->graph;
    bnf_strmap *in_a = bnf_strmap_new(ga->n_node * 2 + 8);
    size_t cap = 0;
    bnf_status rc = BNF_OK;
    ls->index = bnf_strmap_new(gb->n_node * 2 + 8);
    if (!in_a || !ls->index) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ga->n_node; i++)
        for (size_t k = 0; k < ga->node[i]->n_output; k++)
            if (ga->node[i]->output[k] && *ga->node[i]->output[k] &&
                bnf_strmap_put(in_a, ga->node[i]->output[k], 1)) {
                rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
                goto out;
            }
    for (size_t i = 0; i < ga->n_output; i++)
        if (ga->output[i]->name && bnf_strmap_put(in_a, ga->output[i]->name, 0)) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
    for (size_t i = 0; i < gb->n_node; i++)
        for (size_t k = 0; k < gb->node[i]->n_output; k++) {
            const char *nm = gb->node[i]->output[k];
            intptr_t v = 0;
            if (!nm || !*nm || !bnf_strmap_get(in_a, nm, &v) || !v ||
                bnf_strmap_get(ls->index, nm, NULL))
                continue;
            if (ls->n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                char **grown = bnf_realloc(ls->names, ncap * sizeof *grown);
                if (!grown) {
                    rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
                    goto out;
                }
                ls->names = grown;
                cap = ncap;
            }
            if (!(ls->names[ls->n] = bnf_strdup(nm)) ||
                bnf_strmap_put(ls->index, ls->names[ls->n], (intptr_t)ls->n)) {
                bnf_free(ls->names[ls->n]);
                rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
                goto out;
            }
            ls->n++;
        }
out:
    bnf_strmap_free(in_a);
    return rc;
}

/* A's value a and B-corrected's value b of shared value i: compared (when
 * they are the same kind of value), then b takes a's elements. */
static void settle(set_runs *s, size_t i, const bnf_tensor *a, bnf_tensor *b)
{
    lockstep *ls = s->ls;
    s->vals[i].state = SETTLED;
    /* values of another type or shape are not the same value: not compared */
    if (ls->failed || a->dtype != b->dtype || a->rank != b->rank || a->n != b->n)
        return;
    s->compared++;
    if (!bnf_values_agree("value (computed by both models)", ls->names[i], a, b, ls->o, ls->r))
        ls->failed = 1;
    if (a->data && b->data)
        memcpy(b->data, a->data, a->n * bnf_eval_size(a->dtype));
}

/* A made value t. */
static bnf_status seen_by_a(void *ctx, const char *name, bnf_tensor *t, bnf_err *err)
{
    set_runs *s = ctx;
    intptr_t i;
    shared *v;
    if (!bnf_strmap_get(s->ls->index, name, &i))
        return BNF_OK;
    v = &s->vals[i];
    if (v->state == WAITING) { /* B has not made it yet: keep A's */
        v->state = A_FIRST;
        return bnf_tensor_copy(&v->held, t, err);
    }
    if (v->state == B_FIRST) { /* B's, held by B's run (its readers wait) or here */
        bnf_tensor *b = bnf_run_value(s->rc, name, NULL);
        if (b && !v->held.data) {
            settle(s, (size_t)i, t, b);
        } else {
            settle(s, (size_t)i, t, &v->held);
            bnf_tensor_release(&v->held);
        }
    }
    return BNF_OK;
}

/* B-corrected made value t. */
static bnf_status seen_by_b(void *ctx, const char *name, bnf_tensor *t, bnf_err *err)
{
    set_runs *s = ctx;
    intptr_t i;
    size_t left = 0;
    shared *v;
    if (!bnf_strmap_get(s->ls->index, name, &i))
        return BNF_OK;
    v = &s->vals[i];
    if (v->state == A_FIRST) {
        settle(s, (size_t)i, &v->held, t);
        bnf_tensor_release(&v->held);
        return BNF_OK;
    }
    if (v->state != WAITING)
        return BNF_OK;
    v->state = B_FIRST;
    /* the run frees a value nobody reads as soon as it is made: keep a copy */
    bnf_run_value(s->rc, name, &left);
    return left ? BNF_OK : bnf_tensor_copy(&v->held, t, err);
}

/* Whether B's node may run: every shared value it reads is settled (the
 * sets go through the nodes together: the first set tells for all). */
static int b_ready(const lockstep *ls, const Onnx__NodeProto *n)
{
    for (size_t j = 0; j < n->n_input && ls->n; j++) {
        intptr_t i;
        if (n->input[j] && *n->input[j] && bnf_strmap_get(ls->index, n->input[j], &i) &&
            ls->sets[0].vals[i].state != SETTLED)
            return 0;
    }
    return 1;
}

/* Every input set through the three runs, node by node. */
static bnf_status lockstep_run(lockstep *ls, bnf_session *sa, bnf_session *sb, bnf_err *err)
{
    size_t na = bnf_session_n_nodes(sa), nb = bnf_session_n_nodes(sb), ia = 0, ib = 0;
    bnf_observer by_a = ls->n ? seen_by_a : NULL, by_b = ls->n ? seen_by_b : NULL;
    bnf_status rc;
    for (size_t k = 0; k < ls->n_sets; k++) {
        set_runs *s = &ls->sets[k];
        if ((rc = bnf_run_start(s->ra, s->in.ptr, err)) ||
            (rc = bnf_run_start(s->rc, s->in.ptr, err)) ||
            (rc = bnf_run_start(s->ri, s->in.ptr, err)))
            return rc;
    }
    while ((ia < na || ib < nb) && !ls->failed) {
        if (ia < na) {
            for (size_t k = 0; k < ls->n_sets && !ls->failed; k++)
                if ((rc = bnf_run_node(ls->sets[k].ra, ia, by_a, &ls->sets[k], err)))
                    return rc;
            bnf_session_node_release(sa, ia++);
            if (ls->o->progress)
                ls->o->progress(ls->o->progress_ctx, "verify", ia, na);
        }
        /* B as far as it can go; when A is done, every shared value is made */
        while (ib < nb && !ls->failed && (ia == na || b_ready(ls, bnf_session_node(sb, ib)))) {
            for (size_t k = 0; k < ls->n_sets && !ls->failed; k++)
                if ((rc = bnf_run_node(ls->sets[k].rc, ib, by_b, &ls->sets[k], err)) ||
                    (rc = bnf_run_node(ls->sets[k].ri, ib, NULL, NULL, err)))
                    return rc;
            bnf_session_node_release(sb, ib++);
        }
    }
    return BNF_OK;
}

/* ---- the noise floor of 16-bit weights ------------------------------------------------
 *
 * A fold of a float16 / bfloat16 layer rounds each new weight to 16 bits: an
 * honest fold moves the outputs by as much as rounding the weights does, which
 * a BN subtracting a large mean can make large next to the output's own
 * values.  So when A has 16-bit weights, A runs once more per input set with
 * each of them jittered by up to half their precision: the largest change of
 * output j over the sets is its noise, and B's output j may differ from A's
 * by 4 x the noise on top of the tolerance. */
static bnf_status noise_floor(const bnf_model *ma, const bnf_session *sa,
                              const bnf_session_options *so, const lockstep *ls, size_t n_out,
                              double *noise, bnf_err *err)
{
    bnf_session *sp = NULL;
    bnf_tensors out = {0};
    bnf_status rc;
    for (size_t j = 0; j < n_out; j++)
        noise[j] = 0;
    if (!bnf_session_has_16bit(sa)) /* no 16-bit weights: no floor, no session for it */
        return BNF_OK;
    if ((rc = bnf_session_new(ma, so, &sp, err)))
        return rc;
    bnf_session_lean(sp);
    if (!bnf_session_jitter_16bit(sp, 0x5eed)) {
        bnf_session_free(sp);
        return BNF_OK;
    }
    for (size_t k = 0; k < ls->n_sets && !rc; k++) {
        if ((rc = bnf_session_run_tensors(sp, &ls->sets[k].in, &out, err)))
            break;
        for (size_t j = 0; j < n_out && j < out.n; j++) {
            const bnf_tensor *a = bnf_run_output(ls->sets[k].ra, j);
            bnf_compare_result c;
            if (!a)
                continue;
            bnf_tensor_compare(&out.t[j], a, 0, 0, &c);
            if (c.shape_ok && isfinite(c.max_abs) && c.max_abs > noise[j])
                noise[j] = c.max_abs;
        }
    }
    bnf_tensors_release(&out);
    bnf_session_free(sp);
    return rc;
}

/* o's tolerance for A's output a, widened by `extra` (absolute). */
static bnf_verify_options with_noise(const bnf_verify_options *o, const bnf_tensor *a, double extra)
{
    bnf_verify_options w = *o;
    bnf_compare_result c;
    if (extra <= 0)
        return w;
    bnf_tensor_compare(a, a, 0, 0, &c); /* max|a| */
    if (c.max_want > 0)
        w.atol += extra / c.max_want;
    return w;
}

bnf_status bnf_verify_models(const bnf_model *ma, const bnf_model *mb, const bnf_verify_options *opt,
                             bnf_verify_result *r, bnf_err *err)
{
    return bnf_verify_models_noise(ma, mb, opt, r, NULL, err);
}

bnf_status bnf_verify_models_noise(const bnf_model *ma, const bnf_model *mb,
                                   const bnf_verify_options *opt, bnf_verify_result *r,
                                   double *leaned, bnf_err *err)
{
    bnf_verify_options o, ov, oj;
    bnf_session_options so = {0};
    double *noise = NULL;
    bnf_session *sa = NULL, *sb = NULL;
    size_t n_in, n_out;
    lockstep ls;
    bnf_status rc;

    memset(&ls, 0, sizeof ls);
    if (leaned)
        *leaned = 0;
    if (opt)
        o = *opt;
    else
        bnf_verify_defaults(&o);
    memset(r, 0, sizeof *r);
    so.threads = o.threads;
    if ((rc = bnf_session_new(ma, &so, &sa, err)) || (rc = bnf_session_new(mb, &so, &sb, err)))
        goto out;
    bnf_session_lean(sa);
    bnf_session_lean(sb);
    n_in = bnf_session_n_inputs(sa);
    n_out = bnf_session_n_outputs(sa);
    if (n_in != bnf_session_n_inputs(sb) || n_out != bnf_session_n_outputs(sb)) {
        r->ran = 1;
        snprintf(r->reason, sizeof r->reason, "the models have different inputs or outputs");
        goto out;
    }
    for (size_t i = 0; i < n_in; i++)
        if (strcmp(bnf_session_input_name(sa, i), bnf_session_input_name(sb, i)) != 0) {
            r->ran = 1;
            snprintf(r->reason, sizeof r->reason, "input %zu is '%s' in one model, '%s' in the other",
                     i, bnf_session_input_name(sa, i), bnf_session_input_name(sb, i));
            goto out;
        }
    r->outputs = n_out;
    ov = o;
    if (o.values_loosen > 0) {
        ov.rtol *= o.values_loosen;
        ov.atol *= o.values_loosen;
    }
    ls.o = &ov;
    ls.r = r;
    if (!o.outputs_only && (rc = lockstep_collect(&ls, ma, mb, err)))
        goto out;
    ls.n_sets = o.random_sets + (o.n_given ? 1 : 0);
    if (ls.n_sets && !(ls.sets = bnf_calloc(ls.n_sets, sizeof *ls.sets))) {
        ls.n_sets = 0;
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < ls.n_sets; k++) {
        set_runs *s = &ls.sets[k];
        int given_set = o.n_given && k == o.random_sets;
        s->ls = &ls;
        if (ls.n && !(s->vals = bnf_calloc(ls.n, sizeof *s->vals))) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
        if ((rc = bnf_session_make_inputs(sa, given_set ? o.given : NULL,
                                          given_set ? o.n_given : 0, o.dims, o.n_dims,
                                          o.seed + 7919 * k, &s->in, err)) ||
            (rc = bnf_run_new(sa, &s->ra, err)) || (rc = bnf_run_new(sb, &s->rc, err)) ||
            (rc = bnf_run_new(sb, &s->ri, err)))
            goto out;
    }
    if (ls.n_sets && (rc = lockstep_run(&ls, sa, sb, err)))
        goto out;
    r->ran = 1;
    for (size_t k = 0; k < ls.n_sets; k++) /* values compared in one set */
        if (ls.sets[k].compared > r->values)
            r->values = ls.sets[k].compared;
    if (ls.failed)
        goto out;
    if (ls.n_sets && n_out && !(noise = bnf_calloc(n_out, sizeof *noise))) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (noise && (rc = noise_floor(ma, sa, &so, &ls, n_out, noise, err)))
        goto out;
    for (size_t k = 0; k < ls.n_sets; k++) {
        set_runs *s = &ls.sets[k];
        int ok = 1;
        for (size_t j = 0; j < n_out && ok; j++) {
            const bnf_tensor *a = bnf_run_output(s->ra, j), *b = bnf_run_output(s->ri, j);
            if (!a || !b) {
                rc = bnf_fail(err, BNF_ERR_INVALID, "graph output '%s' is not computed",
                              bnf_session_output_name(a ? sb : sa, j));
                goto out;
            }
            oj = with_noise(&o, a, 4 * noise[j]);
            if (leaned && oj.atol > o.atol) { /* would it pass without the floor? */
                bnf_verify_result plain;
                memset(&plain, 0, sizeof plain);
                if (!bnf_values_agree("output", bnf_session_output_name(sa, j), a, b, &o, &plain) &&
                    oj.atol - o.atol > *leaned)
                    *leaned = oj.atol - o.atol;
            }
            ok = bnf_values_agree("output", bnf_session_output_name(sa, j), a, b, &oj, r);
        }
        r->sets++;
        if (!ok)
            goto out;
    }
    r->equivalent = 1;
out:
    bnf_free(noise);
    lockstep_release(&ls);
    bnf_session_free(sa);
    bnf_session_free(sb);
    if (rc)
        r->ran = 0;
    return rc;
}
