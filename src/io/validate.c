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

/* The values visible in a graph: its own, then its enclosing graphs'. */
typedef struct chain {
    const bnf_strmap *names;
    const struct chain *up;
} chain;

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
    if (bnf_tensor_is_external(t)) {
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
            bnf_status rc = bnf_tensor_external_open(v->m, t, &fd, &off, &len, v->err);
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

static bnf_status check_graph(vctx *v, const Onnx__GraphProto *g, const chain *outer, int depth);

/* Tensors and subgraphs inside a node's attributes. */
static bnf_status check_attributes(vctx *v, const Onnx__NodeProto *n, const bnf_strmap *names,
                                   const chain *outer, int depth)
{
    chain scope = {names, outer};
    char where[300];
    bnf_status rc;
    snprintf(where, sizeof where, "%s node '%s'", S(n->op_type), S(n->name));
    for (size_t a = 0; a < n->n_attribute; a++) {
        const Onnx__AttributeProto *at = n->attribute[a];
        if (at->t && (rc = check_tensor(v, at->t, where)))
            return rc;
        for (size_t k = 0; k < at->n_tensors; k++)
            if ((rc = check_tensor(v, at->tensors[k], where)))
                return rc;
        if (at->g && (rc = check_graph(v, at->g, &scope, depth + 1)))
            return rc;
        for (size_t k = 0; k < at->n_graphs; k++)
            if ((rc = check_graph(v, at->graphs[k], &scope, depth + 1)))
                return rc;
    }
    return BNF_OK;
}

static int visible(const bnf_strmap *scope, const chain *outer, const char *name)
{
    if (bnf_strmap_get(scope, name, NULL))
        return 1;
    for (; outer; outer = outer->up)
        if (bnf_strmap_get(outer->names, name, NULL))
            return 1;
    return 0;
}

static bnf_status check_graph(vctx *v, const Onnx__GraphProto *g, const chain *outer, int depth)
{
    bnf_strmap *scope = NULL, *later = NULL;
    bnf_status rc = BNF_OK;
    size_t hint = g->n_node * 2 + g->n_input + g->n_initializer + 8;

    if (depth > BNF_MAX_NESTING)
        return bnf_fail(v->err, BNF_ERR_UNSUPPORTED, "graph '%s': subgraphs nested too deep",
                        S(g->name));
    scope = bnf_strmap_new(hint);
    later = bnf_strmap_new(hint);
    if (!scope || !later) {
        rc = bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = S(g->input[i]->name);
        if (!*nm || bnf_strmap_get(scope, nm, NULL)) {
            rc = bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': input '%s' is %s", S(g->name), nm,
                          *nm ? "listed twice" : "unnamed");
            goto out;
        }
        if (bnf_strmap_put(scope, nm, 1))
            goto nomem;
    }
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        const char *nm = S(t->name);
        intptr_t kind = 0;
        char where[300];
        snprintf(where, sizeof where, "graph '%s' initializer", S(g->name));
        if ((rc = check_tensor(v, t, where)))
            goto out;
        if (!*nm) {
            rc = bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': an initializer has no name",
                          S(g->name));
            goto out;
        }
        if (bnf_strmap_get(scope, nm, &kind) && kind == 2) {
            rc = bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': two initializers are named '%s'",
                          S(g->name), nm);
            goto out;
        }
        if (bnf_strmap_put(scope, nm, 2))
            goto nomem;
    }
    /* names the nodes define, to tell "defined later" from "never defined" */
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (g->node[i]->output[k] && *g->node[i]->output[k] &&
                bnf_strmap_put(later, g->node[i]->output[k], (intptr_t)i))
                goto nomem;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!n->op_type || !*n->op_type) {
            rc = bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': node %zu ('%s') has no op_type",
                          S(g->name), i, S(n->name));
            goto out;
        }
        for (size_t k = 0; k < n->n_input; k++) {
            const char *in = n->input[k];
            if (!in || !*in || visible(scope, outer, in))
                continue;
            rc = bnf_fail(v->err, BNF_ERR_INVALID,
                          bnf_strmap_get(later, in, NULL)
                              ? "%s node '%s' reads '%s' before a later node makes it (a cycle, "
                                "or nodes out of topological order)"
                              : "%s node '%s' reads '%s', which nothing defines",
                          n->op_type, S(n->name), in);
            goto out;
        }
        if ((rc = check_attributes(v, n, scope, outer, depth)))
            goto out;
        for (size_t k = 0; k < n->n_output; k++) {
            const char *o = n->output[k];
            if (!o || !*o)
                continue;
            if (bnf_strmap_get(scope, o, NULL)) {
                rc = bnf_fail(v->err, BNF_ERR_INVALID,
                              "%s node '%s' defines '%s', which is already defined", n->op_type,
                              S(n->name), o);
                goto out;
            }
            if (bnf_strmap_put(scope, o, 3))
                goto nomem;
        }
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const char *nm = S(g->output[i]->name);
        if (!visible(scope, outer, nm)) {
            rc = bnf_fail(v->err, BNF_ERR_INVALID, "graph '%s': output '%s' is not computed",
                          S(g->name), nm);
            goto out;
        }
    }
    rc = BNF_OK;
    goto out;
nomem:
    rc = bnf_fail(v->err, BNF_ERR_NOMEM, "out of memory");
out:
    bnf_strmap_free(scope);
    bnf_strmap_free(later);
    return rc;
}

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
    rc = check_graph(&v, p->graph, NULL, 0);
    if (rc && err)
        *err = *v.err;
    return rc;
}
