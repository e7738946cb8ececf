/* test_patterns.c: the fold patterns beyond "layer -> BN" (testdata/patterns/,
 * written by testdata/gen_patterns.py): MatMul -> BN, BN -> Conv / Gemm / MatMul, Mul and
 * Add by constants, chains, standalone BNs lowered to Mul + Add, BNs inside If /
 * Loop bodies, float16 overflow, training-mode BNs, initializers listed as graph
 * inputs.
 *
 * One cmocka test per (model, option) run, from the table below, which must
 * agree with testdata/patterns/cases.txt.  Each run folds with verification on
 * (bnf_fold_defaults) and checks:
 * - the report: every BN's fate (fold / lower / skip code) in report order, the
 *   actions (op, position, layer op) in order, n_folded, n_lowered, n_bns_after
 *   (also counted in the model, subgraphs included), path for subgraph BNs,
 *   assumed_inference, n_frozen_inputs;
 * - skip / no-action: the model is unchanged and saves byte for byte as read;
 * - fold / lower: after a save and a reload, the folded layer's weight and bias
 *   against expected_W / expected_B (tolerances of test_fold.c; 1e-12 for
 *   double), a lowered BN's Mul / Add constants against expected_S / expected_T,
 *   and the evaluator's output on input_X against output_Y (max |diff| <=
 *   1e-5 max |out| for float, 1e-12 for double).  float16 / bfloat16 models are
 *   not evaluated (the evaluator computes float and double); If / Loop models
 *   are evaluated when the evaluator has the operator, else a note is printed. */
#include "testutil.h"

#include <unistd.h>

#define PATTERNS "testdata/patterns/"

enum { OPT_LOWER = 1, OPT_ASSUME = 2, OPT_FREEZE = 4 };
enum { EVAL_NO, EVAL_YES, EVAL_TRY };

typedef struct {
    const char *name;
    int opts;
    const char *expect;      /* the expectation column of cases.txt */
    const char *bns[4];      /* per BN, report order: "fold", "lower" or a skip code */
    const char *actions;     /* "Op:position:LayerOp ..." in order; a final "..." allows
                                more; "" none */
    const char *layer_out;   /* the value the folded layer produces afterwards */
    const char *layer_op;    /* its op type afterwards */
    const char *graph;       /* "node/attribute" of the subgraph holding layer and BN */
    const char *lowered_out; /* the output of the Add a lowered BN became */
    int eval;
} pattern_case;

#define BN_AFTER_CONV "BatchNormalization:after:Conv"
#define SKIP(n, o, code) {n, o, "skip " code, {code}, "", NULL, NULL, NULL, NULL, EVAL_NO}
#define CONV_FOLD(n, o, ev) {n, o, "fold", {"fold"}, BN_AFTER_CONV, "Y", "Conv", NULL, NULL, ev}

static const pattern_case cases[] = {
    {"matmul_bn", 0, "fold", {"fold"}, "BatchNormalization:after:MatMul", "Y", "Gemm", NULL, NULL,
     EVAL_YES},
    SKIP("matmul_bn_rank3", 0, "UNSUPPORTED_LAYER"),
    {"matmul_bn_double", 0, "fold", {"fold"}, "BatchNormalization:after:MatMul", "Y", "Gemm",
     NULL, NULL, EVAL_YES},
    {"bn_matmul", 0, "fold", {"fold"}, "BatchNormalization:before:MatMul", "Y", "Gemm", NULL,
     NULL, EVAL_YES},
    SKIP("bn_matmul_rank3", 0, "UNSUPPORTED_LAYER"),
    {"bn_matmul_double", 0, "fold", {"fold"}, "BatchNormalization:before:MatMul", "Y", "Gemm",
     NULL, NULL, EVAL_YES},
    {"bn_conv", 0, "fold", {"fold"}, "BatchNormalization:before:Conv", "Y", "Conv", NULL, NULL,
     EVAL_YES},
    {"bn_conv_group", 0, "fold", {"fold"}, "BatchNormalization:before:Conv", "Y", "Conv", NULL,
     NULL, EVAL_YES},
    SKIP("bn_conv_padded", 0, "PADDING"),
    SKIP("bn_conv_same", 0, "PADDING"),
    {"bn_conv_same_k1", 0, "fold", {"fold"}, "BatchNormalization:before:Conv", "Y", "Conv", NULL,
     NULL, EVAL_YES},
    {"bn_conv_same_k2s2", 0, "fold", {"fold"}, "BatchNormalization:before:Conv", "Y", "Conv",
     NULL, NULL, EVAL_YES},
    SKIP("bn_conv_same_k2s2_odd", 0, "PADDING"),
    SKIP("bn_two_readers", 0, "LAYER_MULTI_CONSUMER"),
    {"bn_two_readers", OPT_LOWER, "lower", {"lower"}, "...", NULL, NULL, NULL, "bn_out", EVAL_YES},
    {"bn_gemm", 0, "fold", {"fold"}, "BatchNormalization:before:Gemm", "Y", "Gemm", NULL, NULL,
     EVAL_YES},
    SKIP("bn_gemm_transA", 0, "UNSUPPORTED_LAYER"),
    {"conv_mul_add", 0, "fold", {NULL}, "Mul:after:Conv Add:after:Conv", "Y", "Conv", NULL, NULL,
     EVAL_YES},
    {"conv_mul", 0, "fold", {NULL}, "Mul:after:Conv", "Y", "Conv", NULL, NULL, EVAL_YES},
    {"conv_add", 0, "fold", {NULL}, "Add:after:Conv", "Y", "Conv", NULL, NULL, EVAL_YES},
    {"conv_mul_scalar", 0, "fold", {NULL}, "Mul:after:Conv", "Y", "Conv", NULL, NULL, EVAL_YES},
    {"gemm_mul_add", 0, "fold", {NULL}, "Mul:after:Gemm Add:after:Gemm", "Y", "Gemm", NULL, NULL,
     EVAL_YES},
    {"conv_mul_spatial", 0, "no-action", {NULL}, "", NULL, NULL, NULL, NULL, EVAL_NO},
    {"convtranspose_mul_add", 0, "fold", {NULL},
     "Mul:after:ConvTranspose Add:after:ConvTranspose", "Y", "ConvTranspose", NULL, NULL,
     EVAL_YES},
    {"conv_bn_mul_add", 0, "fold", {"fold"}, BN_AFTER_CONV " Mul:after:Conv Add:after:Conv", "Y",
     "Conv", NULL, NULL, EVAL_YES},
    {"bn_bn_conv", 0, "fold", {"fold", "fold"},
     "BatchNormalization:before:Conv BatchNormalization:before:Conv", "Y", "Conv", NULL, NULL,
     EVAL_YES},
    {"conv_bn_bn_relu_bn", 0, "fold", {"fold", "fold", "NO_LAYER"},
     BN_AFTER_CONV " " BN_AFTER_CONV, "bn2_out", "Conv", NULL, NULL, EVAL_YES},
    {"conv_bn_bn_relu_bn", OPT_LOWER, "fold+lower", {"fold", "fold", "lower"},
     BN_AFTER_CONV " " BN_AFTER_CONV " ...", "bn2_out", "Conv", NULL, "Y", EVAL_YES},
    SKIP("relu_bn", 0, "NO_LAYER"),
    {"relu_bn", OPT_LOWER, "lower", {"lower"}, "...", NULL, NULL, NULL, "Y", EVAL_YES},
    SKIP("relu_bn_fp16", 0, "NO_LAYER"),
    {"relu_bn_fp16", OPT_LOWER, "lower", {"lower"}, "...", NULL, NULL, NULL, "Y", EVAL_NO},
    SKIP("input_bn", 0, "NO_LAYER"),
    {"input_bn", OPT_LOWER, "lower", {"lower"}, "...", NULL, NULL, NULL, "Y", EVAL_YES},
    {"if_conv_bn", 0, "fold", {"fold"}, BN_AFTER_CONV, "then_out", "Conv", "if1/then_branch",
     NULL, EVAL_TRY},
    {"loop_conv_bn", 0, "fold", {"fold"}, BN_AFTER_CONV, "v_out", "Conv", "loop1/body", NULL,
     EVAL_TRY},
    {"function_conv_bn", 0, "fold", {"fold"}, BN_AFTER_CONV, "y", "Conv", "ConvBN/function",
     NULL, EVAL_TRY},
    SKIP("conv2d_fp16_overflow", 0, "NON_FINITE"),
    CONV_FOLD("conv2d_bf16_ok", 0, EVAL_NO),
    SKIP("conv_bn_opset99", 0, "UNKNOWN_OPSET"),
    SKIP("conv_bn_training15", 0, "TRAINING_MODE"),
    CONV_FOLD("conv_bn_training15", OPT_ASSUME, EVAL_YES),
    SKIP("conv_bn_is_test0_opset6", 0, "TRAINING_MODE"),
    CONV_FOLD("conv_bn_is_test0_opset6", OPT_ASSUME, EVAL_YES),
    SKIP("conv_bn_extra_outputs_opset9", 0, "TRAINING_MODE"),
    CONV_FOLD("conv_bn_extra_outputs_opset9", OPT_ASSUME, EVAL_YES),
    SKIP("conv_bn_training15_stats_used", 0, "TRAINING_MODE"),
    SKIP("conv_bn_training15_stats_used", OPT_ASSUME, "TRAINING_MODE"),
    SKIP("conv_bn_ir4_inputs", 0, "PARAM_OVERRIDABLE"),
    CONV_FOLD("conv_bn_ir4_inputs", OPT_FREEZE, EVAL_YES),
};

#define N_CASES (sizeof cases / sizeof cases[0])

static const char *opt_name(int opts)
{
    switch (opts) {
    case 0: return "-";
    case OPT_LOWER: return "lower_standalone";
    case OPT_ASSUME: return "assume_inference";
    case OPT_FREEZE: return "freeze_inputs";
    default: return "?";
    }
}

static size_t n_bns_of(const pattern_case *pc)
{
    size_t n = 0;
    while (n < 4 && pc->bns[n])
        n++;
    return n;
}

static size_t count_fate(const pattern_case *pc, const char *fate)
{
    size_t n = 0;
    for (size_t i = 0; i < n_bns_of(pc); i++)
        n += strcmp(pc->bns[i], fate) == 0;
    return n;
}

static int changes_model(const pattern_case *pc)
{
    return strncmp(pc->expect, "skip", 4) != 0 && strcmp(pc->expect, "no-action") != 0;
}

/* ---- small helpers ------------------------------------------------------------- */

/* The report in one line per BN and action, for failure messages. */
static void print_report(const char *label, const bnf_report *r)
{
    print_message("%s: %zu BN(s), %zu folded, %zu lowered, %zu left, %zu frozen input(s)\n",
                  label, r->n_bns, r->n_folded, r->n_lowered, r->n_bns_after,
                  r->n_frozen_inputs);
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        print_message("  bn '%s' [%s] layer %s %s: folded %d lowered %d assumed %d code %s (%s)\n",
                      b->name, b->path ? b->path : "", b->layer_op ? b->layer_op : "-",
                      b->layer ? b->layer : "-", b->folded, b->lowered, b->assumed_inference,
                      b->reason_code ? b->reason_code : "-", b->reason ? b->reason : "");
    }
    for (size_t i = 0; i < r->n_actions; i++)
        print_message("  action %s '%s' %s %s '%s'\n", r->actions[i].op, r->actions[i].node,
                      r->actions[i].position, r->actions[i].layer_op, r->actions[i].layer);
}

static Onnx__GraphProto *attr_graph(const Onnx__NodeProto *n, const char *attr)
{
    for (size_t a = 0; a < n->n_attribute; a++)
        if (n->attribute[a]->name && strcmp(n->attribute[a]->name, attr) == 0)
            return n->attribute[a]->g;
    return NULL;
}

/* The subgraph "node/attribute" of the main graph (NULL spec: the main graph). */
/* A model-local function's body seen as a graph ("NAME/function"): its nodes,
 * and its inputs and outputs as value infos.  One view at a time. */
static Onnx__GraphProto *function_view(const bnf_model *m, const char *name)
{
    static Onnx__GraphProto view;
    static Onnx__ValueInfoProto vi[16];
    static Onnx__ValueInfoProto *in[8], *out[8];
    for (size_t f = 0; f < m->proto->n_functions; f++) {
        Onnx__FunctionProto *fn = m->proto->functions[f];
        if (strcmp(fn->name, name) != 0)
            continue;
        assert_true(fn->n_input <= 8 && fn->n_output <= 8);
        onnx__graph_proto__init(&view);
        for (size_t i = 0; i < fn->n_input; i++) {
            onnx__value_info_proto__init(&vi[i]);
            vi[i].name = fn->input[i];
            in[i] = &vi[i];
        }
        for (size_t i = 0; i < fn->n_output; i++) {
            onnx__value_info_proto__init(&vi[8 + i]);
            vi[8 + i].name = fn->output[i];
            out[i] = &vi[8 + i];
        }
        view.name = fn->name;
        view.node = fn->node;
        view.n_node = fn->n_node;
        view.input = in;
        view.n_input = fn->n_input;
        view.output = out;
        view.n_output = fn->n_output;
        return &view;
    }
    fail_msg("no function '%s'", name);
    return NULL;
}

static Onnx__GraphProto *find_graph(const bnf_model *m, const char *spec)
{
    const Onnx__GraphProto *g = m->proto->graph;
    char node[64];
    const char *slash;
    if (!spec)
        return m->proto->graph;
    slash = strchr(spec, '/');
    assert_non_null(slash);
    snprintf(node, sizeof node, "%.*s", (int)(slash - spec), spec);
    if (strcmp(slash + 1, "function") == 0)
        return function_view(m, node);
    for (size_t i = 0; i < g->n_node; i++)
        if (g->node[i]->name && strcmp(g->node[i]->name, node) == 0) {
            Onnx__GraphProto *sub = attr_graph(g->node[i], slash + 1);
            if (!sub)
                fail_msg("node '%s' has no graph attribute '%s'", node, slash + 1);
            return sub;
        }
    fail_msg("no node '%s' in the main graph", node);
    return NULL;
}

static const Onnx__NodeProto *producer_in(const Onnx__GraphProto *g, const char *output)
{
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (g->node[i]->output[k] && strcmp(g->node[i]->output[k], output) == 0)
                return g->node[i];
    return NULL;
}

/* BN nodes in g and every graph nested in it. */
static size_t count_bns(const Onnx__GraphProto *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        n += nd->op_type && strcmp(nd->op_type, "BatchNormalization") == 0;
        for (size_t a = 0; a < nd->n_attribute; a++) {
            if (nd->attribute[a]->g)
                n += count_bns(nd->attribute[a]->g);
            for (size_t k = 0; k < nd->attribute[a]->n_graphs; k++)
                n += count_bns(nd->attribute[a]->graphs[k]);
        }
    }
    return n;
}

/* Whether `name` is a constant of graph g (an initializer of g, or of the main
 * graph by outer scope, or a Constant / Identity there); reads it when it is. */
static int try_const(const bnf_model *m, const Onnx__GraphProto *g, const char *name,
                     bnf_array *out)
{
    bnf_graph gi;
    bnf_err err = {0};
    bnf_const_kind kind;
    memset(out, 0, sizeof *out);
    if (g != m->proto->graph) {
        for (size_t i = 0; i < g->n_initializer; i++)
            if (strcmp(g->initializer[i]->name, name) == 0) {
                if (bnf_proto_read(m, g->initializer[i], out, &err) != BNF_OK)
                    fail_msg("reading %s: %s", name, err.msg);
                return 1;
            }
        if (producer_in(g, name)) { /* a Constant of the subgraph or function body */
            int yes;
            assert_int_equal(bnf_graph_index(&gi, m, (Onnx__GraphProto *)g, m->proto->ir_version,
                                             &err), BNF_OK);
            if (bnf_graph_const(m, &gi, name, &kind, out, &err) != BNF_OK)
                fail_msg("reading %s: %s", name, err.msg);
            bnf_graph_release(&gi);
            yes = kind == BNF_CONST_YES;
            return yes;
        }
    }
    assert_int_equal(bnf_graph_index(&gi, m, m->proto->graph, m->proto->ir_version, &err), BNF_OK);
    if (bnf_graph_const(m, &gi, name, &kind, out, &err) != BNF_OK)
        fail_msg("reading %s: %s", name, err.msg);
    bnf_graph_release(&gi);
    return kind == BNF_CONST_YES;
}

static void read_const_in(const bnf_model *m, const Onnx__GraphProto *g, const char *name,
                          bnf_array *out)
{
    if (!try_const(m, g, name, out))
        fail_msg("'%s' is not a constant", name);
}

/* test_fold.c's tolerances; double tighter (both sides fold in double). */
static void tolerance(int32_t dtype, double *rtol, double *atol)
{
    *atol = 1e-7;
    *rtol = 1e-6;
    if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16) {
        *rtol = 1.0 / 1024;
        *atol = 1e-4;
    } else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16) {
        *rtol = 1.0 / 128;
        *atol = 1e-4;
    } else if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
        *rtol = 1e-12;
        *atol = 1e-14;
    }
}

static void compare_const(const bnf_model *m, const Onnx__GraphProto *g, const char *name,
                          const bnf_model *expected, const char *ename, const char *label)
{
    bnf_array got, want;
    double rtol, atol;
    char what[200];
    read_const_in(m, g, name, &got);
    read_const(expected, ename, &want);
    if (got.dtype != want.dtype)
        fail_msg("%s: %s ('%s') has type %d, expected %d", label, ename, name, got.dtype,
                 want.dtype);
    tolerance(got.dtype, &rtol, &atol);
    snprintf(what, sizeof what, "%s %s ('%s')", label, ename, name);
    assert_close(&got, &want, rtol, atol, what);
    bnf_array_release(&got);
    bnf_array_release(&want);
}

/* A tensor of the evaluator from a constant of the expected file. */
static void tensor_of(const bnf_model *e, const char *name, bnf_tensor *t)
{
    bnf_array a;
    bnf_err err = {0};
    read_const(e, name, &a);
    memset(t, 0, sizeof *t);
    assert_int_equal(bnf_tensor_alloc(t, a.dtype, a.dims, a.rank, &err), BNF_OK);
    for (size_t k = 0; k < a.n; k++)
        bnf_set_f64(t, k, a.v[k]);
    bnf_array_release(&a);
}

/* Runs m on input_X (and cond = true for an If) and compares output 0 with
 * output_Y.  Returns 0 (with a note) when try_only and the evaluator lacks an
 * operator of the model. */
static int run_and_compare(const bnf_model *m, const bnf_model *e, int try_only,
                           const char *label, const char *which)
{
    bnf_session *s = NULL;
    bnf_err err = {0};
    bnf_tensor x, want, cond = {0}, y[4];
    const bnf_tensor *in[4];
    bnf_compare_result cr;
    size_t n_in;
    bnf_status rc = bnf_session_new(m, NULL, &s, &err);
    double tol;

    if (rc == BNF_ERR_UNSUPPORTED && try_only) {
        print_message("note: %s: %s model not evaluated: %s\n", label, which, err.msg);
        return 0;
    }
    if (rc != BNF_OK)
        fail_msg("%s: %s model: session: %s", label, which, err.msg);
    tensor_of(e, "input_X", &x);
    tensor_of(e, "output_Y", &want);
    n_in = bnf_session_n_inputs(s);
    assert_true(n_in >= 1 && n_in <= 4);
    for (size_t i = 0; i < n_in; i++) {
        const char *nm = bnf_session_input_name(s, i);
        if (strcmp(nm, "X") == 0) {
            in[i] = &x;
        } else if (strcmp(nm, "cond") == 0) {
            assert_int_equal(bnf_tensor_alloc(&cond, ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, NULL, 0,
                                              &err), BNF_OK);
            ((uint8_t *)cond.data)[0] = 1;
            in[i] = &cond;
        } else {
            fail_msg("%s: %s model: unexpected input '%s'", label, which, nm);
        }
    }
    memset(y, 0, sizeof y);
    assert_true(bnf_session_n_outputs(s) <= 4);
    if (bnf_session_run(s, in, y, &err) != BNF_OK)
        fail_msg("%s: %s model: run: %s", label, which, err.msg);
    if (y[0].dtype != want.dtype)
        fail_msg("%s: %s model: output type %d, expected %d", label, which, y[0].dtype,
                 want.dtype);
    bnf_tensor_compare(&y[0], &want, 0, 0, &cr);
    if (!cr.shape_ok)
        fail_msg("%s: %s model: output shape differs from output_Y", label, which);
    tol = want.dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? 1e-12 : 1e-5;
    if (!(cr.max_abs <= tol * cr.max_want))
        fail_msg("%s: %s model: max|diff| %g > %g * max|out| %g", label, which, cr.max_abs, tol,
                 cr.max_want);
    for (size_t k = 0; k < bnf_session_n_outputs(s); k++)
        bnf_tensor_release(&y[k]);
    bnf_tensor_release(&x);
    bnf_tensor_release(&want);
    bnf_tensor_release(&cond);
    bnf_session_free(s);
    return 1;
}

/* "Op:position:LayerOp ..." against the report's actions. */
static void check_actions(const bnf_report *r, const char *spec, const char *label)
{
    char buf[512], *save = NULL, *tok;
    size_t i = 0;
    int more = 0;
    if (!spec)
        return;
    snprintf(buf, sizeof buf, "%s", spec);
    for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++) {
        char got[200];
        if (strcmp(tok, "...") == 0) {
            more = 1;
            break;
        }
        if (i >= r->n_actions) {
            print_report(label, r);
            fail_msg("%s: %zu action(s), expected at least %zu (missing %s)", label, r->n_actions,
                     i + 1, tok);
        }
        snprintf(got, sizeof got, "%s:%s:%s", r->actions[i].op, r->actions[i].position,
                 r->actions[i].layer_op);
        if (strcmp(got, tok) != 0) {
            print_report(label, r);
            fail_msg("%s: action %zu is %s, expected %s", label, i, got, tok);
        }
    }
    if (!more && r->n_actions != i) {
        print_report(label, r);
        fail_msg("%s: %zu action(s), expected %zu", label, r->n_actions, i);
    }
}

static void check_report(const pattern_case *pc, const bnf_report *r, const char *label)
{
    const char *node = NULL, *attr = NULL;
    char nodebuf[64];
    size_t n = n_bns_of(pc);

    if (pc->graph) {
        const char *slash = strchr(pc->graph, '/');
        snprintf(nodebuf, sizeof nodebuf, "'%.*s'", (int)(slash - pc->graph), pc->graph);
        node = nodebuf;
        attr = slash + 1;
    }
    if (r->n_bns != n) {
        print_report(label, r);
        fail_msg("%s: report has %zu BN(s), expected %zu", label, r->n_bns, n);
    }
    for (size_t i = 0; i < n; i++) {
        const bnf_bn_info *b = &r->bns[i];
        const char *fate = pc->bns[i];
        int ok;
        if (strcmp(fate, "fold") == 0)
            ok = b->folded && !b->lowered && !b->reason_code;
        else if (strcmp(fate, "lower") == 0)
            ok = b->lowered;
        else
            ok = !b->folded && !b->lowered && b->reason_code &&
                 strcmp(b->reason_code, fate) == 0 && b->reason && strlen(b->reason) > 5;
        if (!ok) {
            print_report(label, r);
            fail_msg("%s: BN %zu ('%s'): folded %d lowered %d code %s, expected %s", label, i,
                     b->name, b->folded, b->lowered, b->reason_code ? b->reason_code : "(none)",
                     fate);
        }
        if ((pc->opts & OPT_ASSUME) && strcmp(fate, "fold") == 0 && !b->assumed_inference)
            fail_msg("%s: BN %zu folded without assumed_inference = 1", label, i);
        if (!(pc->opts & OPT_ASSUME) && b->assumed_inference)
            fail_msg("%s: BN %zu: assumed_inference set without the option", label, i);
        if (node) {
            if (!b->path || !strstr(b->path, node) || !strstr(b->path, attr))
                fail_msg("%s: BN %zu path \"%s\", expected one naming %s and %s", label, i,
                         b->path ? b->path : "(null)", node, attr);
        } else if (b->path && *b->path) {
            fail_msg("%s: BN %zu in the main graph has path \"%s\"", label, i, b->path);
        }
    }
    if (r->n_folded != count_fate(pc, "fold") || r->n_lowered != count_fate(pc, "lower") ||
        r->n_bns_after != n - count_fate(pc, "fold") - count_fate(pc, "lower")) {
        print_report(label, r);
        fail_msg("%s: n_folded %zu, n_lowered %zu, n_bns_after %zu; expected %zu, %zu, %zu", label,
                 r->n_folded, r->n_lowered, r->n_bns_after, count_fate(pc, "fold"),
                 count_fate(pc, "lower"), n - count_fate(pc, "fold") - count_fate(pc, "lower"));
    }
    check_actions(r, pc->actions, label);
    if (pc->opts & OPT_FREEZE && changes_model(pc))
        assert_int_equal(r->n_frozen_inputs, 6); /* W, conv_B, scale, B, mean, var */
    else
        assert_int_equal(r->n_frozen_inputs, 0);
}

/* The folded layer: its weight and bias against expected_W / expected_B. */
static void check_layer(const pattern_case *pc, const bnf_model *folded, const bnf_model *e,
                        const char *label)
{
    const Onnx__GraphProto *g = find_graph(folded, pc->graph);
    const Onnx__NodeProto *layer = producer_in(g, pc->layer_out);
    if (!layer)
        fail_msg("%s: nothing produces '%s' after the fold", label, pc->layer_out);
    if (strcmp(layer->op_type, pc->layer_op) != 0)
        fail_msg("%s: '%s' is produced by a %s, expected %s", label, pc->layer_out,
                 layer->op_type, pc->layer_op);
    if (layer->n_input < 3 || !layer->input[2][0])
        fail_msg("%s: the folded %s has no bias input", label, layer->op_type);
    compare_const(folded, g, layer->input[1], e, "expected_W", label);
    compare_const(folded, g, layer->input[2], e, "expected_B", label);
    if (strcmp(layer->op_type, "Gemm") == 0) {
        assert_true(bnf_attr_float(layer, "beta", 1.0) == 1.0);
        if (strstr(pc->name, "matmul")) {
            /* MatMul became Gemm: no transposes, alpha 1 */
            assert_int_equal(bnf_attr_int(layer, "transA", 0), 0);
            assert_int_equal(bnf_attr_int(layer, "transB", 0), 0);
            assert_true(bnf_attr_float(layer, "alpha", 1.0) == 1.0);
            assert_int_equal(count_op(folded, "MatMul"), 0);
        }
    }
}

/* A lowered BN: Add(Mul(x, S), T) producing pc->lowered_out. */
static void check_lowered(const pattern_case *pc, const bnf_model *folded, const bnf_model *e,
                          const char *label)
{
    const Onnx__GraphProto *g = folded->proto->graph;
    const Onnx__NodeProto *add = producer_in(g, pc->lowered_out), *mul = NULL;
    bnf_array tmp;
    int t_at = -1, s_at = -1;
    if (!add || strcmp(add->op_type, "Add") != 0 || add->n_input != 2)
        fail_msg("%s: '%s' is not produced by a two-input Add", label, pc->lowered_out);
    for (int k = 0; k < 2; k++)
        if (try_const(folded, g, add->input[k], &tmp)) {
            bnf_array_release(&tmp);
            t_at = k;
        }
    if (t_at < 0 || !(mul = producer_in(g, add->input[1 - t_at])) ||
        strcmp(mul->op_type, "Mul") != 0 || mul->n_input != 2)
        fail_msg("%s: the Add is not Add(Mul(x, S), T) by constants", label);
    for (int k = 0; k < 2; k++)
        if (try_const(folded, g, mul->input[k], &tmp)) {
            bnf_array_release(&tmp);
            s_at = k;
        }
    if (s_at < 0)
        fail_msg("%s: the Mul has no constant operand", label);
    compare_const(folded, g, mul->input[s_at], e, "expected_S", label);
    compare_const(folded, g, add->input[t_at], e, "expected_T", label);
}

/* if_conv_bn: the outer W and conv_B are what they were, and the else branch
 * still reads them. */
static void check_outer_kept(const bnf_model *orig, const bnf_model *folded, const char *label)
{
    const Onnx__GraphProto *eg = find_graph(folded, "if1/else_branch");
    const Onnx__NodeProto *conv = producer_in(eg, "else_conv_out");
    static const char *const names[2] = {"W", "conv_B"};
    assert_non_null(conv);
    for (int k = 0; k < 2; k++) {
        bnf_array a, b;
        char what[200];
        if (strcmp(conv->input[k + 1], names[k]) != 0)
            fail_msg("%s: else_branch Conv input %d is '%s', expected '%s'", label, k + 1,
                     conv->input[k + 1], names[k]);
        read_const(orig, names[k], &a);
        read_const(folded, names[k], &b);
        snprintf(what, sizeof what, "%s outer %s", label, names[k]);
        assert_close(&b, &a, 0, 0, what);
        bnf_array_release(&a);
        bnf_array_release(&b);
    }
}

/* inspect, on a fresh copy with the same options, says of every BN what fold
 * did, reason text included (its dry run checks the folded weights without
 * keeping them unless a later fold of a chain reads them). */
static void inspect_agrees(const char *path, const bnf_fold_options *o, const bnf_report *rf,
                           const char *label)
{
    bnf_model *m = load_model(path);
    bnf_report *ri = NULL;
    bnf_err err = {0};
    if (bnf_inspect_with(m, o, &ri, &err) != BNF_OK)
        fail_msg("%s: inspect: %s", label, err.msg);
    if (ri->n_bns != rf->n_bns)
        fail_msg("%s: inspect has %zu BN(s), fold %zu", label, ri->n_bns, rf->n_bns);
    for (size_t i = 0; i < ri->n_bns; i++) {
        const bnf_bn_info *a = &ri->bns[i], *b = &rf->bns[i];
        if (a->folded != b->folded || a->lowered != b->lowered ||
            strcmp(a->reason_code ? a->reason_code : "", b->reason_code ? b->reason_code : "") ||
            strcmp(a->reason ? a->reason : "", b->reason ? b->reason : ""))
            fail_msg("%s: BN %zu ('%s'): inspect says folded %d lowered %d %s (%s), fold did "
                     "folded %d lowered %d %s (%s)", label, i, a->name, a->folded, a->lowered,
                     a->reason_code ? a->reason_code : "-", a->reason ? a->reason : "",
                     b->folded, b->lowered, b->reason_code ? b->reason_code : "-",
                     b->reason ? b->reason : "");
    }
    bnf_report_free(ri);
    bnf_model_free(m);
}

static void run_case(void **state)
{
    const pattern_case *pc = *state;
    char path[256], out_path[300], label[128];
    bnf_model *m, *folded, *e, *orig;
    bnf_fold_options o;
    bnf_report *r = NULL;
    bnf_err err = {0};
    bnf_status rc;
    char *dir = temp_dir();

    snprintf(label, sizeof label, "%s [%s]", pc->name, opt_name(pc->opts));
    snprintf(path, sizeof path, PATTERNS "%s.onnx", pc->name);
    m = load_model(path);
    bnf_fold_defaults(&o);
    o.lower_standalone = (pc->opts & OPT_LOWER) != 0;
    o.assume_inference = (pc->opts & OPT_ASSUME) != 0;
    o.freeze_inputs = (pc->opts & OPT_FREEZE) != 0;
    if ((rc = bnf_fold(m, &o, &r, &err)) != BNF_OK)
        fail_msg("%s: fold: %s: %s", label, bnf_strerror(rc), err.msg);
    check_report(pc, r, label);
    inspect_agrees(path, &o, r, label);
    if (count_bns(m->proto->graph) != r->n_bns_after)
        fail_msg("%s: %zu BN node(s) left in the model, the report says %zu", label,
                 count_bns(m->proto->graph), r->n_bns_after);
    snprintf(out_path, sizeof out_path, "%s/out.onnx", dir);
    if (bnf_model_save(m, out_path, &err) != BNF_OK)
        fail_msg("%s: save: %s", label, err.msg);

    if (!changes_model(pc)) {
        if (m->changed)
            fail_msg("%s: nothing to do, yet the model was changed", label);
        if (!same_files(path, out_path))
            fail_msg("%s: nothing to do, yet the saved model differs from the input", label);
    } else {
        if (!m->changed)
            fail_msg("%s: folded, yet the model is not marked changed", label);
        if (pc->eval == EVAL_YES && !(r->e2e.ran && r->e2e.equivalent))
            fail_msg("%s: end-to-end check: ran %d equivalent %d: %s", label, r->e2e.ran,
                     r->e2e.equivalent, r->e2e.reason);
        if (r->n_actions && pc->eval == EVAL_YES)
            assert_true(r->verified_local);
        folded = load_model(out_path);
        e = load_named(PATTERNS, pc->name, ".expected.onnx");
        if (pc->layer_out)
            check_layer(pc, folded, e, label);
        if (pc->lowered_out)
            check_lowered(pc, folded, e, label);
        if (pc->graph && strstr(pc->graph, "then_branch")) {
            orig = load_model(path);
            check_outer_kept(orig, folded, label);
            bnf_model_free(orig);
        }
        if (pc->opts & OPT_FREEZE) {
            const Onnx__GraphProto *g = folded->proto->graph;
            if (g->n_input != 1 || strcmp(g->input[0]->name, "X") != 0)
                fail_msg("%s: %zu graph input(s) after freeze_inputs, expected X only", label,
                         g->n_input);
        }
        if (pc->eval != EVAL_NO) {
            /* the original first: the generator's output_Y is what it computes
             * (training-mode originals compute something else by design) */
            if (!(pc->opts & OPT_ASSUME)) {
                orig = load_model(path);
                run_and_compare(orig, e, pc->eval == EVAL_TRY, label, "original");
                bnf_model_free(orig);
            }
            run_and_compare(folded, e, pc->eval == EVAL_TRY, label, "folded");
        }
        bnf_model_free(e);
        bnf_model_free(folded);
    }
    unlink(out_path);
    rmdir(dir);
    free(dir);
    bnf_report_free(r);
    bnf_model_free(m);
}

/* Every line of cases.txt has its row in the table, and every row its line. */
static void test_cases_txt_agrees(void **state)
{
    FILE *f = fopen(PATTERNS "cases.txt", "r");
    char line[512];
    int seen[N_CASES] = {0};
    (void)state;
    if (!f)
        fail_msg("cannot open " PATTERNS "cases.txt");
    while (fgets(line, sizeof line, f)) {
        char name[128], opt[64], expect[160], code[64];
        char *dash = strstr(line, " -- ");
        int k, found = 0;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (dash)
            *dash = '\0';
        k = sscanf(line, "%127s %63s %63s %63s", name, opt, expect, code);
        assert_true(k >= 3);
        if (k == 4) {
            size_t len = strlen(expect);
            snprintf(expect + len, sizeof expect - len, " %s", code);
        }
        for (size_t i = 0; i < N_CASES; i++)
            if (strcmp(cases[i].name, name) == 0 && strcmp(opt_name(cases[i].opts), opt) == 0) {
                if (strcmp(cases[i].expect, expect) != 0)
                    fail_msg("%s [%s]: cases.txt says '%s', the table '%s'", name, opt, expect,
                             cases[i].expect);
                seen[i]++;
                found = 1;
            }
        if (!found)
            fail_msg("%s [%s] (cases.txt) is not in the table", name, opt);
    }
    fclose(f);
    for (size_t i = 0; i < N_CASES; i++)
        if (seen[i] != 1)
            fail_msg("%s [%s]: %d line(s) in cases.txt", cases[i].name, opt_name(cases[i].opts),
                     seen[i]);
}

int main(void)
{
    static char labels[N_CASES][96];
    struct CMUnitTest tests[N_CASES + 1];
    memset(tests, 0, sizeof tests);
    tests[0].name = "cases_txt_agrees";
    tests[0].test_func = test_cases_txt_agrees;
    for (size_t i = 0; i < N_CASES; i++) {
        snprintf(labels[i], sizeof labels[i], "%s [%s]", cases[i].name, opt_name(cases[i].opts));
        tests[i + 1].name = labels[i];
        tests[i + 1].test_func = run_case;
        tests[i + 1].initial_state = (void *)&cases[i];
    }
    return cmocka_run_group_tests_name("patterns", tests, NULL, NULL);
}
