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
long bnf_report_find_bn(const bnf_report *r, const Onnx__NodeProto *n, const char *path,
                        size_t *next);

#endif
