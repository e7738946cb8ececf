/* cli/main.c: the bnfold command line.  Parses arguments, calls libbnfold,
 * prints, and maps library statuses to the exit codes of docs/contract.md.
 * No model logic lives here.  Adding a command: one function, one table line. */
#include "bnfold.h"

#include <stdint.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_CHECK = 1, EXIT_USAGE = 2, EXIT_MODEL = 3, EXIT_IO = 4 };

/* --quiet (any command): no report text, only errors and the exit code. */
static int quiet;

/* Colour only on a terminal, and never with NO_COLOR set (no-color.org). */
static int use_color(FILE *f)
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

static void end_progress(void)
{
    if (progress_shown)
        fputs("\r\033[K", stderr);
    progress_shown = 0;
}

static void wire_progress(bnf_fold_options *fo)
{
    if (!quiet && isatty(STDERR_FILENO)) {
        fo->progress = show_progress;
        fo->check.progress = show_progress;
    }
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static int exit_code(bnf_status s)
{
    switch (s) {
    case BNF_OK: return EXIT_OK;
    case BNF_ERR_CHECK: return EXIT_CHECK;
    case BNF_ERR_USAGE: return EXIT_USAGE;
    case BNF_ERR_INVALID:
    case BNF_ERR_UNSUPPORTED: return EXIT_MODEL;
    case BNF_ERR_IO:
    case BNF_ERR_NOMEM: return EXIT_IO;
    }
    return EXIT_IO;
}

static int fail(const bnf_err *err)
{
    fprintf(stderr, "bnfold: error: %s\n", err->msg[0] ? err->msg : bnf_strerror(err->code));
    return exit_code(err->code);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "bnfold: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'bnfold %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

/* ---- options shared by fold, verify and run ----------------------------------- */

typedef struct {
    bnf_verify_options v;
    bnf_dim dims[32];
    bnf_named_tensor given[64];
    bnf_tensor tensors[64];
    char *tensor_names[64];
    int json;
    const char *output_dir;
    size_t repeat;
} eval_args;

static void eval_args_init(eval_args *a)
{
    memset(a, 0, sizeof *a);
    bnf_verify_defaults(&a->v);
    a->v.dims = a->dims;
    a->v.given = a->given;
}

static void eval_args_free(eval_args *a)
{
    for (size_t i = 0; i < a->v.n_given; i++) {
        bnf_tensor_release(&a->tensors[i]);
        free(a->tensor_names[i]);
    }
}

static int parse_number(const char *cmd, const char *opt, const char *s, double lo, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo))
        return usage_error(cmd, "bad value for %s", opt);
    *out = v;
    return 0;
}

/* Consumes argv[*i] (and its value) when it is an evaluation option: returns 1
 * when consumed, 0 when not one, or -(exit code) on error. */
static int parse_eval_option(const char *cmd, int argc, char **argv, int *i, eval_args *a,
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
static int parse_fold_option(const char *arg, bnf_fold_options *fo)
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

static const char fold_options_help[] =
    "  --lower-standalone   rewrite a BN no layer can take as Mul + Add by constants\n"
    "  --assume-inference   treat training-mode BNs as inference ones (their running\n"
    "                       statistics must be constant and extra outputs unused)\n"
    "  --freeze-inputs      initializers also listed as graph inputs (IR >= 4) are\n"
    "                       constants, and stop being inputs\n";

/* "512M", "4G", "1000000": bytes.  Returns 0, or -1 when malformed. */
static int parse_size(const char *s, uint64_t *out)
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

static const char eval_options_help[] =
    "  --input [NAME=]FILE  an input tensor (.pb TensorProto or .npy); without NAME it\n"
    "                       binds by the file's tensor name, else to the inputs in order\n"
    "  --dim NAME=VALUE     value of a symbolic dimension (default 1)\n"
    "  --threads N          threads (default: all cores)\n";

static const char verify_options_help[] =
    "  --inputs N           random input sets (default 3): standard normal floats,\n"
    "                       integers uniform in [0, 10), seeded\n"
    "  --seed S             first seed (default 1)\n"
    "  --rtol R             relative tolerance (default 1e-4)\n"
    "  --atol A             absolute tolerance in units of the value's largest |value|\n"
    "                       (default 1e-4)\n"
    "  --outputs-only       compare graph outputs only, not also the intermediate\n"
    "                       values both models compute under the same name\n";

static const char inspect_help[] =
    "Usage: bnfold inspect MODEL [--json] [--dot FILE|-] [--html FILE] [fold options]\n"
    "\n"
    "Describe the model and every BatchNormalization in it: the layer it follows,\n"
    "whether 'bnfold fold' would fold it and, if not, why; its channels, epsilon,\n"
    "smallest running variance and largest per-channel scale |gamma/sqrt(var+eps)|.\n"
    "The model is not changed.\n"
    "\n"
    "Health findings (BN_TINY_VAR, BN_NEG_VAR, ...) are listed under each BN.\n"
    "Example: bnfold inspect resnet18.onnx\n"
    "\n"
    "  --json               print one JSON document on stdout (docs/contract.md)\n"
    "  --dot FILE|-         write the graph for Graphviz: each BN coloured by its fate\n"
    "                       (green folds, blue lowered, orange skipped, red border:\n"
    "                       health error); render with 'dot -Tsvg FILE -o graph.svg'\n"
    "  --html FILE          write a self-contained HTML page ('-' for stdout): summary,\n"
    "                       BN table, findings, per-channel charts of scale and variance\n"
    "  -h, --help           show this help\n";

static const char fold_help_head[] =
    "Usage: bnfold fold MODEL (-o OUT | --in-place) [--json] [--no-verify] [options]\n"
    "\n"
    "Fold every BatchNormalization that directly follows a Conv, ConvTranspose or\n"
    "Gemm into that layer's weights and bias, repeat until nothing changes, check\n"
    "the result, and write it to OUT atomically.  Each fold is checked on its own\n"
    "(layer + BN against the folded layer, on random input); the whole model is\n"
    "checked against the original on random inputs when the evaluator has every\n"
    "operator it uses.  A failed check writes nothing and exits 1.  The input is\n"
    "never modified; on any error no OUT file is written.\n"
    "\n"
    "  -o, --output OUT     where to write the folded model ('-' for stdout)\n"
    "  --json               print the report as one JSON document on stdout\n"
    "  --no-verify          skip both checks\n"
    "  --in-place           replace MODEL itself (atomically) instead of -o OUT\n"
    "  --max-memory SIZE    memory parsing may take (default 256M + 4 x the file)\n";

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
    "  inspect MODEL [--json|--dot F|--html F]  every BN, its fate and health\n"
    "  fold MODEL -o OUT [--json]       fold what can be folded, verify, write OUT\n"
    "  verify MODEL_A MODEL_B           do two models compute the same function?\n"
    "  run MODEL [--input FILE ...]     evaluate a model, print or save its outputs\n"
    "  check MODEL [--fail-on LIST]     CI gate on BN health and unfolded BNs\n"
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
    "2 usage error, 3 invalid or unsupported model, 4 I/O error.\n";

static int cmd_inspect(int argc, char **argv)
{
    const char *model_path = NULL, *dot_path = NULL, *html_path = NULL;
    int json = 0, rc, to_stdout;
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_report *r = NULL;
    bnf_fold_options fo;
    FILE *text;

    bnf_fold_defaults(&fo);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(inspect_help, stdout);
            fputs(fold_options_help, stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--dot") || !strcmp(argv[i], "--html")) {
            if (++i == argc || !*argv[i])
                return usage_error("inspect", "%s needs a file name", argv[i - 1]);
            if (!strcmp(argv[i - 1], "--dot"))
                dot_path = argv[i];
            else
                html_path = argv[i];
        } else if (parse_fold_option(argv[i], &fo)) {
            continue;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("inspect", "unknown option '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return usage_error("inspect", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path)
        return usage_error("inspect", "%smissing MODEL", "");
    to_stdout = (dot_path && !strcmp(dot_path, "-")) + (html_path && !strcmp(html_path, "-"));
    if (to_stdout + json > 1)
        return usage_error("inspect", "%s--json, --dot - and --html - each want stdout: "
                                      "give at most one", "");
    text = to_stdout ? stderr : stdout; /* the picture has stdout */
    if (bnf_model_load(model_path, &m, &err) ||
        (dot_path && strcmp(dot_path, "-") && bnf_model_check_output(m, dot_path, &err)) ||
        (html_path && strcmp(html_path, "-") && bnf_model_check_output(m, html_path, &err)) ||
        bnf_inspect_with(m, &fo, &r, &err)) {
        rc = fail(&err);
        goto out;
    }
    /* pictures of the model as loaded: built in memory, then written atomically
     * by the library (or to stdout for "-") */
    for (int k = 0; k < 2; k++) {
        const char *path = k ? html_path : dot_path;
        char *buf = NULL;
        size_t n = 0;
        bnf_status st;
        FILE *mem;
        if (!path)
            continue;
        if (!(mem = open_memstream(&buf, &n))) {
            fprintf(stderr, "bnfold: error: out of memory\n");
            rc = EXIT_IO;
            goto out;
        }
        st = k ? bnf_report_write_html(r, m, mem, &err) : bnf_report_write_dot(r, m, mem, &err);
        if (fclose(mem) != 0 && !st)
            st = err.code = BNF_ERR_NOMEM;
        if (!st)
            st = bnf_write_atomic(path, (const uint8_t *)buf, n, &err);
        free(buf);
        if (st) {
            rc = fail(&err);
            goto out;
        }
    }
    if (json) {
        bnf_report_write_json(r, stdout);
    } else if (!quiet) {
        bnf_report_write_text_styled(r, text, use_color(text));
        if (dot_path && strcmp(dot_path, "-"))
            fprintf(text, "wrote %s\n", dot_path);
        if (html_path && strcmp(html_path, "-"))
            fprintf(text, "wrote %s\n", html_path);
    }
    rc = EXIT_OK;
out:
    bnf_report_free(r);
    bnf_model_free(m);
    return rc;
}

static int cmd_fold(int argc, char **argv)
{
    const char *model_path = NULL, *out_path = NULL;
    int json = 0, rc, k, in_place = 0;
    bnf_load_options lo = {0};
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_report *r = NULL;
    bnf_fold_options fo;
    eval_args ea;
    struct timespec t0;
    double load_ms;

    bnf_fold_defaults(&fo);
    eval_args_init(&ea);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_help(fold_help_head, 1, 1);
            fputs(fold_options_help, stdout);
            rc = EXIT_OK;
            goto out;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--no-verify")) {
            fo.verify = 0;
        } else if (!strcmp(argv[i], "--in-place")) {
            in_place = 1;
        } else if (!strcmp(argv[i], "--max-memory")) {
            if (++i == argc || parse_size(argv[i], &lo.max_memory)) {
                rc = usage_error("fold", "%s--max-memory needs a size (e.g. 512M, 4G)", "");
                goto out;
            }
        } else if (parse_fold_option(argv[i], &fo)) {
            continue;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (++i == argc) {
                rc = usage_error("fold", "%s needs a file name", argv[i - 1]);
                goto out;
            }
            out_path = argv[i];
        } else if (!strncmp(argv[i], "--output=", 9)) {
            out_path = argv[i] + 9;
        } else if ((k = parse_eval_option("fold", argc, argv, &i, &ea, 1)) != 0) {
            if (k < 0) {
                rc = -k;
                goto out;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = usage_error("fold", "unknown option '%s'", argv[i]);
            goto out;
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            rc = usage_error("fold", "unexpected argument '%s'", argv[i]);
            goto out;
        }
    }
    rc = EXIT_USAGE;
    if (!model_path) {
        usage_error("fold", "%smissing MODEL", "");
        goto out;
    }
    if (in_place && out_path) {
        usage_error("fold", "%s--in-place and -o exclude each other", "");
        goto out;
    }
    if (in_place)
        out_path = model_path;
    if (!out_path || !*out_path) {
        usage_error("fold", "%smissing -o OUT (or --in-place)", "");
        goto out;
    }
    if (json && !strcmp(out_path, "-")) {
        usage_error("fold", "%s--json and -o - both want stdout", "");
        goto out;
    }
    fo.check = ea.v;
    fo.break_for_testing = getenv("BNFOLD_TEST_BREAK_FOLD") != NULL; /* tests only */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bnf_model_open(model_path, &lo, &m, &err)) {
        rc = fail(&err);
        goto out;
    }
    load_ms = ms_since(&t0);
    if (in_place)
        bnf_model_allow_in_place(m);
    wire_progress(&fo);
    if (bnf_model_check_output(m, out_path, &err) || bnf_fold(m, &fo, &r, &err) ||
        bnf_report_set_output(r, out_path, &err)) {
        end_progress();
        rc = fail(&err);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bnf_model_save(m, out_path, &err)) {
        end_progress();
        rc = fail(&err);
        goto out;
    }
    r->ms.load = load_ms;
    r->ms.write = ms_since(&t0);
    end_progress();
    if (json) {
        bnf_report_write_json(r, stdout);
    } else if (!quiet) {
        FILE *f = strcmp(out_path, "-") ? stdout : stderr;
        bnf_report_write_text_styled(r, f, use_color(f));
        fprintf(f, "wrote %s\n", out_path);
    }
    rc = EXIT_OK;
out:
    eval_args_free(&ea);
    bnf_report_free(r);
    bnf_model_free(m);
    return rc;
}

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

static const char check_help[] =
    "Usage: bnfold check MODEL [--fail-on LIST] [--json] [--format github] [fold options]\n"
    "\n"
    "A CI gate: inspect the model and fail (exit 1) when something listed in\n"
    "--fail-on is found, naming every offending node; exit 0 otherwise.\n"
    "\n"
    "  --fail-on LIST       comma-separated: finding codes (BN_NEG_VAR, BN_TINY_VAR, ...),\n"
    "                       'error' (findings of severity error: the default),\n"
    "                       'warning' (warning or error), 'info' (any finding),\n"
    "                       'unfolded' (a BN that bnfold fold would fold is present)\n"
    "  --json               print one JSON document on stdout\n"
    "  --format github      print GitHub Actions annotations (::error ...) on stdout\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example: bnfold check model.onnx --fail-on error,unfolded --format github\n";

static int cmd_check(int argc, char **argv)
{
    const char *model_path = NULL, *fail_on = NULL, *format = "text";
    int json = 0, rc;
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_report *r = NULL;
    bnf_fold_options fo;

    bnf_fold_defaults(&fo);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(check_help, stdout);
            fputs(fold_options_help, stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--fail-on") || !strcmp(argv[i], "--format")) {
            if (++i == argc)
                return usage_error("check", "%s needs a value", argv[i - 1]);
            if (!strcmp(argv[i - 1], "--fail-on"))
                fail_on = argv[i];
            else
                format = argv[i];
        } else if (parse_fold_option(argv[i], &fo)) {
            continue;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("check", "unknown option '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return usage_error("check", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path)
        return usage_error("check", "%smissing MODEL", "");
    if (strcmp(format, "text") && strcmp(format, "github"))
        return usage_error("check", "--format takes text or github, not '%s'", format);
    if (json && !strcmp(format, "github"))
        return usage_error("check", "%s--json and --format github both want stdout", "");
    if (bnf_check_parse(fail_on, &err))
        return usage_error("check", "%s", err.msg);
    if (bnf_model_load(model_path, &m, &err) || bnf_inspect_with(m, &fo, &r, &err) ||
        bnf_check(r, fail_on, &err)) {
        rc = fail(&err);
        goto out;
    }
    if (json) {
        bnf_report_write_json(r, stdout);
    } else if (!strcmp(format, "github")) {
        bnf_report_write_github(r, stdout);
    } else if (!quiet) {
        for (size_t i = 0; i < r->n_findings; i++) {
            const bnf_finding *x = &r->findings[i];
            printf("%s %-8s %-16s BatchNormalization '%s': %s\n", x->trips ? "FAIL" : "    ",
                   x->severity, x->code, r->bns[x->bn].name, x->message);
        }
        for (size_t i = 0; i < r->n_bns; i++)
            if (r->bns[i].trips)
                printf("FAIL %-8s %-16s BatchNormalization '%s' can be folded into %s '%s'\n",
                       "error", "BN_UNFOLDED", r->bns[i].name, r->bns[i].layer_op,
                       r->bns[i].layer);
        printf("%s: %zu BatchNormalization, %zu finding(s); --fail-on %s: %s\n", model_path,
               r->n_bns, r->n_findings, r->check_fail_on,
               r->check_trips ? "FAILED" : "passed");
    }
    rc = r->check_trips ? EXIT_CHECK : EXIT_OK;
out:
    bnf_report_free(r);
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
};

/* OpenBLAS starts its worker threads as it loads, and each spins (sched_yield)
 * for about 0.1 s: a core burnt on every run, fold and inspect included.  The
 * evaluator shares GEMMs out over threads of its own and keeps OpenBLAS at one,
 * so one it is from the start, which only the environment can say before the
 * library loads: say it and start again (once; on failure, go on as we are). */
static void openblas_single_thread(char **argv)
{
    if (getenv("OPENBLAS_NUM_THREADS"))
        return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0)
        execv("/proc/self/exe", argv);
}

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
    openblas_single_thread(argv);
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
