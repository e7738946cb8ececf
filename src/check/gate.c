/* gate.c: the CI gate (bnfold check).  Decides, from an inspect report, which findings and
 * which unfolded BNs trip the gate for a --fail-on list:
 *   CODE[,CODE...]  those finding codes (BN_NEG_VAR, ...)
 *   error           findings of severity error (the default)
 *   warning         findings of severity warning or error
 *   info            every finding
 *   unfolded        a BN that fold would fold is still in the model */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int severity_rank(const char *s)
{
    return !strcmp(s, "error") ? 3 : !strcmp(s, "warning") ? 2 : !strcmp(s, "info") ? 1 : 0;
}

static int known_code(const char *c, size_t n)
{
    bnf_code code = bnf_code_find(c, n);
    size_t count;
    return code != BNF_NO_CODE && bnf_codes(&count)[code - 1].kind == BNF_CODE_FINDING;
}

/* Parses a --fail-on list: the lowest severity named (0 none) and whether
 * "unfolded" is in it; every item must be known, none empty. */
static bnf_status parse(const char *p, int *threshold, int *unfolded, bnf_err *err)
{
    *threshold = 0;
    *unfolded = 0;
    if (!*p)
        return bnf_fail(err, BNF_ERR_USAGE, "--fail-on: an empty list");
    for (const char *q = p;;) {
        size_t n = strcspn(q, ",");
        if (n == 0)
            return bnf_fail(err, BNF_ERR_USAGE, "--fail-on: an empty item in '%s'", p);
        if (n == 8 && !strncmp(q, "unfolded", 8)) {
            *unfolded = 1;
        } else if ((n == 5 && !strncmp(q, "error", 5)) || (n == 7 && !strncmp(q, "warning", 7)) ||
                   (n == 4 && !strncmp(q, "info", 4))) {
            int rank = n == 5 ? 3 : n == 7 ? 2 : 1;
            if (!*threshold || rank < *threshold)
                *threshold = rank;
        } else if (!known_code(q, n)) {
            return bnf_fail(err, BNF_ERR_USAGE,
                            "--fail-on: '%.*s' is not a finding code, error, warning, info or "
                            "unfolded", (int)n, q);
        }
        q += n;
        if (!*q)
            break;
        q++; /* past the comma: an item must follow */
    }
    return BNF_OK;
}

bnf_status bnf_check_parse(const char *fail_on, bnf_err *err)
{
    int threshold, unfolded;
    return parse(fail_on ? fail_on : "error", &threshold, &unfolded, err);
}

bnf_status bnf_check(bnf_report *r, const char *fail_on, bnf_err *err)
{
    int threshold = 0, unfolded = 0;
    const char *p = fail_on ? fail_on : "error";
    bnf_status rc;

    if ((rc = parse(p, &threshold, &unfolded, err)))
        return rc;
    bnf_free(r->check_fail_on);
    if (!(r->check_fail_on = bnf_strdup(p)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    r->command = "check";
    r->check_ran = 1;
    r->check_trips = 0;
    for (size_t i = 0; i < r->n_findings; i++) {
        bnf_finding *f = &r->findings[i];
        int listed = 0;
        for (const char *q = p; *q && !listed;) {
            size_t n = strcspn(q, ",");
            listed = strlen(f->code) == n && !strncmp(q, f->code, n);
            q += n;
            q += *q == ',';
        }
        f->trips = listed || (threshold && severity_rank(f->severity) >= threshold);
        r->check_trips += f->trips;
    }
    for (size_t i = 0; i < r->n_bns; i++) {
        r->bns[i].trips = unfolded && r->bns[i].folded;
        r->check_trips += r->bns[i].trips;
    }
    return BNF_OK;
}
