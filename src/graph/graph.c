/* graph.c: an index over one graph (who produces and who uses each value),
 * constant resolution, and the small rewrites passes are made of.
 *
 * Invariant: an index describes its graph as it is; every rewrite below that
 * changes the graph's lists either keeps the index right or re-indexes. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

int64_t bnf_model_opset(const Onnx__ModelProto *p, const char *domain)
{
    int want_onnx = bnf_is_onnx_domain(domain);
    for (size_t i = 0; i < p->n_opset_import; i++) {
        const char *d = p->opset_import[i]->domain;
        if (want_onnx ? bnf_is_onnx_domain(d) : strcmp(S(d), domain) == 0)
            return p->opset_import[i]->has_version ? p->opset_import[i]->version : 0;
    }
    return 0;
}

/* ---- index ----------------------------------------------------------------- */

/* Every name a subgraph mentions counts as a use: some of them are the outer
 * scope's values, and counting a local name too only makes passes careful. */
static bnf_status count_node_uses(void *uses, bnf_scope *s, size_t i, bnf_err *err)
{
    const Onnx__NodeProto *n = s->g->node[i];
    for (size_t k = 0; k < n->n_input; k++)
        if (n->input[k] && *n->input[k] && bnf_strmap_add(uses, n->input[k], 1) != 0)
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

static bnf_status count_output_uses(void *uses, bnf_scope *s, bnf_status rc, bnf_err *err)
{
    for (size_t i = 0; i < s->g->n_output && !rc; i++)
        if (s->g->output[i]->name && bnf_strmap_add(uses, s->g->output[i]->name, 1) != 0)
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return rc;
}

static const bnf_visitor subgraph_uses = {.node = count_node_uses, .leave = count_output_uses};

void bnf_graph_release(bnf_graph *gi)
{
    bnf_strmap_free(gi->producer);
    bnf_strmap_free(gi->uses);
    bnf_strmap_free(gi->init);
    bnf_strmap_free(gi->input);
    bnf_strmap_free(gi->output);
    gi->producer = gi->uses = gi->init = gi->input = gi->output = NULL;
}

bnf_status bnf_graph_index(bnf_graph *gi, const bnf_model *m, Onnx__GraphProto *g,
                           int64_t ir_version, bnf_err *err)
{
    size_t n = g->n_node + g->n_initializer + g->n_input + 8;
    memset(gi, 0, sizeof *gi);
    gi->m = m;
    gi->g = g;
    gi->ir_version = ir_version;
    gi->producer = bnf_strmap_new(n);
    gi->uses = bnf_strmap_new(n);
    gi->init = bnf_strmap_new(g->n_initializer);
    gi->input = bnf_strmap_new(g->n_input);
    gi->output = bnf_strmap_new(g->n_output);
    if (!gi->producer || !gi->uses || !gi->init || !gi->input || !gi->output)
        goto nomem;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        for (size_t k = 0; k < nd->n_output; k++)
            if (nd->output[k] && *nd->output[k] &&
                bnf_strmap_put(gi->producer, nd->output[k], (intptr_t)i) != 0)
                goto nomem;
        for (size_t k = 0; k < nd->n_input; k++)
            if (nd->input[k] && *nd->input[k] && bnf_strmap_add(gi->uses, nd->input[k], 1) != 0)
                goto nomem;
    }
    {
        bnf_scope top = {.g = g, .path = ""};
        bnf_status rc = BNF_OK;
        for (size_t i = 0; i < g->n_node && !rc; i++)
            rc = bnf_walk_subgraphs(&subgraph_uses, gi->uses, &top, i, err);
        if (rc) {
            bnf_graph_release(gi);
            return rc;
        }
    }
    for (size_t i = 0; i < g->n_output; i++)
        if (g->output[i]->name && (bnf_strmap_put(gi->output, g->output[i]->name, (intptr_t)i) ||
                                   bnf_strmap_add(gi->uses, g->output[i]->name, 1)))
            goto nomem;
    for (size_t i = 0; i < g->n_input; i++)
        if (g->input[i]->name && bnf_strmap_put(gi->input, g->input[i]->name, (intptr_t)i) != 0)
            goto nomem;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name &&
            bnf_strmap_put(gi->init, g->initializer[i]->name, (intptr_t)i) != 0)
            goto nomem;
    return BNF_OK;
nomem:
    bnf_graph_release(gi);
    return bnf_fail(err, BNF_ERR_NOMEM, "out of memory indexing graph '%s'", S(g->name));
}

bnf_status bnf_graph_reindex(bnf_graph *gi, bnf_err *err)
{
    const bnf_graph *outer = gi->outer;
    bnf_status rc;
    bnf_graph_release(gi);
    rc = bnf_graph_index(gi, gi->m, gi->g, gi->ir_version, err);
    gi->outer = outer;
    return rc;
}

bnf_status bnf_scope_index(bnf_scope *s, const bnf_model *m, int64_t ir_version, bnf_err *err)
{
    bnf_graph *gi = bnf_malloc(sizeof *gi);
    bnf_status rc;
    if (!gi)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if ((rc = bnf_graph_index(gi, m, s->g, ir_version, err))) {
        bnf_free(gi);
        return rc;
    }
    gi->outer = s->outer ? s->outer->gi : NULL;
    s->gi = gi;
    return BNF_OK;
}

void bnf_scope_unindex(bnf_scope *s)
{
    if (s->gi) {
        bnf_graph_release(s->gi);
        bnf_free(s->gi);
        s->gi = NULL;
    }
}

size_t bnf_graph_uses(const bnf_graph *gi, const char *name)
{
    intptr_t v = 0;
    bnf_strmap_get(gi->uses, name, &v);
    return (size_t)v;
}

int bnf_graph_is_output(const bnf_graph *gi, const char *name)
{
    return bnf_strmap_get(gi->output, name, NULL);
}

/* ---- attributes and node edits ------------------------------------------------ */

const Onnx__AttributeProto *bnf_node_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

int64_t bnf_attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = bnf_node_attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

double bnf_attr_float(const Onnx__NodeProto *n, const char *name, double dflt)
{
    const Onnx__AttributeProto *a = bnf_node_attr(n, name);
    return a && a->has_f ? a->f : dflt;
}

/* The node's attribute `name`, added (empty) when it has none; NULL when out of
 * memory. */
static Onnx__AttributeProto *attr_to_set(Onnx__NodeProto *n, const char *name)
{
    Onnx__AttributeProto *a = (Onnx__AttributeProto *)bnf_node_attr(n, name), **grown;
    if (a)
        return a;
    grown = bnf_realloc(n->attribute, (n->n_attribute + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    n->attribute = grown;
    a = bnf_malloc(sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = bnf_strdup(name);
    if (!a->name) {
        bnf_free(a);
        return NULL;
    }
    n->attribute[n->n_attribute++] = a;
    return a;
}

bnf_status bnf_node_set_attr_float(Onnx__NodeProto *n, const char *name, float v, bnf_err *err)
{
    Onnx__AttributeProto *a = attr_to_set(n, name);
    if (!a)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
    return BNF_OK;
}

bnf_status bnf_node_set_attr_int(Onnx__NodeProto *n, const char *name, int64_t v, bnf_err *err)
{
    Onnx__AttributeProto *a = attr_to_set(n, name);
    if (!a)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
    return BNF_OK;
}

Onnx__NodeProto *bnf_node_new(const char *op_type, const char *name, const char *const *inputs,
                              size_t n_in, const char *const *outputs, size_t n_out)
{
    Onnx__NodeProto *n = bnf_malloc(sizeof *n);
    int ok;
    if (!n)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = bnf_strdup(op_type);
    n->name = bnf_strdup(name);
    n->input = bnf_calloc(n_in + 1, sizeof *n->input);
    n->output = bnf_calloc(n_out + 1, sizeof *n->output);
    ok = n->op_type && n->name && n->input && n->output;
    for (size_t i = 0; ok && i < n_in; i++)
        ok = (n->input[n->n_input++] = bnf_strdup(inputs[i])) != NULL;
    for (size_t i = 0; ok && i < n_out; i++)
        ok = (n->output[n->n_output++] = bnf_strdup(outputs[i])) != NULL;
    if (!ok) {
        onnx__node_proto__free_unpacked(n, &bnf_pbc_allocator);
        return NULL;
    }
    return n;
}

bnf_status bnf_graph_insert_node(bnf_graph *gi, size_t i, Onnx__NodeProto *node, bnf_err *err)
{
    Onnx__GraphProto *g = gi->g;
    Onnx__NodeProto **grown = bnf_realloc(g->node, (g->n_node + 1) * sizeof *grown);
    if (!grown) {
        onnx__node_proto__free_unpacked(node, bnf_model_alloc(gi->m));
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    g->node = grown;
    memmove(&g->node[i + 1], &g->node[i], (g->n_node - i) * sizeof *g->node);
    g->node[i] = node;
    g->n_node++;
    return BNF_OK;
}

const char *bnf_node_output0(const Onnx__NodeProto *n)
{
    return n->n_output && n->output[0] && *n->output[0] ? n->output[0] : NULL;
}

const char *bnf_node_input(const Onnx__NodeProto *n, size_t i)
{
    return i < n->n_input && n->input[i] && *n->input[i] ? n->input[i] : NULL;
}

static bnf_status set_string(char ***list, size_t *count, size_t i, const char *name,
                             bnf_err *err)
{
    char *copy = bnf_strdup(name);
    if (!copy)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if (i >= *count) {
        char **grown = bnf_realloc(*list, (i + 1) * sizeof *grown);
        if (!grown) {
            bnf_free(copy);
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
        *list = grown;
        for (size_t k = *count; k < i; k++) {
            grown[k] = bnf_strdup("");
            if (!grown[k]) {
                *count = k;
                bnf_free(copy);
                return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            }
        }
        grown[i] = NULL;
        *count = i + 1;
    }
    bnf_free((*list)[i]);
    (*list)[i] = copy;
    return BNF_OK;
}

bnf_status bnf_node_set_input(Onnx__NodeProto *n, size_t i, const char *name, bnf_err *err)
{
    return set_string(&n->input, &n->n_input, i, name, err);
}

bnf_status bnf_node_set_output(Onnx__NodeProto *n, size_t i, const char *name, bnf_err *err)
{
    return set_string(&n->output, &n->n_output, i, name, err);
}

/* ---- constants ----------------------------------------------------------------- */

static bnf_status const_from_node(const bnf_model *m, const Onnx__NodeProto *nd,
                                  int shape_only, const Onnx__TensorProto **proto,
                                  bnf_const_kind *kind, bnf_array *out, bnf_err *err)
{
    const Onnx__AttributeProto *a;
    if ((a = bnf_node_attr(nd, "value")) && a->t) {
        if (!bnf_dtype_is_real(a->t->data_type)) {
            *kind = BNF_CONST_DTYPE;
            return BNF_OK;
        }
        *kind = BNF_CONST_YES;
        *proto = a->t;
        return shape_only ? bnf_proto_shape(a->t, out, err) : bnf_proto_read(m, a->t, out, err);
    }
    if ((a = bnf_node_attr(nd, "value_float")) || (a = bnf_node_attr(nd, "value_floats"))) {
        int scalar = strcmp(a->name, "value_float") == 0;
        size_t n = scalar ? 1 : a->n_floats;
        memset(out, 0, sizeof *out);
        out->dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        out->rank = scalar ? 0 : 1;
        out->n = n;
        out->dims = bnf_malloc(sizeof *out->dims);
        out->v = bnf_malloc((n ? n : 1) * sizeof *out->v);
        if (!out->dims || !out->v) {
            bnf_array_release(out);
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
        out->dims[0] = (int64_t)n;
        for (size_t i = 0; i < n; i++)
            out->v[i] = scalar ? a->f : a->floats[i];
        *kind = BNF_CONST_YES;
        return BNF_OK;
    }
    *kind = BNF_CONST_DTYPE; /* integer, string or sparse constants */
    return BNF_OK;
}

static bnf_status graph_const(const bnf_model *m, const bnf_graph *gi, const char *name,
                              int shape_only, const Onnx__TensorProto **proto,
                              bnf_const_kind *kind, bnf_array *out, bnf_err *err)
{
    memset(out, 0, sizeof *out);
    *proto = NULL;
    for (int hops = 0; hops < 64; hops++) {
        intptr_t idx;
        /* a name this graph does not define is its enclosing graph's */
        while (gi->outer && !bnf_strmap_get(gi->init, name, NULL) &&
               !bnf_strmap_get(gi->producer, name, NULL) && !bnf_strmap_get(gi->input, name, NULL))
            gi = gi->outer;
        if (bnf_strmap_get(gi->init, name, &idx)) {
            const Onnx__TensorProto *t = gi->g->initializer[idx];
            if (gi->ir_version >= 4 && bnf_strmap_get(gi->input, name, NULL)) {
                *kind = BNF_CONST_OVERRIDABLE;
                return BNF_OK;
            }
            if (!bnf_dtype_is_real(t->data_type)) {
                *kind = BNF_CONST_DTYPE;
                return BNF_OK;
            }
            *kind = BNF_CONST_YES;
            *proto = t;
            return shape_only ? bnf_proto_shape(t, out, err) : bnf_proto_read(m, t, out, err);
        }
        if (!bnf_strmap_get(gi->producer, name, &idx))
            break;
        const Onnx__NodeProto *nd = gi->g->node[idx];
        if (bnf_is_op(nd, "Constant"))
            return const_from_node(m, nd, shape_only, proto, kind, out, err);
        if (!bnf_is_op(nd, "Identity") || !bnf_node_input(nd, 0))
            break;
        name = nd->input[0];
    }
    *kind = BNF_CONST_NO;
    return BNF_OK;
}

bnf_status bnf_graph_const(const bnf_model *m, const bnf_graph *gi, const char *name,
                           bnf_const_kind *kind, bnf_array *out, bnf_err *err)
{
    const Onnx__TensorProto *proto;
    return graph_const(m, gi, name, 0, &proto, kind, out, err);
}

bnf_status bnf_graph_const_shape(const bnf_model *m, const bnf_graph *gi, const char *name,
                                 const Onnx__TensorProto **proto, bnf_const_kind *kind,
                                 bnf_array *out, bnf_err *err)
{
    return graph_const(m, gi, name, 1, proto, kind, out, err);
}

/* ---- names ------------------------------------------------------------------------ */

/* The set owns copies of its names: passes free the strings of the model. */
static int names_add(bnf_names *nm, const char *name)
{
    char *copy;
    if (!name || bnf_strmap_get(nm->names, name, NULL))
        return 0;
    if (nm->n_owned == nm->cap_owned) {
        size_t cap = nm->cap_owned ? nm->cap_owned * 2 : 64;
        char **grown = bnf_realloc(nm->owned, cap * sizeof *grown);
        if (!grown)
            return -1;
        nm->owned = grown;
        nm->cap_owned = cap;
    }
    if (!(copy = bnf_strdup(name)))
        return -1;
    nm->owned[nm->n_owned++] = copy;
    return bnf_strmap_put(nm->names, copy, 1);
}

static int names_add_values(bnf_names *nm, Onnx__ValueInfoProto *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names_add(nm, v[i]->name))
            return -1;
    return 0;
}

static bnf_status names_of_graph(void *nm, bnf_scope *s, bnf_err *err)
{
    const Onnx__GraphProto *g = s->g;
    if (names_add_values(nm, g->input, g->n_input) || names_add_values(nm, g->output, g->n_output) ||
        names_add_values(nm, g->value_info, g->n_value_info))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < g->n_initializer; i++)
        if (names_add(nm, g->initializer[i]->name))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

static bnf_status names_of_node(void *nm, bnf_scope *s, size_t i, bnf_err *err)
{
    const Onnx__NodeProto *n = s->g->node[i];
    for (size_t k = 0; k < n->n_input; k++)
        if (names_add(nm, n->input[k]))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n->n_output; k++)
        if (names_add(nm, n->output[k]))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return BNF_OK;
}

bnf_status bnf_names_collect(bnf_names *nm, const Onnx__ModelProto *p, bnf_err *err)
{
    static const bnf_visitor names_visitor = {.enter = names_of_graph, .node = names_of_node};
    bnf_status rc;
    memset(nm, 0, sizeof *nm);
    nm->names = bnf_strmap_new(p->graph ? p->graph->n_node * 2 + p->graph->n_initializer : 16);
    if (!nm->names)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    /* the walk edits nothing: the model stays as it is */
    if ((rc = bnf_walk_model(&names_visitor, nm, (Onnx__ModelProto *)p, err)))
        bnf_names_release(nm);
    return rc;
}

const char *bnf_names_fresh(bnf_names *nm, const char *base, const char *suffix, bnf_err *err)
{
    size_t len = strlen(base) + strlen(suffix) + 24;
    char *name = bnf_malloc(len);
    const char *kept = NULL;
    if (name) {
        /* a name this pass made already (W_bnfold) gets a number, not W_bnfold_bnfold */
        size_t sl = strlen(suffix);
        const char *hit = NULL, *p = base;
        int stem = (int)strlen(base);
        while (sl && (p = strstr(p, suffix)))
            hit = p++;
        if (hit) {
            const char *rest = hit + sl;
            if (!*rest || (rest[0] == '_' && rest[1] && strspn(rest + 1, "0123456789") ==
                                                         strlen(rest + 1)))
                stem = (int)(hit - base);
        }
        snprintf(name, len, "%.*s%s", stem, base, suffix);
        for (unsigned k = 2; bnf_strmap_get(nm->names, name, NULL); k++)
            snprintf(name, len, "%.*s%s_%u", stem, base, suffix, k);
        if (names_add(nm, name) == 0)
            kept = nm->owned[nm->n_owned - 1];
        bnf_free(name);
    }
    if (!kept)
        bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    return kept;
}

void bnf_names_release(bnf_names *nm)
{
    bnf_strmap_free(nm->names);
    for (size_t i = 0; i < nm->n_owned; i++)
        bnf_free(nm->owned[i]);
    bnf_free(nm->owned);
    memset(nm, 0, sizeof *nm);
}

/* ---- adding and removing ------------------------------------------------------------- */

static Onnx__ValueInfoProto *value_info_for(const Onnx__TensorProto *t)
{
    Onnx__ValueInfoProto *vi = bnf_malloc(sizeof *vi);
    Onnx__TypeProto *tp = bnf_malloc(sizeof *tp);
    Onnx__TypeProto__Tensor *tt = bnf_malloc(sizeof *tt);
    Onnx__TensorShapeProto *sh = bnf_malloc(sizeof *sh);
    if (!vi || !tp || !tt || !sh)
        goto fail;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = t->data_type;
    tt->shape = sh;
    tp = NULL;
    tt = NULL;
    sh = NULL;
    vi->name = bnf_strdup(t->name);
    vi->type->tensor_type->shape->dim = bnf_calloc(t->n_dims ? t->n_dims : 1, sizeof(void *));
    if (!vi->name || !vi->type->tensor_type->shape->dim)
        goto fail;
    for (size_t i = 0; i < t->n_dims; i++) {
        Onnx__TensorShapeProto__Dimension *d = bnf_malloc(sizeof *d);
        if (!d)
            goto fail;
        onnx__tensor_shape_proto__dimension__init(d);
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = t->dims[i];
        vi->type->tensor_type->shape->dim[i] = d;
        vi->type->tensor_type->shape->n_dim = i + 1;
    }
    return vi;
fail:
    bnf_free(tp);
    bnf_free(tt);
    bnf_free(sh);
    if (vi)
        onnx__value_info_proto__free_unpacked(vi, &bnf_pbc_allocator);
    return NULL;
}

bnf_status bnf_graph_add_initializer(bnf_graph *gi, Onnx__TensorProto *t, bnf_err *err)
{
    Onnx__GraphProto *g = gi->g;
    Onnx__TensorProto **grown = bnf_realloc(g->initializer, (g->n_initializer + 1) * sizeof *grown);
    if (!grown) {
        onnx__tensor_proto__free_unpacked(t, bnf_model_alloc(gi->m));
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    g->initializer = grown;
    g->initializer[g->n_initializer++] = t;
    if (bnf_strmap_put(gi->init, t->name, (intptr_t)(g->n_initializer - 1)) != 0)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    if (gi->ir_version < 4 && !gi->outer) {
        Onnx__ValueInfoProto *vi = value_info_for(t), **in;
        if (!vi)
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        in = bnf_realloc(g->input, (g->n_input + 1) * sizeof *in);
        if (!in) {
            onnx__value_info_proto__free_unpacked(vi, bnf_model_alloc(gi->m));
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
        g->input = in;
        g->input[g->n_input++] = vi;
        if (bnf_strmap_put(gi->input, vi->name, (intptr_t)(g->n_input - 1)) != 0)
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    return BNF_OK;
}

void bnf_graph_remove_node(bnf_graph *gi, size_t i)
{
    Onnx__GraphProto *g = gi->g;
    onnx__node_proto__free_unpacked(g->node[i], bnf_model_alloc(gi->m));
    memmove(&g->node[i], &g->node[i + 1], (g->n_node - i - 1) * sizeof *g->node);
    g->n_node--;
}

void bnf_graph_forget_value_info(bnf_graph *gi, const char *name)
{
    Onnx__GraphProto *g = gi->g;
    for (size_t i = 0; i < g->n_value_info; i++) {
        if (g->value_info[i]->name && strcmp(g->value_info[i]->name, name) == 0) {
            onnx__value_info_proto__free_unpacked(g->value_info[i], bnf_model_alloc(gi->m));
            memmove(&g->value_info[i], &g->value_info[i + 1],
                    (g->n_value_info - i - 1) * sizeof *g->value_info);
            g->n_value_info--;
            return;
        }
    }
}

/* What a collection takes out: marked while the index is kept up to date by
 * hand (a value's entries get index -1, uses drop), then freed and the lists
 * closed up at the end with one re-index.  The names the index borrows stay
 * alive until then. */
typedef struct {
    uint8_t *node, *init, *input; /* 1: taken out */
    int any;
} dead_set;

/* Removes what produced `name` if nothing uses it.  *next gets a copy of the
 * input an Identity node read, to be looked at in turn. */
static bnf_status collect_one(bnf_graph *gi, dead_set *dead, const char *name, char **next,
                              bnf_err *err)
{
    Onnx__GraphProto *g = gi->g;
    intptr_t idx;
    *next = NULL;
    if (bnf_graph_uses(gi, name) > 0)
        return BNF_OK;
    if (bnf_strmap_get(gi->init, name, &idx) && idx >= 0) {
        intptr_t in;
        if (bnf_strmap_get(gi->input, name, &in) && in >= 0) {
            if (gi->ir_version >= 4)
                return BNF_OK; /* part of the graph's interface: keep it */
            dead->input[in] = 1;
            if (bnf_strmap_put(gi->input, name, -1) != 0)
                return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
        dead->init[idx] = dead->any = 1;
        return bnf_strmap_put(gi->init, name, -1) != 0
                   ? bnf_fail(err, BNF_ERR_NOMEM, "out of memory") : BNF_OK;
    }
    if (bnf_strmap_get(gi->producer, name, &idx) && idx >= 0) {
        Onnx__NodeProto *nd = g->node[idx];
        if (!bnf_is_op(nd, "Constant") && !bnf_is_op(nd, "Identity"))
            return BNF_OK;
        for (size_t k = 0; k < nd->n_output; k++)
            if (nd->output[k] && *nd->output[k] && bnf_graph_uses(gi, nd->output[k]) > 0)
                return BNF_OK;
        if (bnf_is_op(nd, "Identity") && bnf_node_input(nd, 0)) {
            if (!(*next = bnf_strdup(nd->input[0])) ||
                bnf_strmap_add(gi->uses, nd->input[0], -1) != 0)
                return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
        for (size_t k = 0; k < nd->n_output; k++)
            if (nd->output[k]) {
                bnf_graph_forget_value_info(gi, nd->output[k]);
                if (*nd->output[k] && bnf_strmap_put(gi->producer, nd->output[k], -1) != 0)
                    return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            }
        dead->node[idx] = dead->any = 1;
    }
    return BNF_OK;
}

/* Frees the marked items of one list and closes it up. */
#define CLOSE_UP(list, n, marks, free_fn)                                                   do {                                                                                        size_t kept_ = 0;                                                                       for (size_t i_ = 0; i_ < (n); i_++) {                                                       if ((marks)[i_])                                                                            free_fn((list)[i_], bnf_model_alloc(gi->m));                                        else                                                                                        (list)[kept_++] = (list)[i_];                                                   }                                                                                       (n) = kept_;                                                                        } while (0)

bnf_status bnf_graph_collect(bnf_graph *gi, char **candidates, size_t n, bnf_err *err)
{
    Onnx__GraphProto *g = gi->g;
    dead_set dead = {0};
    bnf_status rc = BNF_OK;
    dead.node = bnf_calloc(g->n_node + 1, 1);
    dead.init = bnf_calloc(g->n_initializer + 1, 1);
    dead.input = bnf_calloc(g->n_input + 1, 1);
    if (!dead.node || !dead.init || !dead.input)
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        char *name = candidates[i] ? bnf_strdup(candidates[i]) : NULL;
        if (candidates[i] && !name)
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        while (name && !rc) {
            char *next = NULL;
            rc = collect_one(gi, &dead, name, &next, err);
            bnf_free(name);
            name = next;
        }
        bnf_free(name);
    }
    if (dead.any) { /* also after a failure: the marks are already in the index */
        bnf_status rc2;
        CLOSE_UP(g->node, g->n_node, dead.node, onnx__node_proto__free_unpacked);
        CLOSE_UP(g->initializer, g->n_initializer, dead.init, onnx__tensor_proto__free_unpacked);
        CLOSE_UP(g->input, g->n_input, dead.input, onnx__value_info_proto__free_unpacked);
        rc2 = bnf_graph_reindex(gi, err);
        if (!rc)
            rc = rc2;
    }
    bnf_free(dead.node);
    bnf_free(dead.init);
    bnf_free(dead.input);
    return rc;
}
#undef CLOSE_UP

/* ---- ranks ------------------------------------------------------------------------ */

/* The rank of value `name` in the list v when it says (dims[d] its size, -1
 * when symbolic), -1 when it does not. */
static int shape_in(Onnx__ValueInfoProto *const *v, size_t n, const char *name, int64_t *dims,
                    size_t max)
{
    for (size_t i = 0; i < n; i++) {
        const Onnx__TypeProto *t = v[i]->type;
        const Onnx__TensorShapeProto *sh;
        if (!v[i]->name || strcmp(v[i]->name, name) != 0)
            continue;
        if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type ||
            !(sh = t->tensor_type->shape))
            return -1;
        for (size_t d = 0; d < sh->n_dim && d < max; d++)
            dims[d] = sh->dim[d]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                          ? sh->dim[d]->dim_value : -1;
        return (int)sh->n_dim;
    }
    return -1;
}

/* The rank of a constant initializer of this graph named `name`, or -1. */
static int init_rank(const bnf_graph *gi, const char *name)
{
    intptr_t ii;
    return name && bnf_strmap_get(gi->init, name, &ii) ? (int)gi->g->initializer[ii]->n_dims : -1;
}

static int shape_of(const bnf_graph *gi, const char *name, int64_t *dims, size_t max, int depth)
{
    const Onnx__GraphProto *g = gi->g;
    for (size_t d = 0; d < max; d++)
        dims[d] = -1;
    for (int hops = 0; hops < 16 && depth < 8; hops++) {
        int r;
        intptr_t idx;
        const Onnx__NodeProto *n;
        if ((r = shape_in(g->value_info, g->n_value_info, name, dims, max)) >= 0 ||
            (r = shape_in(g->input, g->n_input, name, dims, max)) >= 0 ||
            (r = shape_in(g->output, g->n_output, name, dims, max)) >= 0)
            return r;
        if (!bnf_strmap_get(gi->producer, name, &idx))
            return -1;
        n = g->node[idx];
        if (!bnf_is_onnx_domain(n->domain) || !n->op_type)
            return -1;
        if (!strcmp(n->op_type, "Flatten") || !strcmp(n->op_type, "Gemm"))
            return 2;
        if (!strcmp(n->op_type, "Reshape") && bnf_node_input(n, 1)) {
            intptr_t ii;
            if (bnf_strmap_get(gi->init, n->input[1], &ii) &&
                gi->g->initializer[ii]->n_dims == 1)
                return (int)gi->g->initializer[ii]->dims[0];
            return -1;
        }
        /* a convolution's output has its weight's rank */
        if ((!strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "ConvTranspose")) &&
            init_rank(gi, bnf_node_input(n, 1)) >= 3)
            return init_rank(gi, bnf_node_input(n, 1));
        /* two-input elementwise operators broadcast: the larger rank */
        if ((!strcmp(n->op_type, "Add") || !strcmp(n->op_type, "Mul") ||
             !strcmp(n->op_type, "Sub") || !strcmp(n->op_type, "Div")) && n->n_input == 2) {
            int64_t scratch[BNF_MAX_RANK];
            int r0, r1;
            if ((r0 = init_rank(gi, n->input[0])) < 0)
                r0 = shape_of(gi, S(n->input[0]), scratch, BNF_MAX_RANK, depth + 1);
            if ((r1 = init_rank(gi, n->input[1])) < 0)
                r1 = shape_of(gi, S(n->input[1]), scratch, BNF_MAX_RANK, depth + 1);
            for (size_t d = 0; d < max; d++)
                dims[d] = -1;
            return r0 < 0 || r1 < 0 ? -1 : r0 > r1 ? r0 : r1;
        }
        /* shape-preserving one-input operators: look through them */
        if (strcmp(n->op_type, "Identity") && strcmp(n->op_type, "Relu") &&
            strcmp(n->op_type, "BatchNormalization") && strcmp(n->op_type, "Dropout") &&
            strcmp(n->op_type, "Sigmoid") && strcmp(n->op_type, "Tanh") &&
            strcmp(n->op_type, "Clip") && strcmp(n->op_type, "LeakyRelu"))
            return -1;
        if (!bnf_node_input(n, 0))
            return -1;
        name = n->input[0];
    }
    return -1;
}

int bnf_graph_shape(const bnf_graph *gi, const char *name, int64_t *dims, size_t max)
{
    return shape_of(gi, name, dims, max, 0);
}

int bnf_graph_rank(const bnf_graph *gi, const char *name)
{
    int64_t dims[BNF_MAX_RANK];
    return bnf_graph_shape(gi, name, dims, BNF_MAX_RANK);
}

static int32_t elem_in(Onnx__ValueInfoProto *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        const Onnx__TypeProto *t = v[i]->type;
        if (v[i]->name && strcmp(v[i]->name, name) == 0 && t &&
            t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type &&
            t->tensor_type->has_elem_type)
            return t->tensor_type->elem_type;
    }
    return 0;
}

int32_t bnf_graph_elem_type(const bnf_graph *gi, const char *name)
{
    /* operators whose output has the element type of their input 0 */
    static const char *const same_type[] = {
        "Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Dropout", "Flatten",
        "Reshape", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "Conv", "ConvTranspose", "Gemm", "MatMul", "Add",
        "Sub", "Mul", "Div", "BatchNormalization", "Concat", "Pad", "Resize", "Softmax",
    };
    const Onnx__GraphProto *g = gi->g;
    for (int hops = 0; hops < 32 && name; hops++) {
        intptr_t idx;
        const Onnx__NodeProto *n;
        size_t k = 0;
        int32_t t;
        if ((t = elem_in(g->value_info, g->n_value_info, name)) ||
            (t = elem_in(g->input, g->n_input, name)) ||
            (t = elem_in(g->output, g->n_output, name)))
            return t;
        if (bnf_strmap_get(gi->init, name, &idx))
            return g->initializer[idx]->data_type;
        if (!bnf_strmap_get(gi->producer, name, &idx))
            return 0;
        n = g->node[idx];
        while (k < sizeof same_type / sizeof same_type[0] && !bnf_is_op(n, same_type[k]))
            k++;
        if (k == sizeof same_type / sizeof same_type[0])
            return 0;
        name = bnf_node_input(n, 0);
    }
    return 0;
}
