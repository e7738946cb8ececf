/*
 * graph/graph.h: a graph's index (who makes and who reads each value), its
 * constants, and the edits passes make.
 */
#ifndef BNF_GRAPH_H
#define BNF_GRAPH_H

#include "io/io.h"

/* ---- graph index and rewriting (graph.c) ---------------------------------- */

typedef struct bnf_graph {
    const bnf_model *m;
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

/* Indexes graph g of model m (whose allocator frees what edits take out). */
bnf_status bnf_graph_index(bnf_graph *gi, const bnf_model *m, Onnx__GraphProto *g,
                           int64_t ir_version, bnf_err *err);
void bnf_graph_release(bnf_graph *gi);
/* Re-indexes after the graph changed, keeping g, ir_version and outer. */
bnf_status bnf_graph_reindex(bnf_graph *gi, bnf_err *err);
/* Indexes a walk's graph into s->gi (its outer, the enclosing scope's
 * index); bnf_scope_unindex frees it. */
bnf_status bnf_scope_index(bnf_scope *s, const bnf_model *m, int64_t ir_version, bnf_err *err);
void bnf_scope_unindex(bnf_scope *s);
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
/* Inserts `node` (taken over, also on failure) at index i. */
bnf_status bnf_graph_insert_node(bnf_graph *gi, size_t i, Onnx__NodeProto *node, bnf_err *err);
/* A new node of the default domain (inputs and outputs copied). */
Onnx__NodeProto *bnf_node_new(const char *op_type, const char *name, const char *const *inputs,
                              size_t n_in, const char *const *outputs, size_t n_out);
/* The rank of value `name` when the model says it (value_info, graph inputs and
 * outputs) or a producer fixes it (Flatten, Gemm, a constant-shape Reshape);
 * -1 when unknown. */
int bnf_graph_rank(const bnf_graph *gi, const char *name);
/* The same, with dims[0 .. max) the sizes where known (-1 where not). */
int bnf_graph_shape(const bnf_graph *gi, const char *name, int64_t *dims, size_t max);
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
/* Drops the value_info of `name` (a value that is gone), if the graph has one. */
void bnf_graph_forget_value_info(bnf_graph *gi, const char *name);
/* Removes node i (freeing it). */
void bnf_graph_remove_node(bnf_graph *gi, size_t i);
/* Removes what the names in `candidates` were made of, if nothing uses it any
 * more: initializers, Constant nodes, Identity chains.  Re-indexes gi. */
bnf_status bnf_graph_collect(bnf_graph *gi, char **candidates, size_t n, bnf_err *err);

int64_t bnf_model_opset(const Onnx__ModelProto *p, const char *domain);

#endif
