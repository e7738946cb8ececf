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
