/*
 * report/report.h: building reports.
 */
#ifndef BNF_REPORT_H
#define BNF_REPORT_H

#include "fold/fold.h"

#include <time.h>

/* ---- reports (report.c) -------------------------------------------------- */

bnf_status bnf_report_begin(const bnf_model *m, const char *command, bnf_report **out,
                            bnf_err *err);
bnf_status bnf_report_set(char **field, const char *value, bnf_err *err);
/* Milliseconds since t0 (CLOCK_MONOTONIC). */
double bnf_ms_since(const struct timespec *t0);
/* The report entry of BN node n in the graph at `path` (bnf_scope's), or -1.
 * Entries are in the walk's order: a caller going through the model in that
 * order finds each at *next (then moved on); others are searched for. */
/* s as HTML text (also in Graphviz HTML-like labels): & < > " ' escaped,
 * control characters but newline and tab as spaces. */
void bnf_html_text(FILE *f, const char *s);
/* GitHub workflow command text: %, CR and LF escaped; with `property` (the
 * values of file=, title=) also ':' and ','. */
void bnf_github_text(FILE *f, const char *s, int property);

/* ---- SARIF 2.1.0 (sarif.c): the SARIF form of bnf_batch_writer ------------ */

typedef struct bnf_sarif bnf_sarif;
/* Starts the log (tool, rules: every code of bnf_codes()) on f, borrowed. */
bnf_status bnf_sarif_new(FILE *f, const char *command, bnf_sarif **out, bnf_err *err);
/* A model's results: its findings, skipped BNs and gate trips; a model that
 * could not be read becomes a notification of the invocation. */
void bnf_sarif_add(bnf_sarif *s, const bnf_model_result *r);
/* The artifacts, the invocation and the end of the log. */
void bnf_sarif_end(bnf_sarif *s, const bnf_summary *sum);
void bnf_sarif_free(bnf_sarif *s);

/* ---- JSON (json.c): the one escaper and number format every document uses -- */

/* s as a JSON string ("null" for NULL): quotes, backslashes and control
 * characters escaped; bytes that are not UTF-8 become U+FFFD. */
void bnf_json_str(FILE *f, const char *s);
/* v as a JSON number; null for NaN and infinities (JSON has neither). */
void bnf_json_num(FILE *f, double v);
/* The start of every bnfold document: tool, version, schema version and
 * command (no comma or newline after it). */
void bnf_json_head(FILE *f, const char *command);
/* The fields of a report's document after its head, each on lines indented by
 * two spaces, from "input" to "summary" (no comma or newline after it). */
void bnf_json_report_fields(const bnf_report *r, FILE *f);
/* Runs write(arg, f') with every line after the first indented by `indent`
 * more spaces: a document nested in another. */
void bnf_json_indented(FILE *f, int indent, void (*write)(const void *arg, FILE *f),
                       const void *arg);

long bnf_report_find_bn(const bnf_report *r, const Onnx__NodeProto *n, const char *path,
                        size_t *next);

#endif
