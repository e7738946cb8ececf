/*
 * report/report.h: building reports.
 */
#ifndef BNF_REPORT_H
#define BNF_REPORT_H

#include "fold/fold.h"

/* ---- reports (report.c) -------------------------------------------------- */

bnf_status bnf_report_begin(const bnf_model *m, const char *command, bnf_report **out,
                            bnf_err *err);
bnf_status bnf_report_set(char **field, const char *value, bnf_err *err);

#endif
