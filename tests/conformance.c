/* conformance.c: runs the ONNX backend node tests (generated from Debian's
 * python3-onnx: `make conformance` generates them, see the Makefile) through the evaluator.
 *
 *   conformance DIR [FILTER]
 *
 * For every DIR/test_* whose model uses only operators the evaluator claims,
 * every test_data_set_* and every output_*.pb is compared, NaN-aware, with
 * rtol = atol = 1e-4.  Cases listed in tests/conformance/skip_*.txt (one
 * "name<TAB>reason" per line) are skipped with their reason; cases whose
 * operators the evaluator does not claim are counted apart.  Prints a line per
 * case and `N passed, N failed, N skipped`; exits 1 when any case failed. */
#include "bnfold.h"

#include <dirent.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOL 1e-4

typedef struct {
    char name[128];
    char reason[256];
} skip_entry;

static skip_entry *skips;
static size_t n_skips;

static void load_skips(void)
{
    glob_t gl;
    if (glob("tests/conformance/skip_*.txt", 0, NULL, &gl) != 0)
        return;
    for (size_t f = 0; f < gl.gl_pathc; f++) {
        FILE *fp = fopen(gl.gl_pathv[f], "r");
        char line[512];
        while (fp && fgets(line, sizeof line, fp)) {
            char *tab = strchr(line, '\t');
            skip_entry *grown;
            if (line[0] == '#' || !tab)
                continue;
            *tab = '\0';
            tab[strcspn(tab + 1, "\n") + 1] = '\0';
            grown = realloc(skips, (n_skips + 1) * sizeof *skips);
            if (!grown)
                break;
            skips = grown;
            snprintf(skips[n_skips].name, sizeof skips[n_skips].name, "%.127s", line);
            snprintf(skips[n_skips].reason, sizeof skips[n_skips].reason, "%.255s", tab + 1);
            n_skips++;
        }
        if (fp)
            fclose(fp);
    }
    globfree(&gl);
}

static const char *skip_reason(const char *name)
{
    for (size_t i = 0; i < n_skips; i++)
        if (strcmp(skips[i].name, name) == 0)
            return skips[i].reason;
    return NULL;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Runs one data set; returns 1 when every output matches, writing why not.
 * Input files bind to the graph inputs by their names, else in order. */
static int run_data_set(bnf_session *s, const char *dir, char *why, size_t why_size)
{
    size_t n_out = bnf_session_n_outputs(s), loaded = 0;
    bnf_tensor files[64];
    char *names[64];
    bnf_named_tensor given[64];
    bnf_tensors in = {0}, out = {0};
    bnf_err err = {0};
    int ok = 0;

    for (size_t k = 0; k < 64; k++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/input_%zu.pb", dir, k);
        if (access(path, R_OK) != 0)
            break;
        if (bnf_tensor_load(path, &files[k], &names[k], &err) != BNF_OK) {
            snprintf(why, why_size, "%s", err.msg);
            goto out;
        }
        given[k] = (bnf_named_tensor){names[k], &files[k], 1};
        loaded++;
    }
    if (loaded != bnf_session_n_inputs(s)) {
        snprintf(why, why_size, "%zu input files for %zu graph inputs", loaded,
                 bnf_session_n_inputs(s));
        goto out;
    }
    if (bnf_session_make_inputs(s, given, loaded, NULL, 0, 0, &in, &err) != BNF_OK ||
        bnf_session_run_tensors(s, &in, &out, &err) != BNF_OK) {
        snprintf(why, why_size, "%s", err.msg);
        goto out;
    }
    ok = 1;
    for (size_t k = 0; k < n_out; k++) {
        char path[1400];
        bnf_tensor want;
        bnf_compare_result r;
        snprintf(path, sizeof path, "%s/output_%zu.pb", dir, k);
        if (bnf_tensor_load(path, &want, NULL, &err) != BNF_OK) {
            snprintf(why, why_size, "%s", err.msg);
            ok = 0;
            break;
        }
        bnf_tensor_compare(&out.t[k], &want, TOL, TOL, &r);
        if (out.t[k].dtype != want.dtype) {
            snprintf(why, why_size, "output %zu has type %d, expected %d", k, out.t[k].dtype,
                     want.dtype);
            ok = 0;
        } else if (!r.shape_ok) {
            snprintf(why, why_size, "output %zu: shape differs (rank %zu, %zu elements; expected "
                     "rank %zu, %zu)", k, out.t[k].rank, out.t[k].n, want.rank, want.n);
            ok = 0;
        } else if (!r.pass) {
            snprintf(why, why_size, "output %zu: %zu elements off, max abs err %.3g at [%zu]", k,
                     r.n_bad, r.max_abs, r.worst);
            ok = 0;
        }
        bnf_tensor_release(&want);
        if (!ok)
            break;
    }
out:
    for (size_t k = 0; k < loaded; k++) {
        bnf_tensor_release(&files[k]);
        free(names[k]);
    }
    bnf_tensors_release(&in);
    bnf_tensors_release(&out);
    return ok;
}

int main(int argc, char **argv)
{
    struct dirent **list;
    int n;
    size_t passed = 0, failed = 0, skipped = 0, unclaimed = 0;
    bnf_session_options opts = {1};

    if (argc < 2) {
        fprintf(stderr, "usage: conformance DIR [FILTER]\n");
        return 2;
    }
    load_skips();
    n = scandir(argv[1], &list, NULL, alphasort);
    if (n < 0) {
        perror(argv[1]);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        char dir[1024], path[1200], why[600] = "";
        const char *name = list[i]->d_name, *reason;
        bnf_model *m = NULL;
        bnf_session *s = NULL;
        bnf_err err = {0};
        int ok = 1, sets = 0;

        snprintf(dir, sizeof dir, "%s/%s", argv[1], name);
        if (strncmp(name, "test_", 5) != 0 || !is_dir(dir) ||
            (argc > 2 && !strstr(name, argv[2]))) {
            free(list[i]);
            continue;
        }
        snprintf(path, sizeof path, "%s/model.onnx", dir);
        if (bnf_model_load(path, &m, &err) != BNF_OK) {
            ok = 0;
            snprintf(why, sizeof why, "%s", err.msg);
        } else if (bnf_session_new(m, &opts, &s, &err) != BNF_OK) {
            if (err.code == BNF_ERR_UNSUPPORTED && strstr(err.msg, "does not implement")) {
                unclaimed++;
                bnf_model_free(m);
                free(list[i]);
                continue;
            }
            ok = 0;
            snprintf(why, sizeof why, "%s", err.msg);
        }
        if ((reason = skip_reason(name))) {
            printf("SKIP %s: %s\n", name, reason);
            skipped++;
        } else {
            for (int k = 0; ok; k++) {
                snprintf(path, sizeof path, "%s/test_data_set_%d", dir, k);
                if (!is_dir(path))
                    break;
                ok = run_data_set(s, path, why, sizeof why);
                sets++;
            }
            if (ok && sets == 0) {
                ok = 0;
                snprintf(why, sizeof why, "no test_data_set_*");
            }
            if (ok) {
                printf("PASS %s\n", name);
                passed++;
            } else {
                printf("FAIL %s: %s\n", name, why);
                failed++;
            }
        }
        bnf_session_free(s);
        bnf_model_free(m);
        free(list[i]);
    }
    free(list);
    free(skips);
    printf("%zu cases use operators the evaluator does not claim (not run)\n", unclaimed);
    printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
