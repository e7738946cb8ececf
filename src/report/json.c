/* json.c: every JSON document bnfold writes (schema: docs/report.schema.json,
 * fields: docs/contract.md): the inspect / fold / check report, the result of
 * verify, and the outputs of run.  One escaper, one number format (NaN and
 * infinity are null: JSON has neither), one header with the tool, its version,
 * the schema version and the command. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

/* The length of the well-formed UTF-8 sequence at p (1-4), or 0 when the
 * bytes there are not one (overlong forms, surrogates and values beyond
 * U+10FFFF included). */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n;
    unsigned v, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[k] & 0x3f);
    }
    return v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) ? 0 : n;
}

void bnf_json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n;
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) {
                fprintf(f, "\\u%04x", *p);
            } else if ((n = utf8_len(p)) == 0) {
                fputs("\\ufffd", f); /* not UTF-8: JSON text must be */
            } else {
                fwrite(p, 1, n, f);
                p += n;
                continue;
            }
        }
        p++;
    }
    fputc('"', f);
}

void bnf_json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f); /* JSON has no NaN or infinity */
}

/* The start of every document, up to the command (no newline after it). */
void bnf_json_head(FILE *f, const char *command)
{
    fprintf(f, "{\n  \"tool\": \"bnfold\",\n  \"version\": \"%s\",\n  \"schema_version\": %d,\n",
            BNF_VERSION, BNF_JSON_SCHEMA_VERSION);
    fputs("  \"command\": ", f);
    bnf_json_str(f, command);
}

static void write_actions(const bnf_report *r, FILE *f)
{
    fputs("  \"actions\": [", f);
    for (size_t i = 0; i < r->n_actions; i++) {
        const bnf_fold_action *a = &r->actions[i];
        fputs(i ? ",\n    {\"op\": " : "\n    {\"op\": ", f);
        bnf_json_str(f, a->op);
        fputs(", \"node\": ", f);
        bnf_json_str(f, a->node);
        if (strcmp(a->op, "BatchNormalization") == 0) {
            fputs(", \"bn\": ", f);
            bnf_json_str(f, a->node);
        }
        fprintf(f, ", \"position\": \"%s\", \"layer\": ", a->position);
        bnf_json_str(f, a->layer);
        fputs(", \"layer_op\": ", f);
        bnf_json_str(f, a->layer_op);
        fputs(", \"weight\": ", f);
        bnf_json_str(f, a->weight);
        fputs(", \"bias\": ", f);
        bnf_json_str(f, a->bias);
        fputs(", \"local_rel_err\": ", f);
        bnf_json_num(f, a->local_err);
        fputc('}', f);
    }
    fputs(r->n_actions ? "\n  ],\n" : "],\n", f);
}

static void write_findings(const bnf_report *r, FILE *f)
{
    fputs("  \"findings\": [", f);
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *x = &r->findings[i];
        fputs(i ? ",\n    {\"code\": " : "\n    {\"code\": ", f);
        bnf_json_str(f, x->code);
        fputs(", \"severity\": ", f);
        bnf_json_str(f, x->severity);
        fputs(", \"node\": ", f);
        bnf_json_str(f, r->bns[x->bn].name);
        fputs(", \"graph\": ", f);
        bnf_json_str(f, S(r->bns[x->bn].path));
        fprintf(f, ", \"n_channels\": %zu, \"channels\": [", x->n_channels);
        for (size_t k = 0; k < x->n_channels && k < 16; k++)
            fprintf(f, "%s%lld", k ? ", " : "", (long long)x->channels[k]);
        fputs("], \"message\": ", f);
        bnf_json_str(f, x->message);
        fputc('}', f);
    }
    fputs(r->n_findings ? "\n  ],\n" : "],\n", f);
}

static void write_verification(const bnf_report *r, FILE *f)
{
    fputs("  \"verification\": {\"local\": ", f);
    if (r->verified_local) {
        fprintf(f, "{\"checked\": %zu, \"pass\": true, \"worst_rel_err\": ", r->n_actions);
        bnf_json_num(f, r->local_worst);
        fputs("}", f);
    } else {
        fputs("null", f);
    }
    fputs(", \"end_to_end\": ", f);
    if (!r->e2e_requested) {
        fputs("null", f);
    } else if (!r->e2e.ran) {
        fputs("{\"ran\": false, \"reason\": ", f);
        bnf_json_str(f, r->e2e.reason);
        fputs("}", f);
    } else {
        fprintf(f, "{\"ran\": true, \"pass\": %s, \"input_sets\": %zu, \"outputs\": %zu, "
                   "\"values\": %zu, \"worst_abs_err\": ", r->e2e.equivalent ? "true" : "false",
                r->e2e.sets, r->e2e.outputs, r->e2e.values);
        bnf_json_num(f, r->e2e.worst_abs);
        fputs(", \"worst_rel_err\": ", f);
        bnf_json_num(f, r->e2e.worst_rel);
        fputs(", \"worst_output\": ", f);
        bnf_json_str(f, r->e2e.worst_output);
        fputs(", \"noise_floor\": ", f);
        bnf_json_num(f, r->e2e_noise);
        fputs("}", f);
    }
    fputs("},\n", f);
}

void bnf_report_write_json(const bnf_report *r, FILE *f)
{
    bnf_json_head(f, r->command);
    fputs(",\n", f);
    bnf_json_report_fields(r, f);
    fputs("\n}\n", f);
}

void bnf_json_report_fields(const bnf_report *r, FILE *f)
{
    fputs("  \"input\": ", f);
    bnf_json_str(f, r->input_path);
    if (strcmp(r->command, "fold") == 0) {
        fputs(",\n  \"output\": ", f);
        bnf_json_str(f, r->output_path);
    }
    fprintf(f, ",\n  \"model\": {\n    \"ir_version\": %lld,\n    \"opsets\": [",
            (long long)r->ir_version);
    for (size_t i = 0; i < r->n_opsets; i++) {
        fputs(i ? ", {\"domain\": " : "{\"domain\": ", f);
        bnf_json_str(f, r->opsets[i].domain);
        fprintf(f, ", \"version\": %lld}", (long long)r->opsets[i].version);
    }
    fputs("],\n    \"producer\": ", f);
    bnf_json_str(f, r->producer);
    fprintf(f, ",\n    \"nodes\": %zu,\n    \"op_counts\": {", r->n_nodes);
    for (size_t i = 0; i < r->n_op_counts; i++) {
        fputs(i ? ", " : "", f);
        bnf_json_str(f, r->op_counts[i].op_type);
        fprintf(f, ": %zu", r->op_counts[i].count);
    }
    fprintf(f, "},\n    \"initializers\": %zu,\n    \"initializer_bytes\": %llu\n  },\n",
            r->n_initializers, (unsigned long long)r->initializer_bytes);
    fputs("  \"batchnorms\": [", f);
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
        bnf_json_str(f, b->name);
        fputs(", \"output\": ", f);
        bnf_json_str(f, b->output);
        fputs(", \"layer_op\": ", f);
        bnf_json_str(f, b->layer_op);
        fputs(", \"layer\": ", f);
        bnf_json_str(f, b->layer);
        fprintf(f, ", \"position\": \"%s\"", b->before_layer ? "before" : "after");
        fprintf(f, ", \"decision\": \"%s\", \"reason_code\": ",
                b->folded ? "fold" : b->lowered ? "lower" : "skip");
        bnf_json_str(f, b->folded ? NULL : b->reason_code);
        fputs(", \"reason\": ", f);
        bnf_json_str(f, b->folded ? NULL : b->reason);
        fputs(", \"graph\": ", f);
        bnf_json_str(f, S(b->path));
        fprintf(f, ", \"assumed_inference\": %s", b->assumed_inference ? "true" : "false");
        if (b->channels >= 0)
            fprintf(f, ", \"channels\": %lld", (long long)b->channels);
        else
            fputs(", \"channels\": null", f);
        fputs(", \"epsilon\": ", f);
        bnf_json_num(f, b->epsilon);
        fputs(", \"min_var\": ", f);
        bnf_json_num(f, b->min_var);
        fputs(", \"max_abs_scale\": ", f);
        bnf_json_num(f, b->max_abs_scale);
        if (strcmp(r->command, "fold") == 0) {
            fputs(", \"local_rel_err\": ", f);
            bnf_json_num(f, b->local_err);
        }
        fputc('}', f);
    }
    fputs(r->n_bns ? "\n  ],\n" : "],\n", f);
    write_findings(r, f);
    if (r->check_ran) {
        fputs("  \"check\": {\"fail_on\": ", f);
        bnf_json_str(f, r->check_fail_on);
        fprintf(f, ", \"pass\": %s, \"problems\": [", r->check_trips ? "false" : "true");
        size_t k = 0;
        for (size_t i = 0; i < r->n_findings; i++) {
            if (!r->findings[i].trips)
                continue;
            fputs(k++ ? ", {\"code\": " : "{\"code\": ", f);
            bnf_json_str(f, r->findings[i].code);
            fputs(", \"node\": ", f);
            bnf_json_str(f, r->bns[r->findings[i].bn].name);
            fputs("}", f);
        }
        for (size_t i = 0; i < r->n_bns; i++) {
            if (!r->bns[i].trips)
                continue;
            fputs(k++ ? ", {\"code\": " : "{\"code\": ", f);
            bnf_json_str(f, bnf_code_name(BNF_BN_UNFOLDED));
            fputs(", \"node\": ", f);
            bnf_json_str(f, r->bns[i].name);
            fputs("}", f);
        }
        fputs("]},\n", f);
    }
    if (strcmp(r->command, "fold") == 0) {
        const double *ms[5] = {&r->ms.load, &r->ms.fold, &r->ms.local_check, &r->ms.end_to_end,
                               &r->ms.write};
        static const char *const phase[5] = {"load", "fold", "local_check", "end_to_end",
                                             "write"};
        write_actions(r, f);
        write_verification(r, f);
        fputs("  \"timings_ms\": {", f);
        for (int k = 0; k < 5; k++) {
            fprintf(f, "%s\"%s\": ", k ? ", " : "", phase[k]);
            bnf_json_num(f, *ms[k]);
        }
        fputs("},\n", f);
    }
    fprintf(f,
            "  \"summary\": {\"batchnorms\": %zu, \"folded\": %zu, \"skipped\": %zu, "
            "\"lowered\": %zu, \"batchnorms_after\": %zu, \"frozen_inputs\": %zu, "
            "\"findings\": {\"error\": %zu, \"warning\": %zu, \"info\": %zu}}",
            r->n_bns, r->n_folded, r->n_bns - r->n_folded - r->n_lowered, r->n_lowered,
            r->n_bns_after, r->n_frozen_inputs, bnf_report_count(r, "error"),
            bnf_report_count(r, "warning"), bnf_report_count(r, "info"));
}


void bnf_verify_write_json(const bnf_verify_result *r, const char *model_a, const char *model_b,
                           const bnf_verify_options *o, FILE *f)
{
    bnf_json_head(f, "verify");
    fputs(",\n  \"models\": [", f);
    bnf_json_str(f, model_a);
    fputs(", ", f);
    bnf_json_str(f, model_b);
    fprintf(f, "],\n  \"equivalent\": %s,\n  \"input_sets\": %zu,\n  \"outputs\": %zu,\n"
               "  \"values\": %zu,\n  \"rtol\": ", r->equivalent ? "true" : "false", r->sets,
            r->outputs, r->values);
    bnf_json_num(f, o->rtol);
    fputs(",\n  \"atol\": ", f);
    bnf_json_num(f, o->atol);
    fputs(",\n  \"worst_abs_err\": ", f);
    bnf_json_num(f, r->worst_abs);
    fputs(",\n  \"worst_rel_err\": ", f);
    bnf_json_num(f, r->worst_rel);
    fputs(",\n  \"worst_output\": ", f);
    bnf_json_str(f, r->worst_output);
    fputs(",\n  \"worst_element\": ", f);
    bnf_json_str(f, r->worst_element);
    fputs(",\n  \"message\": ", f);
    bnf_json_str(f, r->equivalent ? "" : r->reason);
    fputs("\n}\n", f);
}

void bnf_run_write_json(const bnf_session *s, const bnf_tensor *outputs, size_t runs,
                        double median_ms, FILE *f)
{
    size_t n_out = bnf_session_n_outputs(s);
    bnf_json_head(f, "run");
    fputs(",\n  \"outputs\": [", f);
    for (size_t k = 0; k < n_out; k++) {
        const bnf_tensor *t = &outputs[k];
        double lo, hi, mean;
        bnf_tensor_stats(t, &lo, &hi, &mean);
        fputs(k ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
        bnf_json_str(f, bnf_session_output_name(s, k));
        fputs(", \"dtype\": ", f);
        bnf_json_str(f, bnf_dtype_name(t->dtype));
        fputs(", \"shape\": [", f);
        for (size_t d = 0; d < t->rank; d++)
            fprintf(f, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
        fputs("], \"min\": ", f);
        bnf_json_num(f, lo);
        fputs(", \"max\": ", f);
        bnf_json_num(f, hi);
        fputs(", \"mean\": ", f);
        bnf_json_num(f, mean);
        fputs("}", f);
    }
    fprintf(f, "%s],\n  \"runs\": %zu,\n  \"median_ms\": %.3f\n}\n", n_out ? "\n  " : "", runs,
            median_ms);
}

void bnf_json_indented(FILE *f, int indent, void (*write)(const void *arg, FILE *f),
                       const void *arg)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&buf, &n);
    if (!mem) { /* valid JSON all the same, only not indented */
        write(arg, f);
        return;
    }
    write(arg, mem);
    if (fclose(mem) != 0 || !buf) {
        free(buf);
        write(arg, f);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        fputc(buf[i], f);
        if (buf[i] == '\n' && i + 1 < n)
            fprintf(f, "%*s", indent, "");
    }
    free(buf); /* open_memstream's own allocation */
}

/* ---- the same documents as strings ----------------------------------------------------- */

/* Runs write(f) on a memory stream; *out gets a NUL-terminated copy from
 * bnf_malloc (the caller frees it with bnf_buffer_free), *len its length. */
static bnf_status to_string(void (*write)(const void *, const void *, FILE *), const void *a,
                            const void *b, char **out, size_t *len, bnf_err *err)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    *out = NULL;
    if (!f)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    write(a, b, f);
    if (fclose(f) != 0 || !buf) {
        free(buf); /* open_memstream's own allocation */
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    if ((*out = bnf_malloc(n + 1)))
        memcpy(*out, buf, n + 1);
    free(buf);
    if (!*out)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if (len)
        *len = n;
    return BNF_OK;
}

static void report_doc(const void *r, const void *unused, FILE *f)
{
    (void)unused;
    bnf_report_write_json(r, f);
}

bnf_status bnf_report_to_json(const bnf_report *r, char **json, size_t *len, bnf_err *err)
{
    return to_string(report_doc, r, NULL, json, len, err);
}

typedef struct {
    const char *a, *b;
    const bnf_verify_options *o;
} verify_args;

static void verify_doc(const void *r, const void *args, FILE *f)
{
    const verify_args *v = args;
    bnf_verify_write_json(r, v->a, v->b, v->o, f);
}

bnf_status bnf_verify_to_json(const bnf_verify_result *r, const char *model_a, const char *model_b,
                              const bnf_verify_options *o, char **json, size_t *len, bnf_err *err)
{
    verify_args v = {model_a, model_b, o};
    return to_string(verify_doc, r, &v, json, len, err);
}
