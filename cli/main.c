/* cli/main.c: the bnfold command line.  Parses arguments, calls libbnfold,
 * prints, and maps library statuses to the exit codes of docs/contract.md
 * (bnf_exit_code).  No model logic lives here.  Adding a command: one
 * function, one table line.  This file: the dispatch, the helpers and option
 * parsers the commands share, verify and run; inspect, check and fold are in
 * models.c, the worker processes of a run over many models in batch.c. */
#include "cli.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int quiet;

int use_color(FILE *f)
{
    const char *no = getenv("NO_COLOR");
    return isatty(fileno(f)) && !(no && *no);
}

static int progress_shown;

/* A progress line on stderr, rewritten in place (only when stderr is a terminal). */
static void show_progress(void *ctx, const char *stage, size_t done, size_t total)
{
    (void)ctx;
    fprintf(stderr, "\rbnfold: %s %zu/%zu ", stage, done, total);
    fflush(stderr);
    progress_shown = 1;
}

void end_progress(void)
{
    if (progress_shown)
        fputs("\r\033[K", stderr);
    progress_shown = 0;
}

void wire_progress(bnf_fold_options *fo)
{
    if (!quiet && isatty(STDERR_FILENO)) {
        fo->progress = show_progress;
        fo->check.progress = show_progress;
    }
}

double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

int fail(const bnf_err *err)
{
    fprintf(stderr, "bnfold: error: %s\n", err->msg[0] ? err->msg : bnf_strerror(err->code));
    return bnf_exit_code(err->code);
}

bnf_status set_err(bnf_err *err, bnf_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "bnfold: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'bnfold %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

/* ---- options shared by fold, verify and run ----------------------------------- */

void eval_args_init(eval_args *a)
{
    memset(a, 0, sizeof *a);
    bnf_verify_defaults(&a->v);
    a->v.dims = a->dims;
    a->v.given = a->given;
}

void eval_args_free(eval_args *a)
{
    for (size_t i = 0; i < a->v.n_given; i++) {
        bnf_tensor_release(&a->tensors[i]);
        free(a->tensor_names[i]);
    }
}

int parse_number(const char *cmd, const char *opt, const char *s, double lo, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo))
        return usage_error(cmd, "bad value for %s", opt);
    *out = v;
    return 0;
}

int parse_eval_option(const char *cmd, int argc, char **argv, int *i, eval_args *a,
                      int allow_sets)
{
    const char *opt = argv[*i], *val;
    double d;
    bnf_err err = {0};
    int takes_value = !strcmp(opt, "--input") || !strcmp(opt, "--dim") ||
                      !strcmp(opt, "--threads") || (allow_sets && (!strcmp(opt, "--inputs") ||
                      !strcmp(opt, "--seed") || !strcmp(opt, "--rtol") || !strcmp(opt, "--atol")));
    if (!strcmp(opt, "--seed") && !allow_sets)
        takes_value = 1;
    if (allow_sets && !strcmp(opt, "--outputs-only")) {
        a->v.outputs_only = 1;
        return 1;
    }
    if ((!strcmp(opt, "--output-dir") || !strcmp(opt, "--repeat")) && !allow_sets)
        takes_value = 1;
    if (!takes_value)
        return 0;
    if (++*i == argc)
        return -usage_error(cmd, "%s needs a value", opt);
    val = argv[*i];
    if (!strcmp(opt, "--inputs")) {
        if (parse_number(cmd, opt, val, 0, &d))
            return -EXIT_USAGE;
        a->v.random_sets = (size_t)d;
    } else if (!strcmp(opt, "--seed")) {
        if (parse_number(cmd, opt, val, 0, &d))
            return -EXIT_USAGE;
        a->v.seed = (uint64_t)d;
    } else if (!strcmp(opt, "--rtol")) {
        if (parse_number(cmd, opt, val, 0, &a->v.rtol))
            return -EXIT_USAGE;
    } else if (!strcmp(opt, "--atol")) {
        if (parse_number(cmd, opt, val, 0, &a->v.atol))
            return -EXIT_USAGE;
    } else if (!strcmp(opt, "--threads")) {
        if (parse_number(cmd, opt, val, 1, &d))
            return -EXIT_USAGE;
        a->v.threads = (int)d;
    } else if (!strcmp(opt, "--output-dir")) {
        a->output_dir = val;
    } else if (!strcmp(opt, "--repeat")) {
        if (parse_number(cmd, opt, val, 1, &d))
            return -EXIT_USAGE;
        a->repeat = (size_t)d;
    } else if (!strcmp(opt, "--dim")) {
        const char *eq = strchr(val, '=');
        if (!eq || eq == val || a->v.n_dims == 32 || parse_number(cmd, opt, eq + 1, 0, &d))
            return -usage_error(cmd, "--dim wants NAME=VALUE, got '%s'", val);
        ((char *)eq)[0] = '\0';
        a->dims[a->v.n_dims].name = val;
        a->dims[a->v.n_dims++].value = (int64_t)d;
    } else { /* --input [NAME=]FILE */
        const char *eq = strchr(val, '='), *file = val;
        size_t k = a->v.n_given;
        char *name = NULL;
        if (k == 64)
            return -usage_error(cmd, "%stoo many --input", "");
        if (eq && eq != val && access(val, F_OK) != 0) { /* NAME=FILE, unless a file has that name */
            ((char *)eq)[0] = '\0';
            file = eq + 1;
            a->given[k].name = val;
        }
        if (bnf_tensor_load(file, &a->tensors[k], &name, &err) != BNF_OK)
            return -fail(&err);
        a->tensor_names[k] = name;
        if (!a->given[k].name) {
            a->given[k].name = name;
            a->given[k].name_is_hint = 1;
        }
        a->given[k].tensor = &a->tensors[k];
        a->v.n_given++;
    }
    return 1;
}

/* Options that change what fold does (and so what inspect and check report). */
int parse_fold_option(const char *arg, bnf_fold_options *fo)
{
    if (!strcmp(arg, "--lower-standalone"))
        fo->lower_standalone = 1;
    else if (!strcmp(arg, "--assume-inference"))
        fo->assume_inference = 1;
    else if (!strcmp(arg, "--freeze-inputs"))
        fo->freeze_inputs = 1;
    else
        return 0;
    return 1;
}

const char fold_options_help[] =
    "  --lower-standalone   rewrite a BN no layer can take as Mul + Add by constants\n"
    "  --assume-inference   treat training-mode BNs as inference ones (their running\n"
    "                       statistics must be constant and extra outputs unused)\n"
    "  --freeze-inputs      initializers also listed as graph inputs (IR >= 4) are\n"
    "                       constants, and stop being inputs\n";

int parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double unit = 1;
    if (end == s || !(v > 0))
        return -1;
    switch (*end) {
    case 'k': case 'K': unit = 1024.0; end++; break;
    case 'm': case 'M': unit = 1024.0 * 1024; end++; break;
    case 'g': case 'G': unit = 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B')
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    if (*end || v * unit > 1.8e19)
        return -1;
    *out = (uint64_t)(v * unit);
    return 0;
}

const char eval_options_help[] =
    "  --input [NAME=]FILE  an input tensor (.pb TensorProto or .npy); without NAME it\n"
    "                       binds by the file's tensor name, else to the inputs in order\n"
    "  --dim NAME=VALUE     value of a symbolic dimension (default 1)\n"
    "  --threads N          threads (default: all cores)\n";

const char verify_options_help[] =
    "  --inputs N           random input sets (default 3): standard normal floats,\n"
    "                       integers uniform in [0, 10), seeded\n"
    "  --seed S             first seed (default 1)\n"
    "  --rtol R             relative tolerance (default 1e-4)\n"
    "  --atol A             absolute tolerance in units of the value's largest |value|\n"
    "                       (default 1e-4)\n"
    "  --outputs-only       compare graph outputs only, not also the intermediate\n"
    "                       values both models compute under the same name\n";

static const char verify_help_head[] =
    "Usage: bnfold verify MODEL_A MODEL_B [options]\n"
    "\n"
    "Run both models on the same inputs and compare every output of B with A's,\n"
    "and every intermediate value both compute under the same name (a fold keeps\n"
    "the BN's output name, so a wrong layer is caught where it happens, not only\n"
    "where its effect reaches the outputs).  Each such value of B is computed from\n"
    "A's values of its inputs, so rounding does not pile up layer after layer; the\n"
    "outputs come from a run of B on its own.  An element passes when\n"
    "|b - a| <= atol * max|a| + rtol * |a|; NaN in both at the same place is\n"
    "equal.  Exit 0 when equivalent, 1 when not (the value and element are named).\n"
    "\n"
    "  --json               print one JSON document on stdout\n";

static const char run_help_head[] =
    "Usage: bnfold run MODEL [--input [NAME=]FILE ...] [--output-dir DIR] [options]\n"
    "\n"
    "Run the model with the built-in evaluator and print each output's shape, min,\n"
    "max and mean.  Inputs not given are random (standard normal floats, integers\n"
    "uniform in [0, 10), seeded by --seed, default 1).\n"
    "\n"
    "  --output-dir DIR     write output k as DIR/output_<k>.pb (a TensorProto)\n"
    "  --repeat N           run N times and report the median time per inference\n"
    "  --seed S             seed of the random inputs (default 1)\n"
    "  --json               print one JSON document on stdout\n";

static void print_help(const char *head, int eval, int verify)
{
    fputs(head, stdout);
    if (verify)
        fputs(verify_options_help, stdout);
    if (eval)
        fputs(eval_options_help, stdout);
    fputs("  -h, --help           show this help\n", stdout);
}

static const char main_help[] =
    "Usage: bnfold COMMAND [ARGS]\n"
    "\n"
    "Find, explain, fold and verify the BatchNormalization nodes of an ONNX model.\n"
    "\n"
    "Commands:\n"
    "  inspect PATH... [--json|--dot F|--html F]  every BN, its fate and health\n"
    "  fold MODEL -o OUT [--json]       fold what can be folded, verify, write OUT\n"
    "  fold PATH... --out-dir DIR       the same for many models\n"
    "  verify MODEL_A MODEL_B           do two models compute the same function?\n"
    "  run MODEL [--input FILE ...]     evaluate a model, print or save its outputs\n"
    "  check PATH... [--fail-on LIST]   CI gate on BN health and unfolded BNs\n"
    "  calibrate MODEL --data DIR -o OUT  re-estimate BN statistics from data\n"
    "\n"
    "A PATH is a model or a folder searched for *.onnx models; over many models\n"
    "each runs in a process of its own (-j N at a time), the results come sorted\n"
    "by path with a summary, as text, JSON, GitHub annotations or SARIF.\n"
    "\n"
    "Options:\n"
    "  -h, --help      show this help ('bnfold COMMAND --help' for a command)\n"
    "  --version       print the version\n"
    "  -q, --quiet     print nothing but errors (exit codes say the rest)\n"
    "\n"
    "Progress shows on stderr when it is a terminal; colour only on a terminal and\n"
    "never with NO_COLOR set.\n"
    "\n"
    "Exit codes: 0 ok, 1 check failed (models differ, verification failed),\n"
    "2 usage error, 3 invalid or unsupported model, 4 I/O error; over many models\n"
    "the first of 2, 4, 3, 1, 0 that one of them has.\n";

static int cmd_verify(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    int rc, k;
    bnf_err err = {0};
    bnf_model *a = NULL, *b = NULL;
    bnf_verify_result r;
    eval_args ea;

    eval_args_init(&ea);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_help(verify_help_head, 1, 1);
            rc = EXIT_OK;
            goto out;
        } else if (!strcmp(argv[i], "--json")) {
            ea.json = 1;
        } else if ((k = parse_eval_option("verify", argc, argv, &i, &ea, 1)) != 0) {
            if (k < 0) {
                rc = -k;
                goto out;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = usage_error("verify", "unknown option '%s'", argv[i]);
            goto out;
        } else if (!paths[0] || !paths[1]) {
            paths[paths[0] ? 1 : 0] = argv[i];
        } else {
            rc = usage_error("verify", "unexpected argument '%s'", argv[i]);
            goto out;
        }
    }
    if (!paths[1]) {
        rc = usage_error("verify", "%sneeds two models", "");
        goto out;
    }
    if (bnf_model_load(paths[0], &a, &err) || bnf_model_load(paths[1], &b, &err) ||
        bnf_verify_models(a, b, &ea.v, &r, &err)) {
        rc = fail(&err);
        goto out;
    }
    if (ea.json) {
        bnf_verify_write_json(&r, paths[0], paths[1], &ea.v, stdout);
    } else if (quiet) {
        ; /* the exit code says it */
    } else if (r.equivalent) {
        printf("equivalent: %zu input sets, %zu outputs and %zu shared intermediate values "
               "compared; worst |diff| %.3g, worst |diff|/max|value| %.3g (at '%s')\n", r.sets,
               r.outputs, r.values, r.worst_abs, r.worst_rel, r.worst_output);
    } else {
        printf("NOT equivalent: %s\n", r.reason);
    }
    rc = r.equivalent ? EXIT_OK : EXIT_CHECK;
out:
    eval_args_free(&ea);
    bnf_model_free(a);
    bnf_model_free(b);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL;
    int rc, k;
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_session *s = NULL;
    bnf_session_options so = {0};
    bnf_tensors in = {0}, out = {0};
    double *times = NULL, median_ms = 0;
    eval_args ea;

    eval_args_init(&ea);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_help(run_help_head, 1, 0);
            rc = EXIT_OK;
            goto out;
        } else if (!strcmp(argv[i], "--json")) {
            ea.json = 1;
        } else if ((k = parse_eval_option("run", argc, argv, &i, &ea, 0)) != 0) {
            if (k < 0) {
                rc = -k;
                goto out;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = usage_error("run", "unknown option '%s'", argv[i]);
            goto out;
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            rc = usage_error("run", "unexpected argument '%s'", argv[i]);
            goto out;
        }
    }
    if (!model_path) {
        rc = usage_error("run", "%smissing MODEL", "");
        goto out;
    }
    so.threads = ea.v.threads;
    if (bnf_model_load(model_path, &m, &err) || bnf_session_new(m, &so, &s, &err)) {
        rc = fail(&err);
        goto out;
    }
    if (bnf_session_make_inputs(s, ea.given, ea.v.n_given, ea.dims, ea.v.n_dims, ea.v.seed, &in,
                                &err)) {
        rc = fail(&err);
        goto out;
    }
    times = calloc(ea.repeat ? ea.repeat : 1, sizeof *times);
    if (!times) {
        fprintf(stderr, "bnfold: error: out of memory\n");
        rc = EXIT_IO;
        goto out;
    }
    for (size_t r = 0; r < (ea.repeat ? ea.repeat : 1); r++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (bnf_session_run_tensors(s, &in, &out, &err)) {
            rc = fail(&err);
            goto out;
        }
        times[r] = ms_since(&t0);
    }
    qsort(times, ea.repeat ? ea.repeat : 1, sizeof *times, cmp_double);
    median_ms = times[(ea.repeat ? ea.repeat : 1) / 2];
    for (size_t k2 = 0; k2 < out.n && ea.output_dir; k2++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/output_%zu.pb", ea.output_dir, k2);
        if (bnf_tensor_save(path, &out.t[k2], bnf_session_output_name(s, k2), &err)) {
            rc = fail(&err);
            goto out;
        }
    }
    if (ea.json) {
        bnf_run_write_json(s, out.t, ea.repeat ? ea.repeat : 1, median_ms, stdout);
    } else {
        for (size_t k2 = 0; k2 < out.n; k2++) {
            const bnf_tensor *t = &out.t[k2];
            double lo, hi, mean;
            bnf_tensor_stats(t, &lo, &hi, &mean);
            printf("%s  %s [", bnf_session_output_name(s, k2), bnf_dtype_name(t->dtype));
            for (size_t d = 0; d < t->rank; d++)
                printf("%s%lld", d ? ", " : "", (long long)t->dims[d]);
            printf("]  min %.6g  max %.6g  mean %.6g\n", lo, hi, mean);
        }
        if (ea.repeat)
            printf("time  median %.3f ms per inference over %zu runs\n", median_ms, ea.repeat);
    }
    rc = EXIT_OK;
out:
    bnf_tensors_release(&in);
    bnf_tensors_release(&out);
    free(times);
    eval_args_free(&ea);
    bnf_session_free(s);
    bnf_model_free(m);
    return rc;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"inspect", cmd_inspect},
    {"fold", cmd_fold},
    {"verify", cmd_verify},
    {"run", cmd_run},
    {"check", cmd_check},
    {"calibrate", cmd_calibrate},
};

/* glibc's malloc hands large blocks back to the kernel as soon as they are
 * freed, and takes them again with fresh zeroed pages: on a virtual machine a
 * page fault costs microseconds, and the evaluator frees and takes the same
 * sizes node after node (activations, packed weights).  Blocks up to 32 MiB
 * come from the heap and stay there for the next one (the process's peak
 * memory is the same: what it needs at once). */
static void keep_freed_memory(void)
{
#if defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
#if defined(M_MMAP_MAX)
    /* and larger ones too (glibc's threshold stops at 32 MiB): a big model's
     * packed weights, 85 MB a node, in the same pages node after node */
    mallopt(M_MMAP_MAX, 0);
#endif
}

int main(int argc, char **argv)
{
    int kept = 0;
    keep_freed_memory();
    for (int i = 0; i < argc; i++) { /* --quiet / -q anywhere */
        if (i > 0 && (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")))
            quiet = 1;
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    if (argc < 2) {
        fputs(main_help, stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(main_help, stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("bnfold %s\n", BNF_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    return usage_error(NULL, "unknown command '%s'", argv[1]);
}
