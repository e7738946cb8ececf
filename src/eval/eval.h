/*
 * eval/eval.h: the evaluator's internal interface.  What is where:
 *
 *   session.c      runs a model's main graph: the plan (value slots, kernels,
 *                  the fusion plan (bnf_epilogue), weights read in place) and
 *                  runs (bnf_run: one evaluation's values, stepped node by
 *                  node with each node's bnf_op_ctx)
 *   session_io.c   a session's inputs and outputs as lists (bnf_tensors)
 *   registry.c     every operator: one line per family table of ops/
 *   ops/           the operator kernels, one file per family (activation,
 *                  conv, conv_transpose, elementwise, gemm, generate, norm,
 *                  pool, reduce, resize, shape), each with its table; what
 *                  they share is op_util.c (outputs, attributes, input checks,
 *                  axes, broadcasting, window geometry) and, for Conv and
 *                  ConvTranspose, conv.h
 *   kernels/       the compute loops the operators call, on plain arrays:
 *                  sgemm.c (GEMM through OpenBLAS), gemm_packed.c (our GEMM
 *                  on packed constant weights), depthwise.c (depthwise
 *                  convolution), vecmath.c (vectorised exp, Sigmoid, SiLU,
 *                  the fused Conv epilogue, and the CPU's instruction set)
 *   eval_tensor.c  tensors: allocation, element access, TensorProto decoding
 *   threads.c      the session's worker threads and bnf_parallel()
 *   tensor_io.c    tensor files (.pb, .npy) and compare.c, tensor comparison:
 *                  the public functions of bnfold.h
 *
 * Tensors keep ONNX's dimension order (N, C, H, W ...), are dense and row-major,
 * and own their data.  The evaluator computes in the tensor's own type for
 * float32, double, the 8- to 64-bit integers and bool; float16 and bfloat16
 * model inputs and weights are converted to float32 on the way in.
 *
 * Kernel contract: a kernel reads ctx->in[i] (NULL for an omitted optional
 * input), allocates each output with bnf_out() and fills it, and returns
 * BNF_OK, or an error status made with bnf_fail() whose message names the node
 * (use BNF_NODE_FMT / BNF_NODE_ARG, or the checks of ops/op_util.c).  It never
 * keeps pointers to its inputs.  A kernel may share loops out with
 * bnf_parallel() (ctx->pool: the session's threads; without one the loop
 * starts its own or runs on the caller); the functions it runs there must not
 * call bnf_parallel() themselves.  The loops of kernels/ see a node's context
 * only for its threads and its error; they pick their instruction set at run
 * time (bnf_cpu_isa).
 */
#ifndef BNF_EVAL_H
#define BNF_EVAL_H

#include "internal.h"

#include <string.h>

/* The largest value the evaluator makes (bnf_tensor_alloc refuses more). */
#define BNF_EVAL_MAX_TENSOR_BYTES ((size_t)2 << 30)

/* The ONNX element types (TensorProto.DataType) by short names. */
enum {
    BNF_T_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    BNF_T_UINT8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
    BNF_T_INT8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8,
    BNF_T_UINT16 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT16,
    BNF_T_INT16 = ONNX__TENSOR_PROTO__DATA_TYPE__INT16,
    BNF_T_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
    BNF_T_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
    BNF_T_STRING = ONNX__TENSOR_PROTO__DATA_TYPE__STRING,
    BNF_T_BOOL = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
    BNF_T_FLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16,
    BNF_T_DOUBLE = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE,
    BNF_T_UINT32 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT32,
    BNF_T_UINT64 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT64,
    BNF_T_BFLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16,
};
/* The integer element types with their C types, for code written once per
 * type: BNF_INT_TYPES(X) is X(BNF_T_INT8, int8_t) X(BNF_T_UINT8, uint8_t) ...
 * (bool is held as uint8_t, but is not in the list). */
#define BNF_INT_TYPES(X)                                                                   \
    X(BNF_T_INT8, int8_t) X(BNF_T_UINT8, uint8_t) X(BNF_T_INT16, int16_t)                   \
    X(BNF_T_UINT16, uint16_t) X(BNF_T_INT32, int32_t) X(BNF_T_UINT32, uint32_t)             \
    X(BNF_T_INT64, int64_t) X(BNF_T_UINT64, uint64_t)


typedef struct bnf_pool bnf_pool;

/* Activations a Conv can apply to its own output (bnf_epilogue). */
enum { BNF_ACT_NONE, BNF_ACT_RELU, BNF_ACT_CLIP, BNF_ACT_SIGMOID, BNF_ACT_SILU };

/* What a Conv writes instead of its plain output when the session has fused
 * the nodes that follow it (BatchNormalization, then Relu / Clip / Sigmoid /
 * Sigmoid + Mul): per output channel c, y = act(y * scale[c] + shift[c]).
 * scale and shift are both set or both NULL. */
typedef struct {
    const float *scale, *shift;
    size_t channels;
    int act;
    float lo, hi;               /* BNF_ACT_CLIP bounds */
    /* then, when res is set (a fused Add): y += res at the same position, and
     * post (BNF_ACT_NONE or BNF_ACT_RELU) after it; res has res_n elements,
     * the output's shape, and y0 is where the output starts (the kernel sets it) */
    const float *res;
    size_t res_n;
    int post;
    const float *y0;
} bnf_epilogue;

/* Storage a kernel keeps across the runs of a session, one per node (e.g. a
 * Conv's packed weights), freed with the session by free(data). */
typedef struct {
    void *data;
    void (*free)(void *data);
    /* bit j, set by the kernel: it keeps all it needs of input j (a session
     * constant) and never reads that input's data again, so the session may
     * free the data when nothing else reads it (the tensor keeps its type and
     * shape, its data becomes NULL): the packed copy replaces the weights
     * instead of doubling them */
    unsigned drop_in;
} bnf_node_cache;

typedef struct {
    const Onnx__NodeProto *node;
    int64_t opset;              /* the opset version of the node's domain */
    const bnf_tensor *const *in;
    size_t n_in;
    bnf_tensor **out;           /* n_out tensors, zeroed, to fill with bnf_out() */
    size_t n_out;
    int threads;                /* the session's thread count (1 outside a session) */
    bnf_err *err;
    bnf_pool *pool;             /* the session's threads, or NULL */
    const bnf_epilogue *epi;    /* Conv only: fused nodes to apply, or NULL */
    bnf_node_cache *cache;      /* this node's, in a session; NULL outside one */
    unsigned const_in;          /* bit j: input j is a session constant (a weight: the
                                 * same tensor, unchanged, in every run); what the
                                 * cache keeps may depend on those inputs only */
    unsigned streamed_in;       /* bit j: input j is a large weight a lean session left
                                 * where it is stored: its tensor has type and shape, no
                                 * data; the kernel reads it with bnf_in_rows */
    const bnf_model *model;     /* the session's model, for streamed inputs */
    const Onnx__TensorProto *const *stored; /* n_in: streamed input j's stored tensor */
} bnf_op_ctx;

/* Rows [r0, r0 + nr) of streamed input j (float, rows along its first
 * dimension) in *p: in place when the stored bytes are aligned, else copied to
 * scratch (nr rows); bnf_in_rows_done gives their pages back to the page cache
 * once the kernel is done with them (eval/session.c). */
void bnf_in_rows(const bnf_op_ctx *ctx, size_t j, size_t r0, size_t nr, float *scratch,
                 const float **p);
void bnf_in_rows_done(const bnf_op_ctx *ctx, size_t j, size_t r0, size_t nr);

typedef bnf_status (*bnf_kernel)(bnf_op_ctx *ctx);

typedef struct {
    const char *op_type;
    int since;                  /* first opset version this kernel implements */
    bnf_kernel run;
} bnf_op_def;

/* The newest ai.onnx opset the evaluator knows (ONNX 1.18): at a newer one any
 * operator may have changed, so none is run there. */
#define BNF_EVAL_NEWEST_OPSET 23

/* The kernel for op_type at opset (the entry with the largest since <= opset),
 * or NULL when the evaluator does not have it or the opset is newer than
 * BNF_EVAL_NEWEST_OPSET (eval/registry.c). */
const bnf_op_def *bnf_op_find(const char *op_type, int64_t opset);

/* ---- sessions and runs (eval/session.c) ------------------------------------------- */

/* One evaluation of a session's graph, stepped node by node: bnf_run_start
 * binds the inputs (borrowed until bnf_run_end), bnf_run_node runs node i
 * (nothing when it is done, already or fused into an earlier one; observe
 * sees each value it makes and runs it unfused), bnf_run_output reads graph
 * output k while the run holds it.  A session may have several runs; they
 * share its weights, kernels' caches and threads and must be stepped by one
 * thread at a time. */
typedef struct bnf_run bnf_run;
bnf_status bnf_run_new(bnf_session *s, bnf_run **out, bnf_err *err);
void bnf_run_free(bnf_run *r);
bnf_status bnf_run_start(bnf_run *r, const bnf_tensor *const *inputs, bnf_err *err);
bnf_status bnf_run_node(bnf_run *r, size_t i, bnf_observer observe, void *observer, bnf_err *err);
int bnf_run_done(const bnf_run *r, size_t i);
const bnf_tensor *bnf_run_output(const bnf_run *r, size_t k);
/* The value `name` the run holds now (one a node made: not a weight or an
 * input), or NULL; *reads_left (if not NULL) gets how many node inputs are
 * still to read it. */
bnf_tensor *bnf_run_value(const bnf_run *r, const char *name, size_t *reads_left);
/* Copies the graph outputs into outputs[0 .. n_outputs). */
bnf_status bnf_run_outputs(const bnf_run *r, bnf_tensor *outputs, bnf_err *err);
/* Frees every value the run made; its inputs go back to the caller. */
void bnf_run_end(bnf_run *r);
size_t bnf_session_n_nodes(const bnf_session *s);
/* The session's worker threads (NULL: one thread), for loops of its callers. */
struct bnf_pool *bnf_session_pool(const bnf_session *s);
const Onnx__NodeProto *bnf_session_node(const bnf_session *s, size_t i);
/* A lean session gives back what node i made of its weights (decoded copies,
 * packed weights, the pages it read) on bnf_session_node_release(s, i), which
 * the caller says once every run is done with the node for now; a later run
 * makes them again.  Without lean, release does nothing. */
void bnf_session_lean(bnf_session *s);
/* From now on the session's float16 / bfloat16 weights are each decoded with
 * a deterministic jitter of up to half their type's precision (seeded): how
 * much the model's outputs move then is its sensitivity to rounding its
 * weights to 16 bits.  Returns whether it has such weights (0: no effect). */
int bnf_session_jitter_16bit(bnf_session *s, uint64_t seed);
/* Whether the session's graph has float16 / bfloat16 weights. */
int bnf_session_has_16bit(const bnf_session *s);
void bnf_session_node_release(bnf_session *s, size_t i);

/* ---- tensors (eval/eval_tensor.c) ------------------------------------------------ */

/* Bytes per element of a data type the evaluator computes in, 0 for others. */
size_t bnf_eval_size(int32_t dtype);
/* Shapes a tensor and allocates its (uninitialised) data.  Any previous data is freed. */
bnf_status bnf_tensor_alloc(bnf_tensor *t, int32_t dtype, const int64_t *dims, size_t rank,
                            bnf_err *err);
void bnf_tensor_release(bnf_tensor *t);     /* frees the data, keeps nothing */
bnf_status bnf_tensor_copy(bnf_tensor *dst, const bnf_tensor *src, bnf_err *err);
/* Decodes an ONNX TensorProto (any storage) into t; float16/bfloat16 become float. */
bnf_status bnf_tensor_from_proto(const bnf_model *m, const Onnx__TensorProto *p, bnf_tensor *t,
                                 bnf_err *err);
/* Element i as double / int64 whatever the type (slow paths, shapes, indices). */
double bnf_get_f64(const bnf_tensor *t, size_t i);
int64_t bnf_get_i64(const bnf_tensor *t, size_t i);
void bnf_set_f64(bnf_tensor *t, size_t i, double v);

/* ---- for the operator kernels (eval/ops/op_util.c) ------------------------------- */

#define BNF_NODE_FMT "%s node '%s'"
#define BNF_NODE_ARG(ctx) ((ctx)->node->op_type ? (ctx)->node->op_type : ""), \
                          ((ctx)->node->name ? (ctx)->node->name : "")

/* Output i of the node: allocated with the given type and shape. */
bnf_status bnf_out(bnf_op_ctx *ctx, size_t i, int32_t dtype, const int64_t *dims, size_t rank,
                   bnf_tensor **out);
/* Whether the node asks for output i (optional outputs may be absent or ""). */
static inline int bnf_wanted(const bnf_op_ctx *ctx, size_t i)
{
    return i < ctx->n_out && ctx->out[i] && i < ctx->node->n_output && ctx->node->output[i] &&
           ctx->node->output[i][0];
}
/* Input i, or NULL when omitted or beyond the node's inputs. */
static inline const bnf_tensor *bnf_opt_in(const bnf_op_ctx *ctx, size_t i)
{
    return i < ctx->n_in ? ctx->in[i] : NULL;
}

/* Attributes, the default when absent. */
int64_t bnf_ctx_int(const bnf_op_ctx *ctx, const char *name, int64_t dflt);
float bnf_ctx_float(const bnf_op_ctx *ctx, const char *name, float dflt);
/* The string attribute copied into buf (cut to size - 1 bytes), or dflt. */
const char *bnf_ctx_string(const bnf_op_ctx *ctx, const char *name, const char *dflt, char *buf,
                           size_t size);
/* Number of ints in the attribute (0 when absent); copies at most max of them. */
size_t bnf_ctx_ints(const bnf_op_ctx *ctx, const char *name, int64_t *vals, size_t max);
size_t bnf_ctx_floats(const bnf_op_ctx *ctx, const char *name, float *vals, size_t max);
/* Attribute `name` as a TensorProto (Constant's value), or NULL. */
const Onnx__TensorProto *bnf_ctx_tensor(const bnf_op_ctx *ctx, const char *name);
/* The ints attribute `name` into v: exactly `want` values, each in [lo, hi],
 * or `dflt` for each when absent. */
bnf_status bnf_ctx_ints_range(bnf_op_ctx *ctx, const char *name, size_t want, int64_t dflt,
                              int64_t lo, int64_t hi, int64_t *v);
/* The index of s in names[0..n), or -1 (a string attribute's choices). */
int bnf_find_name(const char *s, const char *const *names, size_t n);

/* Checks that the node has lo to hi inputs (hi = SIZE_MAX: at least lo) and
 * that the first lo of them are present (all of them when hi = SIZE_MAX: a
 * variadic input is never omitted).  The message is "needs <what>" when what
 * is given (e.g. "inputs X, W and an optional B"), else it gives the counts or
 * the missing input. */
bnf_status bnf_need_inputs(const bnf_op_ctx *ctx, size_t lo, size_t hi, const char *what);
/* Runs kernel `run` on the node's two inputs with the second one read as
 * `b` (e.g. a reshaped view of it): older operator versions in terms of newer. */
bnf_status bnf_run_with_second(bnf_op_ctx *ctx, const bnf_tensor *b,
                               bnf_status (*run)(bnf_op_ctx *));
/* The failures every kernel reports the same way: an input type it has no
 * loop for (BNF_ERR_UNSUPPORTED), and running out of memory. */
bnf_status bnf_unsupported_type(const bnf_op_ctx *ctx, int32_t dtype);
bnf_status bnf_nomem(const bnf_op_ctx *ctx);
/* A shape-like input (shape, axes, pads, starts ...): int64 or int32, rank 0
 * or 1, at most max values, into vals[0..*n). */
bnf_status bnf_read_ints(const bnf_op_ctx *ctx, const bnf_tensor *t, const char *what,
                         int64_t *vals, size_t max, size_t *n);
/* Maps axis from [-rank, rank) (or [-rank, rank] when `inclusive`) to [0, rank). */
bnf_status bnf_norm_axis(const bnf_op_ctx *ctx, int64_t axis, size_t rank, int inclusive,
                         int64_t *out);

/* Numpy-style multidirectional broadcast of a and b into out dims; error if incompatible. */
bnf_status bnf_broadcast_shape(const bnf_op_ctx *ctx, const bnf_tensor *a, const bnf_tensor *b,
                               int64_t *dims, size_t *rank);
/* For each output element index, the element index in `t` when t is broadcast to
 * (dims, rank); fills idx[0..n). */
void bnf_broadcast_index(const bnf_tensor *t, const int64_t *dims, size_t rank, size_t *idx);

/* Windowed operators (Conv, ConvTranspose, MaxPool, AveragePool): at most
 * BNF_MAX_SPATIAL spatial axes; attribute values (strides, pads, dilations)
 * above BNF_ATTR_MAX and spatial sizes above BNF_DIM_MAX are refused, so that
 * their int64 shape arithmetic cannot overflow. */
#define BNF_MAX_SPATIAL (BNF_MAX_RANK - 2)
#define BNF_ATTR_MAX ((int64_t)1 << 30)
#define BNF_DIM_MAX ((int64_t)1 << 31)
enum { BNF_PAD_NOTSET, BNF_PAD_SAME_UPPER, BNF_PAD_SAME_LOWER, BNF_PAD_VALID };
/* X is N x C x D1 ... (rank 3 to BNF_MAX_RANK) with spatial sizes in range;
 * and, when w is given, W has X's rank and kernel sizes in [1, BNF_DIM_MAX]. */
bnf_status bnf_check_spatial(bnf_op_ctx *ctx, const bnf_tensor *x, const bnf_tensor *w);
/* The auto_pad attribute as BNF_PAD_* ("" is NOTSET). */
bnf_status bnf_auto_pad(bnf_op_ctx *ctx, int *mode);
/* The padding of axis i for auto_pad NOTSET (from the pads attribute: the
 * starts, then the ends, nsp each) or VALID (none). */
void bnf_explicit_pads(int mode, const int64_t *pads, size_t nsp, size_t i, int64_t *pb,
                       int64_t *pe);
/* SAME_UPPER / SAME_LOWER padding of an axis of `in` with stride s and a
 * dilated kernel of dk: the output length ceil(in / s), and the padding at
 * the start and the end (the odd one at the end for SAME_UPPER). */
int64_t bnf_same_pads(int64_t in, int64_t s, int64_t dk, int mode, int64_t *pb, int64_t *pe);

/* The geometry of a 1-D or 2-D plane of a windowed operator (1-D as height
 * 1): input h x w, output oh x ow, kernel kh x kw, strides, padding at the
 * start, dilations, and hp x wp, the zero-padded plane every window reads
 * (the padding at the start, and at the end as far as the last window reaches). */
typedef struct {
    int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, hp, wp;
} bnf_plane;
/* The plane of nsp (1 or 2) spatial axes given per axis (inline: the callers'
 * loops keep the fields in registers). */
static inline void bnf_plane_init(bnf_plane *q, size_t nsp, const int64_t *in,
                                  const int64_t *out, const int64_t *k, const int64_t *s,
                                  const int64_t *pb, const int64_t *d)
{
    int two = nsp == 2;
    size_t last = nsp - 1;
    q->h = two ? in[0] : 1;
    q->oh = two ? out[0] : 1;
    q->kh = two ? k[0] : 1;
    q->sh = two ? s[0] : 1;
    q->ph = two ? pb[0] : 0;
    q->dh = two ? d[0] : 1;
    q->w = in[last];
    q->ow = out[last];
    q->kw = k[last];
    q->sw = s[last];
    q->pw = pb[last];
    q->dw = d[last];
    q->hp = q->ph + q->h;
    q->wp = q->pw + q->w;
    if ((q->oh - 1) * q->sh + (q->kh - 1) * q->dh + 1 > q->hp)
        q->hp = (q->oh - 1) * q->sh + (q->kh - 1) * q->dh + 1;
    if ((q->ow - 1) * q->sw + (q->kw - 1) * q->dw + 1 > q->wp)
        q->wp = (q->ow - 1) * q->sw + (q->kw - 1) * q->dw + 1;
}

/* Integer helpers of the shape arithmetic (b > 0 for the divisions). */
static inline int64_t bnf_floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static inline int64_t bnf_ceil_div(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}
static inline int64_t bnf_clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}
/* a * b into *r; 0 on overflow. */
static inline int bnf_mul_ok(size_t a, size_t b, size_t *r)
{
    if (a && b > SIZE_MAX / a)
        return 0;
    *r = a * b;
    return 1;
}
/* Whether a size fits OpenBLAS's int. */
static inline int bnf_blas_ok(size_t v)
{
    return v <= (size_t)INT32_MAX;
}

/* The output shape a Conv node would make of its inputs (the checks of the
 * kernel, without the work), for the session's fusion plan (eval/ops/conv.c). */
bnf_status bnf_conv_out_dims(bnf_op_ctx *ctx, int64_t *dims, size_t *rank);

/* ---- threads (eval/threads.c) ---------------------------------------------------- */

/* The most threads a loop is shared out over (bnf_par_threads() says no more):
 * per-thread scratch indexed by the thread id may have this many slots. */
#define BNF_MAX_THREADS 64

/* threads - 1 worker threads; NULL when threads <= 1 or none could be started. */
bnf_pool *bnf_pool_new(int threads);
void bnf_pool_free(bnf_pool *p);
size_t bnf_pool_size(const bnf_pool *p); /* workers + the caller; 1 for NULL */

typedef void (*bnf_range_fn)(void *arg, size_t tid, size_t lo, size_t hi);
/* Below this much work (about one element-operation each) a loop stays on one thread. */
#define BNF_PAR_MIN_WORK ((size_t)1 << 15)
/* How many threads (>= 1) a loop over n items worth `work` in total should use. */
size_t bnf_par_threads(const bnf_op_ctx *ctx, size_t n, size_t work);
/* Runs fn over [0, n) on t threads (the session's pool, or threads started
 * for the call when there is none), the caller included: [0, n) is cut into
 * contiguous ranges that the threads take in turn, so a thread may run fn
 * several times, always with its own tid (< t: per-thread scratch); returns
 * when all are done.  Never fails. */
void bnf_parallel(const bnf_op_ctx *ctx, size_t t, size_t n, bnf_range_fn fn, void *arg);

/* ---- compute loops (eval/kernels/): the instruction set, vectors ----------------- */

/* The widest vector instructions this CPU has, for the kernels' run-time
 * choice: BNF_ISA_BASE (SSE2 on x86-64, plain C elsewhere), BNF_ISA_AVX2
 * (AVX2 + FMA), BNF_ISA_AVX512 (AVX-512F with AVX2 + FMA). */
enum { BNF_ISA_BASE, BNF_ISA_AVX2, BNF_ISA_AVX512 };
int bnf_cpu_isa(void); /* (eval/kernels/vecmath.c) */

/* Whether every element of b is a's within tolerance (verify/tolerance.c): b[i]
 * == a[i] or |b[i] - a[i]| <= atol_rel * max|a| + rtol * |a[i]|, in double.
 * *max_want = max|a| over the elements where neither is NaN and a is finite;
 * when it returns 1, *max_abs = the largest |b[i] - a[i]|.  0 says only that
 * some element fails or is NaN (eval/kernels/within.c). */
int bnf_f32_within(const float *a, const float *b, size_t n, double rtol, double atol_rel,
                   double *max_want, double *max_abs);

/* Four floats, with the GCC/Clang vector extension: plain C operators compile
 * to SIMD whatever the optimisation level (gcc -O2 does not vectorise loops of
 * unknown length): SSE on x86-64, NEON on ARM; unaligned loads and stores. */
typedef float bnf_v4f __attribute__((vector_size(16)));
static inline __attribute__((always_inline)) bnf_v4f bnf_ld4(const float *p)
{
    bnf_v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void bnf_st4(float *p, bnf_v4f v)
{
    memcpy(p, &v, sizeof v);
}

/* for (i = 0; i < n; i++) BODY, written as blocks of 8 and a tail: with
 * `restrict` operands gcc -O2 (whose cheap cost model vectorises only loops of a
 * known multiple of the vector length) and clang both vectorise the blocks. */
#define BLOCKED_LOOP(n, ...)                                                            \
    do {                                                                               \
        size_t i_ = 0;                                                                 \
        for (; i_ + 8 <= (n); i_ += 8)                                                 \
            for (size_t j_ = 0; j_ < 8; j_++) {                                        \
                size_t i = i_ + j_;                                                    \
                __VA_ARGS__;                                                           \
            }                                                                          \
        for (size_t i = i_; i < (n); i++) {                                            \
            __VA_ARGS__;                                                               \
        }                                                                              \
    } while (0)

/* ---- GEMM through OpenBLAS (eval/kernels/sgemm.c) -------------------------------- */

/* OpenBLAS loaded (once; OPENBLAS_NUM_THREADS=1 set first when the
 * environment does not say) and held to one thread: at the start of a run,
 * before threads share out GEMMs. */
void bnf_blas_load(void);
/* Whether OpenBLAS is there (else bnf_sgemm computes in plain C). */
int bnf_blas_loaded(void);

/* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, row-major, float, on the
 * calling thread (M = 1 or N = 1: a matrix-vector product). */
void bnf_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc);

/* The same in plain C, what bnf_sgemm does without OpenBLAS (and the tests). */
void bnf_sgemm_plain(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                     const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                     size_t ldc);

/* The same, cut into pieces shared out over the session's threads (when large). */
void bnf_sgemm_par(const bnf_op_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                   float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                   float beta, float *c, size_t ldc);

/* ---- GEMM on packed constant weights (eval/kernels/gemm_packed.c) ---------------- */

/* A (m x k, row stride lda) packed for bnf_packed_gemm; NULL when out of memory. */
typedef struct bnf_packed bnf_packed;
bnf_packed *bnf_packed_new(const float *a, size_t m, size_t k, size_t lda);
void bnf_packed_free(bnf_packed *pk);
/* Whether bnf_packed_gemm has a fast kernel on this CPU (else use bnf_sgemm). */
int bnf_packed_usable(void);
/* Rows of A per panel: row ranges given to bnf_packed_gemm start at multiples of it. */
size_t bnf_packed_mr(const bnf_packed *pk);
/* Tests: packs made from now on use kernel set `isa` at most (BNF_ISA_BASE:
 * plain C; -1: the CPU's best); returns the previous setting. */
int bnf_packed_force_isa(int isa);
/* Floats of scratch bnf_packed_gemm needs (per thread) for B of k x n, or
 * of k x fewer columns. */
size_t bnf_packed_scratch(size_t k, size_t n);
/* C[r0..r1, 0..n) = A[r0..r1, :] x B (k x n, row stride ldb); r0 a multiple of
 * bnf_packed_mr(). */
void bnf_packed_gemm(const bnf_packed *pk, size_t r0, size_t r1, const float *b, size_t ldb,
                     size_t n, float *c, size_t ldc, float *scratch);

/* ---- depthwise convolution (eval/kernels/depthwise.c) ---------------------------- */

/* Y (n x m planes of q) = the depthwise convolution of X (n x m / mg planes)
 * with W (m kernels of kh x kw) and the optional bias b, then epi (NULL: none)
 * on each output plane.  Leaves *declined set and Y untouched when the plane's
 * polyphase layout would be much larger than the planes (huge dilations or
 * padding).  BNF_OK, or BNF_ERR_NOMEM. */
bnf_status bnf_depthwise(const bnf_op_ctx *ctx, const bnf_plane *q, const float *x,
                         const float *w, const float *b, float *y, size_t n, size_t m, size_t mg,
                         const bnf_epilogue *epi, int *declined);

/* ---- vector math (eval/kernels/vecmath.c) ---------------------------------------- */

/* y = 1 / (1 + exp(-x)) and y = x / (1 + exp(-x)) over n floats (y may be x),
 * with a polynomial exp vectorised for the CPU (relative error ~1e-7). */
void bnf_sigmoid_f32(float *y, const float *x, size_t n);
void bnf_silu_f32(float *y, const float *x, size_t n);
/* Applies e to n elements of output channel c, in place (y inside the output
 * that starts at e->y0 when e->res is set). */
void bnf_epilogue_apply(const bnf_epilogue *e, size_t c, float *y, size_t n);

#endif
