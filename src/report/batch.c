/* batch.c: the results of a run over many models (bnfold check / inspect /
 * fold PATH...): their summary, and the writer that prints them one at a time
 * as text, GitHub annotations or one JSON document (SARIF: sarif.c).  Each
 * model's part is what the one-model command prints for it, so a run over
 * many says of every model what a run over that model alone says. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

struct bnf_batch_writer {
    FILE *f;
    bnf_format format;
    const char *command;
    int color;
    size_t n;        /* results written */
    bnf_sarif *sarif;
};

int bnf_result_exit(const bnf_model_result *r)
{
    if (r->status != BNF_OK || !r->report)
        return bnf_exit_code(r->status == BNF_OK ? BNF_ERR_IO : r->status);
    return r->report->check_ran && r->report->check_trips ? 1 : 0;
}

/* ---- the summary ------------------------------------------------------------------ */

void bnf_summary_init(bnf_summary *s, const char *command)
{
    memset(s, 0, sizeof *s);
    s->command = command;
}

static void count_code(bnf_summary *s, const char *code)
{
    bnf_code c = code ? bnf_code_find(code, strlen(code)) : BNF_NO_CODE;
    if (c != BNF_NO_CODE && (size_t)c - 1 < BNF_MAX_CODES)
        s->by_code[c - 1]++;
}

void bnf_summary_add(bnf_summary *s, const bnf_model_result *res)
{
    const bnf_report *r = res->report;
    int code = bnf_result_exit(res);

    s->models++;
    if (code == 0)
        s->passed++;
    else if (code == 1)
        s->failed++;
    else
        s->unreadable++;
    s->exit_code = bnf_exit_worst(s->exit_code, code);
    if (res->status != BNF_OK || !r)
        return;
    s->batchnorms += r->n_bns;
    s->folded += r->n_folded;
    s->lowered += r->n_lowered;
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        if (!b->folded && !b->lowered) {
            s->skipped++;
            count_code(s, b->reason_code);
        }
        if (b->trips) {
            s->problems++;
            s->by_code[BNF_BN_UNFOLDED - 1]++;
        }
    }
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *x = &r->findings[i];
        s->findings[!strcmp(x->severity, "error") ? 0 : !strcmp(x->severity, "warning") ? 1 : 2]++;
        count_code(s, x->code);
        s->problems += x->trips ? 1 : 0;
    }
}

_Static_assert(BNF_CODE_COUNT - 1 <= BNF_MAX_CODES, "bnf_summary.by_code holds every code");

/* ", CODE n, CODE n" for the codes of one kind counted in s, after `lead`
 * (nothing at all when none is). */
static void codes_text(const bnf_summary *s, bnf_code_kind kind, const char *lead, FILE *f)
{
    size_t n;
    const bnf_code_info *c = bnf_codes(&n);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (c[i].kind != kind || !s->by_code[i])
            continue;
        fprintf(f, "%s%s %zu", first ? lead : ", ", c[i].code, s->by_code[i]);
        first = 0;
    }
}

void bnf_summary_write_text(const bnf_summary *s, FILE *f)
{
    int fold = !strcmp(S(s->command), "fold");
    fprintf(f, "%s: %zu model%s: %zu passed, %zu failed, %zu unreadable; exit status %d\n",
            S(s->command), s->models, s->models == 1 ? "" : "s", s->passed, s->failed,
            s->unreadable, s->exit_code);
    fprintf(f, "BatchNormalization: %zu in all, %zu %s, %zu lowered, %zu skipped", s->batchnorms,
            s->folded, fold ? "folded" : "foldable", s->lowered, s->skipped);
    codes_text(s, BNF_CODE_SKIP, ": ", f);
    fprintf(f, "\nfindings: %zu error, %zu warning, %zu info", s->findings[0], s->findings[1],
            s->findings[2]);
    codes_text(s, BNF_CODE_FINDING, ": ", f);
    fputc('\n', f);
    if (!strcmp(S(s->command), "check")) {
        fprintf(f, "gate: %zu problem%s", s->problems, s->problems == 1 ? "" : "s");
        codes_text(s, BNF_CODE_GATE, " (", f);
        fputs(s->by_code[BNF_BN_UNFOLDED - 1] ? ")\n" : "\n", f);
    }
}

static void summary_json(const bnf_summary *s, FILE *f)
{
    size_t n;
    const bnf_code_info *c = bnf_codes(&n);
    static const bnf_code_kind kinds[2] = {BNF_CODE_SKIP, BNF_CODE_FINDING};
    static const char *const names[2] = {"skipped_by_reason", "findings_by_code"};

    fprintf(f, "  \"summary\": {\n    \"models\": %zu, \"passed\": %zu, \"failed\": %zu, "
               "\"unreadable\": %zu, \"exit_code\": %d,\n    \"batchnorms\": %zu, \"folded\": %zu, "
               "\"lowered\": %zu, \"skipped\": %zu,\n",
            s->models, s->passed, s->failed, s->unreadable, s->exit_code, s->batchnorms,
            s->folded, s->lowered, s->skipped);
    fprintf(f, "    \"findings\": {\"error\": %zu, \"warning\": %zu, \"info\": %zu},\n",
            s->findings[0], s->findings[1], s->findings[2]);
    for (int k = 0; k < 2; k++) {
        int first = 1;
        fprintf(f, "    \"%s\": {", names[k]);
        for (size_t i = 0; i < n; i++) {
            if (c[i].kind != kinds[k] || !s->by_code[i])
                continue;
            fputs(first ? "" : ", ", f);
            bnf_json_str(f, c[i].code);
            fprintf(f, ": %zu", s->by_code[i]);
            first = 0;
        }
        fputs("},\n", f);
    }
    fprintf(f, "    \"problems\": %zu, \"unfolded\": %zu\n  }\n", s->problems,
            s->by_code[BNF_BN_UNFOLDED - 1]);
}

/* ---- the writer ------------------------------------------------------------------- */

bnf_status bnf_batch_writer_new(FILE *f, bnf_format format, const char *command, int color,
                                bnf_batch_writer **out, bnf_err *err)
{
    bnf_batch_writer *w;
    bnf_status rc;
    *out = NULL;
    if (!f || !command || (strcmp(command, "inspect") && strcmp(command, "check") &&
                           strcmp(command, "fold")) ||
        format < BNF_FORMAT_TEXT || format > BNF_FORMAT_SARIF)
        return bnf_fail(err, BNF_ERR_USAGE, "a batch writer wants a stream, a command "
                        "(inspect, check or fold) and a format");
    if (!(w = bnf_calloc(1, sizeof *w)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    w->f = f;
    w->format = format;
    w->command = command;
    w->color = color;
    if (format == BNF_FORMAT_SARIF && (rc = bnf_sarif_new(f, command, &w->sarif, err))) {
        bnf_free(w);
        return rc;
    }
    if (format == BNF_FORMAT_JSON) {
        bnf_json_head(f, command);
        fputs(",\n  \"models\": [", f);
    }
    *out = w;
    return BNF_OK;
}

static const char *outcome(int code)
{
    return code == 0 ? "passed" : code == 1 ? "failed" : "unreadable";
}

static void fields_of(const void *r, FILE *f)
{
    bnf_json_report_fields(r, f);
}

static void add_json(bnf_batch_writer *w, const bnf_model_result *r)
{
    FILE *f = w->f;
    int code = bnf_result_exit(r);
    fprintf(f, "%s\n    {\n      \"outcome\": \"%s\",\n      \"exit_code\": %d,\n"
               "      \"error\": ", w->n ? "," : "", outcome(code), code);
    if (r->status == BNF_OK && r->report) {
        fputs("null,\n    ", f);
        bnf_json_indented(f, 4, fields_of, r->report);
    } else {
        bnf_json_str(f, S(r->message));
        fputs(",\n      \"input\": ", f);
        bnf_json_str(f, S(r->path));
    }
    fputs("\n    }", f);
}

void bnf_batch_writer_add(bnf_batch_writer *w, const bnf_model_result *r)
{
    FILE *f = w->f;
    int ok = r->status == BNF_OK && r->report;
    switch (w->format) {
    case BNF_FORMAT_TEXT:
        if (!ok) {
            size_t n = strlen(S(r->path));
            const char *m = S(r->message);
            if (n && !strncmp(m, S(r->path), n) && m[n] == ':') /* the path only once */
                m += n + 1 + (m[n + 1] == ' ');
            fprintf(f, "%s: error: %s\n", S(r->path), m);
        } else if (!strcmp(w->command, "check")) {
            bnf_report_write_check(r->report, f);
        } else {
            if (w->n)
                fputc('\n', f);
            bnf_report_write_text_styled(r->report, f, w->color);
            if (r->report->output_path)
                fprintf(f, "wrote %s\n", r->report->output_path);
        }
        break;
    case BNF_FORMAT_GITHUB:
        if (ok) {
            bnf_report_write_github(r->report, f);
        } else {
            fputs("::error file=", f);
            bnf_github_text(f, S(r->path), 1);
            fputs(",title=bnfold::", f);
            bnf_github_text(f, S(r->message), 0);
            fputc('\n', f);
        }
        break;
    case BNF_FORMAT_JSON:
        add_json(w, r);
        break;
    case BNF_FORMAT_SARIF:
        bnf_sarif_add(w->sarif, r);
        break;
    }
    w->n++;
}

bnf_status bnf_batch_writer_end(bnf_batch_writer *w, const bnf_summary *s, bnf_err *err)
{
    FILE *f = w->f;
    switch (w->format) {
    case BNF_FORMAT_TEXT:
    case BNF_FORMAT_GITHUB:
        if (w->n)
            fputc('\n', f);
        bnf_summary_write_text(s, f);
        break;
    case BNF_FORMAT_JSON:
        fputs(w->n ? "\n  ],\n" : "],\n", f);
        summary_json(s, f);
        fputs("}\n", f);
        break;
    case BNF_FORMAT_SARIF:
        bnf_sarif_end(w->sarif, s);
        break;
    }
    if (fflush(f) != 0 || ferror(f))
        return bnf_fail(err, BNF_ERR_IO, "writing the results failed");
    return BNF_OK;
}

void bnf_batch_writer_free(bnf_batch_writer *w)
{
    if (!w)
        return;
    bnf_sarif_free(w->sarif);
    bnf_free(w);
}
