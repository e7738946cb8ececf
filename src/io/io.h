/*
 * io/io.h: a model in memory and on disk: loading (the file mapped, its
 * wire format pre-checked, only its skeleton unpacked, then validated),
 * tensor storage and data types, the spill file of new tensors, and the
 * atomic, streaming writer.
 *
 * The model is held as protobuf-c structures (proto/onnx-ml.pb-c.h).  Every
 * allocation that ends up inside those structures is made with bnf_malloc, so
 * protobuf-c's free_unpacked can free a model however much a pass rewrote it.
 */
#ifndef BNF_IO_H
#define BNF_IO_H

#include "base/base.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bnfold decodes raw_data as little-endian and needs a little-endian host"
#endif

typedef struct bnf_region bnf_region;

struct bnf_model {
    Onnx__ModelProto *proto;
    ProtobufCAllocator alloc; /* frees proto's parts (bnf_model_alloc) */
    bnf_region *regions; /* mapped files and buffers proto points into (mapped.c) */
    size_t n_regions, cap_regions;
    const bnf_model *lender; /* a clone's weights lie in this model's regions */
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

/* The allocator that frees m's protobuf-c structures and their parts: bytes
 * in a region of m (or of its lender) are left alone.  Anything taken out of a
 * model, or made to go into one, is freed with it, never with
 * bnf_pbc_allocator. */
ProtobufCAllocator *bnf_model_alloc(const bnf_model *m);
void bnf_model_alloc_init(bnf_model *m);
/* Maps fd (size bytes, read only) as a region of m; NULL with errno on failure. */
uint8_t *bnf_mapped_file(bnf_model *m, int fd, size_t size);
/* Makes a heap buffer whose insides m's structures point to a region of m;
 * -1 when out of memory. */
int bnf_mapped_heap(bnf_model *m, uint8_t *base, size_t size);
/* Whether p lies in a region of m or of its lender. */
int bnf_mapped_owns(const bnf_model *m, const void *p);
/* Where [p, p+len) lies in a file of m's (or its lender's): 1 and *fd, *off
 * when it does, else 0. */
int bnf_mapped_where(const bnf_model *m, const void *p, size_t len, int *fd, uint64_t *off);
/* Gives back the pages of m's regions the process touched (the page cache
 * keeps them); pointers stay valid. */
void bnf_mapped_release(const bnf_model *m);
/* Gives back the pages of [p, p+len) (page aligned) of a read-only file
 * mapping of one's own. */
void bnf_pages_release(void *p, size_t len);
/* Maps in the pages of [p, p+len) of a file mapping ahead of reading them. */
void bnf_pages_prefetch(const void *p, size_t len);
/* The same for the pages of [p, p+len), when they are in a file of m's. */
void bnf_mapped_release_range(const bnf_model *m, const void *p, size_t len);
/* Unmaps and forgets m's regions (heap buffers are the model's to free). */
void bnf_mapped_drop(bnf_model *m);
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

/* ---- data types and tensors (tensor.c) ------------------------------------ */

/* Names: bnf_dtype_* are data types, bnf_array_* arrays of doubles (what a
 * fold computes in), bnf_proto_* tensors as the model stores them
 * (Onnx__TensorProto); bnf_tensor_* (eval/eval.h, bnfold.h) are the
 * evaluator's tensors.  _free frees an object, _release what a struct holds. */

typedef struct {
    int32_t dtype;
    const char *name;
    size_t size;      /* bytes per element; 0 for strings */
} bnf_dtype_info;

/* NULL for a data type we do not know. */
const bnf_dtype_info *bnf_dtype(int32_t dtype);
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

void bnf_array_release(bnf_array *a);
/* Number of elements from dims, with overflow and sign checks. */
bnf_status bnf_numel(const int64_t *dims, size_t rank, const char *what, size_t *n,
                     bnf_err *err);
/* Decodes a real-typed tensor of any storage (raw_data, typed fields, external). */
bnf_status bnf_proto_read(const bnf_model *m, const Onnx__TensorProto *t, bnf_array *out,
                           bnf_err *err);
/* Type, dims and count of a real-typed tensor, without its values (v NULL). */
bnf_status bnf_proto_shape(const Onnx__TensorProto *t, bnf_array *out, bnf_err *err);
/* The tensor's bytes in raw (little-endian) form, for external data; the
 * caller frees *data. */
bnf_status bnf_proto_read_external(const bnf_model *m, const Onnx__TensorProto *t,
                                    uint8_t **data, size_t *size, bnf_err *err);
/* The same into dst, which holds exactly the size bytes the tensor has. */
bnf_status bnf_proto_read_external_into(const bnf_model *m, const Onnx__TensorProto *t,
                                         uint8_t *dst, size_t size, bnf_err *err);
/* Opens t's external data file (checked: inside the model's folder, a regular
 * file, the range inside it and of the size the shape needs); the caller
 * closes *fd. */
bnf_status bnf_proto_external_open(const bnf_model *m, const Onnx__TensorProto *t, int *fd,
                                    uint64_t *off, uint64_t *len, bnf_err *err);
int bnf_proto_is_external(const Onnx__TensorProto *t);
/* Size in bytes of the tensor's values, from dims and type (0 if unknown). */
uint64_t bnf_proto_nbytes(const Onnx__TensorProto *t);
/* Which scale a fold multiplies each element e of a weight by: element e
 * belongs to channel (e / group) * per_group + (e / inner) % per_group
 * (group 0: no groups, the channel is (e / inner) % per_group).  group is a
 * multiple of inner * per_group. */
typedef struct {
    size_t inner, per_group, group;
} bnf_scaling;
/* Where a walk through the elements is (zeroed for element 0). */
typedef struct {
    size_t k, c, base, in_group;
} bnf_scaling_pos;
size_t bnf_scaling_channel(const bnf_scaling *sc, size_t e);
/* v[i] *= s[channel] for a run of n elements, from pos on (and moves pos on). */
void bnf_scale_by_channel(double *v, size_t n, const double *s, const bnf_scaling *sc,
                          bnf_scaling_pos *pos);
/* A new tensor `name` of t's type and shape (t real-typed) whose element e is
 * t[e] * s[bnf_scaling_channel(sc, e)] rounded to the type, computed chunk by
 * chunk from t's bytes (mapped, external or typed fields) and spilled to m's
 * spill file as it goes.  When an element is not finite or flushes to zero in
 * the type, *bad is set to its index + 1, *bad_value to it, and *out stays
 * NULL.  With out NULL it only checks. */
bnf_status bnf_proto_scaled(bnf_model *m, const Onnx__TensorProto *t, const char *name,
                             const double *s, const bnf_scaling *sc, Onnx__TensorProto **out,
                             size_t *bad, double *bad_value, bnf_err *err);
/* A new tensor holding v (rounded to dtype) in raw_data; v NULL: zeros. */
bnf_status bnf_proto_new(const char *name, int32_t dtype, const int64_t *dims, size_t rank,
                          const double *v, size_t n, Onnx__TensorProto **out, bnf_err *err);
/* A tensor of dtype and shape dims for a dry run's rewrite, whose values no
 * one reads: t's own bytes when one of m's regions holds them (no copy, no
 * page touched), else zeros. */
bnf_status bnf_proto_stand_in(bnf_model *m, const Onnx__TensorProto *t, int32_t dtype,
                              const int64_t *dims, size_t rank, size_t n,
                              Onnx__TensorProto **out, bnf_err *err);

/* ---- the walk over a model's graphs (walk.c) --------------------------------- */

/* Whether a node is the ONNX operator op_type (domain "" or "ai.onnx"). */
int bnf_is_op(const Onnx__NodeProto *n, const char *op_type);
int bnf_is_onnx_domain(const char *domain);

/* A graph the walk is in: the main graph, a subgraph (an attribute of a node),
 * or a model-local function's body seen as a graph. */
typedef struct bnf_scope {
    Onnx__GraphProto *g;
    Onnx__FunctionProto *function; /* g is a view of this function's body, else NULL */
    const struct bnf_scope *outer; /* the enclosing graph; NULL for the main graph and
                                      a function body */
    Onnx__NodeProto *owner;        /* the node whose attribute g is, or NULL */
    size_t owner_index;            /* its index in outer->g */
    const char *attr;              /* that attribute's name */
    const char *path;              /* where g is, as reports spell it: "" for the main
                                      graph, "node 'loop' body", "function 'f'", nested
                                      parts joined by " / " (borrowed: for the visit) */
    int depth;                     /* 0 for the main graph, 1 for a function body */
    struct bnf_graph *gi;          /* the graph's index, when the visitor made one
                                      (bnf_scope_index, graph.c) */
    void *data;                    /* the visitor's, per graph */
} bnf_scope;

/* What a walk calls, each optional: enter before a graph's nodes; node for
 * node i, before its subgraphs are walked; node_done after them; leave after
 * the last node, and also when enter or anything after it failed (rc says
 * what; leave returns the status to go on with, and frees what enter made).  The walk reads g->n_node anew after each call, so a
 * visitor may edit the graph it is in.  no_subgraphs: nodes only, not their
 * subgraphs; no_functions: bnf_walk_model leaves the functions out. */
typedef struct {
    bnf_status (*enter)(void *ctx, bnf_scope *s, bnf_err *err);
    bnf_status (*node)(void *ctx, bnf_scope *s, size_t i, bnf_err *err);
    bnf_status (*node_done)(void *ctx, bnf_scope *s, size_t i, bnf_err *err);
    bnf_status (*leave)(void *ctx, bnf_scope *s, bnf_status rc, bnf_err *err);
    int no_subgraphs, no_functions;
} bnf_visitor;

/* The main graph and its subgraphs, then each model-local function's body. */
bnf_status bnf_walk_model(const bnf_visitor *v, void *ctx, Onnx__ModelProto *p, bnf_err *err);
/* One graph and its subgraphs, as the main graph. */
bnf_status bnf_walk_graph(const bnf_visitor *v, void *ctx, Onnx__GraphProto *g, bnf_err *err);
/* One function's body and its subgraphs. */
bnf_status bnf_walk_function(const bnf_visitor *v, void *ctx, Onnx__FunctionProto *f,
                             bnf_err *err);
/* The subgraphs of node i of s->g (not the node itself). */
bnf_status bnf_walk_subgraphs(const bnf_visitor *v, void *ctx, const bnf_scope *s, size_t i,
                              bnf_err *err);
/* Calls fn on every tensor of the model: each graph's initializers
 * (initializer 1), then the tensors in its nodes' attributes (Constant values,
 * initializer 0), subgraphs and function bodies included, in the walk's order;
 * stops at the first error. */
typedef bnf_status (*bnf_tensor_fn)(void *ctx, Onnx__TensorProto *t, int initializer,
                                    bnf_err *err);
bnf_status bnf_walk_tensors(Onnx__ModelProto *p, bnf_tensor_fn fn, void *ctx, bnf_err *err);

/* ---- loading (model.c) ---------------------------------------------------- */

/* Parses a model from bytes it takes ownership of (also on failure), after
 * the wire pre-check, within max_memory bytes (0: bnf_default_max_memory). */
bnf_status bnf_model_from_bytes(uint8_t *bytes, size_t n, const char *path, const char *dir,
                                uint64_t max_memory, bnf_model **out, bnf_err *err);
uint64_t bnf_default_max_memory(size_t file_size);
/* A second model parsed from m's bytes (m unchanged: its weights stay where
 * m's are, so m must outlive it) or from m serialised (m changed). */
bnf_status bnf_model_clone(const bnf_model *m, bnf_model **out, bnf_err *err);
/* *found: whether a tensor of the model keeps its bytes as external data. */
bnf_status bnf_model_has_external(Onnx__ModelProto *p, int *found, bnf_err *err);

#endif
