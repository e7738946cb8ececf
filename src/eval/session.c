/* eval/session.c: runs a model's main graph with the kernels of the registry.
 *
 * Every value name gets a slot.  Initializers are decoded once, when the session
 * is made; activations live from the node that makes them to the last node that
 * reads them and are freed right after it, so peak memory is the weights plus
 * the live activations.  Nodes run in the order the file gives (ONNX requires a
 * topological order; a node whose input is not there yet is an error). */
#include "eval.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(x) ((x) ? (x) : "")

struct bnf_session {
    const bnf_model *m;
    const Onnx__GraphProto *g;
    int64_t opset;
    int threads;
    bnf_strmap *slot_of;      /* value name -> slot */
    size_t n_slots;
    bnf_tensor **slots;       /* NULL until computed */
    unsigned char *keep;      /* initializers and graph outputs: not freed while running */
    size_t *last_use;         /* node index of the last reader */
    const bnf_op_def **kernels;
    size_t *inputs;           /* slots of the real graph inputs */
    size_t n_inputs;
    const Onnx__ValueInfoProto **input_info;
    size_t *outputs;          /* slots of the graph outputs */
    size_t n_outputs;
    bnf_tensor *weights;      /* decoded initializers, one per initializer */
    size_t n_weights;
};

static int64_t domain_opset(const bnf_model *m, const char *domain)
{
    return bnf_model_opset(m->proto, domain ? domain : "");
}

static bnf_status slot(bnf_session *s, const char *name, size_t *out, bnf_err *err)
{
    intptr_t v;
    if (bnf_strmap_get(s->slot_of, name, &v)) {
        *out = (size_t)v;
        return BNF_OK;
    }
    if (bnf_strmap_put(s->slot_of, name, (intptr_t)s->n_slots) != 0)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    *out = s->n_slots++;
    return BNF_OK;
}

void bnf_session_free(bnf_session *s)
{
    if (!s)
        return;
    if (s->slots)
        for (size_t i = 0; i < s->n_slots; i++)
            if (s->slots[i] && !(s->keep && s->keep[i] == 2)) {
                bnf_tensor_clear(s->slots[i]);
                bnf_free(s->slots[i]);
            }
    for (size_t i = 0; i < s->n_weights; i++)
        bnf_tensor_clear(&s->weights[i]);
    bnf_free(s->weights);
    bnf_free(s->slots);
    bnf_free(s->keep);
    bnf_free(s->last_use);
    bnf_free(s->kernels);
    bnf_free(s->inputs);
    bnf_free(s->input_info);
    bnf_free(s->outputs);
    bnf_strmap_free(s->slot_of);
    bnf_free(s);
}

/* Builds "A, B, C" of the operators without a kernel. */
static void missing_ops(const bnf_session *s, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->g->n_node; i++) {
        const Onnx__NodeProto *n = s->g->node[i];
        char item[160];
        if (s->kernels[i])
            continue;
        snprintf(item, sizeof item, "%s%s%s-%lld", n->domain && *n->domain ? n->domain : "",
                 n->domain && *n->domain ? "." : "", S(n->op_type),
                 (long long)domain_opset(s->m, n->domain));
        if (strstr(buf, item))
            continue;
        used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "", item);
        if (used >= size)
            break;
    }
}

bnf_status bnf_session_new(const bnf_model *m, const bnf_session_options *opts,
                           bnf_session **out, bnf_err *err)
{
    const Onnx__GraphProto *g = m->proto->graph;
    bnf_session *s = bnf_calloc(1, sizeof *s);
    size_t n_values = g->n_initializer + g->n_input + g->n_output + 1, k;
    bnf_status rc = BNF_OK;
    int missing = 0;

    *out = NULL;
    if (!s)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    s->m = m;
    s->g = g;
    s->opset = domain_opset(m, "");
    s->threads = opts && opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->threads < 1)
        s->threads = 1;
    for (size_t i = 0; i < g->n_node; i++)
        n_values += g->node[i]->n_input + g->node[i]->n_output;
    s->slot_of = bnf_strmap_new(n_values);
    s->kernels = bnf_calloc(g->n_node + 1, sizeof *s->kernels);
    s->inputs = bnf_calloc(g->n_input + 1, sizeof *s->inputs);
    s->input_info = bnf_calloc(g->n_input + 1, sizeof *s->input_info);
    s->outputs = bnf_calloc(g->n_output + 1, sizeof *s->outputs);
    s->weights = bnf_calloc(g->n_initializer + 1, sizeof *s->weights);
    if (!s->slot_of || !s->kernels || !s->inputs || !s->outputs || !s->weights || !s->input_info) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* kernels first: an unsupported model is refused before any weight is decoded */
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (!n->domain || !*n->domain || strcmp(n->domain, "ai.onnx") == 0)
            s->kernels[i] = bnf_op_find(n->op_type, s->opset);
        missing += !s->kernels[i];
    }
    if (missing) {
        char buf[400];
        missing_ops(s, buf, sizeof buf);
        rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "the evaluator does not implement %s", buf);
        goto fail;
    }
    /* slots: initializers, inputs, node values, outputs */
    for (size_t i = 0; i < g->n_initializer; i++)
        if ((rc = slot(s, S(g->initializer[i]->name), &k, err)))
            goto fail;
    for (size_t i = 0; i < g->n_input; i++)
        if ((rc = slot(s, S(g->input[i]->name), &k, err)))
            goto fail;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; j < n->n_input; j++)
            if (n->input[j] && *n->input[j] && (rc = slot(s, n->input[j], &k, err)))
                goto fail;
        for (size_t j = 0; j < n->n_output; j++)
            if (n->output[j] && *n->output[j] && (rc = slot(s, n->output[j], &k, err)))
                goto fail;
    }
    for (size_t i = 0; i < g->n_output; i++)
        if ((rc = slot(s, S(g->output[i]->name), &s->outputs[i], err)))
            goto fail;
    s->n_outputs = g->n_output;
    s->slots = bnf_calloc(s->n_slots + 1, sizeof *s->slots);
    s->keep = bnf_calloc(s->n_slots + 1, 1);
    s->last_use = bnf_calloc(s->n_slots + 1, sizeof *s->last_use);
    if (!s->slots || !s->keep || !s->last_use) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; j < n->n_input; j++)
            if (n->input[j] && *n->input[j]) {
                bnf_strmap_get(s->slot_of, n->input[j], (intptr_t *)&k);
                s->last_use[k] = i;
            }
    }
    for (size_t i = 0; i < g->n_output; i++)
        s->keep[s->outputs[i]] = 1;
    /* weights: decoded once; 2 marks a slot that points into s->weights */
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        if ((rc = bnf_tensor_from_proto(m, t, &s->weights[i], err)))
            goto fail;
        s->n_weights = i + 1;
        bnf_strmap_get(s->slot_of, S(t->name), (intptr_t *)&k);
        s->slots[k] = &s->weights[i];
        s->keep[k] = 2;
    }
    /* every value is made once: not by two nodes, not over an input or weight */
    {
        unsigned char *made = bnf_calloc(s->n_slots + 1, 1);
        if (!made) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < g->n_input; i++) {
            bnf_strmap_get(s->slot_of, S(g->input[i]->name), (intptr_t *)&k);
            made[k] = 1;
        }
        for (size_t i = 0; i < g->n_initializer; i++) {
            bnf_strmap_get(s->slot_of, S(g->initializer[i]->name), (intptr_t *)&k);
            made[k] = 1;
        }
        for (size_t i = 0; i < g->n_node && !rc; i++) {
            const Onnx__NodeProto *n = g->node[i];
            for (size_t j = 0; j < n->n_output && !rc; j++) {
                if (!n->output[j] || !*n->output[j])
                    continue;
                bnf_strmap_get(s->slot_of, n->output[j], (intptr_t *)&k);
                if (made[k]++)
                    rc = bnf_fail(err, BNF_ERR_INVALID,
                                  "%s node '%s': output '%s' is already a graph input, an "
                                  "initializer or another node's output",
                                  S(n->op_type), S(n->name), n->output[j]);
            }
        }
        bnf_free(made);
        if (rc)
            goto fail;
    }
    /* real inputs: graph inputs without an initializer, or overridable ones */
    for (size_t i = 0; i < g->n_input; i++) {
        bnf_strmap_get(s->slot_of, S(g->input[i]->name), (intptr_t *)&k);
        if (s->keep[k] == 2 && m->proto->ir_version < 4)
            continue; /* before IR 4, an initializer listed as input is a constant */
        if (s->keep[k] == 2)
            continue; /* an overridable default: kept at its initializer value */
        s->input_info[s->n_inputs] = g->input[i];
        s->inputs[s->n_inputs++] = k;
    }
    *out = s;
    return BNF_OK;
fail:
    bnf_session_free(s);
    return rc;
}

size_t bnf_session_n_inputs(const bnf_session *s) { return s->n_inputs; }
size_t bnf_session_n_outputs(const bnf_session *s) { return s->n_outputs; }

const char *bnf_session_input_name(const bnf_session *s, size_t i)
{
    return i < s->n_inputs ? S(s->input_info[i]->name) : NULL;
}

const char *bnf_session_output_name(const bnf_session *s, size_t i)
{
    return i < s->n_outputs ? S(s->g->output[i]->name) : NULL;
}

bnf_status bnf_session_input_shape(const bnf_session *s, size_t i, const bnf_dim *dims,
                                   size_t n_dims, int32_t *dtype, int64_t *shape, size_t *rank,
                                   bnf_err *err)
{
    const Onnx__ValueInfoProto *vi = i < s->n_inputs ? s->input_info[i] : NULL;
    const Onnx__TypeProto__Tensor *tt;
    if (!vi)
        return bnf_fail(err, BNF_ERR_USAGE, "no input %zu", i);
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        !(tt = vi->type->tensor_type) || !tt->has_elem_type)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "input '%s' is not a tensor of known type",
                        S(vi->name));
    *dtype = tt->elem_type;
    *rank = 0;
    if (!tt->shape)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "input '%s' has no shape: give it with --input",
                        S(vi->name));
    if (tt->shape->n_dim > BNF_MAX_RANK)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "input '%s' has rank %zu", S(vi->name),
                        tt->shape->n_dim);
    for (size_t d = 0; d < tt->shape->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        int64_t v = 1;
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            v = dim->dim_value;
        else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
            for (size_t k = 0; k < n_dims; k++)
                if (dim->dim_param && strcmp(dims[k].name, dim->dim_param) == 0)
                    v = dims[k].value;
        if (v < 0)
            return bnf_fail(err, BNF_ERR_INVALID, "input '%s' has a negative dimension",
                            S(vi->name));
        shape[d] = v;
    }
    *rank = tt->shape->n_dim;
    return BNF_OK;
}

/* splitmix64: small, seedable, good enough for test inputs */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *state) /* (0, 1) */
{
    return ((double)(next_u64(state) >> 11) + 0.5) / 9007199254740992.0;
}

bnf_status bnf_tensor_random(bnf_tensor *t, int32_t dtype, const int64_t *shape, size_t rank,
                             uint64_t seed, bnf_err *err)
{
    uint64_t st = seed;
    int32_t eval_dt = dtype;
    bnf_status rc;
    if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
        dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16)
        eval_dt = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    memset(t, 0, sizeof *t);
    if ((rc = bnf_tensor_alloc(t, eval_dt, shape, rank, err)))
        return rc;
    for (size_t i = 0; i < t->n; i++) {
        double v;
        if (eval_dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
            eval_dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) /* Box-Muller */
            v = sqrt(-2 * log(next_unit(&st))) * cos(6.283185307179586 * next_unit(&st));
        else if (eval_dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)
            v = (double)(next_u64(&st) & 1);
        else
            v = (double)(next_u64(&st) % 10);
        if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
            dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16)
            v = bnf_round_to(dtype, v);
        bnf_set_f64(t, i, v);
    }
    return BNF_OK;
}

bnf_status bnf_session_inputs(const bnf_session *s, const bnf_named_tensor *given, size_t n_given,
                              const bnf_dim *dims, size_t n_dims, uint64_t seed,
                              bnf_tensor *inputs, bnf_err *err)
{
    const bnf_tensor **bound = bnf_calloc(s->n_inputs + 1, sizeof *bound);
    bnf_status rc = BNF_OK;
    if (!bound)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < s->n_inputs; i++)
        memset(&inputs[i], 0, sizeof inputs[i]);
    /* names first, then the rest in order */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (size_t k = 0; k < n_given && !rc; k++) {
            const char *nm = given[k].name;
            size_t at = s->n_inputs;
            for (size_t i = 0; nm && i < s->n_inputs; i++)
                if (strcmp(nm, bnf_session_input_name(s, i)) == 0)
                    at = i;
            if (pass == 0) {
                if (at < s->n_inputs) {
                    if (bound[at])
                        rc = bnf_fail(err, BNF_ERR_USAGE, "input '%s' is given twice", nm);
                    bound[at] = given[k].tensor;
                } else if (nm && !given[k].name_is_hint) {
                    rc = bnf_fail(err, BNF_ERR_USAGE, "the model has no input named '%s'", nm);
                }
                continue;
            }
            if (at < s->n_inputs)
                continue; /* bound by name in pass 0 */
            for (at = 0; at < s->n_inputs && bound[at]; at++)
                ;
            if (at == s->n_inputs)
                rc = bnf_fail(err, BNF_ERR_USAGE, "more inputs given than the model has (%zu)",
                              s->n_inputs);
            else
                bound[at] = given[k].tensor;
        }
    }
    for (size_t i = 0; i < s->n_inputs && !rc; i++) {
        if (bound[i]) {
            rc = bnf_tensor_copy(&inputs[i], bound[i], err);
        } else {
            int32_t dt;
            int64_t shape[BNF_MAX_RANK];
            size_t rank;
            rc = bnf_session_input_shape(s, i, dims, n_dims, &dt, shape, &rank, err);
            if (!rc)
                rc = bnf_tensor_random(&inputs[i], dt, shape, rank, seed + i, err);
        }
    }
    if (rc)
        for (size_t i = 0; i < s->n_inputs; i++)
            bnf_tensor_clear(&inputs[i]);
    bnf_free(bound);
    return rc;
}

static void release_slot(bnf_session *s, size_t k)
{
    if (s->keep[k] == 2)
        return; /* a weight: lives as long as the session */
    if (s->keep[k] != 3 && s->slots[k]) {
        bnf_tensor_clear(s->slots[k]);
        bnf_free(s->slots[k]);
    }
    s->slots[k] = NULL;
}

bnf_status bnf_session_run(bnf_session *s, const bnf_tensor *const *inputs, bnf_tensor *outputs,
                           bnf_err *err)
{
    return bnf_session_run_observed(s, inputs, outputs, NULL, NULL, err);
}

bnf_status bnf_session_run_observed(bnf_session *s, const bnf_tensor *const *inputs,
                                    bnf_tensor *outputs, bnf_observer observe, void *observer,
                                    bnf_err *err)
{
    const Onnx__GraphProto *g = s->g;
    bnf_status rc = BNF_OK;
    const bnf_tensor *in[64];
    bnf_tensor *outs[64];
    size_t n_input_slots = s->n_inputs;

    openblas_set_num_threads(s->threads);
    for (size_t i = 0; i < s->n_outputs; i++)
        memset(&outputs[i], 0, sizeof outputs[i]);
    /* inputs are borrowed: slots point at the caller's tensors (keep = 3) */
    for (size_t i = 0; i < n_input_slots; i++) {
        s->slots[s->inputs[i]] = (bnf_tensor *)inputs[i];
        s->keep[s->inputs[i]] = 3;
    }
    for (size_t i = 0; i < g->n_node && !rc; i++) {
        const Onnx__NodeProto *n = g->node[i];
        bnf_op_ctx ctx;
        size_t n_in = n->n_input, n_out = n->n_output;
        if (n_in > 64 || n_out > 64) {
            rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "node '%s' has too many inputs or outputs",
                          S(n->name));
            break;
        }
        for (size_t j = 0; j < n_in; j++) {
            size_t k;
            in[j] = NULL;
            if (!n->input[j] || !*n->input[j])
                continue;
            bnf_strmap_get(s->slot_of, n->input[j], (intptr_t *)&k);
            in[j] = s->slots[k];
            if (!in[j])
                rc = bnf_fail(err, BNF_ERR_INVALID,
                              "%s node '%s': input '%s' is not computed before it (graph inputs "
                              "missing or nodes out of order)", S(n->op_type), S(n->name),
                              n->input[j]);
        }
        for (size_t j = 0; j < n_out && !rc; j++) {
            outs[j] = bnf_calloc(1, sizeof *outs[j]);
            if (!outs[j])
                rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        }
        if (rc) {
            for (size_t j = 0; j < n_out; j++)
                if (j < 64 && outs[j])
                    bnf_free(outs[j]), outs[j] = NULL;
            break;
        }
        memset(&ctx, 0, sizeof ctx);
        ctx.node = n;
        ctx.opset = s->opset;
        ctx.in = in;
        ctx.n_in = n_in;
        ctx.out = outs;
        ctx.n_out = n_out;
        ctx.threads = s->threads;
        ctx.err = err;
        rc = s->kernels[i]->run(&ctx);
        for (size_t j = 0; j < n_out; j++) {
            size_t k;
            int named = n->output[j] && *n->output[j];
            if (rc || !named || (!outs[j]->data && outs[j]->n == 0 && outs[j]->rank == 0 &&
                                 outs[j]->dtype == 0)) {
                bnf_tensor_clear(outs[j]);
                bnf_free(outs[j]);
                continue;
            }
            bnf_strmap_get(s->slot_of, n->output[j], (intptr_t *)&k);
            release_slot(s, k);
            s->slots[k] = outs[j];
            if (observe && !rc)
                rc = observe(observer, n->output[j], outs[j], err);
        }
        /* free what no later node reads */
        for (size_t j = 0; j < n_in && !rc; j++) {
            size_t k;
            if (!n->input[j] || !*n->input[j])
                continue;
            bnf_strmap_get(s->slot_of, n->input[j], (intptr_t *)&k);
            if (s->last_use[k] == i && !s->keep[k])
                release_slot(s, k);
        }
    }
    for (size_t i = 0; i < s->n_outputs && !rc; i++) {
        bnf_tensor *t = s->slots[s->outputs[i]];
        if (!t) {
            rc = bnf_fail(err, BNF_ERR_INVALID, "graph output '%s' is not computed",
                          S(g->output[i]->name));
            break;
        }
        rc = bnf_tensor_copy(&outputs[i], t, err);
    }
    /* leave nothing behind but the weights */
    for (size_t k = 0; k < s->n_slots; k++) {
        if (s->keep[k] == 3) {
            s->slots[k] = NULL;
            s->keep[k] = 0;
        } else if (s->keep[k] != 2) {
            release_slot(s, k);
        }
    }
    for (size_t i = 0; i < s->n_outputs; i++)
        s->keep[s->outputs[i]] = s->keep[s->outputs[i]] == 2 ? 2 : 1;
    if (rc)
        for (size_t i = 0; i < s->n_outputs; i++)
            bnf_tensor_clear(&outputs[i]);
    return rc;
}
