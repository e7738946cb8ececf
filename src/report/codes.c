/* codes.c: the table of the stable codes reports use (codes.h). */
#include "report/codes.h"

#include <string.h>

static const bnf_code_info table[] = {
#define BNF_CODE_ROW(code, kind, severity, text) {#code, BNF_CODE_##kind, severity, text},
    BNF_CODES(BNF_CODE_ROW)
#undef BNF_CODE_ROW
};

_Static_assert(sizeof table / sizeof table[0] == BNF_CODE_COUNT - 1,
               "one row per code of the enum");

const bnf_code_info *bnf_codes(size_t *n)
{
    if (n)
        *n = sizeof table / sizeof table[0];
    return table;
}

const char *bnf_code_name(bnf_code c)
{
    return c > BNF_NO_CODE && c < BNF_CODE_COUNT ? table[c - 1].code : NULL;
}

const char *bnf_code_severity(bnf_code c)
{
    return c > BNF_NO_CODE && c < BNF_CODE_COUNT ? table[c - 1].severity : NULL;
}

bnf_code bnf_code_find(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strlen(table[i].code) == n && strncmp(table[i].code, name, n) == 0)
            return (bnf_code)(i + 1);
    return BNF_NO_CODE;
}
