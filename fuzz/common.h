/* fuzz/common.h: what the three libFuzzer harnesses share.
 *
 * A harness never aborts on bad input: every library status is legitimate.  It
 * traps (__builtin_trap, reported by libFuzzer as a crash) only when the library
 * breaks a promise of src/bnfold.h: an error without a message, a status that
 * does not match err.code, a model it wrote that it cannot read back, ... */
#ifndef BNF_FUZZ_COMMON_H
#define BNF_FUZZ_COMMON_H

#include "bnfold.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_CHECK(cond, ...)                                                          \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz: broken promise at %s:%d: %s\n  ", __FILE__,         \
                    __LINE__, #cond);                                                  \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            __builtin_trap();                                                          \
        }                                                                              \
    } while (0)

/* An error status must come with err.code equal to it and a non-empty,
 * terminated message. */
static inline void check_status(bnf_status rc, const bnf_err *err, const char *call)
{
    if (rc == BNF_OK)
        return;
    FUZZ_CHECK(rc > BNF_OK && rc <= BNF_ERR_CHECK, "%s returned %d", call, (int)rc);
    FUZZ_CHECK(err->code == rc, "%s returned %d but err.code is %d", call, (int)rc,
               (int)err->code);
    FUZZ_CHECK(memchr(err->msg, 0, sizeof err->msg) != NULL, "%s: message not terminated", call);
    FUZZ_CHECK(err->msg[0] != 0, "%s returned %d with an empty message", call, (int)rc);
}

/* A folder for external data: holds w.data (4 KiB of small floats) and a
 * symlink out.data -> a file outside it.  Models whose external_data names
 * these exercise the external-data reader; the escape must be refused. */
static char fuzz_dir[PATH_MAX];

static inline void fuzz_dir_cleanup(void)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/w.data", fuzz_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/out.data", fuzz_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s.outside", fuzz_dir);
    unlink(p);
    rmdir(fuzz_dir);
}

static inline const char *fuzz_base_dir(void)
{
    char tmpl[] = "/tmp/bnfold-fuzz.XXXXXX", p[PATH_MAX + 32], *real;
    FILE *f;
    if (fuzz_dir[0])
        return fuzz_dir;
    if (!mkdtemp(tmpl) || !(real = realpath(tmpl, NULL)))
        abort();
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s", real);
    free(real);
    snprintf(p, sizeof p, "%s/w.data", fuzz_dir);
    if (!(f = fopen(p, "wb")))
        abort();
    for (int i = 0; i < 1024; i++) {
        float v = (float)(i % 17) * 0.125f - 1.0f;
        fwrite(&v, sizeof v, 1, f);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s.outside", fuzz_dir);
    if (!(f = fopen(p, "wb")))
        abort();
    fputs("SECRET outside the model folder", f);
    fclose(f);
    {
        char link[PATH_MAX + 32];
        snprintf(link, sizeof link, "%s/out.data", fuzz_dir);
        if (symlink(p, link) != 0)
            abort();
    }
    atexit(fuzz_dir_cleanup);
    return fuzz_dir;
}

/* A cheap seed from the input bytes (FNV-1a). */
static inline uint64_t fuzz_seed(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ull;
    return h;
}

/* Whether every real input of the model has a known shape whose elements,
 * summed over the inputs, stay within max_elems.  Evaluating anything bigger is
 * not what the harness is for (it would only measure memory). */
static inline int fuzz_small_inputs(const bnf_model *m, size_t max_elems)
{
    bnf_session *s = NULL;
    bnf_session_options so = {1};
    bnf_err err = {0};
    size_t total = 0;
    int ok = 1;
    bnf_status rc = bnf_session_new(m, &so, &s, &err);
    check_status(rc, &err, "bnf_session_new");
    if (rc)
        return 0;
    for (size_t i = 0; ok && i < bnf_session_n_inputs(s); i++) {
        int32_t dt;
        int64_t shape[BNF_MAX_RANK];
        size_t rank = 0, n = 1;
        memset(&err, 0, sizeof err);
        rc = bnf_session_input_shape(s, i, NULL, 0, &dt, shape, &rank, &err);
        check_status(rc, &err, "bnf_session_input_shape");
        if (rc) {
            ok = 0;
            break;
        }
        for (size_t d = 0; d < rank; d++) {
            if (shape[d] < 0 || (shape[d] && n > max_elems / (size_t)shape[d])) {
                ok = 0;
                break;
            }
            n *= (size_t)shape[d];
        }
        total += n;
        if (total > max_elems)
            ok = 0;
    }
    bnf_session_free(s);
    return ok;
}

#endif
