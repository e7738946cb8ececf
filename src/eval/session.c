/* eval/session.c: runs a model's main graph with the kernels of the registry.
 *
 * A session is the plan: every value name has a slot, every node its kernel,
 * its input and output slots and what its kernel keeps across runs (packed
 * weights).  A run (bnf_run) is one evaluation's state: the value in each slot,
 * the reads still to come of each, which nodes are done.  A session runs one
 * run at a time through the public API (bnf_session_run); the verifier steps
 * several runs of one or two sessions node by node in lockstep.
 *
 * Weights are read in place: an initializer's bytes are used where the model
 * holds them (the file's mapping, or typed fields) when they are already what
 * a kernel reads (float32, int64, double ... little-endian, aligned), and
 * decoded (float16, bfloat16, external data, unaligned bytes) only when a node
 * first needs them.  A lean session (bnf_session_lean) gives back what a node
 * made of its weights (decoded copies, packed weights, the mapped pages it
 * read) when bnf_session_node_release says the node is done for now, so that
 * memory does not grow with the model.
 *
 * In a run, activations live from the node that makes them to the last node
 * that reads them (a count of reads still to come per value) and are freed
 * right after it.  Nodes run in the order the file gives (ONNX requires a
 * topological order; a node whose input is not there yet is an error).
 *
 * Fusion: when a node is not observed, a Conv followed by BatchNormalization
 * and/or Relu, Clip, Sigmoid or SiLU (Sigmoid + Mul), or by [BatchNormalization]
 * Add [Relu] (a residual connection), whose values in between nothing else
 * reads, computes the chain's result in its own output loop
 * (bnf_epilogue, planned when the session is made, checked against the actual
 * tensors at run time; anything unexpected runs the nodes one by one).  An
 * observed run makes every value, unfused.
 *
 * Threads: the session starts threads - 1 workers (eval/threads.c) that the
 * kernels share their loops and GEMMs out over; OpenBLAS is kept at one thread
 * so that its own workers do not spin against them. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(x) ((x) ? (x) : "")
#define NO_NODE SIZE_MAX

/* Nodes that a Conv computes in its own output loop (bnf_epilogue) when the
 * run is not observed: Conv -> [BatchNormalization] -> [Relu | Clip | Sigmoid |
 * Sigmoid + Mul (SiLU)] or Conv -> [BatchNormalization] -> Add -> [Relu], each
 * value in between read by the next node(s) of the chain only and not a graph
 * output.  The fused Conv writes the value of
 * the chain's last node; the values in between are never made. */
typedef struct {
    size_t bn, act, mul;      /* node indices, or NO_NODE */
    int act_kind;             /* BNF_ACT_* */
    size_t add, relu;         /* Add (of a tensor of the output's shape), Relu after it */
    size_t res_in;            /* the Add's input that is not the chain's value */
    size_t last;              /* the node whose output the Conv writes; NO_NODE: no chain */
} fuse_plan;

/* An initializer as the session reads it: t has its type and shape always,
 * its data once a node has needed it (NULL before, and again after a lean
 * release); borrowed: t.data points into the model's own bytes. */
typedef struct {
    const Onnx__TensorProto *proto;
    bnf_tensor t;
    int borrowed;
} weight;

struct bnf_session {
    const bnf_model *m;
    const Onnx__GraphProto *g;
    int64_t opset;
    int threads;
    int lean;                 /* give back what a node made of its weights when released */
    uint64_t jitter;          /* nonzero: 16-bit weights jittered (bnf_session_jitter_16bit) */
    int has_16bit;            /* an initializer is float16 or bfloat16 */
    bnf_strmap *slot_of;      /* value name -> slot */
    size_t n_slots;
    unsigned char *keep;      /* per slot: 1 graph output, 2 weight (lives with the session) */
    size_t *weight_of;        /* per slot: index in weights, or NO_NODE */
    const bnf_op_def **kernels;
    size_t *inputs;           /* slots of the real graph inputs */
    size_t n_inputs;
    const Onnx__ValueInfoProto **input_info;
    size_t *outputs;          /* slots of the graph outputs */
    size_t n_outputs;
    weight *weights;          /* one per initializer */
    size_t n_weights;
    bnf_pool *pool;           /* threads - 1 workers, or NULL */
    size_t *uses;             /* per slot: how many node inputs read it */
    size_t *producer;         /* per slot: the node that makes it, or NO_NODE */
    fuse_plan *fuse;          /* per node */
    size_t *io;               /* per node: the slots of its inputs, then of its outputs
                               * (NO_NODE for absent ones), from io_at[node] on */
    size_t *io_at;
    bnf_node_cache *cache;    /* per node: what its kernel keeps across runs */
    unsigned *dropped;        /* per node: bit j, input j is in its cache and not read again */
    bnf_run *run;             /* the run of bnf_session_run, made at the first one */
};

struct bnf_run {
    bnf_session *s;
    bnf_tensor **slots;       /* NULL until computed; a weight's slot points into s->weights */
    unsigned char *borrowed;  /* per slot: the caller's input tensor, not freed */
    size_t *left;             /* per slot: reads still to come */
    unsigned char *done;      /* per node: run (or fused into another) */
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

/* Gives back what weight w holds: its decoded data, or the pages of the
 * model's bytes it read; it is made again when a node needs it. */
static void weight_release(bnf_session *s, weight *w)
{
    if (!w->t.data)
        return;
    if (w->borrowed)
        bnf_mapped_release_range(s->m, w->t.data, w->t.n * bnf_eval_size(w->t.dtype));
    else
        bnf_free(w->t.data);
    w->t.data = NULL;
    w->borrowed = 0;
}

void bnf_session_free(bnf_session *s)
{
    if (!s)
        return;
    bnf_run_free(s->run);
    for (size_t i = 0; s->weights && i < s->n_weights; i++)
        weight_release(s, &s->weights[i]);
    bnf_free(s->weights);
    bnf_free(s->keep);
    bnf_free(s->weight_of);
    bnf_free(s->kernels);
    bnf_free(s->inputs);
    bnf_free(s->input_info);
    bnf_free(s->outputs);
    bnf_strmap_free(s->slot_of);
    bnf_free(s->uses);
    bnf_free(s->producer);
    bnf_free(s->fuse);
    bnf_free(s->io);
    bnf_free(s->io_at);
    if (s->cache)
        for (size_t i = 0; i < s->g->n_node; i++)
            if (s->cache[i].data && s->cache[i].free)
                s->cache[i].free(s->cache[i].data);
    bnf_free(s->cache);
    bnf_free(s->dropped);
    bnf_pool_free(s->pool);
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

/* The slot of value `name`, or NO_NODE when absent or empty. */
static size_t name_slot(const bnf_session *s, const char *name)
{
    intptr_t v;
    if (!name || !*name || !bnf_strmap_get(s->slot_of, name, &v))
        return NO_NODE;
    return (size_t)v;
}

/* The slot of input / output j of node i, or NO_NODE when absent or empty. */
static size_t in_slot(const bnf_session *s, size_t i, size_t j)
{
    return j < s->g->node[i]->n_input ? s->io[s->io_at[i] + j] : NO_NODE;
}

static size_t out_slot(const bnf_session *s, size_t i, size_t j)
{
    const Onnx__NodeProto *n = s->g->node[i];
    return j < n->n_output ? s->io[s->io_at[i] + n->n_input + j] : NO_NODE;
}

/* Node i has exactly one named output, output 0. */
static int single_output(const bnf_session *s, size_t i)
{
    const Onnx__NodeProto *n = s->g->node[i];
    if (out_slot(s, i, 0) == NO_NODE)
        return 0;
    for (size_t j = 1; j < n->n_output; j++)
        if (n->output[j] && *n->output[j])
            return 0;
    return 1;
}

/* A value a fused chain may skip: made here, read `reads` times, not a graph output. */
static int inner_value(const bnf_session *s, size_t k, size_t reads)
{
    return k != NO_NODE && s->uses[k] == reads && s->keep[k] == 0;
}

/* The node after `from` whose input `in` is slot k (the first one), or NO_NODE. */
static size_t reader(const bnf_session *s, size_t k, size_t from, size_t in)
{
    for (size_t i = from + 1; i < s->g->n_node; i++)
        if (in_slot(s, i, in) == k)
            return i;
    return NO_NODE;
}

/* The Add node after `from` that reads slot k as one of its two inputs (and
 * something else as the other), or NO_NODE. */
static size_t add_reader(const bnf_session *s, size_t k, size_t from)
{
    for (size_t i = from + 1; i < s->g->n_node; i++) {
        const Onnx__NodeProto *n = s->g->node[i];
        size_t a, b;
        if (!bnf_is_op(n, "Add") || n->n_input != 2 || !single_output(s, i))
            continue;
        a = in_slot(s, i, 0);
        b = in_slot(s, i, 1);
        if ((a == k) != (b == k) && a != NO_NODE && b != NO_NODE)
            return i;
    }
    return NO_NODE;
}

/* Fills s->fuse (see fuse_plan). */
static void plan_fusion(bnf_session *s)
{
    const Onnx__GraphProto *g = s->g;
    for (size_t i = 0; i < g->n_node; i++) {
        fuse_plan *f = &s->fuse[i];
        const Onnx__NodeProto *n = g->node[i];
        size_t v, j, from;
        *f = (fuse_plan){NO_NODE, NO_NODE, NO_NODE, BNF_ACT_NONE, NO_NODE, NO_NODE, 0, NO_NODE};
        if (!bnf_is_op(n, "Conv") || !single_output(s, i))
            continue;
        v = out_slot(s, i, 0);
        /* BatchNormalization (inference, opset 9+: no spatial attribute, no extra outputs) */
        if (s->opset >= 9 && inner_value(s, v, 1) && (j = reader(s, v, i, 0)) != NO_NODE &&
            bnf_is_op(g->node[j], "BatchNormalization") && g->node[j]->n_input == 5 &&
            single_output(s, j) && !bnf_attr_int(g->node[j], "training_mode", 0)) {
            f->bn = f->last = j;
            v = out_slot(s, j, 0);
        }
        from = f->last == NO_NODE ? i : f->last;
        if (inner_value(s, v, 1) && (j = reader(s, v, from, 0)) != NO_NODE &&
            single_output(s, j) &&
            (((bnf_is_op(g->node[j], "Relu") || bnf_is_op(g->node[j], "Sigmoid")) &&
              g->node[j]->n_input == 1) ||
             (bnf_is_op(g->node[j], "Clip") && s->opset >= 11 && g->node[j]->n_input <= 3 &&
              !bnf_node_attr(g->node[j], "min") && !bnf_node_attr(g->node[j], "max")))) {
            f->act = f->last = j;
            f->act_kind = bnf_is_op(g->node[j], "Relu") ? BNF_ACT_RELU
                          : bnf_is_op(g->node[j], "Clip") ? BNF_ACT_CLIP : BNF_ACT_SIGMOID;
        } else if (inner_value(s, v, 2) && (j = reader(s, v, from, 0)) != NO_NODE &&
                   bnf_is_op(g->node[j], "Sigmoid") && g->node[j]->n_input == 1 &&
                   single_output(s, j)) {
            /* SiLU: Mul(v, Sigmoid(v)) in either order */
            size_t sg = out_slot(s, j, 0), mu = NO_NODE;
            for (size_t k = j + 1; k < g->n_node && mu == NO_NODE; k++) {
                const Onnx__NodeProto *m = g->node[k];
                if (bnf_is_op(m, "Mul") && m->n_input == 2 && single_output(s, k) &&
                    ((in_slot(s, k, 0) == v && in_slot(s, k, 1) == sg) ||
                     (in_slot(s, k, 0) == sg && in_slot(s, k, 1) == v)))
                    mu = k;
            }
            if (mu != NO_NODE && inner_value(s, sg, 1)) {
                f->act = j;
                f->mul = f->last = mu;
                f->act_kind = BNF_ACT_SILU;
            }
        }
        /* Add (residual): the chain's value plus another tensor, then maybe Relu */
        from = f->last == NO_NODE ? i : f->last;
        if (f->act == NO_NODE && inner_value(s, v, 1) && (j = add_reader(s, v, from)) != NO_NODE) {
            f->add = f->last = j;
            f->res_in = in_slot(s, j, 0) == v ? 1 : 0;
            v = out_slot(s, j, 0);
            if (inner_value(s, v, 1) && (j = reader(s, v, f->add, 0)) != NO_NODE &&
                bnf_is_op(g->node[j], "Relu") && g->node[j]->n_input == 1 && single_output(s, j))
                f->relu = f->last = j;
        }
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
    if (s->opset > BNF_EVAL_NEWEST_OPSET) {
        rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "the evaluator does not implement ai.onnx opset "
                      "%lld: it knows operators up to opset %d, and a newer opset may have "
                      "changed any of them", (long long)s->opset, BNF_EVAL_NEWEST_OPSET);
        goto fail;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (bnf_is_onnx_domain(n->domain))
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
    s->keep = bnf_calloc(s->n_slots + 1, 1);
    s->weight_of = bnf_calloc(s->n_slots + 1, sizeof *s->weight_of);
    if (!s->keep || !s->weight_of) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->n_slots; i++)
        s->weight_of[i] = NO_NODE;
    for (size_t i = 0; i < g->n_output; i++)
        s->keep[s->outputs[i]] = 1;
    /* weights: their type and shape now, their data when a node needs it;
     * 2 marks a slot that is a weight */
    s->n_weights = g->n_initializer;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        weight *w = &s->weights[i];
        int32_t dt = t->data_type;
        w->proto = t;
        if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
            dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16) {
            dt = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT; /* decoded to float */
            s->has_16bit = 1;
        }
        if (!bnf_eval_size(dt)) {
            rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s': the evaluator has no %s tensors",
                          S(t->name), bnf_dtype_name(t->data_type));
            goto fail;
        }
        if (t->n_dims > BNF_MAX_RANK) {
            rc = bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s' has rank %zu", S(t->name),
                          t->n_dims);
            goto fail;
        }
        if ((rc = bnf_numel(t->dims, t->n_dims, S(t->name), &w->t.n, err)))
            goto fail;
        w->t.dtype = dt;
        w->t.rank = t->n_dims;
        for (size_t d = 0; d < t->n_dims; d++)
            w->t.dims[d] = t->dims[d];
        bnf_strmap_get(s->slot_of, S(t->name), (intptr_t *)&k);
        s->keep[k] = 2;
        s->weight_of[k] = i;
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
    /* reads per value, producers, and the fusion plan */
    /* the slots of every node's inputs and outputs, looked up once */
    {
        size_t total = 0;
        for (size_t i = 0; i < g->n_node; i++)
            total += g->node[i]->n_input + g->node[i]->n_output;
        s->io = bnf_calloc(total + 1, sizeof *s->io);
        s->io_at = bnf_calloc(g->n_node + 1, sizeof *s->io_at);
        if (!s->io || !s->io_at) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto fail;
        }
        total = 0;
        for (size_t i = 0; i < g->n_node; i++) {
            const Onnx__NodeProto *n = g->node[i];
            s->io_at[i] = total;
            for (size_t j = 0; j < n->n_input; j++)
                s->io[total++] = name_slot(s, n->input[j]);
            for (size_t j = 0; j < n->n_output; j++)
                s->io[total++] = name_slot(s, n->output[j]);
        }
    }
    s->uses = bnf_calloc(s->n_slots + 1, sizeof *s->uses);
    s->producer = bnf_calloc(s->n_slots + 1, sizeof *s->producer);
    s->fuse = bnf_calloc(g->n_node + 1, sizeof *s->fuse);
    s->cache = bnf_calloc(g->n_node + 1, sizeof *s->cache);
    s->dropped = bnf_calloc(g->n_node + 1, sizeof *s->dropped);
    if (!s->uses || !s->producer || !s->fuse || !s->cache || !s->dropped) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->n_slots; i++)
        s->producer[i] = NO_NODE;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; j < n->n_input; j++)
            if ((k = in_slot(s, i, j)) != NO_NODE)
                s->uses[k]++;
        for (size_t j = 0; j < n->n_output; j++)
            if ((k = out_slot(s, i, j)) != NO_NODE)
                s->producer[k] = i;
    }
    plan_fusion(s);
    /* the worker threads last: a model that fails above never starts them, and
     * when they cannot be started the session runs on fewer (or one) */
    s->pool = bnf_pool_new(s->threads);
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

/* Each element of a 16-bit weight times 1 + u h, u uniform in [-1, 1] and h
 * half the type's relative precision (2^-11 float16, 2^-8 bfloat16): as much
 * as rounding a value to the type may change it.  The same for a weight every
 * time it is decoded (seeded by the session's seed and the weight). */
static void jitter(const bnf_session *s, const weight *w, float *v)
{
    double h = w->proto->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? 0x1p-11 : 0x1p-8;
    uint64_t st = s->jitter ^ (0x9e3779b97f4a7c15ull * (uint64_t)(w - s->weights + 1));
    for (size_t i = 0; i < w->t.n; i++)
        v[i] = (float)(v[i] * (1 + h * (2 * next_unit(&st) - 1)));
}

int bnf_session_has_16bit(const bnf_session *s)
{
    return s->has_16bit;
}

int bnf_session_jitter_16bit(bnf_session *s, uint64_t seed)
{
    s->jitter = seed ? seed : 1;
    return s->has_16bit;
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
            bnf_tensor_release(&inputs[i]);
    bnf_free(bound);
    return rc;
}

/* ---- weights ------------------------------------------------------------------------ */

/* The bytes of stored tensor t when a kernel can read them as they are: raw
 * little-endian data (or a typed field of the same layout), aligned for the
 * type; else NULL (they are decoded). */
static void *in_place(const Onnx__TensorProto *t, int32_t dtype, size_t n)
{
    size_t es = bnf_eval_size(dtype);
    const void *p = NULL;
    if (dtype != t->data_type || bnf_proto_is_external(t))
        return NULL;
    if (t->has_raw_data) {
        if (t->raw_data.len == n * es)
            p = t->raw_data.data;
    } else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && t->n_float_data == n) {
        p = t->float_data;
    } else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE && t->n_double_data == n) {
        p = t->double_data;
    } else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->n_int64_data == n) {
        p = t->int64_data;
    } else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 && t->n_int32_data == n) {
        p = t->int32_data;
    }
    if (!p || !n || (uintptr_t)p % es != 0)
        return NULL;
    return (void *)p;
}

static void jitter(const bnf_session *s, const weight *w, float *v);

/* Makes weight w's data there for a kernel: in place, or decoded. */
static bnf_status weight_ready(bnf_session *s, weight *w, bnf_err *err)
{
    bnf_tensor t = {0};
    void *p;
    bnf_status rc;
    if (w->t.data || !w->t.n)
        return BNF_OK;
    if ((p = in_place(w->proto, w->t.dtype, w->t.n))) {
        w->t.data = p;
        w->borrowed = 1;
        /* its pages mapped in with one call, not a fault each (a lean session gave
         * them back after the last node that read them) */
        if (s->lean)
            bnf_pages_prefetch(p, w->t.n * bnf_eval_size(w->t.dtype));
        return BNF_OK;
    }
    if ((rc = bnf_tensor_from_proto(s->m, w->proto, &t, err)))
        return rc;
    if (t.dtype != w->t.dtype || t.n != w->t.n) {
        bnf_tensor_release(&t);
        return bnf_fail(err, BNF_ERR_INVALID, "tensor '%s': its data does not match its type "
                        "and shape", w->proto->name ? w->proto->name : "");
    }
    w->t.data = t.data;
    w->borrowed = 0;
    if (s->jitter && (w->proto->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
                      w->proto->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16))
        jitter(s, w, w->t.data);
    return BNF_OK;
}

/* Weights this large, read only as a Gemm's B, stay where they are stored in
 * a lean session: the Gemm reads them a few rows at a time, and memory holds
 * a few MiB of them, not all (vgg's first classifier weight is 411 MB). */
#define STREAM_MIN_BYTES (16u << 20)

/* Whether input j of node i is such a weight (and not in memory already). */
static int streamed(const bnf_session *s, size_t i, size_t j, const weight *w)
{
    const Onnx__TensorProto *p = w->proto;
    size_t bytes = w->t.n * sizeof(float);
    return s->lean && j == 1 && !w->t.data && bnf_is_op(s->g->node[i], "Gemm") &&
           w->t.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && w->t.rank == 2 &&
           w->t.dims[0] > 0 && p->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
           !bnf_proto_is_external(p) && p->has_raw_data && p->raw_data.len == bytes &&
           bytes >= STREAM_MIN_BYTES;
}

void bnf_in_rows(const bnf_op_ctx *ctx, size_t j, size_t r0, size_t nr, float *scratch,
                 const float **p)
{
    const Onnx__TensorProto *t = ctx->stored[j];
    size_t row = ctx->in[j]->n / (size_t)ctx->in[j]->dims[0];
    const uint8_t *b = t->raw_data.data + r0 * row * sizeof(float);
    size_t len = nr * row * sizeof(float);
    if ((uintptr_t)b % sizeof(float) == 0) {
        bnf_pages_prefetch(b, len);
        *p = (const float *)(const void *)b;
    } else {
        memcpy(scratch, b, len);
        *p = scratch;
    }
}

void bnf_in_rows_done(const bnf_op_ctx *ctx, size_t j, size_t r0, size_t nr)
{
    const Onnx__TensorProto *t = ctx->stored[j];
    size_t row = ctx->in[j]->n / (size_t)ctx->in[j]->dims[0];
    bnf_mapped_release_range(ctx->model, t->raw_data.data + r0 * row * sizeof(float),
                             nr * row * sizeof(float));
}

void bnf_session_lean(bnf_session *s)
{
    s->lean = 1;
}

void bnf_session_node_release(bnf_session *s, size_t i)
{
    if (!s->lean || i >= s->g->n_node)
        return;
    if (s->cache[i].data && s->cache[i].free)
        s->cache[i].free(s->cache[i].data);
    memset(&s->cache[i], 0, sizeof s->cache[i]);
    s->dropped[i] = 0;
    for (size_t j = 0; j < s->g->node[i]->n_input; j++) {
        size_t k = in_slot(s, i, j);
        if (k != NO_NODE && s->weight_of[k] != NO_NODE)
            weight_release(s, &s->weights[s->weight_of[k]]);
    }
}

size_t bnf_session_n_nodes(const bnf_session *s)
{
    return s->g->n_node;
}

bnf_pool *bnf_session_pool(const bnf_session *s)
{
    return s->pool;
}

const Onnx__NodeProto *bnf_session_node(const bnf_session *s, size_t i)
{
    return i < s->g->n_node ? s->g->node[i] : NULL;
}

/* ---- runs ---------------------------------------------------------------------------- */

void bnf_run_free(bnf_run *r)
{
    if (!r)
        return;
    bnf_run_end(r);
    bnf_free(r->slots);
    bnf_free(r->borrowed);
    bnf_free(r->left);
    bnf_free(r->done);
    bnf_free(r);
}

bnf_status bnf_run_new(bnf_session *s, bnf_run **out, bnf_err *err)
{
    bnf_run *r = bnf_calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    r->s = s;
    r->slots = bnf_calloc(s->n_slots + 1, sizeof *r->slots);
    r->borrowed = bnf_calloc(s->n_slots + 1, 1);
    r->left = bnf_calloc(s->n_slots + 1, sizeof *r->left);
    r->done = bnf_calloc(s->g->n_node + 1, 1);
    if (!r->slots || !r->borrowed || !r->left || !r->done) {
        bnf_run_free(r);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    *out = r;
    return BNF_OK;
}

/* Empties slot k (a value the run made is freed; a weight or an input stays). */
static void release_slot(bnf_run *r, size_t k)
{
    if (r->slots[k] && !r->borrowed[k] && r->s->keep[k] != 2) {
        bnf_tensor_release(r->slots[k]);
        bnf_free(r->slots[k]);
    }
    r->slots[k] = NULL;
    r->borrowed[k] = 0;
}

void bnf_run_end(bnf_run *r)
{
    for (size_t k = 0; r->slots && r->borrowed && k < r->s->n_slots; k++)
        release_slot(r, k);
}

bnf_status bnf_run_start(bnf_run *r, const bnf_tensor *const *inputs, bnf_err *err)
{
    bnf_session *s = r->s;
    (void)err;
    bnf_run_end(r);
    bnf_blas_load();
    memcpy(r->left, s->uses, s->n_slots * sizeof *r->left);
    memset(r->done, 0, s->g->n_node);
    for (size_t k = 0; k < s->n_slots; k++)
        if (s->weight_of[k] != NO_NODE)
            r->slots[k] = &s->weights[s->weight_of[k]].t;
    /* inputs are borrowed: slots point at the caller's tensors */
    for (size_t i = 0; i < s->n_inputs; i++) {
        r->slots[s->inputs[i]] = (bnf_tensor *)inputs[i];
        r->borrowed[s->inputs[i]] = 1;
    }
    return BNF_OK;
}

int bnf_run_done(const bnf_run *r, size_t i)
{
    return i < r->s->g->n_node && r->done[i];
}

bnf_tensor *bnf_run_value(const bnf_run *r, const char *name, size_t *reads_left)
{
    size_t k = name_slot(r->s, name);
    if (reads_left)
        *reads_left = k == NO_NODE ? 0 : r->left[k];
    return k == NO_NODE || r->s->keep[k] == 2 || r->borrowed[k] ? NULL : r->slots[k];
}

const bnf_tensor *bnf_run_output(const bnf_run *r, size_t k)
{
    return k < r->s->n_outputs ? r->slots[r->s->outputs[k]] : NULL;
}

/* One fewer read to come of each input of node i; frees the values no node
 * reads any more (weights, graph inputs and outputs are kept). */
static void consume_inputs(bnf_run *r, size_t i)
{
    const bnf_session *s = r->s;
    const Onnx__NodeProto *n = s->g->node[i];
    for (size_t j = 0; j < n->n_input; j++) {
        size_t k = in_slot(s, i, j);
        if (k == NO_NODE)
            continue;
        if (r->left[k] > 0)
            r->left[k]--;
        if (r->left[k] == 0 && !s->keep[k] && !r->borrowed[k])
            release_slot(r, k);
    }
}

static bnf_status exec_node(bnf_run *r, size_t i, bnf_observer observe, void *observer,
                            bnf_err *err);

/* Input j of node i as a tensor, running its producer first when that is a
 * Constant node not run yet (the Clip bounds of a fused chain come after the
 * Conv in the file); NULL when absent or not available. */
static const bnf_tensor *fused_input(bnf_run *r, size_t i, size_t j, bnf_err *err,
                                     bnf_status *rc)
{
    bnf_session *s = r->s;
    size_t k = in_slot(s, i, j), p;
    if (k == NO_NODE)
        return NULL;
    p = s->producer[k];
    if (!r->slots[k] && p != NO_NODE && !r->done[p] && s->g->node[p]->n_input == 0 &&
        bnf_is_op(s->g->node[p], "Constant")) {
        r->done[p] = 1;
        *rc = exec_node(r, p, NULL, NULL, err);
    }
    if (r->slots[k] && s->weight_of[k] != NO_NODE && !*rc)
        *rc = weight_ready(s, &s->weights[s->weight_of[k]], err);
    return *rc ? NULL : r->slots[k];
}

/* A float value of exactly `count` elements (and rank 1 when rank1), as
 * float; NULL otherwise. */
static const float *float_vec(const bnf_tensor *t, size_t count, int rank1)
{
    if (!t || t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || t->n != count ||
        (rank1 && t->rank != 1))
        return NULL;
    return t->data;
}

/* The epilogue of Conv node i's fusion plan, with the BatchNormalization
 * factors in *aff (2 * channels floats, the caller frees).  Sets *ok to 0 (and
 * makes nothing) when the run-time values do not fit it (types, shapes, bounds
 * that are not constants): then the nodes run one by one. */
static bnf_status fused_epilogue(bnf_run *r, size_t i, fuse_plan *f,
                                 const bnf_tensor *const *in, size_t n_in, bnf_epilogue *e,
                                 float **aff, int *ok, bnf_err *err)
{
    const bnf_session *s = r->s;
    const bnf_tensor *w = n_in > 1 ? in[1] : NULL;
    bnf_status rc = BNF_OK;
    size_t m;
    *ok = 0;
    *aff = NULL;
    if (!w || w->rank < 1 || w->dims[0] < 1)
        return BNF_OK;
    m = (size_t)w->dims[0];
    *e = (bnf_epilogue){NULL, NULL, m, f->act_kind, 0, 0, NULL, 0, BNF_ACT_NONE, NULL};
    if (f->bn != NO_NODE) {
        const float *p[4];
        double eps = bnf_attr_float(s->g->node[f->bn], "epsilon", 1e-5);
        for (size_t j = 0; j < 4; j++) {
            p[j] = float_vec(fused_input(r, f->bn, j + 1, err, &rc), m, 1);
            if (rc)
                return rc;
            if (!p[j])
                return BNF_OK;
        }
        if (!isfinite(eps) || eps < 0)
            return BNF_OK;
        if (!(*aff = bnf_malloc(2 * m * sizeof **aff)))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        /* as BatchNormalization computes them (eval/ops/norm.c) */
        for (size_t c = 0; c < m; c++) {
            double sc = p[0][c] / sqrt((double)p[3][c] + eps);
            double sh = (double)p[1][c] - (double)p[2][c] * sc;
            if (!isfinite((float)sc) || !isfinite((float)sh)) { /* the BN kernel's care */
                bnf_free(*aff);
                *aff = NULL;
                return BNF_OK;
            }
            (*aff)[c] = (float)sc;
            (*aff)[m + c] = (float)sh;
        }
        e->scale = *aff;
        e->shift = *aff + m;
    }
    if (f->act_kind == BNF_ACT_CLIP) {
        e->lo = -INFINITY;
        e->hi = INFINITY;
        for (size_t j = 1; j < 3; j++) {
            const bnf_tensor *b;
            if (in_slot(s, f->act, j) == NO_NODE)
                continue;
            b = fused_input(r, f->act, j, err, &rc);
            if (rc)
                return rc;
            if (!float_vec(b, 1, 0))
                return BNF_OK; /* unfused Clip reports what is wrong */
            if (j == 1)
                e->lo = ((const float *)b->data)[0];
            else
                e->hi = ((const float *)b->data)[0];
        }
    }
    if (f->add != NO_NODE) {
        /* the other operand of the Add: a float tensor of the Conv output's shape */
        const bnf_tensor *res = fused_input(r, f->add, f->res_in, err, &rc);
        int64_t dims[BNF_MAX_RANK];
        size_t rank;
        bnf_op_ctx c;
        bnf_err scratch;
        if (rc)
            return rc;
        if (!res) {
            /* not computed yet (it comes later in the file): stop before the Add */
            f->add = f->relu = NO_NODE;
            f->last = f->bn;
            *ok = f->last != NO_NODE;
            return BNF_OK;
        }
        if (res->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            return BNF_OK;
        memset(&c, 0, sizeof c);
        c.node = s->g->node[i];
        c.opset = s->opset;
        c.in = in;
        c.n_in = n_in;
        c.threads = 1;
        c.err = &scratch;
        if (bnf_conv_out_dims(&c, dims, &rank) != BNF_OK || rank != res->rank)
            return BNF_OK; /* the Conv reports what is wrong when it runs */
        for (size_t d = 0; d < rank; d++)
            if (dims[d] != res->dims[d])
                return BNF_OK;
        e->res = res->data;
        e->res_n = res->n;
        e->post = f->relu != NO_NODE ? BNF_ACT_RELU : BNF_ACT_NONE;
    }
    *ok = 1;
    return BNF_OK;
}

/* Frees the data of the weights node i's kernel no longer needs (cache->
 * drop_in), each when this node is its only reader and it is no graph output;
 * the tensors keep their type and shape (a weight read in place gives back its
 * pages instead). */
static void drop_inputs(bnf_session *s, size_t i, bnf_node_cache *cache)
{
    const Onnx__NodeProto *n = s->g->node[i];
    for (size_t j = 0; j < n->n_input && j < 32; j++) {
        size_t k = in_slot(s, i, j);
        int out = 0;
        if (!(cache->drop_in & 1u << j) || k == NO_NODE || s->keep[k] != 2 || s->uses[k] != 1)
            continue;
        for (size_t o = 0; o < s->n_outputs; o++)
            out |= s->outputs[o] == k;
        if (!out) {
            weight_release(s, &s->weights[s->weight_of[k]]);
            s->dropped[i] |= 1u << j;
        }
    }
    cache->drop_in = 0;
}

/* Runs node i (and the nodes fused into it, when it is not observed). */
static bnf_status exec_node(bnf_run *r, size_t i, bnf_observer observe, void *observer,
                            bnf_err *err)
{
    bnf_session *s = r->s;
    const Onnx__NodeProto *n = s->g->node[i];
    const bnf_tensor *in[64];
    const Onnx__TensorProto *stored[64];
    bnf_tensor *outs[64];
    bnf_status rc = BNF_OK;
    unsigned streamed_in = 0;
    bnf_op_ctx ctx;
    bnf_epilogue epi;
    fuse_plan plan;
    float *aff = NULL;
    size_t n_in = n->n_input, n_out = n->n_output;
    int fused = 0;

    if (n_in > 64 || n_out > 64)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "node '%s' has too many inputs or outputs",
                        S(n->name));
    for (size_t j = 0; j < n_in && !rc; j++) {
        size_t k = in_slot(s, i, j);
        in[j] = NULL;
        if (k == NO_NODE)
            continue;
        in[j] = r->slots[k];
        if (!in[j])
            rc = bnf_fail(err, BNF_ERR_INVALID,
                          "%s node '%s': input '%s' is not computed before it (graph inputs "
                          "missing or nodes out of order)", S(n->op_type), S(n->name),
                          n->input[j]);
        else if (s->weight_of[k] != NO_NODE && !(j < 32 && s->dropped[i] & 1u << j)) {
            weight *w = &s->weights[s->weight_of[k]];
            stored[j] = w->proto;
            if (streamed(s, i, j, w))
                streamed_in |= 1u << j;
            else
                rc = weight_ready(s, w, err);
        }
    }
    if (rc)
        return rc;
    plan = s->fuse[i];
    if (!observe && plan.last != NO_NODE && n_out == 1 &&
        (rc = fused_epilogue(r, i, &plan, in, n_in, &epi, &aff, &fused, err)))
        return rc;
    for (size_t j = 0; j < n_out; j++)
        outs[j] = NULL;
    for (size_t j = 0; j < n_out && !rc; j++) {
        outs[j] = bnf_calloc(1, sizeof *outs[j]);
        if (!outs[j])
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        for (size_t j = 0; j < n_out; j++)
            bnf_free(outs[j]);
        bnf_free(aff);
        return rc;
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
    ctx.pool = s->pool;
    ctx.epi = fused ? &epi : NULL;
    ctx.cache = &s->cache[i];
    ctx.streamed_in = streamed_in;
    ctx.model = s->m;
    ctx.stored = stored;
    for (size_t j = 0; j < n_in && j < 32; j++) {
        size_t k = in_slot(s, i, j);
        if (k != NO_NODE && s->keep[k] == 2)
            ctx.const_in |= 1u << j;
    }
    rc = s->kernels[i]->run(&ctx);
    if (!rc && ctx.cache->drop_in)
        drop_inputs(s, i, ctx.cache);
    bnf_free(aff);
    for (size_t j = 0; j < n_out; j++) {
        size_t k = out_slot(s, i, j);
        if (rc || k == NO_NODE ||
            (!outs[j]->data && outs[j]->n == 0 && outs[j]->rank == 0 && outs[j]->dtype == 0)) {
            bnf_tensor_release(outs[j]);
            bnf_free(outs[j]);
            continue;
        }
        if (fused) /* the value of the chain's last node */
            k = out_slot(s, plan.last, 0);
        release_slot(r, k);
        r->slots[k] = outs[j];
        if (observe && !rc)
            rc = observe(observer, n->output[j], outs[j], err);
    }
    if (rc)
        return rc;
    consume_inputs(r, i);
    if (fused) {
        size_t chain[5] = {plan.bn, plan.act, plan.mul, plan.add, plan.relu};
        for (size_t c = 0; c < 5; c++)
            if (chain[c] != NO_NODE) {
                r->done[chain[c]] = 1;
                consume_inputs(r, chain[c]);
            }
    }
    return BNF_OK;
}

bnf_status bnf_run_node(bnf_run *r, size_t i, bnf_observer observe, void *observer, bnf_err *err)
{
    if (i >= r->s->g->n_node || r->done[i])
        return BNF_OK;
    r->done[i] = 1;
    return exec_node(r, i, observe, observer, err);
}

bnf_status bnf_run_outputs(const bnf_run *r, bnf_tensor *outputs, bnf_err *err)
{
    const bnf_session *s = r->s;
    bnf_status rc = BNF_OK;
    for (size_t i = 0; i < s->n_outputs; i++)
        memset(&outputs[i], 0, sizeof outputs[i]);
    for (size_t i = 0; i < s->n_outputs && !rc; i++) {
        const bnf_tensor *t = r->slots[s->outputs[i]];
        if (!t)
            rc = bnf_fail(err, BNF_ERR_INVALID, "graph output '%s' is not computed",
                          S(s->g->output[i]->name));
        else if (t->n && !t->data && s->weight_of[s->outputs[i]] != NO_NODE)
            rc = weight_ready((bnf_session *)s, &s->weights[s->weight_of[s->outputs[i]]], err);
        if (!rc)
            rc = bnf_tensor_copy(&outputs[i], r->slots[s->outputs[i]], err);
    }
    if (rc)
        for (size_t i = 0; i < s->n_outputs; i++)
            bnf_tensor_release(&outputs[i]);
    return rc;
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
    bnf_status rc;
    for (size_t i = 0; i < s->n_outputs; i++)
        memset(&outputs[i], 0, sizeof outputs[i]);
    if (!s->run && (rc = bnf_run_new(s, &s->run, err)))
        return rc;
    rc = bnf_run_start(s->run, inputs, err);
    for (size_t i = 0; i < s->g->n_node && !rc; i++)
        rc = bnf_run_node(s->run, i, observe, observer, err);
    if (!rc)
        rc = bnf_run_outputs(s->run, outputs, err);
    bnf_run_end(s->run); /* nothing left behind but the weights */
    return rc;
}
