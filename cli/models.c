/* cli/models.c: the commands over models: inspect, check and fold.  Each
 * takes one MODEL (and prints what it always printed) or many PATHs: models,
 * or folders searched for *.onnx (bnf_find_models).  Over many, each model
 * is worked on in a process of its own (batch.c), the results come out
 * sorted by path as one text, JSON, GitHub or SARIF report with a summary
 * (bnf_batch_writer), and the exit status is the worst of the models'
 * (bnf_exit_worst: 2, 4, 3, 1, 0). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- options of the commands over models ------------------------------------------- */

typedef struct {
    const char *cmd;
    char **paths;             /* the PATHs (argv's strings) */
    size_t n_paths;
    int jobs;                 /* -j: 0 for the number of cores */
    const char **exclude;
    size_t n_exclude;
    const char *format;       /* --format, "json" for --json; NULL: text */
    int json_flag;            /* --json was given */
    const char *sarif_path;   /* --sarif FILE */
    const char *out_dir;      /* fold --out-dir */
} model_args;

static int model_args_init(model_args *a, const char *cmd, int argc)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->paths = calloc((size_t)argc + 1, sizeof *a->paths);
    a->exclude = calloc((size_t)argc + 1, sizeof *a->exclude);
    if (!a->paths || !a->exclude) {
        fprintf(stderr, "bnfold: error: out of memory\n");
        return -1;
    }
    return 0;
}

static void model_args_free(model_args *a)
{
    free(a->paths);
    free(a->exclude);
}

static const char many_help[] =
    "\n"
    "Many models: a PATH that is a folder is searched for *.onnx models (links to\n"
    "folders are not followed, external data files are not models); several PATHs\n"
    "may be given.  Each model is worked on in a process of its own; the results\n"
    "come sorted by path, then a summary; the exit status is the worst of the\n"
    "models' (2, 4, 3, 1, 0: a model that cannot be read outranks a failed gate).\n"
    "  -j, --jobs N         models at a time (default: the number of cores)\n"
    "  --exclude GLOB       leave out what matches inside folders: a file or folder\n"
    "                       name, or with a '/' a whole path; may be repeated\n"
    "  --format FORMAT      text (default), json (as --json), github (GitHub Actions\n"
    "                       annotations) or sarif (SARIF 2.1.0, for code scanning)\n"
    "  --sarif FILE         also write the results as SARIF 2.1.0 to FILE\n";

/* The value of an option given as "--opt VALUE" or "--opt=VALUE" (and for -j,
 * "-jN"); NULL when argv[*i] is not `opt`.  *missing when the value is. */
static const char *option_value(int argc, char **argv, int *i, const char *opt,
                                const char *short_opt, int *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(opt);
    *missing = 0;
    if (!strncmp(a, opt, n) && a[n] == '=')
        return a + n + 1;
    if (short_opt && !strncmp(a, short_opt, strlen(short_opt)) && a[strlen(short_opt)])
        return a + strlen(short_opt);
    if (strcmp(a, opt) && !(short_opt && !strcmp(a, short_opt)))
        return NULL;
    if (++*i == argc) {
        *missing = 1;
        return NULL;
    }
    return argv[*i];
}

/* Consumes argv[*i] (and its value) when it is an option of the commands over
 * models: 1 when consumed, 0 when not one, -(exit code) on error. */
static int parse_model_option(int argc, char **argv, int *i, model_args *a)
{
    const char *v;
    int missing;
    double d;
    if (!strcmp(argv[*i], "--json")) {
        a->json_flag = 1;
        return 1;
    }
    if ((v = option_value(argc, argv, i, "--jobs", "-j", &missing)) || missing) {
        if (missing || parse_number(a->cmd, "-j", v, 1, &d) || d > 4096)
            return -(missing ? usage_error(a->cmd, "%s needs a number", "-j")
                             : usage_error(a->cmd, "-j wants a number from 1 to 4096, not "
                                                   "'%s'", v));
        a->jobs = (int)d;
        return 1;
    }
    if ((v = option_value(argc, argv, i, "--exclude", NULL, &missing)) || missing) {
        if (missing || !*v)
            return -usage_error(a->cmd, "%s needs a GLOB", "--exclude");
        a->exclude[a->n_exclude++] = v;
        return 1;
    }
    if ((v = option_value(argc, argv, i, "--format", NULL, &missing)) || missing) {
        if (missing)
            return -usage_error(a->cmd, "%s needs a value", "--format");
        if (strcmp(v, "text") && strcmp(v, "json") && strcmp(v, "github") && strcmp(v, "sarif"))
            return -usage_error(a->cmd, "--format takes text, json, github or sarif, not '%s'",
                                v);
        a->format = v;
        return 1;
    }
    if ((v = option_value(argc, argv, i, "--sarif", NULL, &missing)) || missing) {
        if (missing || !*v)
            return -usage_error(a->cmd, "%s needs a file name", "--sarif");
        a->sarif_path = v;
        return 1;
    }
    return 0;
}

/* After parsing: --json and --format agree, and there is a PATH. */
static int check_model_args(model_args *a)
{
    if (a->json_flag && a->format && strcmp(a->format, "json"))
        return usage_error(a->cmd, "--json and --format %s both want stdout", a->format);
    if (a->json_flag)
        a->format = "json";
    if (!a->n_paths)
        return usage_error(a->cmd, "%smissing MODEL", "");
    return 0;
}

/* A command's own options: 1 when argv[*i] (and its value) was one, 0 when
 * not, -(exit code) on a usage error. */
typedef int (*own_option_fn)(void *ctx, int argc, char **argv, int *i);

/* The arguments of a command over models: -h, the command's own options, the
 * fold options, the options over models, and the PATHs.  -1 when the command
 * is to run; else the exit code (after --help: EXIT_OK). */
static int parse_models_args(model_args *a, bnf_fold_options *fo, void (*help)(void),
                             own_option_fn own, void *ctx, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        int k;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help();
            return EXIT_OK;
        }
        if ((own && (k = own(ctx, argc, argv, &i)) != 0) ||
            (k = parse_fold_option(argv[i], fo)) != 0 ||
            (k = parse_model_option(argc, argv, &i, a)) != 0) {
            if (k < 0)
                return -k;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return usage_error(a->cmd, "unknown option '%s'", argv[i]);
        a->paths[a->n_paths++] = argv[i];
    }
    {
        int rc = check_model_args(a);
        return rc ? rc : -1;
    }
}

static bnf_format format_of(const model_args *a)
{
    const char *f = a->format ? a->format : "text";
    return !strcmp(f, "json") ? BNF_FORMAT_JSON : !strcmp(f, "github") ? BNF_FORMAT_GITHUB
                                                : !strcmp(f, "sarif") ? BNF_FORMAT_SARIF
                                                                      : BNF_FORMAT_TEXT;
}

/* More than one PATH, a folder, or fold --out-dir: a run over many models. */
static int is_many(const model_args *a)
{
    struct stat st;
    if (a->n_paths != 1 || a->out_dir)
        return 1;
    return stat(a->paths[0], &st) == 0 && S_ISDIR(st.st_mode);
}

/* Writes the SARIF log of `n` results to `path` (atomically), or to stdout
 * when path is NULL.  Returns 0 or an exit code. */
static int write_sarif(const char *cmd, const char *path, const bnf_model_result *res, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = path ? open_memstream(&buf, &len) : stdout;
    bnf_batch_writer *w = NULL;
    bnf_summary sum;
    bnf_err err = {0};
    bnf_status st;

    if (!f) {
        fprintf(stderr, "bnfold: error: out of memory\n");
        return EXIT_IO;
    }
    bnf_summary_init(&sum, cmd);
    st = bnf_batch_writer_new(f, BNF_FORMAT_SARIF, cmd, 0, &w, &err);
    for (size_t i = 0; !st && i < n; i++) {
        bnf_summary_add(&sum, &res[i]);
        bnf_batch_writer_add(w, &res[i]);
    }
    if (!st)
        st = bnf_batch_writer_end(w, &sum, &err);
    bnf_batch_writer_free(w);
    if (path) {
        if (fclose(f) != 0 && !st)
            st = set_err(&err, BNF_ERR_NOMEM, "out of memory");
        if (!st)
            st = bnf_write_atomic(path, (const uint8_t *)buf, len, &err);
        free(buf);
    }
    return st ? fail(&err) : 0;
}

/* What one MODEL's run ends with when it has --sarif FILE or --format sarif:
 * the log written, and the exit code (that of the model, or of the writing). */
static int single_sarif(const model_args *a, const char *path, bnf_status st,
                        const bnf_err *err, const bnf_report *r, int *rc)
{
    bnf_model_result res = {path, st, err->msg, st ? NULL : r};
    int w;
    if (a->sarif_path && (w = write_sarif(a->cmd, a->sarif_path, &res, 1)) != 0)
        *rc = bnf_exit_worst(*rc, w);
    if (a->format && !strcmp(a->format, "sarif")) {
        if ((w = write_sarif(a->cmd, NULL, &res, 1)) != 0)
            *rc = bnf_exit_worst(*rc, w);
        return 1;
    }
    return 0;
}

static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Over many models the cores are shared out among the workers: each model's
 * checks get cores / jobs threads (at least 1), unless --threads said. */
static void share_cores(const model_args *a, bnf_fold_options *fo)
{
    int jobs = a->jobs ? a->jobs : cores();
    if (!fo->check.threads)
        fo->check.threads = cores() / jobs > 1 ? cores() / jobs : 1;
}

/* The run over many models: find them, run `work` on each in workers, print
 * the results and the summary.  Returns the exit status. */
static int run_many(model_args *a, batch_work work, void *ctx)
{
    bnf_find_options fopt = {(const char *const *)a->exclude, a->n_exclude, a->out_dir};
    bnf_found_list found = {0};
    bnf_summary sum;
    bnf_batch_writer *out = NULL, *sw = NULL;
    bnf_format format = format_of(a);
    char *sarif_buf = NULL;
    size_t sarif_len = 0;
    FILE *sarif_f = NULL;
    bnf_err err = {0};
    batch_opts o;
    int rc = EXIT_OK;

    bnf_summary_init(&sum, a->cmd);
    if (bnf_find_models((const char *const *)a->paths, a->n_paths, &fopt, &found, &err))
        return fail(&err);
    memset(&o, 0, sizeof o);
    o.command = a->cmd;
    o.jobs = a->jobs ? a->jobs : cores();
    if ((size_t)o.jobs > found.n)
        o.jobs = found.n ? (int)found.n : 1;
    o.work = work;
    o.ctx = ctx;
    o.progress = !quiet && isatty(STDERR_FILENO) && found.n > 1;
    if ((format != BNF_FORMAT_TEXT || !quiet) &&
        bnf_batch_writer_new(stdout, format, a->cmd, format == BNF_FORMAT_TEXT &&
                             use_color(stdout), &out, &err)) {
        rc = fail(&err);
        goto out;
    }
    if (a->sarif_path) {
        if (!(sarif_f = open_memstream(&sarif_buf, &sarif_len)) ||
            bnf_batch_writer_new(sarif_f, BNF_FORMAT_SARIF, a->cmd, 0, &sw, &err)) {
            rc = err.code ? fail(&err) : (fprintf(stderr, "bnfold: error: out of memory\n"),
                                          EXIT_IO);
            goto out;
        }
    }
    o.out = out;
    o.sarif = sw;
    if (batch_run(&o, &found, &sum) != 0)
        sum.exit_code = bnf_exit_worst(sum.exit_code, EXIT_IO);
    rc = sum.exit_code;
    if (out && bnf_batch_writer_end(out, &sum, &err))
        rc = bnf_exit_worst(rc, fail(&err));
    if (sw) {
        bnf_status st = bnf_batch_writer_end(sw, &sum, &err);
        if (fclose(sarif_f) != 0 && !st)
            st = set_err(&err, BNF_ERR_NOMEM, "out of memory");
        sarif_f = NULL;
        if (st || bnf_write_atomic(a->sarif_path, (const uint8_t *)sarif_buf, sarif_len, &err))
            rc = bnf_exit_worst(rc, fail(&err));
    }
out:
    if (sarif_f)
        fclose(sarif_f);
    free(sarif_buf);
    bnf_batch_writer_free(out);
    bnf_batch_writer_free(sw);
    bnf_found_list_release(&found);
    return rc;
}

/* ---- inspect ---------------------------------------------------------------------- */

static const char inspect_help[] =
    "Usage: bnfold inspect PATH... [--json | --format FORMAT] [--dot FILE|-] [--html FILE]\n"
    "                      [--sarif FILE] [-j N] [--exclude GLOB] [fold options]\n"
    "\n"
    "Describe the model and every BatchNormalization in it: the layer it follows,\n"
    "whether 'bnfold fold' would fold it and, if not, why; its channels, epsilon,\n"
    "smallest running variance and largest per-channel scale |gamma/sqrt(var+eps)|.\n"
    "The model is not changed.  A PATH is a model, or a folder of models.\n"
    "\n"
    "Health findings (BN_TINY_VAR, BN_NEG_VAR, ...) are listed under each BN.\n"
    "Example: bnfold inspect resnet18.onnx\n"
    "\n"
    "  --json               print one JSON document on stdout (docs/contract.md)\n"
    "  --dot FILE|-         write the graph for Graphviz: each BN coloured by its fate\n"
    "                       (green folds, blue lowered, orange skipped, red border:\n"
    "                       health error); render with 'dot -Tsvg FILE -o graph.svg'\n"
    "                       (one MODEL only)\n"
    "  --html FILE          write a self-contained HTML page ('-' for stdout): summary,\n"
    "                       BN table, findings, per-channel charts of scale and variance\n"
    "                       (one MODEL only)\n"
    "  -h, --help           show this help\n";

typedef struct {
    bnf_fold_options fo;
    const char *fail_on;      /* check: the gate */
} inspect_ctx;

/* A worker's inspect (and, with fail_on, check) of one model. */
static bnf_status inspect_work(void *ctx, const bnf_found *model, bnf_report **r, bnf_err *err)
{
    const inspect_ctx *c = ctx;
    bnf_model *m = NULL;
    bnf_status st;
    *r = NULL;
    if (!(st = bnf_model_load(model->path, &m, err)) &&
        !(st = bnf_inspect_with(m, &c->fo, r, err)) && c->fail_on)
        st = bnf_check(*r, c->fail_on, err);
    bnf_model_free(m);
    if (st) {
        bnf_report_free(*r);
        *r = NULL;
    }
    return st;
}

static void inspect_usage(void)
{
    fputs(inspect_help, stdout);
    fputs(fold_options_help, stdout);
    fputs(many_help, stdout);
}

typedef struct {
    const char *dot, *html; /* --dot FILE, --html FILE */
} pictures;

static int inspect_option(void *ctx, int argc, char **argv, int *i)
{
    pictures *p = ctx;
    if (strcmp(argv[*i], "--dot") && strcmp(argv[*i], "--html"))
        return 0;
    if (++*i == argc || !*argv[*i])
        return -usage_error("inspect", "%s needs a file name", argv[*i - 1]);
    if (!strcmp(argv[*i - 1], "--dot"))
        p->dot = argv[*i];
    else
        p->html = argv[*i];
    return 1;
}

int cmd_inspect(int argc, char **argv)
{
    const char *model_path, *dot_path, *html_path;
    int rc, to_stdout, json;
    pictures pics = {0};
    bnf_err err = {0};
    bnf_status st;
    bnf_model *m = NULL;
    bnf_report *r = NULL;
    inspect_ctx c = {0};
    model_args a;
    FILE *text;

    bnf_fold_defaults(&c.fo);
    if (model_args_init(&a, "inspect", argc))
        return EXIT_IO;
    if ((rc = parse_models_args(&a, &c.fo, inspect_usage, inspect_option, &pics, argc, argv)) >= 0)
        goto out;
    dot_path = pics.dot;
    html_path = pics.html;
    json = a.format && !strcmp(a.format, "json");
    if (is_many(&a)) {
        if (dot_path || html_path)
            rc = usage_error("inspect", "%s--dot and --html take one MODEL, not a folder or "
                             "many", "");
        else {
            share_cores(&a, &c.fo);
            rc = run_many(&a, inspect_work, &c);
        }
        goto out;
    }
    model_path = a.paths[0];
    to_stdout = (dot_path && !strcmp(dot_path, "-")) + (html_path && !strcmp(html_path, "-"));
    if (to_stdout + (a.format && strcmp(a.format, "text")) > 1) {
        rc = usage_error("inspect", "%s--json (--format), --dot - and --html - each want "
                                    "stdout: give at most one", "");
        goto out;
    }
    text = to_stdout ? stderr : stdout; /* the picture has stdout */
    if ((st = bnf_model_load(model_path, &m, &err)) ||
        (dot_path && strcmp(dot_path, "-") && (st = bnf_model_check_output(m, dot_path, &err))) ||
        (html_path && strcmp(html_path, "-") &&
         (st = bnf_model_check_output(m, html_path, &err))) ||
        (st = bnf_inspect_with(m, &c.fo, &r, &err))) {
        rc = bnf_exit_code(st);
        if (!single_sarif(&a, model_path, st, &err, NULL, &rc))
            fail(&err);
        goto out;
    }
    /* pictures of the model as loaded: built in memory, then written atomically
     * by the library (or to stdout for "-") */
    for (int k2 = 0; k2 < 2; k2++) {
        const char *path = k2 ? html_path : dot_path;
        char *buf = NULL;
        size_t n = 0;
        FILE *mem;
        if (!path)
            continue;
        if (!(mem = open_memstream(&buf, &n))) {
            fprintf(stderr, "bnfold: error: out of memory\n");
            rc = EXIT_IO;
            goto out;
        }
        st = k2 ? bnf_report_write_html(r, m, mem, &err) : bnf_report_write_dot(r, m, mem, &err);
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
    rc = EXIT_OK;
    if (single_sarif(&a, model_path, BNF_OK, &err, r, &rc)) {
        ;
    } else if (json) {
        bnf_report_write_json(r, stdout);
    } else if (a.format && !strcmp(a.format, "github")) {
        bnf_report_write_github(r, stdout);
    } else if (!quiet) {
        bnf_report_write_text_styled(r, text, use_color(text));
        if (dot_path && strcmp(dot_path, "-"))
            fprintf(text, "wrote %s\n", dot_path);
        if (html_path && strcmp(html_path, "-"))
            fprintf(text, "wrote %s\n", html_path);
    }
out:
    model_args_free(&a);
    bnf_report_free(r);
    bnf_model_free(m);
    return rc;
}

/* ---- fold ------------------------------------------------------------------------- */

static const char fold_help_head[] =
    "Usage: bnfold fold MODEL (-o OUT | --in-place) [--json] [--no-verify] [options]\n"
    "       bnfold fold PATH... (--out-dir DIR | --in-place) [-j N] [options]\n"
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
    "  --out-dir DIR        many models: each to DIR/ its path below the folder PATH\n"
    "                       it was found in (a MODEL PATH: DIR/ its file name), with\n"
    "                       its external data beside it\n"
    "  --json               print the report as one JSON document on stdout\n"
    "  --no-verify          skip both checks\n"
    "  --in-place           replace MODEL itself (atomically) instead of -o OUT\n"
    "  --max-memory SIZE    memory parsing may take (default 256M + 4 x the file)\n";

typedef struct {
    bnf_fold_options fo;
    bnf_load_options lo;
    const char *out_dir;      /* many models: where they go, or NULL for in place */
} fold_ctx;

/* mkdir -p of the folders of a file path below `base` (which exists). */
static bnf_status make_folders(const char *path, size_t base_len, bnf_err *err)
{
    char *p = strdup(path);
    bnf_status st = BNF_OK;
    if (!p)
        return set_err(err, BNF_ERR_NOMEM, "out of memory");
    for (char *s = p + base_len + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            st = set_err(err, BNF_ERR_IO, "cannot make the folder '%s': %s", p,
                          strerror(errno));
            break;
        }
        *s = '/';
    }
    free(p);
    return st;
}

/* A worker's fold of one model, written to --out-dir (or over itself). */
static bnf_status fold_work(void *ctx, const bnf_found *model, bnf_report **r, bnf_err *err)
{
    const fold_ctx *c = ctx;
    bnf_model *m = NULL;
    char *out = NULL;
    struct timespec t0;
    double load_ms;
    bnf_status st;

    *r = NULL;
    if (c->out_dir) {
        size_t n = strlen(c->out_dir) + strlen(model->rel) + 2;
        if (!(out = malloc(n)))
            return set_err(err, BNF_ERR_NOMEM, "out of memory");
        snprintf(out, n, "%s/%s", c->out_dir, model->rel);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((out && (st = make_folders(out, strlen(c->out_dir), err))) ||
        (st = bnf_model_open(model->path, &c->lo, &m, err)))
        goto done;
    load_ms = ms_since(&t0);
    if (!out)
        bnf_model_allow_in_place(m);
    if ((st = bnf_model_check_output(m, out ? out : model->path, err)) ||
        (st = bnf_fold(m, &c->fo, r, err)) ||
        (st = bnf_report_set_output(*r, out ? out : model->path, err)))
        goto done;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = bnf_model_save(m, out ? out : model->path, err)))
        goto done;
    (*r)->ms.load = load_ms;
    (*r)->ms.write = ms_since(&t0);
done:
    if (st) {
        bnf_report_free(*r);
        *r = NULL;
    }
    bnf_model_free(m);
    free(out);
    return st;
}

/* Prints fold's help (it shares print_help's layout). */
static void fold_help(void)
{
    fputs(fold_help_head, stdout);
    fputs(verify_options_help, stdout);
    fputs(eval_options_help, stdout);
    fputs("  -h, --help           show this help\n", stdout);
    fputs(fold_options_help, stdout);
    fputs(many_help, stdout);
}

/* fold's own options, into these */
typedef struct {
    fold_ctx *c;
    eval_args *ea;
    model_args *a;
    const char *out_path; /* -o */
    int in_place;
} fold_args;

static int fold_option(void *ctx, int argc, char **argv, int *i)
{
    fold_args *f = ctx;
    const char *arg = argv[*i];
    if (!strcmp(arg, "--no-verify")) {
        f->c->fo.verify = 0;
    } else if (!strcmp(arg, "--in-place")) {
        f->in_place = 1;
    } else if (!strcmp(arg, "--max-memory")) {
        if (++*i == argc || parse_size(argv[*i], &f->c->lo.max_memory))
            return -usage_error("fold", "%s--max-memory needs a size (e.g. 512M, 4G)", "");
    } else if (!strcmp(arg, "-o") || !strcmp(arg, "--output") || !strcmp(arg, "--out-dir")) {
        if (++*i == argc)
            return -usage_error("fold", "%s needs a file name", arg);
        if (!strcmp(arg, "--out-dir"))
            f->a->out_dir = argv[*i];
        else
            f->out_path = argv[*i];
    } else if (!strncmp(arg, "--output=", 9)) {
        f->out_path = arg + 9;
    } else if (!strncmp(arg, "--out-dir=", 10)) {
        f->a->out_dir = arg + 10;
    } else {
        return parse_eval_option("fold", argc, argv, i, f->ea, 1);
    }
    return 1;
}

int cmd_fold(int argc, char **argv)
{
    const char *model_path, *out_path;
    int rc, in_place;
    fold_args fa = {0};
    fold_ctx c;
    bnf_err err = {0};
    bnf_status st;
    bnf_model *m = NULL;
    bnf_report *r = NULL;
    eval_args ea;
    model_args a;
    struct timespec t0;
    double load_ms;

    memset(&c, 0, sizeof c);
    bnf_fold_defaults(&c.fo);
    eval_args_init(&ea);
    if (model_args_init(&a, "fold", argc)) {
        rc = EXIT_IO;
        goto out;
    }
    fa.c = &c;
    fa.ea = &ea;
    fa.a = &a;
    if ((rc = parse_models_args(&a, &c.fo, fold_help, fold_option, &fa, argc, argv)) >= 0)
        goto out;
    out_path = fa.out_path;
    in_place = fa.in_place;
    rc = EXIT_USAGE;
    if (in_place + (out_path != NULL) + (a.out_dir != NULL) > 1) {
        usage_error("fold", "%s-o, --out-dir and --in-place exclude each other", "");
        goto out;
    }
    if (a.out_dir && !*a.out_dir) {
        usage_error("fold", "%s--out-dir needs a folder", "");
        goto out;
    }
    c.fo.check = ea.v;
    c.fo.break_for_testing = getenv("BNFOLD_TEST_BREAK_FOLD") != NULL; /* tests only */
    if (is_many(&a)) {
        struct stat st_dir;
        if (out_path) {
            usage_error("fold", "%s-o takes one MODEL: give --out-dir DIR (or --in-place) for "
                        "a folder or many", "");
            goto out;
        }
        if (!a.out_dir && !in_place) {
            usage_error("fold", "%smissing --out-dir DIR (or --in-place)", "");
            goto out;
        }
        if (a.out_dir && mkdir(a.out_dir, 0777) != 0 &&
            (errno != EEXIST || stat(a.out_dir, &st_dir) != 0 || !S_ISDIR(st_dir.st_mode))) {
            fprintf(stderr, "bnfold: error: cannot make the folder '%s': %s\n", a.out_dir,
                    errno == EEXIST ? "a file has that name" : strerror(errno));
            rc = EXIT_IO;
            goto out;
        }
        share_cores(&a, &c.fo);
        c.out_dir = a.out_dir;
        rc = run_many(&a, fold_work, &c);
        goto out;
    }
    model_path = a.paths[0];
    if (in_place)
        out_path = model_path;
    if (!out_path || !*out_path) {
        usage_error("fold", "%smissing -o OUT (or --in-place)", "");
        goto out;
    }
    if (a.format && strcmp(a.format, "text") && !strcmp(out_path, "-")) {
        usage_error("fold", "%s--json (--format) and -o - both want stdout", "");
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = bnf_model_open(model_path, &c.lo, &m, &err))) {
        rc = bnf_exit_code(st);
        if (!single_sarif(&a, model_path, st, &err, NULL, &rc))
            fail(&err);
        goto out;
    }
    load_ms = ms_since(&t0);
    if (in_place)
        bnf_model_allow_in_place(m);
    wire_progress(&c.fo);
    if ((st = bnf_model_check_output(m, out_path, &err)) || (st = bnf_fold(m, &c.fo, &r, &err)) ||
        (st = bnf_report_set_output(r, out_path, &err))) {
        end_progress();
        rc = bnf_exit_code(st);
        if (!single_sarif(&a, model_path, st, &err, NULL, &rc))
            fail(&err);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = bnf_model_save(m, out_path, &err))) {
        end_progress();
        rc = bnf_exit_code(st);
        if (!single_sarif(&a, model_path, st, &err, NULL, &rc))
            fail(&err);
        goto out;
    }
    r->ms.load = load_ms;
    r->ms.write = ms_since(&t0);
    end_progress();
    rc = EXIT_OK;
    if (single_sarif(&a, model_path, BNF_OK, &err, r, &rc)) {
        ;
    } else if (a.format && !strcmp(a.format, "json")) {
        bnf_report_write_json(r, stdout);
    } else if (a.format && !strcmp(a.format, "github")) {
        bnf_report_write_github(r, stdout);
    } else if (!quiet) {
        FILE *f = strcmp(out_path, "-") ? stdout : stderr;
        bnf_report_write_text_styled(r, f, use_color(f));
        fprintf(f, "wrote %s\n", out_path);
    }
out:
    model_args_free(&a);
    eval_args_free(&ea);
    bnf_report_free(r);
    bnf_model_free(m);
    return rc;
}

/* ---- check ------------------------------------------------------------------------ */

static const char check_help[] =
    "Usage: bnfold check PATH... [--fail-on LIST] [--json | --format FORMAT] [--sarif FILE]\n"
    "                    [-j N] [--exclude GLOB] [fold options]\n"
    "\n"
    "A CI gate: inspect each model and fail (exit 1) when something listed in\n"
    "--fail-on is found, naming every offending node; exit 0 otherwise.  A PATH\n"
    "is a model, or a folder of models.\n"
    "\n"
    "  --fail-on LIST       comma-separated: finding codes (BN_NEG_VAR, BN_TINY_VAR, ...),\n"
    "                       'error' (findings of severity error: the default),\n"
    "                       'warning' (warning or error), 'info' (any finding),\n"
    "                       'unfolded' (a BN that bnfold fold would fold is present)\n"
    "  --json               print one JSON document on stdout\n"
    "  -h, --help           show this help\n"
    "\n"
    "Examples: bnfold check model.onnx --fail-on error,unfolded --format github\n"
    "          bnfold check models/ -j 4 --format sarif > bnfold.sarif\n";

static void check_usage(void)
{
    fputs(check_help, stdout);
    fputs(fold_options_help, stdout);
    fputs(many_help, stdout);
}

static int check_option(void *ctx, int argc, char **argv, int *i)
{
    inspect_ctx *c = ctx;
    if (strcmp(argv[*i], "--fail-on"))
        return 0;
    if (++*i == argc)
        return -usage_error("check", "%s needs a value", argv[*i - 1]);
    c->fail_on = argv[*i];
    return 1;
}

int cmd_check(int argc, char **argv)
{
    const char *model_path;
    int rc;
    bnf_err err = {0};
    bnf_status st;
    bnf_model *m = NULL;
    bnf_report *r = NULL;
    inspect_ctx c = {0};
    model_args a;

    bnf_fold_defaults(&c.fo);
    if (model_args_init(&a, "check", argc))
        return EXIT_IO;
    if ((rc = parse_models_args(&a, &c.fo, check_usage, check_option, &c, argc, argv)) >= 0)
        goto out;
    if (bnf_check_parse(c.fail_on, &err)) {
        rc = usage_error("check", "%s", err.msg);
        goto out;
    }
    if (!c.fail_on)
        c.fail_on = "error";
    if (is_many(&a)) {
        share_cores(&a, &c.fo);
        rc = run_many(&a, inspect_work, &c);
        goto out;
    }
    model_path = a.paths[0];
    if ((st = bnf_model_load(model_path, &m, &err)) || (st = bnf_inspect_with(m, &c.fo, &r, &err)) ||
        (st = bnf_check(r, c.fail_on, &err))) {
        rc = bnf_exit_code(st);
        if (!single_sarif(&a, model_path, st, &err, NULL, &rc))
            fail(&err);
        goto out;
    }
    rc = r->check_trips ? EXIT_CHECK : EXIT_OK;
    if (single_sarif(&a, model_path, BNF_OK, &err, r, &rc)) {
        ;
    } else if (a.format && !strcmp(a.format, "json")) {
        bnf_report_write_json(r, stdout);
    } else if (a.format && !strcmp(a.format, "github")) {
        bnf_report_write_github(r, stdout);
    } else if (!quiet) {
        bnf_report_write_check(r, stdout);
    }
out:
    model_args_free(&a);
    bnf_report_free(r);
    bnf_model_free(m);
    return rc;
}
