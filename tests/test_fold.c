/* test_fold.c: every fold pattern, storage form and parameter source, checked
 * against the weights numpy folded independently (testdata/gen_models.py), after
 * a save and a reload; and every skip reason.
 *
 * Tolerance: both sides fold in double from the same stored values and round
 * once to the weight type, so they agree to that type's last bit: we allow
 * rtol 1e-6 for float and double, one ulp for float16 (2^-10) and bfloat16
 * (2^-7), plus atol 1e-7 (1e-4 for the two 16-bit types, whose small values
 * are coarse). */
#include "testutil.h"

#include <unistd.h>

typedef struct {
    const char *name;
    size_t folds;          /* BNs the model has, all of which must fold */
    const char *outputs[2]; /* the graph outputs the folded layers now produce */
} fold_case;

static const fold_case fold_cases[] = {
    {"conv1d", 1, {"Y"}}, {"conv2d", 1, {"Y"}}, {"conv3d", 1, {"Y"}},
    {"conv2d_nobias", 1, {"Y"}}, {"conv2d_group", 1, {"Y"}}, {"conv2d_depthwise", 1, {"Y"}},
    {"conv2d_pads", 1, {"Y"}}, {"conv2d_dilated", 1, {"Y"}},
    {"convtranspose1d", 1, {"Y"}}, {"convtranspose2d_group", 1, {"Y"}},
    {"convtranspose2d_nobias", 1, {"Y"}}, {"convtranspose3d", 1, {"Y"}},
    {"gemm_tA0_tB0", 1, {"Y"}}, {"gemm_tA0_tB1", 1, {"Y"}}, {"gemm_tA1_tB0", 1, {"Y"}},
    {"gemm_tA1_tB1", 1, {"Y"}}, {"gemm_c_none", 1, {"Y"}}, {"gemm_c_scalar", 1, {"Y"}},
    {"gemm_c_1n", 1, {"Y"}}, {"gemm_c_mn", 1, {"Y"}}, {"gemm_c_m1", 1, {"Y"}},
    {"conv2d_float_data", 1, {"Y"}}, {"conv2d_double", 1, {"Y"}}, {"conv2d_fp16", 1, {"Y"}},
    {"conv2d_fp16_int32", 1, {"Y"}}, {"conv2d_bf16", 1, {"Y"}}, {"conv2d_mixed15", 1, {"Y"}},
    {"conv2d_external", 1, {"Y"}}, {"conv2d_external_big", 1, {"Y"}},
    {"conv2d_constant_nodes", 1, {"Y"}},
    {"conv2d_identity", 1, {"Y"}}, {"conv2d_shared_weight", 2, {"Y1", "Y2"}},
    {"conv2d_bn_bn", 2, {"Y"}}, {"bn_opset1", 1, {"Y"}}, {"bn_opset6", 1, {"Y"}},
    {"bn_opset7", 1, {"Y"}}, {"bn_opset9", 1, {"Y"}}, {"bn_opset14", 1, {"Y"}},
    {"bn_opset15", 1, {"Y"}}, {"conv2d_ir3_init_inputs", 1, {"Y"}},
    {"roundtrip_unknown", 1, {"Y"}},
};

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
    }
}

static void check_fold_case(const fold_case *fc)
{
    char out_path[256], what[256];
    bnf_model *m, *folded, *expected;
    bnf_report *r = NULL;
    bnf_err err = {0};
    char *dir = temp_dir();

    m = load_named(MODELS, fc->name, ".onnx");
    if (bnf_fold(m, NULL, &r, &err) != BNF_OK)
        fail_msg("%s: fold failed: %s", fc->name, err.msg);
    if (r->n_folded != fc->folds || r->n_bns_after != 0) {
        for (size_t i = 0; i < r->n_bns; i++)
            if (!r->bns[i].folded)
                print_message("%s: %s skipped: %s %s\n", fc->name, r->bns[i].name,
                              r->bns[i].reason_code, r->bns[i].reason);
        fail_msg("%s: folded %zu of %zu, %zu BN left", fc->name, r->n_folded, fc->folds,
                 r->n_bns_after);
    }
    /* into a folder of its own: external data goes to out.onnx.data there */
    snprintf(out_path, sizeof out_path, "%s/out.onnx", dir);
    if (bnf_model_save(m, out_path, &err) != BNF_OK)
        fail_msg("%s: save failed: %s", fc->name, err.msg);
    folded = load_model(out_path);

    expected = load_named(MODELS, fc->name, ".expected.onnx");
    assert_int_equal(count_op(folded, "BatchNormalization"), 0);
    for (size_t k = 0; k < fc->folds && fc->outputs[k]; k++) {
        const Onnx__NodeProto *layer = node_producing(folded, fc->outputs[k]);
        bnf_array w, b, ew, eb;
        double rtol, atol;
        char wname[32], bname[32];
        const char *suffix = fc->folds == 2 && fc->outputs[1] ? (k ? "2" : "1") : "";

        assert_non_null(layer);
        assert_true(layer->n_input >= 3);
        read_const(folded, layer->input[1], &w);
        read_const(folded, layer->input[2], &b);
        snprintf(wname, sizeof wname, "expected_W%s", suffix);
        snprintf(bname, sizeof bname, "expected_B%s", suffix);
        read_const(expected, wname, &ew);
        read_const(expected, bname, &eb);
        assert_int_equal(w.dtype, ew.dtype);
        tolerance(w.dtype, &rtol, &atol);
        snprintf(what, sizeof what, "%s %s", fc->name, wname);
        assert_close(&w, &ew, rtol, atol, what);
        snprintf(what, sizeof what, "%s %s", fc->name, bname);
        assert_close(&b, &eb, rtol, atol, what);
        if (strcmp(layer->op_type, "Gemm") == 0)
            assert_true(bnf_attr_float(layer, "beta", 1.0) == 1.0);
        bnf_array_release(&w);
        bnf_array_release(&b);
        bnf_array_release(&ew);
        bnf_array_release(&eb);
    }
    bnf_model_free(expected);
    bnf_model_free(folded);
    bnf_model_free(m);
    bnf_report_free(r);
    unlink(out_path);
    snprintf(out_path, sizeof out_path, "%s/out.onnx.data", dir);
    unlink(out_path);
    rmdir(dir);
    free(dir);
}

static void test_fold_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fold_cases / sizeof fold_cases[0]; i++)
        check_fold_case(&fold_cases[i]);
}

/* A shared weight is copied, never changed in place: fold only the first Conv's
 * BN (the second one's statistics made unreadable in memory), and the second
 * Conv must still read the original weight. */
static void test_shared_weight_not_changed_in_place(void **state)
{
    bnf_model *m = load_model(MODELS "conv2d_shared_weight.onnx");
    const Onnx__NodeProto *c1, *c2;
    bnf_array before, after;
    bnf_report *r = NULL;
    bnf_err err = {0};
    Onnx__GraphProto *g = m->proto->graph;
    char *w_name;
    (void)state;

    c2 = NULL;
    for (size_t i = 0; i < g->n_node; i++)
        if (strcmp(g->node[i]->op_type, "BatchNormalization") == 0 && !c2) {
            /* make this BN's input a graph output: its layer then cannot fold */
            c2 = node_producing(m, g->node[i]->input[0]);
        }
    assert_non_null(c2);
    w_name = bnf_strdup(c2->input[1]);
    read_const(m, w_name, &before);
    {
        Onnx__ValueInfoProto **outs = realloc(g->output, (g->n_output + 1) * sizeof *outs);
        Onnx__ValueInfoProto *vi = malloc(sizeof *vi);
        assert_non_null(outs);
        assert_non_null(vi);
        onnx__value_info_proto__init(vi);
        vi->name = bnf_strdup(c2->output[0]);
        g->output = outs;
        g->output[g->n_output++] = vi;
        m->changed = 1; /* edited in memory: the fold's checks compare with this */
    }
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
    assert_int_equal(r->n_folded, 1);
    c1 = NULL;
    for (size_t i = 0; i < g->n_node; i++)
        if (strcmp(g->node[i]->op_type, "Conv") == 0 && strcmp(g->node[i]->input[1], w_name) == 0)
            c1 = g->node[i];
    assert_non_null(c1); /* the unfolded Conv still reads the original weight */
    read_const(m, w_name, &after);
    assert_close(&after, &before, 0, 0, "shared weight");
    bnf_array_release(&before);
    bnf_array_release(&after);
    free(w_name);
    bnf_report_free(r);
    bnf_model_free(m);
}

typedef struct {
    const char *name;
    const char *code;
} skip_case;

static const skip_case skip_cases[] = {
    {"skip_multi_consumer", "LAYER_MULTI_CONSUMER"},
    {"skip_graph_output", "LAYER_GRAPH_OUTPUT"},
    {"skip_param_not_constant", "PARAM_NOT_CONSTANT"},
    {"skip_training_opset15", "TRAINING_MODE"},
    {"skip_is_test0_opset6", "TRAINING_MODE"},
    {"skip_extra_outputs_opset9", "TRAINING_MODE"},
    {"skip_spatial0_opset7", "SPATIAL"},
    {"skip_shape_mismatch", "SHAPE_MISMATCH"},
    {"skip_dtype", "UNSUPPORTED_DTYPE"},
    {"skip_standalone", "NO_LAYER"},
    {"skip_nonfinite", "NON_FINITE"},
    {"conv2d_ir4_init_inputs", "PARAM_OVERRIDABLE"},
};

static void test_skip_reasons(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof skip_cases / sizeof skip_cases[0]; i++) {
        bnf_model *m = load_named(MODELS, skip_cases[i].name, ".onnx");
        bnf_report *r = NULL;
        bnf_err err = {0};
        if (bnf_fold(m, NULL, &r, &err) != BNF_OK)
            fail_msg("%s: %s", skip_cases[i].name, err.msg);
        assert_int_equal(r->n_bns, 1);
        assert_int_equal(r->n_folded, 0);
        assert_int_equal(r->n_bns_after, 1);
        if (!r->bns[0].reason_code || strcmp(r->bns[0].reason_code, skip_cases[i].code) != 0)
            fail_msg("%s: reason %s (%s), expected %s", skip_cases[i].name,
                     r->bns[0].reason_code, r->bns[0].reason, skip_cases[i].code);
        assert_true(r->bns[0].reason && strlen(r->bns[0].reason) > 5);
        /* nothing folded: the model is unchanged and saves byte-identical */
        assert_false(m->changed);
        bnf_report_free(r);
        bnf_model_free(m);
    }
}

/* inspect reports what fold does, and leaves the model alone. */
static void test_inspect_matches_fold(void **state)
{
    bnf_model *m = load_model("testdata/demo/mobilenet_v2_tiny.onnx");
    bnf_report *ri = NULL, *rf = NULL;
    bnf_err err = {0};
    (void)state;
    assert_int_equal(bnf_inspect(m, &ri, &err), BNF_OK);
    assert_false(m->changed);
    assert_int_equal(count_op(m, "BatchNormalization"), 52);
    assert_int_equal(bnf_fold(m, NULL, &rf, &err), BNF_OK);
    assert_int_equal(ri->n_bns, 52);
    assert_int_equal(ri->n_folded, 52);
    assert_int_equal(rf->n_folded, 52);
    assert_int_equal(rf->n_bns_after, 0);
    assert_int_equal(count_op(m, "BatchNormalization"), 0);
    /* every Identity that only fed BN parameters is gone, nothing else */
    assert_int_equal(count_op(m, "Identity"), 0);
    assert_int_equal(count_op(m, "Conv"), 52);
    for (size_t i = 0; i < ri->n_bns; i++) {
        assert_string_equal(ri->bns[i].layer_op, "Conv");
        assert_true(ri->bns[i].min_var > 0.3 && ri->bns[i].max_abs_scale < 10);
    }
    bnf_report_free(ri);
    bnf_report_free(rf);
    bnf_model_free(m);
}

/* The BN statistics in the report: recomputed here from the parameters. */
static void test_bn_statistics(void **state)
{
    bnf_model *m = load_model(MODELS "conv2d.onnx");
    const Onnx__NodeProto *bn = NULL;
    bnf_array p[4];
    bnf_report *r = NULL;
    bnf_err err = {0};
    double eps, min_var = INFINITY, max_s = 0;
    (void)state;
    for (size_t i = 0; i < m->proto->graph->n_node; i++)
        if (strcmp(m->proto->graph->node[i]->op_type, "BatchNormalization") == 0)
            bn = m->proto->graph->node[i];
    assert_non_null(bn);
    eps = bnf_attr_float(bn, "epsilon", 1e-5);
    for (int i = 0; i < 4; i++)
        read_const(m, bn->input[i + 1], &p[i]);
    for (size_t c = 0; c < p[0].n; c++) {
        double s = fabs(p[0].v[c] / sqrt(p[3].v[c] + eps));
        min_var = fmin(min_var, p[3].v[c]);
        max_s = fmax(max_s, s);
    }
    assert_int_equal(bnf_inspect(m, &r, &err), BNF_OK);
    assert_int_equal(r->bns[0].channels, (int64_t)p[0].n);
    assert_true(fabs(r->bns[0].epsilon - eps) < 1e-12);
    assert_true(fabs(r->bns[0].min_var - min_var) <= 1e-12 * min_var);
    assert_true(fabs(r->bns[0].max_abs_scale - max_s) <= 1e-12 * max_s);
    assert_true(min_var < 2e-5); /* the generator puts one channel at 1e-5 */
    for (int i = 0; i < 4; i++)
        bnf_array_release(&p[i]);
    bnf_report_free(r);
    bnf_model_free(m);
}

/* refused when loading: the location is checked before anything is read */
static void test_external_escape_refused(void **state)
{
    bnf_model *m = NULL;
    bnf_err err = {0};
    (void)state;
    assert_int_equal(bnf_model_load(MODELS "conv2d_external_escape.onnx", &m, &err),
                     BNF_ERR_INVALID);
    assert_non_null(strstr(err.msg, "escapes"));
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_cases),
        cmocka_unit_test(test_shared_weight_not_changed_in_place),
        cmocka_unit_test(test_skip_reasons),
        cmocka_unit_test(test_inspect_matches_fold),
        cmocka_unit_test(test_bn_statistics),
        cmocka_unit_test(test_external_escape_refused),
    };
    return cmocka_run_group_tests_name("fold", tests, NULL, NULL);
}
