/* path.c: file paths made canonical, in memory from bnf_malloc. */
#include "internal.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>

char *bnf_realpath(const char *path)
{
    char *raw = realpath(path, NULL), *copy;
    if (!raw)
        return NULL;
    copy = bnf_strdup(raw);
    free(raw); /* realpath's own malloc */
    if (!copy)
        errno = ENOMEM;
    return copy;
}

char *bnf_folder_of(const char *path)
{
    char *tmp = bnf_strdup(path), *real;
    if (!tmp)
        return NULL;
    real = bnf_realpath(dirname(tmp));
    bnf_free(tmp);
    return real;
}
