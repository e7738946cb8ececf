/* walk.c: the one walk over a model's graphs, and what counts as an operator.
 *
 * Every pass that looks at more than the main graph (fold, the reports,
 * validation, the graph index, the writer) walks with bnf_walk_model or
 * bnf_walk_subgraphs: the main graph, each node's subgraph attributes right
 * after the node (depth first, in attribute order), then the model-local
 * functions, each body seen as a graph of its own.  The walk owns the rules
 * those passes must agree on: how deep subgraphs may nest, how a graph's path
 * is spelled in reports, and which nodes are ONNX operators (bnf_is_op). */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

int bnf_is_onnx_domain(const char *domain)
{
    return !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
}

int bnf_is_op(const Onnx__NodeProto *n, const char *op_type)
{
    return n->op_type && strcmp(n->op_type, op_type) == 0 && bnf_is_onnx_domain(n->domain);
}

static bnf_status walk_graph(const bnf_visitor *v, void *ctx, bnf_scope *s, bnf_err *err);

/* The path of subgraph attribute `attr` of node n in a graph at `path`. */
static char *sub_path(const char *path, const Onnx__NodeProto *n, const char *attr)
{
    size_t len = strlen(path) + strlen(S(n->name)) + strlen(attr) + 16;
    char *p = bnf_malloc(len);
    if (p)
        snprintf(p, len, "%s%snode '%s' %s", path, *path ? " / " : "", S(n->name), attr);
    return p;
}

bnf_status bnf_walk_subgraphs(const bnf_visitor *v, void *ctx, const bnf_scope *s, size_t i,
                              bnf_err *err)
{
    Onnx__NodeProto *n = s->g->node[i];
    bnf_status rc = BNF_OK;
    for (size_t a = 0; a < n->n_attribute && !rc; a++) {
        Onnx__AttributeProto *at = n->attribute[a];
        size_t count = (at->g ? 1 : 0) + at->n_graphs;
        for (size_t k = 0; k < count && !rc; k++) {
            bnf_scope sub;
            char *path = sub_path(s->path, n, S(at->name));
            if (!path)
                return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            memset(&sub, 0, sizeof sub);
            sub.g = at->g && k == 0 ? at->g : at->graphs[k - (at->g ? 1 : 0)];
            sub.outer = s;
            sub.owner = n;
            sub.owner_index = i;
            sub.attr = S(at->name);
            sub.path = path;
            sub.depth = s->depth + 1;
            rc = walk_graph(v, ctx, &sub, err);
            bnf_free(path);
        }
    }
    return rc;
}

static bnf_status walk_graph(const bnf_visitor *v, void *ctx, bnf_scope *s, bnf_err *err)
{
    bnf_status rc = BNF_OK;
    if (s->depth > BNF_MAX_NESTING)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "graph '%s': subgraphs nested too deep",
                        S(s->g->name));
    if (v->enter)
        rc = v->enter(ctx, s, err);
    /* n_node is read again each time: enter and the callbacks may edit the graph */
    for (size_t i = 0; i < s->g->n_node && !rc; i++) {
        if (v->node)
            rc = v->node(ctx, s, i, err);
        if (!rc && !v->no_subgraphs)
            rc = bnf_walk_subgraphs(v, ctx, s, i, err);
        if (!rc && v->node_done)
            rc = v->node_done(ctx, s, i, err);
    }
    return v->leave ? v->leave(ctx, s, rc, err) : rc;
}

bnf_status bnf_walk_graph(const bnf_visitor *v, void *ctx, Onnx__GraphProto *g,
                          bnf_err *err)
{
    bnf_scope s;
    memset(&s, 0, sizeof s);
    s.g = g;
    s.path = "";
    return walk_graph(v, ctx, &s, err);
}

/* A function body seen as a graph: its nodes, and its inputs and outputs as
 * value infos (names borrowed from the function). */
typedef struct {
    Onnx__GraphProto g;
    Onnx__ValueInfoProto *vi;
    Onnx__ValueInfoProto **in, **out;
} function_view;

static int view_function(function_view *fv, Onnx__FunctionProto *f)
{
    memset(fv, 0, sizeof *fv);
    onnx__graph_proto__init(&fv->g);
    fv->vi = bnf_calloc(f->n_input + f->n_output + 1, sizeof *fv->vi);
    fv->in = bnf_calloc(f->n_input + 1, sizeof *fv->in);
    fv->out = bnf_calloc(f->n_output + 1, sizeof *fv->out);
    if (!fv->vi || !fv->in || !fv->out)
        return -1;
    for (size_t i = 0; i < f->n_input; i++) {
        onnx__value_info_proto__init(&fv->vi[i]);
        fv->vi[i].name = f->input[i];
        fv->in[i] = &fv->vi[i];
    }
    for (size_t i = 0; i < f->n_output; i++) {
        onnx__value_info_proto__init(&fv->vi[f->n_input + i]);
        fv->vi[f->n_input + i].name = f->output[i];
        fv->out[i] = &fv->vi[f->n_input + i];
    }
    fv->g.name = f->name;
    fv->g.node = f->node;
    fv->g.n_node = f->n_node;
    fv->g.input = fv->in;
    fv->g.n_input = f->n_input;
    fv->g.output = fv->out;
    fv->g.n_output = f->n_output;
    return 0;
}

static void unview_function(function_view *fv)
{
    bnf_free(fv->vi);
    bnf_free(fv->in);
    bnf_free(fv->out);
}

bnf_status bnf_walk_function(const bnf_visitor *v, void *ctx, Onnx__FunctionProto *f,
                             bnf_err *err)
{
    function_view fv;
    bnf_scope s;
    size_t len = strlen(S(f->name)) + 16;
    char *path = bnf_malloc(len);
    bnf_status rc;
    memset(&fv, 0, sizeof fv); /* freed below also when path failed and fv is not made */
    if (!path || view_function(&fv, f) != 0) {
        bnf_free(path);
        unview_function(&fv);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    snprintf(path, len, "function '%s'", S(f->name));
    memset(&s, 0, sizeof s);
    s.g = &fv.g;
    s.function = f;
    s.path = path;
    s.depth = 1;
    rc = walk_graph(v, ctx, &s, err);
    f->node = fv.g.node; /* the body may have been edited */
    f->n_node = fv.g.n_node;
    unview_function(&fv);
    bnf_free(path);
    return rc;
}

bnf_status bnf_walk_model(const bnf_visitor *v, void *ctx, Onnx__ModelProto *p, bnf_err *err)
{
    bnf_status rc = BNF_OK;
    if (p->graph && (rc = bnf_walk_graph(v, ctx, p->graph, err)))
        return rc;
    for (size_t f = 0; f < p->n_functions && !rc && !v->no_functions; f++)
        rc = bnf_walk_function(v, ctx, p->functions[f], err);
    return rc;
}

/* ---- every tensor ---------------------------------------------------------------- */

typedef struct {
    bnf_tensor_fn fn;
    void *ctx;
} tensor_walk;

static bnf_status initializers(void *ctx, bnf_scope *s, bnf_err *err)
{
    const tensor_walk *tw = ctx;
    bnf_status rc = BNF_OK;
    for (size_t i = 0; i < s->g->n_initializer && !rc; i++)
        rc = tw->fn(tw->ctx, s->g->initializer[i], 1, err);
    return rc;
}

static bnf_status attribute_tensors(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    const tensor_walk *tw = ctx;
    const Onnx__NodeProto *n = s->g->node[i];
    bnf_status rc = BNF_OK;
    for (size_t a = 0; a < n->n_attribute && !rc; a++) {
        const Onnx__AttributeProto *at = n->attribute[a];
        if (at->t)
            rc = tw->fn(tw->ctx, at->t, 0, err);
        for (size_t k = 0; k < at->n_tensors && !rc; k++)
            rc = tw->fn(tw->ctx, at->tensors[k], 0, err);
    }
    return rc;
}

bnf_status bnf_walk_tensors(Onnx__ModelProto *p, bnf_tensor_fn fn, void *ctx, bnf_err *err)
{
    static const bnf_visitor tensors = {.enter = initializers, .node = attribute_tensors};
    tensor_walk tw = {fn, ctx};
    return bnf_walk_model(&tensors, &tw, p, err);
}
