/* cli/main.c: the bnfold command line.  Parses arguments, calls libbnfold,
 * prints, and maps library statuses to the exit codes of docs/contract.md.
 * No model logic lives here.  Adding a command: one function, one table line. */
#include "bnfold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_CHECK = 1, EXIT_USAGE = 2, EXIT_MODEL = 3, EXIT_IO = 4 };

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

static const char inspect_help[] =
    "Usage: bnfold inspect MODEL [--json]\n"
    "\n"
    "Describe the model and every BatchNormalization in it: the layer it follows,\n"
    "whether 'bnfold fold' would fold it and, if not, why; its channels, epsilon,\n"
    "smallest running variance and largest per-channel scale |gamma/sqrt(var+eps)|.\n"
    "The model is not changed.\n"
    "\n"
    "  --json     print one JSON document on stdout (schema: docs/contract.md)\n"
    "  -h, --help show this help\n"
    "\n"
    "Example: bnfold inspect resnet18.onnx\n";

static const char fold_help[] =
    "Usage: bnfold fold MODEL -o OUT [--json]\n"
    "\n"
    "Fold every BatchNormalization that directly follows a Conv, ConvTranspose or\n"
    "Gemm into that layer's weights and bias, repeat until nothing changes, and\n"
    "write the result to OUT atomically.  The input is never modified; on any\n"
    "error no OUT file is written.  Prints what was folded and what was not, and\n"
    "why.\n"
    "\n"
    "  -o, --output OUT  where to write the folded model ('-' for stdout)\n"
    "  --json            print the report as one JSON document on stdout\n"
    "  -h, --help        show this help\n"
    "\n"
    "Example: bnfold fold resnet18.onnx -o resnet18.folded.onnx\n";

static const char main_help[] =
    "Usage: bnfold COMMAND [ARGS]\n"
    "\n"
    "Find, explain and fold the BatchNormalization nodes of an ONNX model.\n"
    "\n"
    "Commands:\n"
    "  inspect MODEL [--json]          what is in the model, every BN and its fate\n"
    "  fold MODEL -o OUT [--json]      fold what can be folded, write OUT\n"
    "\n"
    "Options:\n"
    "  -h, --help      show this help ('bnfold COMMAND --help' for a command)\n"
    "  --version       print the version\n"
    "\n"
    "Exit codes: 0 ok, 1 check failed, 2 usage error, 3 invalid or unsupported\n"
    "model, 4 I/O error.\n";

static int cmd_inspect(int argc, char **argv)
{
    const char *model_path = NULL;
    int json = 0, rc;
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_report *r = NULL;

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(inspect_help, stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
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
    if (bnf_model_load(model_path, &m, &err) || bnf_inspect(m, &r, &err)) {
        rc = fail(&err);
        goto out;
    }
    if (json)
        bnf_report_write_json(r, stdout);
    else
        bnf_report_write_text(r, stdout);
    rc = EXIT_OK;
out:
    bnf_report_free(r);
    bnf_model_free(m);
    return rc;
}

static int cmd_fold(int argc, char **argv)
{
    const char *model_path = NULL, *out_path = NULL;
    int json = 0, rc;
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_report *r = NULL;

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(fold_help, stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (++i == argc)
                return usage_error("fold", "%s needs a file name", argv[i - 1]);
            out_path = argv[i];
        } else if (!strncmp(argv[i], "--output=", 9)) {
            out_path = argv[i] + 9;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("fold", "unknown option '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return usage_error("fold", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path)
        return usage_error("fold", "%smissing MODEL", "");
    if (!out_path || !*out_path)
        return usage_error("fold", "%smissing -o OUT", "");
    if (json && !strcmp(out_path, "-"))
        return usage_error("fold", "%s--json and -o - both want stdout", "");
    if (bnf_model_load(model_path, &m, &err) || bnf_fold(m, NULL, &r, &err) ||
        bnf_report_set_output(r, out_path, &err) || bnf_model_save(m, out_path, &err)) {
        rc = fail(&err);
        goto out;
    }
    if (json)
        bnf_report_write_json(r, stdout);
    else
        bnf_report_write_text(r, strcmp(out_path, "-") ? stdout : stderr);
    if (!json)
        fprintf(strcmp(out_path, "-") ? stdout : stderr, "wrote %s\n", out_path);
    rc = EXIT_OK;
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
};

int main(int argc, char **argv)
{
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
