/*
 * bnfold.h: the public interface of libbnfold.
 *
 * libbnfold reads an ONNX model, finds every BatchNormalization (BN), explains
 * each one, folds the ones it can into the neighbouring Conv / ConvTranspose /
 * Gemm / MatMul (the layer before it, or after it where that is exact), proves
 * with its own evaluator that the folded model computes the same function, and
 * writes the model back.  A whole session in a few lines:
 *
 *     bnf_err err = {0};
 *     bnf_model *m = NULL;
 *     bnf_report *r = NULL;
 *     if (bnf_model_load("in.onnx", &m, &err) != BNF_OK) goto fail;
 *     if (bnf_fold(m, NULL, &r, &err) != BNF_OK) goto fail;     // fold in memory
 *     bnf_report_write_text(r, stderr);                          // what was done
 *     if (bnf_model_save(m, "out.onnx", &err) != BNF_OK) goto fail; // atomic write
 *   fail:
 *     if (err.code) fprintf(stderr, "%s\n", err.msg);
 *     bnf_report_free(r);
 *     bnf_model_free(m);
 *
 * `bnf_inspect` answers the same question without changing the model: it folds a
 * private copy and reports the fate of every BN.
 *
 * Ownership: every object a function hands back through an `out` pointer
 * (bnf_model, bnf_report, bnf_session) belongs to the caller, who frees it with
 * its own `_free` function (each accepts NULL); what a struct of the caller's
 * holds (a bnf_tensor's data, a bnf_tensors list) is freed with its
 * `_release` function, which leaves the struct empty; buffers the library
 * hands back (bnf_model_serialize, bnf_tensor_serialize, bnf_report_to_json)
 * go to bnf_buffer_free.
 * Strings inside a report belong to the report and live until it is freed;
 * nothing a caller passes in is taken over.  A session reads its model: the
 * model must outlive it.
 * Errors: every function that can fail returns a bnf_status and, when `err` is
 * not NULL, fills it with the same code and a one-line message that names the
 * file, node or tensor.  The library never exits or aborts on bad input.
 * OpenBLAS: the evaluator loads it (dlopen, libopenblas.so.0) when it first
 * runs, after setting OPENBLAS_NUM_THREADS=1 in the environment if it is not
 * set, and holds it to one thread (the evaluator's own threads share GEMMs
 * out); without it, GEMMs run in plain C.
 */
#ifndef BNFOLD_H
#define BNFOLD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNF_VERSION "0.1.0"

/* What the shared library exports: these functions, nothing else. */
#if defined(__GNUC__)
#define BNF_API __attribute__((visibility("default")))
#else
#define BNF_API
#endif
#define BNF_JSON_SCHEMA_VERSION 2

typedef enum {
    BNF_OK = 0,
    BNF_ERR_USAGE,       /* a caller error: bad argument */
    BNF_ERR_INVALID,     /* the model is malformed */
    BNF_ERR_UNSUPPORTED, /* valid, but uses something we do not handle */
    BNF_ERR_IO,          /* reading or writing a file failed */
    BNF_ERR_NOMEM,       /* out of memory */
    BNF_ERR_CHECK        /* a check failed (verification, gate) */
} bnf_status;

typedef struct {
    bnf_status code;
    char msg[512];
} bnf_err;

/* A static description of a status ("invalid model", ...). */
BNF_API const char *bnf_strerror(bnf_status code);
/* The library's version, BNF_VERSION as it was built: a binding loading the
 * shared library at run time checks it against the header it was written for. */
BNF_API const char *bnf_version(void);

typedef struct bnf_model bnf_model;

/* Reads and parses the model at `path`.  External data is looked up relative to
 * the model's folder and read only when needed. */
BNF_API bnf_status bnf_model_load(const char *path, bnf_model **out, bnf_err *err);

typedef struct {
    uint64_t max_memory; /* bytes parsing may take; 0: 256 MiB + 4 x the file size */
} bnf_load_options;

/* bnf_model_load with options (NULL: defaults). */
BNF_API bnf_status bnf_model_open(const char *path, const bnf_load_options *opts, bnf_model **out,
                          bnf_err *err);

/* Parses a model from memory (copied).  `base_dir` is the folder external data
 * is relative to (NULL: external data is refused). */
BNF_API bnf_status bnf_model_load_buffer(const void *data, size_t size, const char *base_dir,
                                 bnf_model **out, bnf_err *err);

BNF_API void bnf_model_free(bnf_model *model);

/* Writes the model to `path` atomically (a temporary file in the same folder,
 * fsync, rename); "-" writes to stdout.  A model nothing changed in is written
 * byte for byte as it was read.  On failure no file is left at `path`. */
BNF_API bnf_status bnf_model_save(bnf_model *model, const char *path, bnf_err *err);

/* Lets bnf_model_save replace the file the model was read from (still
 * atomically: a temporary file, then rename). */
BNF_API void bnf_model_allow_in_place(bnf_model *model);

/* Whether `path` can take the model: its folder exists, it is not a folder,
 * it is not the file the model was read from.  bnf_model_save checks this
 * too; callers check first to fail before long work. */
BNF_API bnf_status bnf_model_check_output(const bnf_model *model, const char *path, bnf_err *err);

/* Writes bytes to path atomically (a temporary file beside it, fsync, rename);
 * "-" is stdout.  On failure nothing is left at path. */
BNF_API bnf_status bnf_write_atomic(const char *path, const uint8_t *bytes, size_t n,
                                    bnf_err *err);

/* Serialises the model into a fresh buffer the caller frees with bnf_buffer_free. */
BNF_API bnf_status bnf_model_serialize(bnf_model *model, uint8_t **data, size_t *size, bnf_err *err);
BNF_API void bnf_buffer_free(void *data);

/* ---- tensors and the evaluator --------------------------------------------- */

#define BNF_MAX_RANK 8

/* A dense row-major tensor in ONNX dimension order.  `dtype` is an ONNX
 * TensorProto.DataType (1 float, 6 int32, 7 int64, 9 bool, 11 double, ...).
 * A tensor owns `data` (malloc'd); bnf_tensor_release frees it. */
typedef struct bnf_tensor {
    int32_t dtype;
    size_t rank;
    int64_t dims[BNF_MAX_RANK];
    size_t n;          /* number of elements */
    void *data;
} bnf_tensor;

BNF_API void bnf_tensor_release(bnf_tensor *t);

/* Reads a tensor file: an ONNX TensorProto (.pb) or a numpy array (.npy), by
 * content.  *name gets the TensorProto's name (malloc'd, NULL if none). */
BNF_API bnf_status bnf_tensor_load(const char *path, bnf_tensor *t, char **name, bnf_err *err);
/* bnf_tensor_load from the bytes of such a file in memory (borrowed); for
 * bindings that hold tensors in memory.  *name as there (bnf_buffer_free
 * or free). */
BNF_API bnf_status bnf_tensor_load_buffer(const void *data, size_t size, bnf_tensor *t,
                                          char **name, bnf_err *err);
/* Writes t as a TensorProto file named `name`, atomically. */
BNF_API bnf_status bnf_tensor_save(const char *path, const bnf_tensor *t, const char *name, bnf_err *err);
/* The same TensorProto in a fresh buffer (*data, *size bytes) the caller
 * frees with bnf_buffer_free. */
BNF_API bnf_status bnf_tensor_serialize(const bnf_tensor *t, const char *name, uint8_t **data,
                                        size_t *size, bnf_err *err);

/* Compares `got` with `want` elementwise: NaN at the same place in both is equal;
 * an element passes when |got - want| <= atol + rtol * |want|. */
typedef struct {
    int shape_ok;       /* same type class and shape */
    int pass;
    double max_abs;     /* largest |got - want| */
    double max_rel;     /* largest |got - want| / |want| over want != 0 */
    double max_want;    /* largest |want| (finite values) */
    size_t worst;       /* flat index of the element furthest outside tolerance */
    size_t n_bad;
} bnf_compare_result;
BNF_API void bnf_tensor_compare(const bnf_tensor *got, const bnf_tensor *want, double rtol, double atol,
                        bnf_compare_result *r);

/* Smallest, largest (NaN ignored) and mean (of the finite values) element. */
BNF_API void bnf_tensor_stats(const bnf_tensor *t, double *min, double *max, double *mean);
/* The name of an ONNX data type ("float", "float16", "int64", ...; "unknown"). */
BNF_API const char *bnf_dtype_name(int32_t dtype);

typedef struct bnf_session bnf_session;

typedef struct {
    int threads;       /* 0: the number of cores */
} bnf_session_options;

/* Prepares `model` (borrowed: it must outlive the session) for evaluation.
 * Fails with BNF_ERR_UNSUPPORTED naming every operator the evaluator lacks. */
BNF_API bnf_status bnf_session_new(const bnf_model *model, const bnf_session_options *opts,
                           bnf_session **out, bnf_err *err);
BNF_API void bnf_session_free(bnf_session *s);
/* The graph's real inputs (initializers excluded) and outputs. */
BNF_API size_t bnf_session_n_inputs(const bnf_session *s);
BNF_API const char *bnf_session_input_name(const bnf_session *s, size_t i);
BNF_API size_t bnf_session_n_outputs(const bnf_session *s);
BNF_API const char *bnf_session_output_name(const bnf_session *s, size_t i);

/* A named dimension value, for symbolic dimensions ("N" = 1). */
typedef struct {
    const char *name;
    int64_t value;
} bnf_dim;

/* Input i's type and shape from the model, symbolic dimensions taken from
 * dims (unknown ones: 1). */
BNF_API bnf_status bnf_session_input_shape(const bnf_session *s, size_t i, const bnf_dim *dims,
                                   size_t n_dims, int32_t *dtype, int64_t *shape, size_t *rank,
                                   bnf_err *err);
/* Fills t with seeded pseudo-random values: floats from a standard normal
 * distribution, integers uniform in [0, 10), booleans fair coin flips. */
BNF_API bnf_status bnf_tensor_random(bnf_tensor *t, int32_t dtype, const int64_t *shape, size_t rank,
                             uint64_t seed, bnf_err *err);
/* A tensor given by the caller for input `name`: a name that no input has is
 * an error, unless name_is_hint (the name came from a tensor file), when the
 * tensor binds like an unnamed one: to the first input not bound yet. */
typedef struct {
    const char *name;
    const bnf_tensor *tensor;
    int name_is_hint;
} bnf_named_tensor;

/* Fills inputs[0 .. bnf_session_n_inputs) with copies of the given tensors and,
 * for inputs not given, bnf_tensor_random(seed + i) of the model's shape. */
BNF_API bnf_status bnf_session_inputs(const bnf_session *s, const bnf_named_tensor *given, size_t n_given,
                              const bnf_dim *dims, size_t n_dims, uint64_t seed,
                              bnf_tensor *inputs, bnf_err *err);

/* Runs the model: inputs[i] for input i (borrowed); outputs[k] receive the
 * graph outputs (the caller clears each). */
BNF_API bnf_status bnf_session_run(bnf_session *s, const bnf_tensor *const *inputs,
                           bnf_tensor *outputs, bnf_err *err);

/* A session's inputs or outputs as one list, in the session's order:
 * bnf_session_make_inputs and bnf_session_run_tensors fill one, and
 * bnf_tensors_release frees what it holds (a zeroed list holds nothing). */
typedef struct {
    size_t n;
    bnf_tensor *t;              /* n tensors */
    const bnf_tensor **ptr;     /* &t[i], as bnf_session_run takes them */
} bnf_tensors;
BNF_API void bnf_tensors_release(bnf_tensors *v);
/* bnf_session_inputs into a new list *in. */
BNF_API bnf_status bnf_session_make_inputs(const bnf_session *s, const bnf_named_tensor *given,
                                           size_t n_given, const bnf_dim *dims, size_t n_dims,
                                           uint64_t seed, bnf_tensors *in, bnf_err *err);
/* bnf_session_run on in; *out (released first) gets the outputs. */
BNF_API bnf_status bnf_session_run_tensors(bnf_session *s, const bnf_tensors *in,
                                           bnf_tensors *out, bnf_err *err);

/* Called with every value a node computes, as soon as it is computed (the
 * tensor is borrowed for the call); a status other than BNF_OK stops the run.
 * The observer may overwrite the value's elements (never its type or shape):
 * the rest of the run reads what it wrote. */
typedef bnf_status (*bnf_observer)(void *ctx, const char *name, bnf_tensor *value,
                                   bnf_err *err);
BNF_API bnf_status bnf_session_run_observed(bnf_session *s, const bnf_tensor *const *inputs,
                                    bnf_tensor *outputs, bnf_observer observe, void *ctx,
                                    bnf_err *err);

/* ---- verification ---------------------------------------------------------- */

typedef struct {
    size_t random_sets;       /* seeded random input sets (default 3) */
    uint64_t seed;            /* first seed (default 1) */
    double rtol;              /* default 1e-4 */
    double atol;              /* in units of the output's largest |value|; default 1e-4 */
    const bnf_dim *dims;      /* symbolic dimension values (unknown: 1) */
    size_t n_dims;
    const bnf_named_tensor *given; /* an extra input set given by the caller */
    size_t n_given;
    int threads;              /* 0: all cores */
    int outputs_only;         /* 0: also compare values both graphs compute under one name */
    void (*progress)(void *ctx, const char *stage, size_t done, size_t total); /* or NULL */
    void *progress_ctx;
    double values_loosen;     /* intermediate values: rtol and atol times this (0: 1) */
} bnf_verify_options;

/* Default options (random_sets 3, seed 1, rtol 1e-4, atol 1e-4). */
BNF_API void bnf_verify_defaults(bnf_verify_options *o);

typedef struct {
    int ran;                  /* 0: could not run (reason says why) */
    int equivalent;           /* every output of every set within tolerance */
    size_t sets;              /* input sets compared */
    size_t outputs;
    size_t values;            /* intermediate values compared (per set) */
    double worst_abs;         /* largest |a - b| over all outputs */
    double worst_rel;         /* largest |a - b| / max|a| of that output */
    char worst_output[128];   /* the output with the element furthest outside tolerance */
    char worst_element[96];   /* its index, e.g. "[0, 17]" */
    char reason[512];         /* when !ran or !equivalent: what and where */
} bnf_verify_result;

/* Runs `a` and `b` on the same inputs and compares every output (b against a).
 * Returns BNF_OK whether or not they agree (see r->equivalent); an error status
 * when a model cannot be evaluated. */
BNF_API bnf_status bnf_verify_models(const bnf_model *a, const bnf_model *b, const bnf_verify_options *o,
                             bnf_verify_result *r, bnf_err *err);
/* verify --json: r, the comparison of model_a and model_b (paths as given)
 * under o's tolerances, as one JSON document. */
BNF_API void bnf_verify_write_json(const bnf_verify_result *r, const char *model_a,
                                   const char *model_b, const bnf_verify_options *o, FILE *f);
BNF_API bnf_status bnf_verify_to_json(const bnf_verify_result *r, const char *model_a,
                                      const char *model_b, const bnf_verify_options *o,
                                      char **json, size_t *len, bnf_err *err);
/* run --json: the session's outputs (type, shape, min, max, mean) and the
 * median time of `runs` runs, as one JSON document. */
BNF_API void bnf_run_write_json(const bnf_session *s, const bnf_tensor *outputs, size_t runs,
                                double median_ms, FILE *f);

/* ---- reports --------------------------------------------------------------- */

typedef struct {
    char *name;          /* the BN node's name ("" when it has none) */
    char *output;        /* its Y output */
    char *layer;         /* the node it folds (or would fold) into; NULL if none */
    char *layer_op;      /* that node's op type; NULL if none */
    int folded;          /* 1: folded (or would be, for inspect); 0: skipped */
    const char *reason_code; /* stable code (see docs/contract.md) when skipped */
    char *reason;        /* human explanation when skipped */
    int64_t channels;    /* -1 when unknown */
    double epsilon;
    double min_var;      /* NAN when the parameters could not be read */
    double max_abs_scale;
    char *new_weight;    /* names of the tensors that replaced the layer's */
    char *new_bias;
    double local_err;    /* local check: max |diff| / max |out|; NAN when not run */
    int lowered;         /* rewritten as Mul + Add (--lower-standalone); decision "lower" */
    int before_layer;    /* the layer is after the BN (BN -> Conv), not before it */
    int trips;           /* bnf_check with "unfolded": fold would fold this BN */
    int assumed_inference; /* a training-mode BN turned into an inference one first */
    char *path;          /* where the node is: "" for the main graph, else the subgraph
                            ("node 'if1' then_branch", or "function 'f'") */
} bnf_bn_info;

/* One fold done: a BN (or a Mul / Add by constants) merged into a layer. */
typedef struct {
    char *op;            /* "BatchNormalization", "Mul" or "Add" */
    char *node;          /* the node folded away */
    char *layer;         /* the layer that absorbed it */
    char *layer_op;      /* the layer's op type before the fold (MatMul becomes Gemm) */
    const char *position; /* "after" (layer -> node) or "before" (node -> layer) */
    char *weight;        /* the new weight and bias tensors */
    char *bias;
    double local_err;    /* local check: max |diff| / max |out|; NAN when not run */
} bnf_fold_action;

/* The stable codes of reports: why a BN is not folded (kind
 * BNF_CODE_SKIP, bnf_bn_info.reason_code), health findings
 * (BNF_CODE_FINDING, bnf_finding.code) and what else the CI gate of
 * bnf_check can trip on (BNF_CODE_GATE: BN_UNFOLDED, a BN fold would fold),
 * with what each means. */
typedef enum { BNF_CODE_SKIP = 1, BNF_CODE_FINDING = 2, BNF_CODE_GATE = 3 } bnf_code_kind;
typedef struct {
    const char *code;      /* "SHAPE_MISMATCH", "BN_TINY_VAR", ... */
    bnf_code_kind kind;
    const char *severity;  /* findings and gate codes: the default severity; NULL for
                              skip reasons */
    const char *text;      /* one line: what it means */
} bnf_code_info;
/* Every code (static; *n gets how many). */
BNF_API const bnf_code_info *bnf_codes(size_t *n);

/* A BN health finding (see docs/contract.md for the codes). */
typedef struct {
    const char *code;      /* "BN_TINY_VAR", "BN_NEG_VAR", ... */
    const char *severity;  /* "error", "warning" or "info" */
    size_t bn;             /* index into bnf_report.bns */
    size_t n_channels;     /* channels affected (0: the BN as a whole) */
    int64_t channels[16];  /* the first of them */
    char message[200];
    int trips;             /* bnf_check: this finding trips the gate */
} bnf_finding;

typedef struct {
    char *op_type;
    size_t count;
} bnf_op_count;

typedef struct {
    char *domain;
    int64_t version;
} bnf_opset;

typedef struct {
    const char *command;   /* "inspect" or "fold" */
    char *input_path;
    char *output_path;     /* set by the caller through bnf_report_set_output */
    int64_t ir_version;
    bnf_opset *opsets;
    size_t n_opsets;
    char *producer;        /* "name version" */
    size_t n_nodes;
    bnf_op_count *op_counts;
    size_t n_op_counts;
    size_t n_initializers;
    uint64_t initializer_bytes;
    bnf_bn_info *bns;
    size_t n_bns;
    size_t n_folded;
    size_t n_lowered;
    size_t n_frozen_inputs; /* graph inputs --freeze-inputs turned into constants */
    size_t n_bns_after;    /* BN nodes left in the model after folding (all graphs) */
    bnf_fold_action *actions; /* every fold, in the order done */
    size_t n_actions;
    bnf_finding *findings;    /* BN health, every BN of the input */
    size_t n_findings;
    int check_ran;            /* bnf_check was applied */
    char *check_fail_on;
    size_t check_trips;       /* findings and BNs that trip the gate */
    int verified_local;    /* every fold was checked on its own */
    double local_worst;    /* the worst of those checks */
    bnf_verify_result e2e; /* the end-to-end check (e2e.ran 0 when not run) */
    int e2e_requested;
    /* What each phase took, in milliseconds (NAN: not measured).  bnf_fold
     * measures the pass, the local checks and the end-to-end check; load and
     * write are the caller's to fill (the CLI does). */
    struct {
        double load, fold, local_check, end_to_end, write;
    } ms;
    /* The end-to-end check of a model with float16 / bfloat16 weights: how far
     * (of max|value|) the noise floor (the original's outputs when its weights
     * move by their rounding) widened the tolerance of an output that needed
     * it to pass; 0 when none did. */
    double e2e_noise;
} bnf_report;

typedef struct {
    int verify;               /* check each fold locally and the whole model end to end */
    bnf_verify_options check; /* inputs and tolerances of the end-to-end check */
    int lower_standalone;     /* rewrite a BN no layer takes as Mul + Add by constants */
    int assume_inference;     /* training-mode BNs with constant running statistics and
                                 unused extra outputs become inference BNs, then fold */
    int freeze_inputs;        /* initializers also listed as graph inputs (IR >= 4) are
                                 constants, and stop being inputs */
    int break_for_testing;    /* test hook: corrupt every fold (must then be caught) */
    /* Called as work advances ("fold": folds done of BNs; "verify": input sets
     * checked of all), for a progress display; NULL: none. */
    void (*progress)(void *ctx, const char *stage, size_t done, size_t total);
    void *progress_ctx;
} bnf_fold_options;

/* Default fold options: verification on, bnf_verify_defaults. */
BNF_API void bnf_fold_defaults(bnf_fold_options *o);

/* Folds every foldable BN of the model's main graph, to a fixed point.  On
 * success *report describes every BN of the input.  On error the model may be
 * partly folded but stays a valid model. */
BNF_API bnf_status bnf_fold(bnf_model *model, const bnf_fold_options *opts,
                    bnf_report **report, bnf_err *err);

/* What bnf_fold would do, without changing `model`. */
BNF_API bnf_status bnf_inspect(const bnf_model *model, bnf_report **report, bnf_err *err);
/* The same with fold options (verification is never run). */
BNF_API bnf_status bnf_inspect_with(const bnf_model *model, const bnf_fold_options *opts,
                            bnf_report **report, bnf_err *err);

/* The CI gate on an inspect report: marks the findings and BNs that trip it
 * for `fail_on` ("error" when NULL; see docs/contract.md) and turns the report
 * into a "check" report; report->check_trips counts them.  BNF_ERR_USAGE for
 * an unknown word in fail_on. */
BNF_API bnf_status bnf_check(bnf_report *report, const char *fail_on, bnf_err *err);
/* Whether a --fail-on list is well formed (BNF_ERR_USAGE naming the bad item). */
BNF_API bnf_status bnf_check_parse(const char *fail_on, bnf_err *err);
/* GitHub Actions annotations (::error / ::warning / ::notice) for a report. */
BNF_API void bnf_report_write_github(const bnf_report *report, FILE *f);

BNF_API bnf_status bnf_report_set_output(bnf_report *report, const char *path, bnf_err *err);
BNF_API void bnf_report_write_text(const bnf_report *report, FILE *f);
/* The same with ANSI colours when `color` (for a terminal; see NO_COLOR). */
BNF_API void bnf_report_write_text_styled(const bnf_report *report, FILE *f, int color);
/* The report as one JSON document (schema: docs/report.schema.json); the
 * same in memory: *json (NUL-terminated, *len bytes unless len is NULL) is the
 * caller's to free with bnf_buffer_free. */
BNF_API void bnf_report_write_json(const bnf_report *report, FILE *f);
BNF_API bnf_status bnf_report_to_json(const bnf_report *report, char **json, size_t *len,
                                      bnf_err *err);
/* Findings of the given severity ("error", "warning", "info"). */
BNF_API size_t bnf_report_count(const bnf_report *report, const char *severity);
BNF_API void bnf_report_free(bnf_report *report);

/* Pictures of a report on `model`, the model it was made from (bnf_inspect's
 * input as loaded, not a folded copy).  A Graphviz digraph of the model: one
 * node per ONNX node, subgraphs and functions as clusters, each BN coloured by
 * its fate (green folds, blue lowered, orange skipped, red border for a health
 * error).  And one self-contained HTML page (inline CSS and SVG, no script, no
 * network): summary, per-BN table, findings, and per-channel charts of each
 * BN's scale |gamma/sqrt(var+eps)| and running variance (model may be NULL:
 * no charts).  BNF_ERR_IO when writing to f fails. */
BNF_API bnf_status bnf_report_write_dot(const bnf_report *report, const bnf_model *model,
                                        FILE *f, bnf_err *err);
BNF_API bnf_status bnf_report_write_html(const bnf_report *report, const bnf_model *model,
                                         FILE *f, bnf_err *err);

/* check's text report: a line per finding (FAIL where it trips the gate) and
 * per BN the gate's "unfolded" trips on, then the verdict naming the model. */
BNF_API void bnf_report_write_check(const bnf_report *report, FILE *f);

/* A report as bytes and back, to hand it from one process to another (a
 * worker to the process that prints).  The bytes are for the same build of the
 * library: native byte order, no promise across versions.  *data is the
 * caller's to free with bnf_buffer_free.  bnf_report_unpack checks every
 * length and code: malformed bytes are BNF_ERR_INVALID, never a crash. */
BNF_API bnf_status bnf_report_pack(const bnf_report *report, uint8_t **data, size_t *size,
                                   bnf_err *err);
BNF_API bnf_status bnf_report_unpack(const uint8_t *data, size_t size, bnf_report **report,
                                     bnf_err *err);

/* ---- many models ------------------------------------------------------------------
 *
 * `bnfold check PATH...` (and inspect, fold) in library terms: bnf_find_models
 * lists the models of the PATHs; the caller gets a report for each (one
 * process per model in bnfold, so that one model cannot take the others
 * down), wraps each as a bnf_model_result, adds it to a bnf_summary and hands
 * it to a bnf_batch_writer, which prints it in the chosen format. */

/* The exit status docs/contract.md gives a status: 0 BNF_OK, 1 BNF_ERR_CHECK,
 * 2 BNF_ERR_USAGE, 3 BNF_ERR_INVALID and BNF_ERR_UNSUPPORTED, 4 BNF_ERR_IO and
 * BNF_ERR_NOMEM. */
BNF_API int bnf_exit_code(bnf_status code);
/* The exit status of a run over many models, from two of its models' (or a
 * model's and the run's so far): the one that comes first in 2, 4, 3, 1, 0.
 * A run that cannot read a model (4, 3) is worse news than a gate that
 * tripped (1): that model was not checked at all. */
BNF_API int bnf_exit_worst(int a, int b);

typedef struct {
    const char *const *exclude; /* GLOBs (fnmatch): with a '/', matched against a path as
                                   reported ('*' crosses '/'); without, against a file or
                                   folder name; what matches is not searched (folders are
                                   not entered).  Never applied to a PATH itself. */
    size_t n_exclude;
    const char *skip_dir;       /* a folder never entered (fold's --out-dir), or NULL */
} bnf_find_options;

typedef struct {
    char *path;          /* the model: a PATH as given, or the folder PATH (without
                            trailing '/' or leading "./") joined with its path below */
    char *rel;           /* its path below the folder PATH; for a PATH that is not a
                            folder, the last part of its name */
    bnf_status status;   /* BNF_OK; else the entry is no model but a problem: a folder
                            that cannot be read, or a folder PATH with no model */
    char *message;       /* NULL for BNF_OK */
} bnf_found;

typedef struct {
    bnf_found *items;
    size_t n;
} bnf_found_list;

/* The models of paths[0 .. n): a folder is searched recursively for files
 * named *.onnx (links to files taken, links to folders not followed, files
 * of other names such as external data left alone); anything else is taken as
 * a model, to be loaded (and refused) as it is.  *out is sorted by path, each
 * file once (the first of two paths to one file); the caller releases it.
 * Fails only when out of memory. */
BNF_API bnf_status bnf_find_models(const char *const *paths, size_t n,
                                   const bnf_find_options *opts, bnf_found_list *out,
                                   bnf_err *err);
BNF_API void bnf_found_list_release(bnf_found_list *list);

/* One model's outcome in a run over many: its report, or why there is none. */
typedef struct {
    const char *path;         /* the model as found */
    bnf_status status;        /* BNF_OK: `report` says the rest; else `message` */
    const char *message;      /* one line naming the file, node or tensor */
    const bnf_report *report; /* NULL unless status is BNF_OK */
} bnf_model_result;

/* A result's exit status: bnf_exit_code(status), and 1 when its gate tripped. */
BNF_API int bnf_result_exit(const bnf_model_result *r);

#define BNF_MAX_CODES 64
/* The counts of a run over many models. */
typedef struct {
    const char *command;    /* "inspect", "check" or "fold" */
    size_t models;          /* results added: every model, and every PATH problem */
    size_t passed;          /* exit status 0 */
    size_t failed;          /* 1: the gate tripped, or a fold failed its check */
    size_t unreadable;      /* 2, 3 or 4: not read, not valid, not written */
    size_t batchnorms;      /* BNs of the models read */
    size_t folded;          /* fold: folded; inspect and check: would be */
    size_t lowered;
    size_t skipped;
    size_t findings[3];     /* by severity: error, warning, info */
    size_t problems;        /* check: findings and BNs that tripped the gate */
    size_t by_code[BNF_MAX_CODES]; /* [i] counts code bnf_codes()[i]: BNs skipped for a
                                      reason code, findings of a finding code, BNs that
                                      tripped the gate for BN_UNFOLDED */
    int exit_code;          /* of the run: bnf_exit_worst of the results' */
} bnf_summary;

BNF_API void bnf_summary_init(bnf_summary *s, const char *command);
BNF_API void bnf_summary_add(bnf_summary *s, const bnf_model_result *r);

typedef enum {
    BNF_FORMAT_TEXT = 0, /* per model what the one-model command prints, then the summary */
    BNF_FORMAT_JSON,     /* one document: "models" (one entry per result) and "summary" */
    BNF_FORMAT_GITHUB,   /* GitHub Actions annotations, then the summary as text */
    BNF_FORMAT_SARIF     /* SARIF 2.1.0: one run, a rule per code, a result per finding,
                            skipped BN and gate trip; model errors as notifications */
} bnf_format;

/* Writes the results of a run, one at a time, as they are added (in the
 * order given: bnfold adds them sorted by path), then the summary.  The
 * writer borrows f and `command`; `color`: ANSI colours in the text format. */
typedef struct bnf_batch_writer bnf_batch_writer;
BNF_API bnf_status bnf_batch_writer_new(FILE *f, bnf_format format, const char *command,
                                        int color, bnf_batch_writer **out, bnf_err *err);
BNF_API void bnf_batch_writer_add(bnf_batch_writer *w, const bnf_model_result *r);
/* The summary and the document's end; BNF_ERR_IO when writing to f failed. */
BNF_API bnf_status bnf_batch_writer_end(bnf_batch_writer *w, const bnf_summary *s,
                                        bnf_err *err);
BNF_API void bnf_batch_writer_free(bnf_batch_writer *w);
/* The summary alone, as text (what the text format ends with). */
BNF_API void bnf_summary_write_text(const bnf_summary *s, FILE *f);

/* ---- calibration: BN statistics re-estimated from data -------------------- */

/* One calibration input set: tensors bound to the model's inputs as
 * bnf_session_inputs binds them (every input must be given). */
typedef struct {
    const bnf_named_tensor *tensors;
    size_t n;
} bnf_input_set;

typedef struct {
    const char *const *only;  /* BN node names to calibrate; NULL / 0: every BN */
    size_t n_only;
    int threads;              /* 0: all cores */
} bnf_calibrate_options;

BNF_API void bnf_calibrate_defaults(bnf_calibrate_options *o);

/* One BN's statistics before and after; [3] = min, max, mean over channels. */
typedef struct {
    char *name;
    int64_t channels;
    double mean_before[3], mean_after[3];
    double var_before[3], var_after[3];
    double max_var_change;    /* max over channels of |var' - var| / var */
    double max_mean_shift;    /* max over channels of |mean' - mean| / sqrt(var + eps) */
} bnf_calibrated_bn;

/* A health finding code, and how many BNs of the model had it before and after. */
typedef struct {
    const char *code;         /* "BN_UNTRAINED", ... (static) */
    const char *severity;
    size_t before, after;
} bnf_finding_change;

typedef struct {
    bnf_calibrated_bn *bns;   /* in graph order */
    size_t n_bns;
    bnf_finding_change *findings; /* every code found before or after */
    size_t n_findings;
    size_t n_sets;
    uint64_t samples;         /* values per channel the first BN was measured on */
    double ms;
} bnf_calibration;

/* Replaces the running mean and variance of every inference-mode
 * BatchNormalization of the main graph (or those named in o->only) by the
 * statistics of its input over the n_sets input sets: population mean and
 * variance per channel over every sample and position, each BN measured with
 * the BNs before it already recalibrated (calibrate/calibrate.c says how).
 * Scale, B and epsilon stay.  Errors (nothing changed): no sets, sets that do
 * not fit the model's inputs, no BN, a training-mode BN, a BN whose
 * statistics are not constants. */
BNF_API bnf_status bnf_calibrate(bnf_model *model, const bnf_input_set *sets, size_t n_sets,
                                 const bnf_calibrate_options *o, bnf_calibration **out,
                                 bnf_err *err);
BNF_API void bnf_calibration_free(bnf_calibration *c);
BNF_API void bnf_calibration_write_text(const bnf_calibration *c, FILE *f);
BNF_API void bnf_calibration_write_json(const bnf_calibration *c, FILE *f);

#ifdef __cplusplus
}
#endif
#endif

