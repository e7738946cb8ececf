/* cli/calibrate.c: bnfold calibrate: the calibration sets read from a folder,
 * bnf_calibrate, the report, the output (and with --fold, the fold). */
#include "cli.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char calibrate_help[] =
    "Usage: bnfold calibrate MODEL --data DIR -o OUT [--batches N] [--only NODE,...]\n"
    "                        [--fold] [--json] [--threads N]\n"
    "\n"
    "Re-estimate the running mean and variance of the model's BatchNormalization\n"
    "nodes from data, and write the model with them.  For models exported before\n"
    "their statistics were collected (BN_UNTRAINED), after pruning or quantising\n"
    "weights, or for a new input domain (AdaBN).  Each BN is measured with every BN\n"
    "before it already recalibrated; the statistics are the population mean and\n"
    "variance of each channel over every sample and position of every set (not\n"
    "PyTorch's unbiased running_var: n / (n - 1) apart).  Scale, B and epsilon stay.\n"
    "\n"
    "  --data DIR           the calibration sets: one per subfolder of DIR, holding a\n"
    "                       tensor file (.npy or .pb) per model input, named after\n"
    "                       it (NAME.npy); or, for a model with one input, one file\n"
    "                       per set directly in DIR.  Sorted by name.\n"
    "  -o, --output OUT     write the calibrated model to OUT (atomically)\n"
    "  --batches N          use the first N sets only\n"
    "  --only NODE,...      calibrate these BNs only (node names)\n"
    "  --fold               then fold the model as `bnfold fold` does (verified)\n"
    "  --threads N          evaluator threads (default: all cores)\n"
    "  --json               print one JSON document on stdout\n"
    "  -h, --help           show this help\n";

typedef struct {
    bnf_named_tensor *t;
    bnf_tensor *values;
    char **names;
    size_t n;
} loaded_set;

static int is_tensor_file(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && !strcmp(name + n - 4, ".npy")) || (n > 3 && !strcmp(name + n - 3, ".pb"));
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted entries of dir that are folders (dirs = 1) or tensor files. */
static char **entries(const char *dir, int dirs, size_t *n, bnf_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    if (!d) {
        set_err(err, BNF_ERR_IO, "%s: cannot open the folder", dir);
        return NULL;
    }
    while ((e = readdir(d))) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) || (dirs ? !S_ISDIR(st.st_mode)
                                     : !S_ISREG(st.st_mode) || !is_tensor_file(e->d_name)))
            continue;
        if (*n == cap) {
            char **g = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);
            if (!g)
                break;
            v = g;
        }
        if (!(v[*n] = strdup(path)))
            break;
        ++*n;
    }
    closedir(d);
    if (v)
        qsort(v, *n, sizeof *v, by_name);
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Loads the tensor files into s, each bound by its TensorProto name or, without
 * one, by its file name without the extension. */
static bnf_status load_set(char **files, size_t n, loaded_set *s, bnf_err *err)
{
    s->t = calloc(n ? n : 1, sizeof *s->t);
    s->values = calloc(n ? n : 1, sizeof *s->values);
    s->names = calloc(n ? n : 1, sizeof *s->names);
    if (!s->t || !s->values || !s->names)
        return set_err(err, BNF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char *name = NULL, *dot;
        const char *base = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];
        bnf_status st;
        if ((st = bnf_tensor_load(files[i], &s->values[i], &name, err)))
            return st;
        s->n++;
        if (!name || !*name) {
            free(name);
            if (!(name = strdup(base)))
                return set_err(err, BNF_ERR_NOMEM, "out of memory");
            if ((dot = strrchr(name, '.')))
                *dot = 0;
        }
        s->names[i] = name;
        s->t[i] = (bnf_named_tensor){name, &s->values[i], 1};
    }
    return BNF_OK;
}

static void free_set(loaded_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        bnf_tensor_release(&s->values[i]);
        free(s->names[i]);
    }
    free(s->t);
    free(s->values);
    free(s->names);
}

int cmd_calibrate(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL, *out_path = NULL, *only_arg = NULL;
    int rc = EXIT_USAGE, json = 0, do_fold = 0;
    double batches = 0, threads = 0;
    char **dirs = NULL, **files = NULL, *only_copy = NULL;
    const char **only = NULL;
    size_t n_dirs = 0, n_files = 0, n_sets = 0, n_only = 0;
    loaded_set *sets = NULL;
    bnf_input_set *in = NULL;
    bnf_calibrate_options o;
    bnf_calibration *c = NULL;
    bnf_model *m = NULL;
    bnf_report *r = NULL;
    bnf_err err = {0};

    bnf_calibrate_defaults(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--data") ? &data
                            : !strcmp(a, "-o") || !strcmp(a, "--output") ? &out_path
                            : !strcmp(a, "--only") ? &only_arg : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(calibrate_help, stdout);
            return EXIT_OK;
        } else if (slot) {
            if (++i == argc || !*argv[i])
                return usage_error("calibrate", "%s needs a value", a);
            *slot = argv[i];
        } else if (!strcmp(a, "--batches") || !strcmp(a, "--threads")) {
            if (++i == argc)
                return usage_error("calibrate", "%s needs a number", a);
            if (parse_number("calibrate", a, argv[i], 1, !strcmp(a, "--batches") ? &batches
                                                                                : &threads))
                return EXIT_USAGE;
        } else if (!strcmp(a, "--fold")) {
            do_fold = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("calibrate", "unknown option '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else {
            return usage_error("calibrate", "unexpected argument '%s'", a);
        }
    }
    if (!model_path)
        return usage_error("calibrate", "%smissing MODEL", "");
    if (!data)
        return usage_error("calibrate", "%s--data DIR is required: the calibration inputs", "");
    if (!out_path)
        return usage_error("calibrate", "%s-o OUT is required", "");
    if (only_arg) { /* NODE,NODE,... */
        if (!(only_copy = strdup(only_arg)) || !(only = calloc(strlen(only_arg) + 1, sizeof *only)))
            goto nomem;
        for (char *p = strtok(only_copy, ","); p; p = strtok(NULL, ","))
            only[n_only++] = p;
    }
    o.only = only;
    o.n_only = n_only;
    o.threads = (int)threads;

    if (bnf_model_load(model_path, &m, &err) || bnf_model_check_output(m, out_path, &err)) {
        rc = fail(&err);
        goto out;
    }
    dirs = entries(data, 1, &n_dirs, &err);
    if (!dirs && err.code) {
        rc = fail(&err);
        goto out;
    }
    if (!n_dirs && !(files = entries(data, 0, &n_files, &err)) && err.code) {
        rc = fail(&err);
        goto out;
    }
    n_sets = n_dirs ? n_dirs : n_files;
    if (batches && (size_t)batches < n_sets)
        n_sets = (size_t)batches;
    if (!n_sets) {
        set_err(&err, BNF_ERR_INVALID, "%s: no calibration data (no subfolders, no .npy or .pb "
                "files)", data);
        rc = fail(&err);
        goto out;
    }
    sets = calloc(n_sets, sizeof *sets);
    in = calloc(n_sets, sizeof *in);
    if (!sets || !in)
        goto nomem;
    for (size_t k = 0; k < n_sets; k++) {
        bnf_status st;
        if (n_dirs) {
            size_t nf = 0;
            char **f = entries(dirs[k], 0, &nf, &err);
            st = f || !err.code ? load_set(f, nf, &sets[k], &err) : err.code;
            free_list(f, nf);
        } else {
            st = load_set(&files[k], 1, &sets[k], &err);
        }
        if (st) {
            rc = fail(&err);
            goto out;
        }
        in[k] = (bnf_input_set){sets[k].t, sets[k].n};
    }
    if (bnf_calibrate(m, in, n_sets, &o, &c, &err) ||
        (do_fold && bnf_fold(m, NULL, &r, &err)) || bnf_model_save(m, out_path, &err)) {
        rc = fail(&err);
        goto out;
    }
    if (json) {
        bnf_calibration_write_json(c, stdout);
    } else if (!quiet) {
        bnf_calibration_write_text(c, stdout);
        if (r)
            printf("folded %zu of %zu BatchNormalization\n", r->n_folded, r->n_bns);
        printf("wrote %s\n", out_path);
    }
    rc = EXIT_OK;
    goto out;
nomem:
    fprintf(stderr, "bnfold: error: out of memory\n");
    rc = EXIT_IO;
out:
    for (size_t k = 0; sets && k < n_sets; k++)
        free_set(&sets[k]);
    free(sets);
    free(in);
    free_list(dirs, n_dirs);
    free_list(files, n_files);
    free(only);
    free(only_copy);
    bnf_calibration_free(c);
    bnf_report_free(r);
    bnf_model_free(m);
    return rc;
}
