/* test_health.c: the BN health findings and the CI gate (bnf_check), on the
 * models of testdata/gen_health.py.
 *
 * testdata/health/expected.txt lists, per model, the findings the generator
 * derived from the values it wrote ("MODEL CODE SEVERITY CHANNELS NODE",
 * CHANNELS "-" for a whole-BN finding; "MODEL none - - -" for none).  Every
 * model's inspect report must hold exactly those: same (node, code, severity,
 * channels), nothing extra.  The table below adds what bnf_fold must do with
 * each BN, and the gate cases say which findings each --fail-on list trips. */
#include "testutil.h"

#define HEALTH "testdata/health/"

/* ---- expected.txt ------------------------------------------------------------- */

typedef struct {
    char model[64];
    char code[32];
    char severity[16];
    char node[64];
    size_t n_channels; /* 0: the BN as a whole */
    int64_t channels[16];
} expected_finding;

typedef struct {
    expected_finding *f;
    size_t n;
    char models[64][64]; /* every model named in the file */
    size_t n_models;
} expectations;

static void parse_channels(const char *s, expected_finding *e, int line)
{
    e->n_channels = 0;
    if (!strcmp(s, "-"))
        return;
    for (const char *p = s; *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || e->n_channels == 16)
            fail_msg("expected.txt:%d: bad channel list '%s'", line, s);
        e->channels[e->n_channels++] = v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            fail_msg("expected.txt:%d: bad channel list '%s'", line, s);
    }
}

static void load_expectations(expectations *x)
{
    FILE *f = fopen(HEALTH "expected.txt", "r");
    char line[512];
    int lineno = 0;

    memset(x, 0, sizeof *x);
    if (!f)
        fail_msg("cannot open " HEALTH "expected.txt (run /usr/bin/python3 testdata/gen_health.py)");
    while (fgets(line, sizeof line, f)) {
        char model[64], code[32], sev[16], ch[128], node[64], extra[8];
        int known = 0;
        lineno++;
        if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
            continue;
        if (sscanf(line, "%63s %31s %15s %127s %63s %7s", model, code, sev, ch, node, extra) != 5)
            fail_msg("expected.txt:%d: want 5 fields: %s", lineno, line);
        for (size_t i = 0; i < x->n_models && !known; i++)
            known = !strcmp(x->models[i], model);
        if (!known) {
            assert_true(x->n_models < 64);
            snprintf(x->models[x->n_models++], 64, "%s", model);
        }
        if (!strcmp(code, "none"))
            continue;
        x->f = realloc(x->f, (x->n + 1) * sizeof *x->f);
        assert_non_null(x->f);
        expected_finding *e = &x->f[x->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->model, sizeof e->model, "%s", model);
        snprintf(e->code, sizeof e->code, "%s", code);
        snprintf(e->severity, sizeof e->severity, "%s", sev);
        snprintf(e->node, sizeof e->node, "%s", node);
        parse_channels(ch, e, lineno);
        if (strcmp(sev, "error") && strcmp(sev, "warning") && strcmp(sev, "info"))
            fail_msg("expected.txt:%d: severity '%s'", lineno, sev);
    }
    fclose(f);
    assert_true(x->n_models > 0);
}

static void free_expectations(expectations *x)
{
    free(x->f);
    memset(x, 0, sizeof *x);
}

/* ---- what each model is ---------------------------------------------------------- */

typedef struct {
    const char *name;
    size_t n_bns;
    const char *fate[3]; /* per BN in report order: "fold" or the skip reason code */
    const char *bn_names[3];
} health_case;

static const health_case cases[] = {
    {"healthy", 1, {"fold"}, {"bn"}},
    {"tiny_var", 1, {"fold"}, {"bn"}},
    {"zero_var", 1, {"fold"}, {"bn"}},
    {"neg_var", 1, {"NON_FINITE"}, {"bn"}},
    {"eps_zero", 1, {"fold"}, {"bn"}},
    {"eps_zero_zero_var", 1, {"NON_FINITE"}, {"bn"}},
    {"large_scale", 1, {"fold"}, {"bn"}},
    {"dead_channel", 1, {"fold"}, {"bn"}},
    {"untrained", 1, {"fold"}, {"bn"}},
    {"nan_param", 1, {"NON_FINITE"}, {"bn"}},
    {"inf_param", 1, {"NON_FINITE"}, {"bn"}},
    {"training_mode", 1, {"TRAINING_MODE"}, {"bn"}},
    {"multi_bn", 3, {"fold", "fold", "NON_FINITE"}, {"bn1", "bn2", "bn3"}},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* The case's model and its report from inspect, or from fold (fold = 1). */
static bnf_report *report_of(const health_case *hc, int fold, bnf_model **m)
{
    bnf_report *r = NULL;
    bnf_err err = {0};
    *m = load_named(HEALTH, hc->name, ".onnx");
    if ((fold ? bnf_fold(*m, NULL, &r, &err) : bnf_inspect(*m, &r, &err)) != BNF_OK)
        fail_msg("%s: %s: %s", hc->name, fold ? "fold" : "inspect", err.msg);
    return r;
}

/* "NODE CODE SEVERITY [CHANNELS]" of a finding, for messages */
static void describe(char *buf, size_t size, const char *node, const char *code,
                     const char *severity, size_t n_channels, const int64_t *channels)
{
    int n = snprintf(buf, size, "%s %s %s [", node, code, severity);
    for (size_t k = 0; k < n_channels && k < 16 && n > 0 && (size_t)n < size; k++)
        n += snprintf(buf + n, size - (size_t)n, "%s%lld", k ? "," : "", (long long)channels[k]);
    if (n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "]");
}

static int same_finding(const bnf_report *r, const bnf_finding *f, const expected_finding *e)
{
    if (strcmp(r->bns[f->bn].name, e->node) || strcmp(f->code, e->code) ||
        strcmp(f->severity, e->severity) || f->n_channels != e->n_channels)
        return 0;
    for (size_t k = 0; k < e->n_channels && k < 16; k++)
        if (f->channels[k] != e->channels[k])
            return 0;
    return 1;
}

/* The report's findings are exactly the model's lines of expected.txt. */
static void assert_findings(const expectations *x, const char *model, const bnf_report *r,
                            const char *what)
{
    unsigned char used[256] = {0};
    size_t want = 0;
    int bad = 0;
    char buf[256];

    for (size_t i = 0; i < x->n; i++)
        want += !strcmp(x->f[i].model, model);
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *f = &r->findings[i];
        int hit = 0;
        assert_true(f->bn < r->n_bns);
        assert_true(strlen(f->message) > 5);
        for (size_t k = 0; k < x->n && !hit && k < sizeof used; k++)
            if (!used[k] && !strcmp(x->f[k].model, model) && same_finding(r, f, &x->f[k]))
                hit = used[k] = 1;
        if (!hit) {
            describe(buf, sizeof buf, r->bns[f->bn].name, f->code, f->severity, f->n_channels,
                     f->channels);
            print_message("%s %s: unexpected finding: %s\n", what, model, buf);
            bad = 1;
        }
    }
    for (size_t k = 0; k < x->n && k < sizeof used; k++)
        if (!used[k] && !strcmp(x->f[k].model, model)) {
            describe(buf, sizeof buf, x->f[k].node, x->f[k].code, x->f[k].severity,
                     x->f[k].n_channels, x->f[k].channels);
            print_message("%s %s: missing finding: %s\n", what, model, buf);
            bad = 1;
        }
    if (bad)
        fail_msg("%s %s: %zu findings, expected %zu (see above)", what, model, r->n_findings,
                 want);
    assert_int_equal(r->n_findings, want);
    {
        size_t sum = bnf_report_count(r, "error") + bnf_report_count(r, "warning") +
                     bnf_report_count(r, "info");
        assert_int_equal(sum, r->n_findings);
    }
}

/* ---- tests -------------------------------------------------------------------------- */

/* expected.txt and the table name the same models. */
static void test_models_listed(void **state)
{
    expectations x;
    (void)state;
    load_expectations(&x);
    for (size_t i = 0; i < N_CASES; i++) {
        int found = 0;
        for (size_t k = 0; k < x.n_models; k++)
            found |= !strcmp(x.models[k], cases[i].name);
        if (!found)
            fail_msg("model %s is not in expected.txt", cases[i].name);
    }
    for (size_t k = 0; k < x.n_models; k++) {
        int found = 0;
        for (size_t i = 0; i < N_CASES; i++)
            found |= !strcmp(x.models[k], cases[i].name);
        if (!found)
            fail_msg("expected.txt names %s, which this test does not know", x.models[k]);
    }
    free_expectations(&x);
}

typedef void case_check(const expectations *x, const health_case *hc, bnf_model *m,
                        bnf_report *r);

/* check() on every case's model and its report from inspect or fold (fold = 1). */
static void each_report(int fold, case_check *check)
{
    expectations x;
    load_expectations(&x);
    for (size_t i = 0; i < N_CASES; i++) {
        bnf_model *m;
        bnf_report *r = report_of(&cases[i], fold, &m);
        check(&x, &cases[i], m, r);
        bnf_report_free(r);
        bnf_model_free(m);
    }
    free_expectations(&x);
}

/* inspect: the findings, exactly; the model is not changed. */
static void inspect_findings(const expectations *x, const health_case *hc, bnf_model *m,
                             bnf_report *r)
{
    assert_false(m->changed);
    if (r->n_bns != hc->n_bns)
        fail_msg("%s: %zu BNs, expected %zu", hc->name, r->n_bns, hc->n_bns);
    for (size_t b = 0; b < r->n_bns; b++)
        assert_string_equal(r->bns[b].name, hc->bn_names[b]);
    assert_findings(x, hc->name, r, "inspect");
    assert_int_equal(r->check_ran, 0);
    for (size_t k = 0; k < r->n_findings; k++)
        assert_int_equal(r->findings[k].trips, 0);
}

static void test_inspect_findings(void **state)
{
    (void)state;
    each_report(0, inspect_findings);
}

/* fold: the bad statistics are skipped NON_FINITE (training mode:
 * TRAINING_MODE), the others fold; the fold report carries the same findings. */
static void fold_fates(const expectations *x, const health_case *hc, bnf_model *m, bnf_report *r)
{
    size_t folds = 0;
    assert_int_equal(r->n_bns, hc->n_bns);
    for (size_t b = 0; b < hc->n_bns; b++) {
        const bnf_bn_info *e = &r->bns[b];
        int want_fold = !strcmp(hc->fate[b], "fold");
        folds += want_fold;
        if (e->folded != want_fold ||
            (!want_fold && (!e->reason_code || strcmp(e->reason_code, hc->fate[b]))))
            fail_msg("%s: BN '%s' %s (%s: %s), expected %s", hc->name, e->name,
                     e->folded ? "folded" : "skipped", e->reason_code ? e->reason_code : "-",
                     e->reason ? e->reason : "", hc->fate[b]);
        if (!want_fold)
            assert_true(e->reason && strlen(e->reason) > 5);
    }
    assert_int_equal(r->n_folded, folds);
    assert_int_equal(r->n_bns_after, hc->n_bns - folds);
    assert_int_equal(count_op(m, "BatchNormalization"), hc->n_bns - folds);
    if (!folds)
        assert_false(m->changed);
    assert_findings(x, hc->name, r, "fold");
}

static void test_fold_fates(void **state)
{
    (void)state;
    each_report(1, fold_fates);
}

/* ---- the gate ------------------------------------------------------------------------- */

typedef struct {
    const char *fail_on;
    int min_rank;          /* findings of this severity rank or above trip (3 error,
                              2 warning, 1 info; 0: none by severity) */
    const char *codes[3];  /* and findings with these codes */
    int unfolded;          /* and BNs that fold would fold */
    const char *recorded;  /* report->check_fail_on */
} gate_case;

static const gate_case gates[] = {
    {NULL, 3, {NULL}, 0, "error"},
    {"error", 3, {NULL}, 0, "error"},
    {"warning", 2, {NULL}, 0, "warning"},
    {"info", 1, {NULL}, 0, "info"},
    {"unfolded", 0, {NULL}, 1, "unfolded"},
    {"BN_TINY_VAR,BN_DEAD_CHANNEL", 0, {"BN_TINY_VAR", "BN_DEAD_CHANNEL"}, 0,
     "BN_TINY_VAR,BN_DEAD_CHANNEL"},
    {"BN_NEG_VAR", 0, {"BN_NEG_VAR"}, 0, "BN_NEG_VAR"},
    {"error,unfolded", 3, {NULL}, 1, "error,unfolded"},
    {"BN_DEAD_CHANNEL,warning", 2, {"BN_DEAD_CHANNEL"}, 0, "BN_DEAD_CHANNEL,warning"},
    {"warning,error", 2, {NULL}, 0, "warning,error"},
    {"info,error", 1, {NULL}, 0, "info,error"},
};

static int rank_of(const char *sev)
{
    return !strcmp(sev, "error") ? 3 : !strcmp(sev, "warning") ? 2 : !strcmp(sev, "info") ? 1 : 0;
}

static int should_trip(const gate_case *g, const bnf_finding *f)
{
    if (g->min_rank && rank_of(f->severity) >= g->min_rank)
        return 1;
    for (int k = 0; k < 3 && g->codes[k]; k++)
        if (!strcmp(g->codes[k], f->code))
            return 1;
    return 0;
}

static void check_gate(const health_case *hc, bnf_report *r, const gate_case *g)
{
    bnf_err err = {0};
    size_t trips = 0;
    const char *label = g->fail_on ? g->fail_on : "(NULL)";

    if (bnf_check(r, g->fail_on, &err) != BNF_OK)
        fail_msg("%s: check --fail-on %s: %s", hc->name, label, err.msg);
    assert_int_equal(r->check_ran, 1);
    assert_string_equal(r->command, "check");
    assert_non_null(r->check_fail_on);
    assert_string_equal(r->check_fail_on, g->recorded);
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *f = &r->findings[i];
        int want = should_trip(g, f);
        if (f->trips != want)
            fail_msg("%s --fail-on %s: %s %s on '%s' trips %d, expected %d", hc->name, label,
                     f->severity, f->code, r->bns[f->bn].name, f->trips, want);
        trips += (size_t)want;
    }
    for (size_t b = 0; b < r->n_bns; b++) {
        int want = g->unfolded && !strcmp(hc->fate[b], "fold");
        if (r->bns[b].trips != want)
            fail_msg("%s --fail-on %s: BN '%s' trips %d, expected %d", hc->name, label,
                     r->bns[b].name, r->bns[b].trips, want);
        trips += (size_t)want;
    }
    if (r->check_trips != trips)
        fail_msg("%s --fail-on %s: check_trips %zu, expected %zu", hc->name, label,
                 r->check_trips, trips);
}

/* Every gate on every model, on a fresh report each time. */
static void test_check_gates(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        for (size_t g = 0; g < sizeof gates / sizeof gates[0]; g++) {
            bnf_model *m;
            bnf_report *r = report_of(&cases[i], 0, &m);
            check_gate(&cases[i], r, &gates[g]);
            bnf_report_free(r);
            bnf_model_free(m);
        }
    }
}

/* bnf_check again on the same report: the marks are the new list's, not a
 * union with the previous one. */
static void test_check_rerun_resets(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        bnf_model *m;
        bnf_report *r = report_of(&cases[i], 0, &m);
        check_gate(&cases[i], r, &gates[4]); /* info + ... */
        check_gate(&cases[i], r, &gates[5]); /* unfolded */
        check_gate(&cases[i], r, &gates[0]); /* default */
        bnf_report_free(r);
        bnf_model_free(m);
    }
}

/* The headline answers, spelled out (the generic test derives them). */
static void test_check_headlines(void **state)
{
    static const struct {
        const char *model, *fail_on;
        size_t trips;
    } rows[] = {
        {"healthy", NULL, 0},       {"healthy", "info", 0},     {"healthy", "unfolded", 1},
        {"neg_var", NULL, 1},       {"neg_var", "unfolded", 0}, {"tiny_var", NULL, 0},
        {"tiny_var", "warning", 1}, {"tiny_var", "BN_TINY_VAR", 1},
        {"tiny_var", "BN_NEG_VAR", 0}, {"dead_channel", "warning", 0},
        {"dead_channel", "info", 1}, {"training_mode", NULL, 1},
        {"training_mode", "unfolded", 0}, {"eps_zero", NULL, 0},
        {"eps_zero_zero_var", NULL, 1}, {"eps_zero_zero_var", "warning", 3},
        {"multi_bn", NULL, 1},      {"multi_bn", "warning", 2}, {"multi_bn", "info", 3},
        {"multi_bn", "unfolded", 2}, {"multi_bn", "BN_TINY_VAR,BN_DEAD_CHANNEL", 2},
        {"multi_bn", "error,unfolded", 3},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        bnf_model *m = load_named(HEALTH, rows[i].model, ".onnx");
        bnf_report *r = NULL;
        bnf_err err = {0};
        assert_int_equal(bnf_inspect(m, &r, &err), BNF_OK);
        if (bnf_check(r, rows[i].fail_on, &err) != BNF_OK)
            fail_msg("%s: %s", rows[i].model, err.msg);
        if (r->check_trips != rows[i].trips)
            fail_msg("%s --fail-on %s: %zu trips, expected %zu", rows[i].model,
                     rows[i].fail_on ? rows[i].fail_on : "(default)", r->check_trips,
                     rows[i].trips);
        bnf_report_free(r);
        bnf_model_free(m);
    }
}

/* A word the gate does not know is a usage error naming it: a typo must not
 * pass a gate silently. */
static void test_check_unknown_word(void **state)
{
    static const struct {
        const char *fail_on, *named;
    } bad[] = {
        {"BN_BOGUS", "BN_BOGUS"},
        {"errors", "errors"},
        {"bn_tiny_var", "bn_tiny_var"},           /* codes are upper case */
        {"BN_TINY_VAR,nope", "nope"},
        {"warning,BN_UNFOLDED", "BN_UNFOLDED"},   /* a check output code, not a finding */
        {"BN_TINY", "BN_TINY"},                   /* a prefix is not a code */
        {"Error", "Error"},
        {"", "empty"},                            /* an empty list is a mistake */
        {",error", "empty item"},
        {"error,,info", "empty item"},
        {"error,", "empty item"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bnf_model *m = load_model(HEALTH "tiny_var.onnx");
        bnf_report *r = NULL;
        bnf_err err = {0};
        assert_int_equal(bnf_inspect(m, &r, &err), BNF_OK);
        bnf_status st = bnf_check(r, bad[i].fail_on, &err);
        if (st != BNF_ERR_USAGE)
            fail_msg("--fail-on %s: status %d, expected BNF_ERR_USAGE", bad[i].fail_on, (int)st);
        assert_int_equal(err.code, BNF_ERR_USAGE);
        if (!strstr(err.msg, bad[i].named))
            fail_msg("--fail-on %s: message '%s' does not name '%s'", bad[i].fail_on, err.msg,
                     bad[i].named);
        bnf_report_free(r);
        bnf_model_free(m);
    }
}

/* After fold, nothing is left for "unfolded" to trip on; the findings of the
 * folded model are gone with its BNs. */
static void test_unfolded_after_fold(void **state)
{
    static const char *const names[] = {"healthy", "tiny_var", "large_scale", "multi_bn"};
    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bnf_model *m = load_named(HEALTH, names[i], ".onnx"), *again;
        bnf_report *r = NULL, *ri = NULL;
        bnf_err err = {0};
        uint8_t *buf = NULL;
        size_t size = 0;
        assert_int_equal(bnf_inspect(m, &ri, &err), BNF_OK);
        assert_int_equal(bnf_check(ri, "unfolded", &err), BNF_OK);
        assert_true(ri->check_trips > 0);
        assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
        assert_int_equal(bnf_model_serialize(m, &buf, &size, &err), BNF_OK);
        assert_int_equal(bnf_model_load_buffer(buf, size, NULL, &again, &err), BNF_OK);
        bnf_report_free(ri);
        ri = NULL;
        assert_int_equal(bnf_inspect(again, &ri, &err), BNF_OK);
        assert_int_equal(bnf_check(ri, "unfolded", &err), BNF_OK);
        if (ri->check_trips != 0)
            fail_msg("%s folded: unfolded trips %zu", names[i], ri->check_trips);
        assert_int_equal(ri->n_bns, r->n_bns - r->n_folded);
        free(buf);
        bnf_report_free(r);
        bnf_report_free(ri);
        bnf_model_free(again);
        bnf_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_listed),
        cmocka_unit_test(test_inspect_findings),
        cmocka_unit_test(test_fold_fates),
        cmocka_unit_test(test_check_gates),
        cmocka_unit_test(test_check_rerun_resets),
        cmocka_unit_test(test_check_headlines),
        cmocka_unit_test(test_check_unknown_word),
        cmocka_unit_test(test_unfolded_after_fold),
    };
    return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
