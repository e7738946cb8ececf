/* err.c: status values and error messages: errors are values (bnf_err), filled
 * where they happen and returned up unchanged. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

const char *bnf_strerror(bnf_status code)
{
    switch (code) {
    case BNF_OK: return "success";
    case BNF_ERR_USAGE: return "usage error";
    case BNF_ERR_INVALID: return "invalid model";
    case BNF_ERR_UNSUPPORTED: return "unsupported model";
    case BNF_ERR_IO: return "I/O error";
    case BNF_ERR_NOMEM: return "out of memory";
    case BNF_ERR_CHECK: return "check failed";
    }
    return "unknown status";
}

const char *bnf_version(void)
{
    return BNF_VERSION;
}

bnf_status bnf_fail(bnf_err *err, bnf_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void bnf_err_prefix(bnf_err *err, const char *prefix)
{
    size_t p = strlen(prefix) + 2, n = strlen(err->msg), cap = sizeof err->msg - 1;
    if (p >= cap)
        return;
    if (n > cap - p)
        n = cap - p;
    memmove(err->msg + p, err->msg, n);
    memcpy(err->msg, prefix, p - 2);
    memcpy(err->msg + p - 2, ": ", 2);
    err->msg[p + n] = '\0';
}

int bnf_exit_code(bnf_status code)
{
    switch (code) {
    case BNF_OK: return 0;
    case BNF_ERR_CHECK: return 1;
    case BNF_ERR_USAGE: return 2;
    case BNF_ERR_INVALID:
    case BNF_ERR_UNSUPPORTED: return 3;
    case BNF_ERR_IO:
    case BNF_ERR_NOMEM: return 4;
    }
    return 4;
}

/* The order of precedence: a usage error, then what kept a model from being
 * read (I/O, then an invalid model), then a gate that tripped. */
static int exit_rank(int code)
{
    switch (code) {
    case 2: return 4;
    case 4: return 3;
    case 3: return 2;
    case 1: return 1;
    case 0: return 0;
    }
    return 3; /* an unknown status counts as an I/O error */
}

int bnf_exit_worst(int a, int b)
{
    return exit_rank(a) >= exit_rank(b) ? a : b;
}
