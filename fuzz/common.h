/* fuzz/common.h: what the three libFuzzer harnesses share.
 *
 * A harness never aborts on bad input: every library status is legitimate.  It
 * traps (__builtin_trap, reported by libFuzzer as a crash) only when the library
 * breaks a promise of src/bnfold.h: an error without a message, a status that
 * does not match err.code, a model it wrote that it cannot read back, ... */
#ifndef BNF_FUZZ_COMMON_H
#define BNF_FUZZ_COMMON_H

#include "bnfold.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
 * these exercise the external-data reader; the escape must be refused.
 *
 * One fixed folder per user, made once and then reused by every process
 * (libFuzzer's fork mode starts hundreds, and a worker killed by a time-out
 * runs no clean-up): $TMPDIR/bnfold-fuzz-UID/ext and bnfold-fuzz-UID/outside.
 * Files are written to a temporary name and renamed, so concurrent workers
 * never see a partial file. */
static char fuzz_dir[PATH_MAX];

static inline void fuzz_put_file(const char *path, const void *data, size_t n)
{
    char tmp[PATH_MAX + 32];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb")) || fwrite(data, 1, n, f) != n || fclose(f) != 0 ||
        rename(tmp, path) != 0)
        abort();
}

static inline void fuzz_own_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        abort();
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
        abort(); /* not ours: refuse to use it */
}

static inline const char *fuzz_base_dir(void)
{
    char top[PATH_MAX], p[PATH_MAX + 32], *real;
    const char *tmpdir = getenv("TMPDIR");
    float w[1024];
    static const char secret[] = "SECRET outside the model folder";

    if (fuzz_dir[0])
        return fuzz_dir;
    snprintf(top, sizeof top, "%s/bnfold-fuzz-%ld", tmpdir && *tmpdir ? tmpdir : "/tmp",
             (long)getuid());
    fuzz_own_dir(top);
    snprintf(p, sizeof p, "%s/ext", top);
    fuzz_own_dir(p);
    if (!(real = realpath(p, NULL)))
        abort();
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s", real);
    free(real);
    for (int i = 0; i < 1024; i++)
        w[i] = (float)(i % 17) * 0.125f - 1.0f;
    snprintf(p, sizeof p, "%s/w.data", fuzz_dir);
    fuzz_put_file(p, w, sizeof w);
    snprintf(p, sizeof p, "%s/outside", top);
    fuzz_put_file(p, secret, sizeof secret - 1);
    snprintf(p, sizeof p, "%s/out.data", fuzz_dir);
    if (symlink("../outside", p) != 0 && errno != EEXIST)
        abort();
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
