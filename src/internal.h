/*
 * internal.h: what the library's files share and the public header hides.
 *
 * The model is held as protobuf-c structures (proto/onnx-ml.pb-c.h).  Every
 * allocation that ends up inside those structures is made with malloc, so
 * protobuf-c's free_unpacked can free a model however much a pass rewrote it.
 */
#ifndef BNF_INTERNAL_H
#define BNF_INTERNAL_H

#include "bnfold.h"
#include "onnx-ml.pb-c.h"

#include <stdarg.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bnfold decodes raw_data as little-endian and needs a little-endian host"
#endif

struct bnf_model {
    Onnx__ModelProto *proto;
    const uint8_t *data; /* the file as read (mapped, or in `heap`): written back
                            verbatim when unchanged; the top graph's raw_data
                            fields point into it (skeleton.c) */
    size_t n_data;
    uint8_t *heap;       /* data when it was handed over as bytes, else NULL */
    uint8_t *map;        /* data when the file is mapped, else NULL */
    int fd;              /* the mapped file, or -1 */
    char *path;          /* as given to bnf_model_load, or NULL */
    char *dir;           /* canonical folder external data lives in, or NULL */
    int changed;         /* a pass rewrote proto */
    int in_place;        /* saving over `path` is allowed (--in-place) */
    int spill_fd;        /* unnamed file holding folded tensors (mapped.c), or -1 */
    int retired_fds[8];  /* spill files now an output's data file: still mapped */
    size_t n_retired;
    int spill_failed;    /* no spill file could be made: tensors stay on the heap */
    uint64_t spill_end;
    uint64_t held;       /* bytes of new tensors kept on the heap, not spilled */
    int external;        /* the file keeps tensors as external data: so does the output */
};

/* ---- tensor bytes in mapped files (mapped.c) ------------------------------- */

/* Maps fd (size bytes, read only) for model m; NULL with errno on failure. */
uint8_t *bnf_mapped_file(const bnf_model *m, int fd, size_t size);
/* Registers a heap buffer whose insides protobuf-c structures point to, so that
 * freeing them leaves it alone; -1 when out of memory. */
int bnf_mapped_heap(const bnf_model *m, uint8_t *base, size_t size);
/* Whether p lies inside a registered region (bnf_free ignores such pointers). */
int bnf_mapped_owns(const void *p);
/* Where [p, p+len) lies in a file: 1 and *fd, *off when it does, else 0. */
int bnf_mapped_where(const void *p, size_t len, int *fd, uint64_t *off);
/* Gives back the pages of m's regions the process touched (the page cache
 * keeps them); pointers stay valid. */
void bnf_mapped_release(const bnf_model *m);
/* Gives back the pages of [p, p+len) (page aligned) of a read-only file
 * mapping of one's own. */
void bnf_pages_release(void *p, size_t len);
/* Maps in the pages of [p, p+len) of a file mapping ahead of reading them. */
void bnf_pages_prefetch(const void *p, size_t len);
/* The same for the pages of [p, p+len), when they are in a mapped file. */
void bnf_mapped_release_range(const void *p, size_t len);
/* Unmaps and forgets m's regions (heap buffers are the model's to free). */
void bnf_mapped_drop(const bnf_model *m);
/* Moves t's raw_data (a fold's new tensor) to m's spill file when it is big;
 * it stays on the heap when no spill file can be had. */
void bnf_mapped_spill(bnf_model *m, Onnx__TensorProto *t);
/* Test hook: new tensors stay on the heap up to `budget` bytes in all (32 MiB),
 * tensors under spill_min bytes always (64 KiB). */
void bnf_mapped_test_limits(uint64_t budget, uint64_t spill_min);
/* Writing a new tensor's bytes piece by piece: to the spill file when there is
 * one (written by a thread of its own while the next piece is computed, then
 * mapped back), else into a heap buffer.  next lends a buffer of *cap bytes
 * (NULL on failure) that put hands back with n bytes filled; end gives the
 * bytes (for raw_data: bnf_free knows mapped ones), or NULL on failure; abort
 * gives up. */
typedef struct {
    bnf_model *m;
    uint8_t *heap;
    uint64_t off, len, at;
    int failed, threaded, cur;
    struct bnf_spill_thread *writer;
} bnf_spill_writer;
void bnf_spill_begin(bnf_model *m, uint64_t len, bnf_spill_writer *w);
uint8_t *bnf_spill_next(bnf_spill_writer *w, size_t *cap);
void bnf_spill_put(bnf_spill_writer *w, size_t n);
uint8_t *bnf_spill_end(bnf_spill_writer *w);
void bnf_spill_abort(bnf_spill_writer *w);

/* ---- the model without its weight bytes (skeleton.c) ------------------------ */

typedef struct {
    size_t index;      /* of the initializer in the top graph */
    uint64_t off, len; /* its raw_data in the file */
} bnf_stripped;

typedef struct {
    uint8_t *bytes;    /* the skeleton, a ModelProto; NULL: use the file itself */
    size_t n_bytes;
    bnf_stripped *stripped;
    size_t n_stripped;
    uint64_t stripped_bytes;
} bnf_skeleton;

/* Builds the skeleton of the (pre-checked) file d.  sk->bytes stays NULL when
 * the file is best unpacked as it is. */
bnf_status bnf_skeleton_make(const uint8_t *d, size_t n, bnf_skeleton *sk, bnf_err *err);
/* Points the stripped initializers of g (unpacked from the skeleton) into d. */
bnf_status bnf_skeleton_attach(const bnf_skeleton *sk, const uint8_t *d, Onnx__GraphProto *g,
                               bnf_err *err);
void bnf_skeleton_release(bnf_skeleton *sk);

/* Messages nested deeper than this are refused before protobuf-c's recursive
 * unpack sees them: about 30 levels of subgraphs, far beyond real models. */
#define BNF_MAX_NESTING 100

/* ---- wire-format pre-check (wire.c) ------------------------------------------- */

/* Walks a serialized ModelProto without recursion: lengths inside their parent,
 * nesting within BNF_MAX_NESTING, no NUL in strings.  *estimate gets the bytes
 * protobuf-c will allocate to unpack it (roughly, from above). */
int bnf_wire_varint(const uint8_t *d, size_t end, size_t *pos, uint64_t *v);
bnf_status bnf_wire_precheck(const uint8_t *d, size_t n, const char *what, uint64_t *estimate,
                             bnf_err *err);

/* ---- semantic validation (validate.c) ------------------------------------------ */

/* Checks versions, tensors, and that every value is defined once and before
 * use; an error names the node or tensor. */
bnf_status bnf_model_validate(const bnf_model *m, bnf_err *err);

/* ---- allocation (alloc.c): every allocation of the library -------------------- */

void *bnf_malloc(size_t n);
void *bnf_calloc(size_t count, size_t size);
void *bnf_realloc(void *p, size_t n);
void bnf_free(void *p);
/* realpath(path, NULL), in memory from bnf_malloc. */
char *bnf_realpath(const char *path);
/* protobuf-c allocations through the above (free_unpacked with it). */
extern ProtobufCAllocator bnf_pbc_allocator;
/* Test hooks: make the k-th allocation from now fail (-1: none); blocks live;
 * allocations made since the last bnf_alloc_fail_at. */
void bnf_alloc_fail_at(long k);
long bnf_alloc_live(void);
long bnf_alloc_calls(void);

/* ---- errors (err.c) ------------------------------------------------------ */

/* Fills err (when not NULL) and returns code. */
bnf_status bnf_fail(bnf_err *err, bnf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *bnf_strdup(const char *s);
/* Puts "prefix: " before err's message (cutting its end if it must). */
void bnf_err_prefix(bnf_err *err, const char *prefix);

/* ---- string map (strmap.c): string keys (borrowed) to intptr_t values -- */

typedef struct bnf_strmap bnf_strmap;
bnf_strmap *bnf_strmap_new(size_t expected);
void bnf_strmap_free(bnf_strmap *m);
/* Returns 0, or -1 when out of memory.  The key is borrowed, not copied. */
int bnf_strmap_put(bnf_strmap *m, const char *key, intptr_t value);
/* Returns 1 and sets *value when present, else 0. */
int bnf_strmap_get(const bnf_strmap *m, const char *key, intptr_t *value);
/* Adds delta to the value of key (0 when absent).  Returns 0 or -1. */
int bnf_strmap_add(bnf_strmap *m, const char *key, intptr_t delta);

/* ---- data types and tensors (tensor.c) ------------------------------------ */

typedef struct {
    int32_t dtype;
    const char *name;
    size_t size;      /* bytes per element; 0 for strings */
} bnf_dtype_info;

/* NULL for a data type we do not know. */
const bnf_dtype_info *bnf_dtype(int32_t dtype);
const char *bnf_dtype_name(int32_t dtype);
/* float, double, float16, bfloat16: the types a fold can read and write. */
int bnf_dtype_is_real(int32_t dtype);

double bnf_half_to_double(uint16_t h);
double bnf_bf16_to_double(uint16_t h);
uint16_t bnf_double_to_half(double x);
uint16_t bnf_double_to_bf16(double x);
/* The value x becomes once stored as dtype. */
double bnf_round_to(int32_t dtype, double x);

/* A tensor decoded to double; owns dims and v. */
typedef struct {
    int32_t dtype;
    size_t rank;
    int64_t *dims;
    size_t n;
    double *v;
} bnf_array;

void bnf_array_free(bnf_array *a);
/* Number of elements from dims, with overflow and sign checks. */
bnf_status bnf_numel(const int64_t *dims, size_t rank, const char *what, size_t *n,
                     bnf_err *err);
/* Decodes a real-typed tensor of any storage (raw_data, typed fields, external). */
bnf_status bnf_tensor_read(const bnf_model *m, const Onnx__TensorProto *t, bnf_array *out,
                           bnf_err *err);
/* Type, dims and count of a real-typed tensor, without its values (v NULL). */
bnf_status bnf_tensor_shape(const Onnx__TensorProto *t, bnf_array *out, bnf_err *err);
/* The tensor's bytes in raw (little-endian) form, for external data; the
 * caller frees *data. */
bnf_status bnf_tensor_read_external(const bnf_model *m, const Onnx__TensorProto *t,
                                    uint8_t **data, size_t *size, bnf_err *err);
/* Opens t's external data file (checked: inside the model's folder, a regular
 * file, the range inside it and of the size the shape needs); the caller
 * closes *fd. */
bnf_status bnf_tensor_external_open(const bnf_model *m, const Onnx__TensorProto *t, int *fd,
                                    uint64_t *off, uint64_t *len, bnf_err *err);
int bnf_tensor_is_external(const Onnx__TensorProto *t);
/* Size in bytes of the tensor's values, from dims and type (0 if unknown). */
uint64_t bnf_tensor_nbytes(const Onnx__TensorProto *t);
/* v[i] *= s[(i / inner) % channels] for a run of n elements of a tensor; (*k, *c)
 * say where the run starts within its channel (0, 0 for the first) and move on. */
void bnf_scale_by_channel(double *v, size_t n, const double *s, size_t inner,
                          size_t channels, size_t *k, size_t *c);
/* A new tensor `name` of t's type and shape (t real-typed) whose element i is
 * t[i] * s[(i / inner) % channels] rounded to the type, computed chunk by chunk
 * from t's bytes (mapped, external or typed fields) and spilled to m's spill
 * file as it goes.  When an element is not finite or flushes to zero in the
 * type, *bad is set to its index + 1, *bad_value to it, and *out stays NULL.
 * With out NULL it only checks. */
bnf_status bnf_tensor_scaled(bnf_model *m, const Onnx__TensorProto *t, const char *name,
                             const double *s, size_t inner, size_t channels,
                             Onnx__TensorProto **out, size_t *bad, double *bad_value,
                             bnf_err *err);
/* A new tensor holding v (rounded to dtype) in raw_data; v NULL: zeros. */
bnf_status bnf_tensor_new(const char *name, int32_t dtype, const int64_t *dims, size_t rank,
                          const double *v, size_t n, Onnx__TensorProto **out, bnf_err *err);

/* ---- graph index and rewriting (graph.c) ---------------------------------- */

typedef struct bnf_graph {
    Onnx__GraphProto *g;
    int64_t ir_version;
    const struct bnf_graph *outer; /* the enclosing graph of a subgraph, or NULL */
    bnf_strmap *producer;  /* value name -> node index */
    bnf_strmap *uses;      /* value name -> references (node inputs, also inside
                              subgraphs, and graph outputs) */
    bnf_strmap *init;      /* initializer name -> index */
    bnf_strmap *input;     /* graph input name -> index */
    bnf_strmap *output;    /* graph output name -> index */
} bnf_graph;

bnf_status bnf_graph_index(bnf_graph *gi, Onnx__GraphProto *g, int64_t ir_version,
                           bnf_err *err);
void bnf_graph_release(bnf_graph *gi);
/* Re-indexes after the graph changed, keeping g, ir_version and outer. */
bnf_status bnf_graph_reindex(bnf_graph *gi, bnf_err *err);
size_t bnf_graph_uses(const bnf_graph *gi, const char *name);
int bnf_graph_is_output(const bnf_graph *gi, const char *name);

/* How a value can be read as a constant. */
typedef enum {
    BNF_CONST_YES = 0,
    BNF_CONST_NO,          /* computed at run time */
    BNF_CONST_OVERRIDABLE, /* an initializer that is also a graph input, IR >= 4 */
    BNF_CONST_DTYPE        /* constant, but not a real type */
} bnf_const_kind;

/* Resolves `name` through Identity nodes to an initializer or a Constant node and
 * decodes it.  *kind says whether it is a usable constant; out is filled only
 * for BNF_CONST_YES.  Returns an error only for a malformed tensor. */
bnf_status bnf_graph_const(const bnf_model *m, const bnf_graph *gi, const char *name,
                           bnf_const_kind *kind, bnf_array *out, bnf_err *err);

/* The same, but a tensor's values are not read: out->v stays NULL (the
 * Constant node attributes value_float(s) are read all the same).  *proto is
 * the TensorProto the constant is, or NULL. */
bnf_status bnf_graph_const_shape(const bnf_model *m, const bnf_graph *gi, const char *name,
                                 const Onnx__TensorProto **proto, bnf_const_kind *kind,
                                 bnf_array *out, bnf_err *err);

const Onnx__AttributeProto *bnf_node_attr(const Onnx__NodeProto *n, const char *name);
int64_t bnf_attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt);
double bnf_attr_float(const Onnx__NodeProto *n, const char *name, double dflt);
bnf_status bnf_node_set_attr_float(Onnx__NodeProto *n, const char *name, float v, bnf_err *err);
bnf_status bnf_node_set_attr_int(Onnx__NodeProto *n, const char *name, int64_t v, bnf_err *err);
/* Inserts `node` (taken over) at index i. */
bnf_status bnf_graph_insert_node(Onnx__GraphProto *g, size_t i, Onnx__NodeProto *node,
                                 bnf_err *err);
/* A new node of the default domain (inputs and outputs copied). */
Onnx__NodeProto *bnf_node_new(const char *op_type, const char *name, const char *const *inputs,
                              size_t n_in, const char *const *outputs, size_t n_out);
/* The element type of value `name` when the model states it, else 0. */
int32_t bnf_graph_elem_type(const bnf_graph *gi, const char *name);
/* The node's first output, or NULL when it has none (or an empty name). */
const char *bnf_node_output0(const Onnx__NodeProto *n);
/* Input i of a node, or NULL when absent or "" (an omitted optional input). */
const char *bnf_node_input(const Onnx__NodeProto *n, size_t i);
bnf_status bnf_node_set_input(Onnx__NodeProto *n, size_t i, const char *name, bnf_err *err);
bnf_status bnf_node_set_output(Onnx__NodeProto *n, size_t i, const char *name, bnf_err *err);

/* All value names of the model, to hand out fresh ones. */
typedef struct {
    bnf_strmap *names;
    char **owned;
    size_t n_owned, cap_owned;
} bnf_names;
bnf_status bnf_names_collect(bnf_names *nm, const Onnx__ModelProto *p, bnf_err *err);
/* A name not used anywhere in the model, derived from base; owned by nm. */
const char *bnf_names_fresh(bnf_names *nm, const char *base, const char *suffix, bnf_err *err);
void bnf_names_release(bnf_names *nm);

/* Appends an initializer (taking ownership); before IR 4 it is also listed as
 * a graph input, as that format requires. */
bnf_status bnf_graph_add_initializer(bnf_graph *gi, Onnx__TensorProto *t, bnf_err *err);
/* Removes node i (freeing it). */
void bnf_graph_remove_node(Onnx__GraphProto *g, size_t i);
/* Removes what the names in `candidates` were made of, if nothing uses it any
 * more: initializers, Constant nodes, Identity chains.  Re-indexes gi. */
bnf_status bnf_graph_collect(bnf_graph *gi, char **candidates, size_t n, bnf_err *err);

int64_t bnf_model_opset(const Onnx__ModelProto *p, const char *domain);

/* ---- BatchNormalization (bn.c) -------------------------------------------- */

typedef struct {
    int64_t c;
    double eps;
    double *s, *t;        /* scale and shift per channel, length c */
    double min_var, max_abs_scale;
} bnf_bn;

void bnf_bn_release(bnf_bn *bn);
/* Reads a BN's mode and parameters.  Returns BNF_OK with *code NULL when the BN
 * can be folded, or with *code and reason set when it cannot; an error status
 * only for a malformed model.  Statistics are filled whenever readable. */
bnf_status bnf_bn_read(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *node,
                       int64_t opset, bnf_bn *bn, const char **code, char *reason,
                       size_t reason_size, bnf_err *err);

/* Appends the health findings of BN node `bn` (report entry bn_index) to r:
 * variances tiny, zero or negative, epsilon <= 0, huge scales, dead channels,
 * untrained statistics, NaN/Inf, training mode. */
bnf_status bnf_bn_health(const bnf_model *m, const bnf_graph *gi, const Onnx__NodeProto *bn,
                         int training, size_t bn_index, bnf_report *r, bnf_err *err);

/* ---- fold patterns (fold/ *.c, table in fold.c) ---------------------------- */

/* Where the per-channel affine node (BN, or Mul / Add by constants) sits. */
typedef enum {
    BNF_AFTER_LAYER,  /* layer -> BN: scales the layer's output channels */
    BNF_BEFORE_LAYER  /* BN -> layer: scales the layer's input channels */
} bnf_fold_position;

typedef struct {
    const Onnx__NodeProto *layer;
    const bnf_array *w;       /* the layer's weight, input 1 */
    const bnf_array *b;       /* its bias, input 2, or NULL */
    const bnf_bn *bn;         /* y = x * s + t per channel */
    int in_rank;              /* rank of the layer's input 0, -1 when unknown */
    double *new_w;            /* w->n values to fill */
    bnf_array new_b;          /* the pattern fills dims, rank, n and v (malloc) */
    /* Set by bnf_fold_scale instead of filling new_w, when
     * W'[i] = W[i] * s[(i / scale_inner) % scale_channels]: the driver computes
     * W' then, streaming it from the weight's bytes when it can. */
    int scaled;
    size_t scale_inner, scale_channels;
    const char *code;         /* set with reason when the pattern declines */
    char reason[200];
} bnf_fold_job;

typedef struct {
    const char *op_type;
    bnf_fold_position position;
    /* The channels the affine node acts on (the layer's output channels, or
     * input channels for BNF_BEFORE_LAYER) as the weight shows them; -1 if the
     * weight is not of the layer's form. */
    int64_t (*channels)(const Onnx__NodeProto *layer, const bnf_array *w);
    /* Returns BNF_OK having filled new_w and new_b, or BNF_OK with job->code
     * set to decline; BNF_ERR_NOMEM when out of memory. */
    bnf_status (*fold)(bnf_fold_job *job);
    /* Optional: rewrites the node once the new tensors are in place. */
    bnf_status (*finish)(Onnx__NodeProto *layer, bnf_err *err);
} bnf_fold_pattern;

extern const bnf_fold_pattern bnf_fold_conv_bn;
extern const bnf_fold_pattern bnf_fold_conv_transpose_bn;
extern const bnf_fold_pattern bnf_fold_gemm_bn;
extern const bnf_fold_pattern bnf_fold_matmul_bn;
extern const bnf_fold_pattern bnf_fold_bn_conv;
extern const bnf_fold_pattern bnf_fold_bn_gemm;

/* States that the fold scales W's elements by channel (see bnf_fold_job). */
void bnf_fold_scale(bnf_fold_job *job, size_t inner, size_t channels);

/* new_b = b * s + t over m_out output channels (b = 0 when absent): the bias
 * of every fold that scales output channels. */
bnf_status bnf_fold_channel_bias(bnf_fold_job *job, int64_t m_out);

/* Gemm's output-column fold, shared with MatMul (which becomes a Gemm). */
bnf_status bnf_fold_gemm_columns(bnf_fold_job *job);
bnf_status bnf_fold_gemm_finish(Onnx__NodeProto *layer, bnf_err *err);

/* Sets job->code and the formatted reason; returns BNF_OK. */
bnf_status bnf_fold_decline(bnf_fold_job *job, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The rank of value `name` when the model says it (value_info, graph inputs and
 * outputs) or a producer fixes it (Flatten, Gemm, a constant-shape Reshape);
 * -1 when unknown. */
int bnf_graph_rank(const bnf_graph *gi, const char *name);

/* ---- verification (verify.c) ------------------------------------------------ */

/* Runs the layer and the affine node (in their order) and the folded layer on
 * one random input shaped for the layer; *pass tells whether they agree under
 * o's tolerance, *rel_err the worst |diff| / max|out|.  `folded` is the layer
 * as it will be (op type and attributes), its weights new_w and new_b. */
bnf_status bnf_verify_fold_local(const bnf_model *m, const bnf_graph *gi,
                                 const Onnx__NodeProto *layer, const Onnx__NodeProto *affine,
                                 bnf_fold_position pos, const Onnx__NodeProto *folded,
                                 int64_t opset, const bnf_array *w, const bnf_array *b,
                                 const double *new_w, const bnf_array *new_b,
                                 const bnf_verify_options *o, double *rel_err, int *pass,
                                 bnf_err *err);

/* ---- reports (report.c) -------------------------------------------------- */

bnf_status bnf_report_begin(const bnf_model *m, const char *command, bnf_report **out,
                            bnf_err *err);
bnf_status bnf_report_set(char **field, const char *value, bnf_err *err);


/* Parses a model from bytes it takes ownership of (also on failure), after
 * the wire pre-check, within max_memory bytes (0: bnf_default_max_memory). */
bnf_status bnf_model_from_bytes(uint8_t *bytes, size_t n, const char *path, const char *dir,
                                uint64_t max_memory, bnf_model **out, bnf_err *err);
uint64_t bnf_default_max_memory(size_t file_size);
/* A second model parsed from m's bytes (m unchanged: its weights stay where
 * m's are, so m must outlive it) or from m serialised (m changed). */
bnf_status bnf_model_clone(const bnf_model *m, bnf_model **out, bnf_err *err);
/* Whether a tensor of the model keeps its bytes as external data. */
int bnf_model_has_external(Onnx__ModelProto *p);
/* The canonical folder of a file path (which need not exist itself); malloc'd. */
char *bnf_folder_of(const char *path);

#endif
