/* cli/cli.h: what the files of the command line share.  main.c holds the
 * dispatch, the shared option parsers and helpers, verify and run;
 * models.c the commands over models (inspect, check, fold: one MODEL or many
 * PATHs); batch.c the worker processes of a run over many models;
 * calibrate.c the calibrate command.  No model
 * logic lives in cli/: it parses, calls libbnfold, prints. */
#ifndef BNFOLD_CLI_H
#define BNFOLD_CLI_H

#include "bnfold.h"

#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum { EXIT_OK = 0, EXIT_CHECK = 1, EXIT_USAGE = 2, EXIT_MODEL = 3, EXIT_IO = 4 };

/* --quiet (any command): no report text, only errors and the exit code. */
extern int quiet;

/* Colour only on a terminal, and never with NO_COLOR set (no-color.org). */
int use_color(FILE *f);
/* A fold's progress on stderr (a terminal), and its end. */
void wire_progress(bnf_fold_options *fo);
void end_progress(void);
double ms_since(const struct timespec *t0);
/* Prints err ("bnfold: error: ...") and returns its exit code. */
int fail(const bnf_err *err);
/* Fills err (as the library does) and returns code. */
bnf_status set_err(bnf_err *err, bnf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints a usage error (fmt with one %s for arg) and returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, const char *arg);
int parse_number(const char *cmd, const char *opt, const char *s, double lo, double *out);
/* "512M", "4G", "1000000": bytes.  Returns 0, or -1 when malformed. */
int parse_size(const char *s, uint64_t *out);
/* --lower-standalone, --assume-inference, --freeze-inputs: 1 when arg is one. */
int parse_fold_option(const char *arg, bnf_fold_options *fo);
extern const char fold_options_help[];

/* ---- options shared by fold, verify and run (main.c) --------------------------- */

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

void eval_args_init(eval_args *a);
void eval_args_free(eval_args *a);
/* Consumes argv[*i] (and its value) when it is an evaluation option: returns 1
 * when consumed, 0 when not one, or -(exit code) on error. */
int parse_eval_option(const char *cmd, int argc, char **argv, int *i, eval_args *a,
                      int allow_sets);
extern const char eval_options_help[];
extern const char verify_options_help[];

/* ---- the commands -------------------------------------------------------------- */

int cmd_inspect(int argc, char **argv);
int cmd_fold(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_calibrate(int argc, char **argv); /* calibrate.c */

/* ---- a run over many models (batch.c) ------------------------------------------ */

/* One model's work, run in a worker process: its report, or an error. */
typedef bnf_status (*batch_work)(void *ctx, const bnf_found *model, bnf_report **report,
                                 bnf_err *err);

typedef struct {
    const char *command;      /* "inspect", "check" or "fold" */
    int jobs;                 /* workers at a time */
    batch_work work;
    void *ctx;
    bnf_batch_writer *out;    /* the results on stdout, or NULL (--quiet) */
    bnf_batch_writer *sarif;  /* --sarif FILE, or NULL */
    int progress;             /* a progress line on stderr */
} batch_opts;

/* Runs o->work on every model of `found` in worker processes, o->jobs at a
 * time; every result goes, in path order, to the summary and the writers.
 * Returns 0, or -1 when the run itself broke down (said on stderr). */
int batch_run(const batch_opts *o, const bnf_found_list *found, bnf_summary *sum);

#endif
