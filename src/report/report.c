/* report.c: what a pass found: the report object (it owns every string in
 * it) and its text forms, a table for people and GitHub annotations.  Its
 * JSON form is in json.c. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S(x) ((x) ? (x) : "")

bnf_status bnf_report_set(char **field, const char *value, bnf_err *err)
{
    char *copy = value ? bnf_strdup(value) : NULL;
    if (value && !copy)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    bnf_free(*field);
    *field = copy;
    return BNF_OK;
}

bnf_status bnf_report_set_output(bnf_report *r, const char *path, bnf_err *err)
{
    return bnf_report_set(&r->output_path, path, err);
}

void bnf_report_free(bnf_report *r)
{
    if (!r)
        return;
    bnf_free(r->input_path);
    bnf_free(r->output_path);
    bnf_free(r->producer);
    for (size_t i = 0; i < r->n_opsets; i++)
        bnf_free(r->opsets[i].domain);
    bnf_free(r->opsets);
    for (size_t i = 0; i < r->n_op_counts; i++)
        bnf_free(r->op_counts[i].op_type);
    bnf_free(r->op_counts);
    for (size_t i = 0; i < r->n_bns; i++) {
        bnf_bn_info *b = &r->bns[i];
        bnf_free(b->name);
        bnf_free(b->output);
        bnf_free(b->layer);
        bnf_free(b->layer_op);
        bnf_free(b->reason);
        bnf_free(b->new_weight);
        bnf_free(b->new_bias);
        bnf_free(b->path);
    }
    bnf_free(r->bns);
    for (size_t i = 0; i < r->n_actions; i++) {
        bnf_fold_action *a = &r->actions[i];
        bnf_free(a->op);
        bnf_free(a->node);
        bnf_free(a->layer);
        bnf_free(a->layer_op);
        bnf_free(a->weight);
        bnf_free(a->bias);
    }
    bnf_free(r->actions);
    bnf_free(r->findings);
    bnf_free(r->check_fail_on);
    bnf_free(r);
}

static int count_op(bnf_report *r, const char *op)
{
    for (size_t i = 0; i < r->n_op_counts; i++)
        if (strcmp(r->op_counts[i].op_type, op) == 0) {
            r->op_counts[i].count++;
            return 0;
        }
    r->op_counts[r->n_op_counts].op_type = bnf_strdup(op);
    if (!r->op_counts[r->n_op_counts].op_type)
        return -1;
    r->op_counts[r->n_op_counts++].count = 1;
    return 0;
}

double bnf_ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

bnf_status bnf_report_begin(const bnf_model *m, const char *command, bnf_report **out,
                            bnf_err *err)
{
    const Onnx__ModelProto *p = m->proto;
    const Onnx__GraphProto *g = p->graph;
    bnf_report *r = bnf_calloc(1, sizeof *r);

    *out = NULL;
    if (!r)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    r->command = command;
    r->ms.load = r->ms.fold = r->ms.local_check = r->ms.end_to_end = r->ms.write = NAN;
    r->ir_version = p->has_ir_version ? p->ir_version : 0;
    r->opsets = bnf_calloc(p->n_opset_import + 1, sizeof *r->opsets);
    r->op_counts = bnf_calloc(g->n_node + 1, sizeof *r->op_counts);
    if (!r->opsets || !r->op_counts)
        goto nomem;
    if (m->path && !(r->input_path = bnf_strdup(m->path)))
        goto nomem;
    for (size_t i = 0; i < p->n_opset_import; i++) {
        r->opsets[i].domain = bnf_strdup(S(p->opset_import[i]->domain));
        if (!r->opsets[i].domain)
            goto nomem;
        r->opsets[i].version = p->opset_import[i]->version;
        r->n_opsets++;
    }
    {
        size_t len = strlen(S(p->producer_name)) + strlen(S(p->producer_version)) + 2;
        r->producer = bnf_malloc(len);
        if (!r->producer)
            goto nomem;
        snprintf(r->producer, len, "%s%s%s", S(p->producer_name),
                 p->producer_version && *p->producer_version ? " " : "", S(p->producer_version));
    }
    r->n_nodes = g->n_node;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (count_op(r, S(n->op_type)) != 0)
            goto nomem;
    }
    r->n_initializers = g->n_initializer;
    for (size_t i = 0; i < g->n_initializer; i++)
        r->initializer_bytes += bnf_proto_nbytes(g->initializer[i]);
    *out = r;
    return BNF_OK;
nomem:
    bnf_report_free(r);
    return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
}

size_t bnf_report_count(const bnf_report *r, const char *severity)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_findings; i++)
        n += strcmp(r->findings[i].severity, severity) == 0;
    return n;
}

/* ---- text -------------------------------------------------------------------------- */

static void fmt_num(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.3g", v);
}

/* ANSI colours for the fate column and findings, only when asked for. */
#define PAINT(color, code) ((color) ? (code) : "")
#define GREEN "\033[32m"
#define BLUE "\033[34m"
#define YELLOW "\033[33m"
#define RED "\033[31m"
#define RESET "\033[0m"

void bnf_report_write_text(const bnf_report *r, FILE *f)
{
    bnf_report_write_text_styled(r, f, 0);
}

void bnf_report_write_text_styled(const bnf_report *r, FILE *f, int color)
{
    int fold = strcmp(r->command, "fold") == 0;

    fprintf(f, "model     %s\n", S(r->input_path));
    fprintf(f, "format    IR %lld, opsets", (long long)r->ir_version);
    for (size_t i = 0; i < r->n_opsets; i++)
        fprintf(f, "%s %s %lld", i ? "," : "",
                *r->opsets[i].domain ? r->opsets[i].domain : "ai.onnx",
                (long long)r->opsets[i].version);
    fprintf(f, "\nproducer  %s\n", *r->producer ? r->producer : "(not set)");
    fprintf(f, "nodes     %zu:", r->n_nodes);
    for (size_t i = 0; i < r->n_op_counts; i++)
        fprintf(f, " %s %zu%s", r->op_counts[i].op_type, r->op_counts[i].count,
                i + 1 < r->n_op_counts ? "," : "");
    fprintf(f, "\nweights   %zu initializers, %.1f MB\n\n", r->n_initializers,
            (double)r->initializer_bytes / 1e6);
    if (!r->n_bns && !r->n_actions) {
        fprintf(f, "no BatchNormalization nodes\n");
        return;
    }
    /* fixed-width columns first, names (any length) last */
    fprintf(f, "%-8s %8s %9s %9s %9s  %s\n", fold ? "fate" : "decision", "channels", "epsilon",
            "min var", "max|s|", "BatchNormalization <- layer before it (-> after it)");
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        char ch[24], eps[24], mv[24], ms[24];
        snprintf(ch, sizeof ch, b->channels >= 0 ? "%lld" : "-", (long long)b->channels);
        fmt_num(eps, sizeof eps, b->epsilon);
        fmt_num(mv, sizeof mv, b->min_var);
        fmt_num(ms, sizeof ms, b->max_abs_scale);
        fprintf(f, "%s%-8s%s %8s %9s %9s %9s  %s",
                PAINT(color, b->folded ? GREEN : b->lowered ? BLUE : YELLOW),
                b->folded ? (fold ? "folded" : "fold") : b->lowered ? (fold ? "lowered" : "lower")
                                                                    : "skip",
                PAINT(color, RESET), ch, eps, mv, ms, *b->name ? b->name : "(unnamed)");
        if (b->layer)
            fprintf(f, " %s %s %s", b->before_layer ? "->" : "<-", S(b->layer_op),
                    *b->layer ? b->layer : "(unnamed)");
        if (b->path && *b->path)
            fprintf(f, "  [in %s]", b->path);
        fputc('\n', f);
        if (b->assumed_inference)
            fprintf(f, "%-8s `- was in training mode: --assume-inference made it an inference BN\n", "");
        if (!b->folded)
            fprintf(f, "%-8s `- %s: %s%s\n", "", S(b->reason_code), S(b->reason),
                    b->lowered ? " (lowered to Mul + Add)" : "");
        for (size_t k = 0; k < r->n_findings; k++) {
            const bnf_finding *x = &r->findings[k];
            if (x->bn != i || !strcmp(x->severity, "info")) /* info: counted below, in JSON */
                continue;
            fprintf(f, "%-8s `- %s%s%s %s: %s", "",
                    PAINT(color, !strcmp(x->severity, "error") ? RED : YELLOW), x->severity,
                    PAINT(color, RESET), x->code, x->message);
            if (x->n_channels) {
                fprintf(f, " (%zu channel%s:", x->n_channels, x->n_channels > 1 ? "s" : "");
                for (size_t c = 0; c < x->n_channels && c < 8; c++)
                    fprintf(f, " %lld", (long long)x->channels[c]);
                fputs(x->n_channels > 8 ? " ...)" : ")", f);
            }
            fputc('\n', f);
        }
    }
    fprintf(f, "\n%zu BatchNormalization: %zu %s, %zu skipped", r->n_bns, r->n_folded,
            fold ? "folded" : "foldable", r->n_bns - r->n_folded - r->n_lowered);
    if (r->n_lowered)
        fprintf(f, ", %zu %s to Mul + Add", r->n_lowered, fold ? "lowered" : "to lower");
    if (fold)
        fprintf(f, "; %zu left in the model", r->n_bns_after);
    fputc('\n', f);
    if (r->n_findings)
        fprintf(f, "health: %zu error, %zu warning, %zu info finding(s)%s\n",
                bnf_report_count(r, "error"), bnf_report_count(r, "warning"), bnf_report_count(r, "info"),
                bnf_report_count(r, "info") ? " (info, e.g. dead channels: see --json)" : "");
    if (r->n_frozen_inputs)
        fprintf(f, "%zu initializer%s no longer listed as graph inputs (--freeze-inputs)\n",
                r->n_frozen_inputs, r->n_frozen_inputs > 1 ? "s" : "");
    {
        size_t muls = 0, adds = 0;
        for (size_t i = 0; i < r->n_actions; i++) {
            muls += strcmp(r->actions[i].op, "Mul") == 0;
            adds += strcmp(r->actions[i].op, "Add") == 0;
        }
        if (muls || adds)
            fprintf(f, "also %s %zu Mul and %zu Add by per-channel constants into their layers\n",
                    fold ? "folded" : "foldable", muls, adds);
    }
    if (!fold || !r->n_actions)
        return;
    if (r->verified_local)
        fprintf(f, "verified  each fold on its own: worst |diff|/max|out| %.2g\n", r->local_worst);
    else
        fprintf(f, "verified  no (--no-verify)\n");
    if (r->e2e_requested && r->e2e.ran)
        fprintf(f, "          whole model, %zu random input sets, %zu outputs and %zu shared "
                   "values: worst |diff|/max|value| %.2g (at '%s')\n", r->e2e.sets,
                r->e2e.outputs, r->e2e.values, r->e2e.worst_rel, r->e2e.worst_output);
    if (r->e2e_requested && r->e2e.ran && r->e2e_noise > 0)
        fprintf(f, "          beyond the tolerance, within the noise of the 16-bit weights: "
                   "tolerance widened by %.2g x max|value|, as far as the original's outputs "
                   "move when its weights move by their rounding\n", r->e2e_noise);
    else if (r->e2e_requested && !r->e2e.ran)
        fprintf(f, "          whole model: not run: %s\n", r->e2e.reason);
}

/* check's text: a line per finding (FAIL when it trips the gate), a line per
 * BN the gate's "unfolded" trips on, and the verdict naming the model. */
void bnf_report_write_check(const bnf_report *r, FILE *f)
{
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *x = &r->findings[i];
        fprintf(f, "%s %-8s %-16s BatchNormalization '%s': %s\n", x->trips ? "FAIL" : "    ",
                x->severity, x->code, r->bns[x->bn].name, x->message);
    }
    for (size_t i = 0; i < r->n_bns; i++)
        if (r->bns[i].trips)
            fprintf(f, "FAIL %-8s %-16s BatchNormalization '%s' can be folded into %s '%s'\n",
                    bnf_code_severity(BNF_BN_UNFOLDED), bnf_code_name(BNF_BN_UNFOLDED),
                    r->bns[i].name, S(r->bns[i].layer_op), S(r->bns[i].layer));
    fprintf(f, "%s: %zu BatchNormalization, %zu finding(s); --fail-on %s: %s\n",
            S(r->input_path), r->n_bns, r->n_findings, S(r->check_fail_on),
            r->check_trips ? "FAILED" : "passed");
}

void bnf_github_text(FILE *f, const char *s, int property)
{
    for (; *s; s++) {
        if (*s == '%')
            fputs("%25", f);
        else if (*s == '\r')
            fputs("%0D", f);
        else if (*s == '\n')
            fputs("%0A", f);
        else if (property && *s == ':')
            fputs("%3A", f);
        else if (property && *s == ',')
            fputs("%2C", f);
        else
            fputc(*s, f);
    }
}

static void gh_escape(FILE *f, const char *s)
{
    bnf_github_text(f, s, 0);
}

static void gh_property(FILE *f, const char *s)
{
    bnf_github_text(f, s, 1);
}

void bnf_report_write_github(const bnf_report *r, FILE *f)
{
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *x = &r->findings[i];
        const char *level = x->trips || !strcmp(x->severity, "error") ? "error"
                            : !strcmp(x->severity, "warning")           ? "warning"
                                                                         : "notice";
        fprintf(f, "::%s file=", level);
        gh_property(f, S(r->input_path));
        fprintf(f, ",title=%s::BatchNormalization '", x->code);
        gh_escape(f, r->bns[x->bn].name);
        fputs("': ", f);
        gh_escape(f, x->message);
        if (x->n_channels)
            fprintf(f, " (%zu channel%s)", x->n_channels, x->n_channels > 1 ? "s" : "");
        fputc('\n', f);
    }
    for (size_t i = 0; i < r->n_bns; i++) {
        if (!r->bns[i].trips)
            continue;
        fputs("::error file=", f);
        gh_property(f, S(r->input_path));
        fprintf(f, ",title=%s::BatchNormalization '", bnf_code_name(BNF_BN_UNFOLDED));
        gh_escape(f, r->bns[i].name);
        fputs("' can be folded into ", f);
        gh_escape(f, S(r->bns[i].layer_op));
        fputs(" '", f);
        gh_escape(f, S(r->bns[i].layer));
        fputs("': run bnfold fold\n", f);
    }
}

long bnf_report_find_bn(const bnf_report *r, const Onnx__NodeProto *n, const char *path,
                        size_t *next)
{
    const char *out = n->n_output ? S(n->output[0]) : "";
    if (!r)
        return -1;
    if (*next < r->n_bns) {
        const bnf_bn_info *b = &r->bns[*next];
        if (!strcmp(S(b->name), S(n->name)) && !strcmp(S(b->output), out) &&
            !strcmp(S(b->path), path))
            return (long)(*next)++;
    }
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        if (!strcmp(S(b->name), S(n->name)) && !strcmp(S(b->output), out) &&
            !strcmp(S(b->path), path))
            return (long)i;
    }
    return -1;
}
