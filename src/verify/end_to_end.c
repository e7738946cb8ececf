/* end_to_end.c: the original and the folded model compared on the same
 * inputs, every output and every value both compute under one name. */
#include "verify/verify.h"

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
 * holds a few values of each, not a whole run's.  The sessions are lean: a
 * node's decoded or packed weights are made for it and given back after it
 * (B's after both of B's runs had the node). */

enum { WAITING, A_FIRST, B_FIRST, SETTLED };

/* A value both graphs make. */
typedef struct {
    char *name;
    int state;            /* per input set: WAITING until one run made it */
    bnf_tensor held;      /* A_FIRST: A's value; B_FIRST and no reader left: B's */
} shared;

typedef struct {
    bnf_strmap *index;    /* name -> index in vals */
    shared *vals;
    size_t n;
    bnf_run *rc;          /* B corrected */
    const bnf_verify_options *o;  /* tolerance of the values */
    bnf_verify_result *r;
    size_t compared;
    int failed;
} lockstep;

static void lockstep_release(lockstep *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        bnf_tensor_release(&ls->vals[i].held);
        bnf_free(ls->vals[i].name);
    }
    bnf_free(ls->vals);
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
                shared *grown = bnf_realloc(ls->vals, ncap * sizeof *grown);
                if (!grown) {
                    rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
                    goto out;
                }
                ls->vals = grown;
                cap = ncap;
            }
            memset(&ls->vals[ls->n], 0, sizeof ls->vals[ls->n]);
            if (!(ls->vals[ls->n].name = bnf_strdup(nm)) ||
                bnf_strmap_put(ls->index, ls->vals[ls->n].name, (intptr_t)ls->n)) {
                bnf_free(ls->vals[ls->n].name);
                rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
                goto out;
            }
            ls->n++;
        }
out:
    bnf_strmap_free(in_a);
    return rc;
}

/* A's value a and B-corrected's value b of one shared value: compared (when
 * they are the same kind of value), then b takes a's elements. */
static void settle(lockstep *ls, shared *v, const bnf_tensor *a, bnf_tensor *b)
{
    v->state = SETTLED;
    /* values of another type or shape are not the same value: not compared */
    if (ls->failed || a->dtype != b->dtype || a->rank != b->rank || a->n != b->n)
        return;
    ls->compared++;
    if (!bnf_values_agree("value (computed by both models)", v->name, a, b, ls->o, ls->r))
        ls->failed = 1;
    if (a->data && b->data)
        memcpy(b->data, a->data, a->n * bnf_eval_size(a->dtype));
}

/* A made value t. */
static bnf_status seen_by_a(void *ctx, const char *name, bnf_tensor *t, bnf_err *err)
{
    lockstep *ls = ctx;
    intptr_t i;
    shared *v;
    if (!bnf_strmap_get(ls->index, name, &i))
        return BNF_OK;
    v = &ls->vals[i];
    if (v->state == WAITING) { /* B has not made it yet: keep A's */
        v->state = A_FIRST;
        return bnf_tensor_copy(&v->held, t, err);
    }
    if (v->state == B_FIRST) { /* B's, held by B's run (its readers wait) or here */
        bnf_tensor *b = bnf_run_value(ls->rc, name, NULL);
        if (b && !v->held.data) {
            settle(ls, v, t, b);
        } else {
            settle(ls, v, t, &v->held);
            bnf_tensor_release(&v->held);
        }
    }
    return BNF_OK;
}

/* B-corrected made value t. */
static bnf_status seen_by_b(void *ctx, const char *name, bnf_tensor *t, bnf_err *err)
{
    lockstep *ls = ctx;
    intptr_t i;
    size_t left = 0;
    shared *v;
    if (!bnf_strmap_get(ls->index, name, &i))
        return BNF_OK;
    v = &ls->vals[i];
    if (v->state == A_FIRST) {
        settle(ls, v, &v->held, t);
        bnf_tensor_release(&v->held);
        return BNF_OK;
    }
    if (v->state != WAITING)
        return BNF_OK;
    v->state = B_FIRST;
    /* the run frees a value nobody reads as soon as it is made: keep a copy */
    bnf_run_value(ls->rc, name, &left);
    return left ? BNF_OK : bnf_tensor_copy(&v->held, t, err);
}

/* Whether B's node i may run: every shared value it reads is settled. */
static int b_ready(const lockstep *ls, const Onnx__NodeProto *n)
{
    for (size_t j = 0; j < n->n_input && ls->n; j++) {
        intptr_t i;
        if (n->input[j] && *n->input[j] && bnf_strmap_get(ls->index, n->input[j], &i) &&
            ls->vals[i].state != SETTLED)
            return 0;
    }
    return 1;
}

/* One input set through the three runs. */
static bnf_status lockstep_set(lockstep *ls, bnf_session *sa, bnf_session *sb, bnf_run *ra,
                               bnf_run *ri, const bnf_tensors *in, bnf_err *err)
{
    size_t na = bnf_session_n_nodes(sa), nb = bnf_session_n_nodes(sb), ia = 0, ib = 0;
    bnf_status rc;
    for (size_t k = 0; k < ls->n; k++) {
        ls->vals[k].state = WAITING;
        bnf_tensor_release(&ls->vals[k].held);
    }
    ls->compared = 0;
    if ((rc = bnf_run_start(ra, in->ptr, err)) || (rc = bnf_run_start(ls->rc, in->ptr, err)) ||
        (rc = bnf_run_start(ri, in->ptr, err)))
        return rc;
    while ((ia < na || ib < nb) && !ls->failed) {
        if (ia < na) {
            if ((rc = bnf_run_node(ra, ia, ls->n ? seen_by_a : NULL, ls, err)))
                return rc;
            bnf_session_node_release(sa, ia++);
        }
        /* B as far as it can go; when A is done, every shared value is made */
        while (ib < nb && !ls->failed && (ia == na || b_ready(ls, bnf_session_node(sb, ib)))) {
            if ((rc = bnf_run_node(ls->rc, ib, ls->n ? seen_by_b : NULL, ls, err)) ||
                (rc = bnf_run_node(ri, ib, NULL, NULL, err)))
                return rc;
            bnf_session_node_release(sb, ib++);
        }
    }
    return BNF_OK;
}

bnf_status bnf_verify_models(const bnf_model *ma, const bnf_model *mb, const bnf_verify_options *opt,
                             bnf_verify_result *r, bnf_err *err)
{
    bnf_verify_options o, ov;
    bnf_session_options so = {0};
    bnf_session *sa = NULL, *sb = NULL;
    bnf_run *ra = NULL, *ri = NULL;
    bnf_tensors in = {0};
    size_t n_in, n_out, total_sets;
    lockstep ls;
    bnf_status rc;

    memset(&ls, 0, sizeof ls);
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
    if ((rc = bnf_run_new(sa, &ra, err)) || (rc = bnf_run_new(sb, &ls.rc, err)) ||
        (rc = bnf_run_new(sb, &ri, err)))
        goto out;
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
    total_sets = o.random_sets + (o.n_given ? 1 : 0);
    for (size_t set = 0; set < total_sets; set++) {
        int given_set = o.n_given && set == o.random_sets;
        int ok;
        if ((rc = bnf_session_make_inputs(sa, given_set ? o.given : NULL,
                                          given_set ? o.n_given : 0, o.dims, o.n_dims,
                                          o.seed + 7919 * set, &in, err)) ||
            (rc = lockstep_set(&ls, sa, sb, ra, ri, &in, err)))
            goto out;
        r->values = ls.compared;
        ok = !ls.failed;
        for (size_t k = 0; k < n_out && ok; k++) {
            const bnf_tensor *a = bnf_run_output(ra, k), *b = bnf_run_output(ri, k);
            if (!a || !b) {
                rc = bnf_fail(err, BNF_ERR_INVALID, "graph output '%s' is not computed",
                              bnf_session_output_name(a ? sb : sa, k));
                goto out;
            }
            ok = bnf_values_agree("output", bnf_session_output_name(sa, k), a, b, &o, r);
        }
        bnf_run_end(ra);
        bnf_run_end(ls.rc);
        bnf_run_end(ri);
        bnf_tensors_release(&in);
        r->sets++;
        if (o.progress)
            o.progress(o.progress_ctx, "verify", r->sets, total_sets);
        if (!ok) {
            r->ran = 1;
            goto out;
        }
    }
    r->ran = 1;
    r->equivalent = 1;
out:
    bnf_tensors_release(&in);
    bnf_run_free(ra);
    bnf_run_free(ls.rc);
    bnf_run_free(ri);
    bnf_session_free(sa);
    bnf_session_free(sb);
    lockstep_release(&ls);
    if (rc)
        r->ran = 0;
    return rc;
}
