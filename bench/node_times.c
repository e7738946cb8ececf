/* Per-node times of bnfold's evaluator, for the evaluator benchmark.
 *
 * Usage: node_times MODEL [--threads N] [--repeat R] [--seed S]
 *
 * Runs MODEL R times (default 10) on one seeded random input through
 * bnf_session_run_observed() and takes, for every value the graph computes,
 * the time since the previous value was reported (or since the run started):
 * that is the time of the node that computed it plus the evaluator's own
 * overhead around it.  The time from the last value to the end of the run
 * (copying out the outputs, freeing) is reported on its own.  Prints a TSV on stdout, the median over the R runs per
 * value:
 *
 *   # runs R threads N median_ms TOTAL after_last_value_ms TAIL
 *   index <TAB> value name <TAB> shape <TAB> median ms
 *
 * bench/op_profile.py joins these with the nodes of the model (op type,
 * attributes, input shapes).  Built by op_profile.py against build/libbnfold.a;
 * only the public API (src/bnfold.h) is used.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bnfold.h"

typedef struct {
    size_t k, cap, n_first;
    double last;
    double *cur;        /* this run's deltas */
    char **names;       /* from the first run */
    char **shapes;
    int first;
    int mismatch;
} obs_state;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static bnf_status observe(void *ctx, const char *name, bnf_tensor *v, bnf_err *err)
{
    obs_state *st = ctx;
    double t = now_ms();
    (void)err;
    if (st->k == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 256;
        double *c = realloc(st->cur, cap * sizeof *c);
        char **n = realloc(st->names, cap * sizeof *n);
        char **s = n ? realloc(st->shapes, cap * sizeof *s) : NULL;
        if (c)
            st->cur = c;
        if (n)
            st->names = n;
        if (s)
            st->shapes = s;
        if (!c || !n || !s) {
            fprintf(stderr, "node_times: out of memory\n");
            exit(4);
        }
        st->cap = cap;
    }
    st->cur[st->k] = t - st->last;
    if (st->first) {
        char buf[256];
        size_t o = 0;
        buf[0] = 0;
        for (size_t d = 0; d < v->rank && o < sizeof buf - 24; d++)
            o += (size_t)snprintf(buf + o, sizeof buf - o, d ? "x%lld" : "%lld", (long long)v->dims[d]);
        st->names[st->k] = strdup(name ? name : "");
        st->shapes[st->k] = strdup(v->rank ? buf : "scalar");
    } else if (st->k >= st->n_first || strcmp(st->names[st->k], name ? name : "")) {
        st->mismatch = 1;
    }
    st->k++;
    st->last = now_ms();      /* the observer's own time is not charged to the next node */
    return BNF_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int threads = 0;
    long repeat = 10;
    unsigned long long seed = 1;
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_session *s = NULL;
    bnf_session_options so = {0};
    obs_state st = {0};

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: node_times MODEL [--threads N] [--repeat R] [--seed S]\n");
            return 2;
        }
    }
    if (!path || repeat < 1 || threads < 0) {
        fprintf(stderr, "usage: node_times MODEL [--threads N] [--repeat R] [--seed S]\n");
        return 2;
    }
    so.threads = threads;
    if (bnf_model_load(path, &m, &err) || bnf_session_new(m, &so, &s, &err)) {
        fprintf(stderr, "node_times: %s\n", err.msg);
        return 3;
    }
    size_t n_in = bnf_session_n_inputs(s), n_out = bnf_session_n_outputs(s);
    bnf_tensor *in = calloc(n_in + 1, sizeof *in), *out = calloc(n_out + 1, sizeof *out);
    const bnf_tensor **in_ptr = calloc(n_in + 1, sizeof *in_ptr);
    double *total = calloc((size_t)repeat, sizeof *total), **per = NULL;
    double *tail = calloc((size_t)repeat, sizeof *tail);
    if (!in || !out || !in_ptr || !total || !tail) {
        fprintf(stderr, "node_times: out of memory\n");
        return 4;
    }
    for (size_t i = 0; i < n_in; i++)
        in_ptr[i] = &in[i];
    if (bnf_session_inputs(s, NULL, 0, NULL, 0, seed, in, &err)) {
        fprintf(stderr, "node_times: %s\n", err.msg);
        return 3;
    }
    for (long r = 0; r < repeat; r++) {
        st.k = 0;
        st.first = r == 0;
        for (size_t k = 0; k < n_out; k++)
            bnf_tensor_release(&out[k]);
        double t0 = now_ms();
        st.last = t0;
        if (bnf_session_run_observed(s, in_ptr, out, observe, &st, &err)) {
            fprintf(stderr, "node_times: %s\n", err.msg);
            return 3;
        }
        double t1 = now_ms();
        total[r] = t1 - t0;
        tail[r] = t1 - st.last;
        if (r == 0) {
            st.n_first = st.k;
            per = calloc(st.k + 1, sizeof *per);
            for (size_t k = 0; per && k < st.k; k++)
                if (!(per[k] = calloc((size_t)repeat, sizeof **per)))
                    per = NULL;
            if (!per) {
                fprintf(stderr, "node_times: out of memory\n");
                return 4;
            }
        }
        if (st.mismatch || st.k != st.n_first) {
            fprintf(stderr, "node_times: run %ld reported other values than run 0\n", r);
            return 1;
        }
        for (size_t k = 0; k < st.k; k++)
            per[k][r] = st.cur[k];
    }
    qsort(total, (size_t)repeat, sizeof *total, cmp_double);
    qsort(tail, (size_t)repeat, sizeof *tail, cmp_double);
    printf("# runs %ld threads %d median_ms %.3f after_last_value_ms %.3f\n", repeat, threads,
           total[repeat / 2], tail[repeat / 2]);
    for (size_t k = 0; k < st.n_first; k++) {
        qsort(per[k], (size_t)repeat, sizeof **per, cmp_double);
        printf("%zu\t%s\t%s\t%.4f\n", k, st.names[k], st.shapes[k], per[k][repeat / 2]);
    }
    return 0;
}
