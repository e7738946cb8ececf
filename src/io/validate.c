/* validate.c: the semantic checks a model passes before any pass sees it.
 *
 * After the wire pre-check (wire.c) has made sure protobuf-c can unpack the
 * file safely, this makes sure the passes can trust what they read: versions
 * present and sane; every tensor's data matches its type and shape; every node
 * input names a value defined before it (graph input, initializer, an earlier
 * node's output, or for a subgraph a value of an enclosing scope); no value is
 * defined twice; every graph output is defined.  A problem that makes the model
 * unusable is an error naming the node or tensor; tensors of a data type we do
 * not know are left alone (folds that need them are skipped later). */
#include "internal.h"

#include <string.h>
#include <unistd.h>

#define S(x) ((x) ? (x) : "")

typedef struct {
    const bnf_model *m;
    bnf_err *err;
} vctx;

/* What a graph has defined so far (its inputs, initializers, and the outputs
 * of the nodes checked), and what its nodes define at all. */
typedef struct {
    bnf_strmap *scope, *later;
    bnf_strmap *shapes; /* value name -> its value_info (inputs, value_info, outputs) */
    bnf_strmap *inits;  /* initializer name -> index */
} defined;

static bnf_status check_tensor(vctx *v, const Onnx__TensorProto *t, const char *where)
{
    const bnf_dtype_info *d;
    size_t n, have;
    bnf_status rc;

    if ((rc = bnf_numel(t->dims, t->n_dims, S(t->name), &n, v->err))) {
        bnf_err_prefix(v->err, where);
        return rc;
    }
    d = bnf_dtype(t->data_type);
    if (!t->has_data_type || t->data_type == 0)
        return bnf_fail(v->err, BNF_ERR_INVALID, "%s: tensor '%s' has no data type", where,
                        S(t->name));
    if (!d)
        return BNF_OK; /* unknown type: left untouched */
    if (bnf_proto_is_external(t)) {
        int has_location = 0;
        for (size_t i = 0; i < t->n_external_data; i++)
            has_location |= t->external_data[i]->key &&
                            strcmp(t->external_data[i]->key, "location") == 0;
        if (!has_location)
            return bnf_fail(v->err, BNF_ERR_INVALID, "%s: tensor '%s' is external but has no "
                            "location", where, S(t->name));
        if (v->m->dir) { /* the file: inside the folder, there, and big enough */
            int fd;
            uint64_t off, len;
            bnf_status rc = bnf_proto_external_open(v->m, t, &fd, &off, &len, v->err);
            if (rc)
                return rc;
            close(fd);
        }
        return BNF_OK; /* the bytes are read when needed */
    }
    if (t->has_raw_data) {
        if (d->size && t->raw_data.len != n * d->size)
            return bnf_fail(v->err, BNF_ERR_INVALID,
                            "%s: tensor '%s' (%s, %zu elements) holds %zu bytes of raw data, "
                            "needs %zu", where, S(t->name), d->name, n, t->raw_data.len,
                            n * d->size);
        return BNF_OK;
    }
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = t->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64: have = t->n_float_data / 2; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = t->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128: have = t->n_double_data / 2; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = t->n_int64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: have = t->n_uint64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__STRING: have = t->n_string_data; break;
    default: have = t->n_int32_data; break;
    }
    if (have != n)
        return bnf_fail(v->err, BNF_ERR_INVALID,
                        "%s: tensor '%s' (%s) has %zu values for a shape of %zu elements", where,
                        S(t->name), d->name, have, n);
    return BNF_OK;
}

static int visible(const bnf_scope *s, const char *name)
{
    for (; s; s = s->outer)
        if (bnf_strmap_get(((const defined *)s->data)->scope, name, NULL))
            return 1;
    return 0;
}

static bnf_status enter_graph(void *ctx, bnf_scope *s, bnf_err *err)
{
    vctx *v = ctx;
    const Onnx__GraphProto *g = s->g;
    size_t hint = g->n_node * 2 + g->n_input + g->n_initializer + 8;
    defined *d = bnf_calloc(1, sizeof *d);
    bnf_status rc;

    (void)err;
    if (!d)
        return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
    s->data = d;
    d->scope = bnf_strmap_new(hint);
    d->later = bnf_strmap_new(hint);
    d->shapes = bnf_strmap_new(g->n_input + g->n_value_info + g->n_output + 8);
    d->inits = bnf_strmap_new(g->n_initializer + 8);
    if (!d->scope || !d->later || !d->shapes || !d->inits)
        return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
    {
        Onnx__ValueInfoProto *const *lists[3] = {g->input, g->value_info, g->output};
        size_t counts[3] = {g->n_input, g->n_value_info, g->n_output};
        for (int l = 0; l < 3; l++)
            for (size_t i = 0; i < counts[l]; i++)
                if (lists[l][i]->name &&
                    bnf_strmap_put(d->shapes, lists[l][i]->name, (intptr_t)lists[l][i]))
                    return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < g->n_initializer; i++)
            if (g->initializer[i]->name &&
                bnf_strmap_put(d->inits, g->initializer[i]->name, (intptr_t)i))
                return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = S(g->input[i]->name);
        if (!*nm || bnf_strmap_get(d->scope, nm, NULL))
            return bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': input '%s' is %s", S(g->name),
                            nm, *nm ? "listed twice" : "unnamed");
        if (bnf_strmap_put(d->scope, nm, 1))
            return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        const char *nm = S(t->name);
        intptr_t kind = 0;
        char where[300];
        snprintf(where, sizeof where, "graph '%s' initializer", S(g->name));
        if ((rc = check_tensor(v, t, where)))
            return rc;
        if (!*nm)
            return bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': an initializer has no name",
                            S(g->name));
        if (bnf_strmap_get(d->scope, nm, &kind) && kind == 2)
            return bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': two initializers are named '%s'",
                            S(g->name), nm);
        if (bnf_strmap_put(d->scope, nm, 2))
            return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
    }
    /* names the nodes define, to tell "defined later" from "never defined" */
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (g->node[i]->output[k] && *g->node[i]->output[k] &&
                bnf_strmap_put(d->later, g->node[i]->output[k], (intptr_t)i))
                return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

/* The size of axis `axis` of value `name` as the graph states it, or -1. */
static int64_t stated_dim(const defined *d, const char *name, size_t axis)
{
    intptr_t p;
    const Onnx__TypeProto *t;
    const Onnx__TensorShapeProto *sh;
    if (!name || !bnf_strmap_get(d->shapes, name, &p))
        return -1;
    t = ((const Onnx__ValueInfoProto *)p)->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type ||
        !(sh = t->tensor_type->shape) || axis >= sh->n_dim ||
        sh->dim[axis]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
        return -1;
    return sh->dim[axis]->dim_value;
}

/* A Conv or ConvTranspose whose group, weight and input channels disagree
 * (as far as the graph states them) cannot run: W is [M, C/g, k...] (Conv) or
 * [C, M/g, k...] (ConvTranspose) for an input of C channels. */
static bnf_status check_conv(vctx *v, const bnf_scope *s, const Onnx__NodeProto *n)
{
    const defined *d = s->data;
    int transpose = bnf_is_op(n, "ConvTranspose");
    int64_t g = bnf_attr_int(n, "group", 1), c;
    const Onnx__TensorProto *w;
    intptr_t wi;
    if (!transpose && !bnf_is_op(n, "Conv"))
        return BNF_OK;
    if (g < 1)
        return bnf_fail(v->err, BNF_ERR_INVALID, "%s node '%s': group %lld is not positive",
                        n->op_type, S(n->name), (long long)g);
    if (n->n_input < 2 || !n->input[1])
        return BNF_OK;
    if (bnf_strmap_get(d->inits, n->input[1], &wi)) {
        w = s->g->initializer[wi];
    } else { /* a Constant node's tensor states it as well (what a fold turns into one) */
        const Onnx__NodeProto *p;
        if (!bnf_strmap_get(d->later, n->input[1], &wi) || (size_t)wi >= s->g->n_node ||
            !bnf_is_op(p = s->g->node[wi], "Constant") || p->n_attribute != 1 ||
            !p->attribute[0]->t || !p->attribute[0]->name ||
            strcmp(p->attribute[0]->name, "value") != 0)
            return BNF_OK;
        w = p->attribute[0]->t;
    }
    if (w->n_dims < 3)
        return BNF_OK; /* the weight's shape is not stated here */
    if (w->dims[0] % g != 0)
        return bnf_fail(v->err, BNF_ERR_INVALID, "%s node '%s': group %lld does not divide the "
                        "%lld %s channels of weight '%s'", n->op_type, S(n->name), (long long)g,
                        (long long)w->dims[0], transpose ? "input" : "output", S(w->name));
    c = stated_dim(d, n->input[0], 1);
    if (c > 0 && c % g != 0)
        return bnf_fail(v->err, BNF_ERR_INVALID, "%s node '%s': group %lld does not divide the "
                        "%lld channels of its input '%s'", n->op_type, S(n->name), (long long)g,
                        (long long)c, n->input[0]);
    if (c > 0 && c != (transpose ? w->dims[0] : w->dims[1] * g))
        return bnf_fail(v->err, BNF_ERR_INVALID, "%s node '%s': its input '%s' has %lld channels, "
                        "weight '%s' (group %lld) is for %lld", n->op_type, S(n->name),
                        n->input[0], (long long)c, S(w->name), (long long)g,
                        (long long)(transpose ? w->dims[0] : w->dims[1] * g));
    return BNF_OK;
}

/* A node's inputs are defined, and the tensors in its attributes are sound
 * (its subgraphs are walked next, seeing what is defined before the node). */
static bnf_status check_node(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    vctx *v = ctx;
    const Onnx__NodeProto *n = s->g->node[i];
    const defined *d = s->data;
    char where[300];
    bnf_status rc;

    (void)err;
    if (!n->op_type || !*n->op_type)
        return bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': node %zu ('%s') has no op_type",
                        S(s->g->name), i, S(n->name));
    for (size_t k = 0; k < n->n_input; k++) {
        const char *in = n->input[k];
        if (!in || !*in || visible(s, in))
            continue;
        return bnf_fail(v->err, BNF_ERR_INVALID,
                        bnf_strmap_get(d->later, in, NULL)
                            ? "%s node '%s' reads '%s' before a later node makes it (a cycle, "
                              "or nodes out of topological order)"
                            : "%s node '%s' reads '%s', which nothing defines",
                        n->op_type, S(n->name), in);
    }
    if ((rc = check_conv(v, s, n)))
        return rc;
    snprintf(where, sizeof where, "%s node '%s'", S(n->op_type), S(n->name));
    for (size_t a = 0; a < n->n_attribute; a++) {
        const Onnx__AttributeProto *at = n->attribute[a];
        if (at->t && (rc = check_tensor(v, at->t, where)))
            return rc;
        for (size_t k = 0; k < at->n_tensors; k++)
            if ((rc = check_tensor(v, at->tensors[k], where)))
                return rc;
    }
    return BNF_OK;
}

/* Then its outputs are defined, once. */
static bnf_status define_outputs(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    vctx *v = ctx;
    const Onnx__NodeProto *n = s->g->node[i];
    const defined *d = s->data;
    (void)err;
    for (size_t k = 0; k < n->n_output; k++) {
        const char *o = n->output[k];
        if (!o || !*o)
            continue;
        if (bnf_strmap_get(d->scope, o, NULL))
            return bnf_fail(v->err, BNF_ERR_INVALID,
                            "%s node '%s' defines '%s', which is already defined", n->op_type,
                            S(n->name), o);
        if (bnf_strmap_put(d->scope, o, 3))
            return bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
    }
    return BNF_OK;
}

static bnf_status leave_graph(void *ctx, bnf_scope *s, bnf_status rc, bnf_err *err)
{
    vctx *v = ctx;
    defined *d = s->data;
    (void)err;
    for (size_t i = 0; i < s->g->n_output && !rc; i++) {
        const char *nm = S(s->g->output[i]->name);
        if (!visible(s, nm))
            rc = bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': output '%s' is not computed",
                          S(s->g->name), nm);
    }
    if (d) {
        bnf_strmap_free(d->scope);
        bnf_strmap_free(d->later);
        bnf_strmap_free(d->shapes);
        bnf_strmap_free(d->inits);
        bnf_free(d);
    }
    return rc;
}

/* Model-local functions are not checked here: their bodies name their inputs
 * and outputs only where they are called. */
static const bnf_visitor validator = {
    .enter = enter_graph, .node = check_node, .node_done = define_outputs, .leave = leave_graph,
    .no_functions = 1,
};

bnf_status bnf_model_validate(const bnf_model *m, bnf_err *err)
{
    const Onnx__ModelProto *p = m->proto;
    const char *what = m->path ? m->path : "<memory>";
    vctx v = {m, err};
    bnf_err local = {0};
    int64_t opset;
    bnf_status rc;

    if (!err)
        v.err = &local;
    if (!p->has_ir_version || p->ir_version < 1 || p->ir_version > 100)
        return bnf_fail(err, BNF_ERR_INVALID, "%s: ir_version %s%lld is not a valid IR version",
                        what, p->has_ir_version ? "" : "(missing) ",
                        (long long)(p->has_ir_version ? p->ir_version : 0));
    if (p->ir_version >= 3 && p->n_opset_import == 0)
        return bnf_fail(err, BNF_ERR_INVALID, "%s: no opset_import (required from IR version 3)",
                        what);
    for (size_t i = 0; i < p->n_opset_import; i++)
        if (!p->opset_import[i]->has_version || p->opset_import[i]->version < 1 ||
            p->opset_import[i]->version > 1000)
            return bnf_fail(err, BNF_ERR_INVALID, "%s: opset_import of domain '%s' has version %lld",
                            what, S(p->opset_import[i]->domain),
                            (long long)p->opset_import[i]->version);
    opset = bnf_model_opset(p, "");
    if (p->ir_version >= 3 && opset == 0) {
        int uses_onnx = 0;
        for (size_t i = 0; i < p->graph->n_node; i++)
            uses_onnx |= !p->graph->node[i]->domain || !*p->graph->node[i]->domain;
        if (uses_onnx)
            return bnf_fail(err, BNF_ERR_INVALID, "%s: nodes of the default domain but no opset "
                            "import for it", what);
    }
    rc = bnf_walk_graph(&validator, &v, p->graph, v.err);
    if (rc && err)
        *err = *v.err;
    return rc;
}
