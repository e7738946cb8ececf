/* test_verify.c: the evaluator against independent results, and the checks
 * that keep a wrong fold from being written.
 *
 * - run: the demo MobileNetV2 on torch's input gives torch's output
 *   (testdata/demo/{input,output}_0.pb), and every fold case's original model
 *   on its input_X gives the output_Y numpy/torch computed (expected files);
 * - verify: an honest fold is equivalent to its original; the same fold with
 *   one output channel's weights scaled by 1 + 1e-3 is not (default tolerance);
 * - fold: a deliberately broken fold (the test hook) is refused. */
#include "testutil.h"

#include <unistd.h>

/* Largest |got - want| relative to the largest |want|. */
static double rel_err(const bnf_tensor *got, const bnf_tensor *want)
{
    bnf_compare_result r;
    bnf_tensor_compare(got, want, 0, 0, &r);
    assert_true(r.shape_ok);
    return r.max_want > 0 ? r.max_abs / r.max_want : r.max_abs;
}

static void run_one(bnf_model *m, const bnf_tensor *x, bnf_tensor *y)
{
    bnf_session *s = NULL;
    bnf_err err = {0};
    const bnf_tensor *in[1] = {x};
    if (bnf_session_new(m, NULL, &s, &err) != BNF_OK)
        fail_msg("session: %s", err.msg);
    assert_int_equal(bnf_session_n_inputs(s), 1);
    if (bnf_session_run(s, in, y, &err) != BNF_OK)
        fail_msg("run: %s", err.msg);
    bnf_session_free(s);
}

static void test_run_matches_torch_on_demo(void **state)
{
    bnf_model *m = load_model("testdata/demo/mobilenet_v2_tiny.onnx");
    bnf_tensor x, want, y[1];
    bnf_err err = {0};
    (void)state;
    assert_int_equal(bnf_tensor_load("testdata/demo/input_0.pb", &x, NULL, &err), BNF_OK);
    assert_int_equal(bnf_tensor_load("testdata/demo/output_0.pb", &want, NULL, &err), BNF_OK);
    run_one(m, &x, y);
    if (rel_err(&y[0], &want) > 1e-4)
        fail_msg("demo: max|diff|/max|out| = %g", rel_err(&y[0], &want));
    /* and the folded model too */
    {
        bnf_report *r = NULL;
        bnf_tensor z[1];
        assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
        assert_true(r->verified_local && r->e2e.ran && r->e2e.equivalent);
        assert_true(r->e2e.worst_rel < 1e-5);
        run_one(m, &x, z);
        if (rel_err(&z[0], &want) > 1e-4)
            fail_msg("folded demo: max|diff|/max|out| = %g", rel_err(&z[0], &want));
        bnf_tensor_release(&z[0]);
        bnf_report_free(r);
    }
    bnf_tensor_release(&x);
    bnf_tensor_release(&want);
    bnf_tensor_release(&y[0]);
    bnf_model_free(m);
}

/* A session keeps what its kernels derive from the weights (packed Conv
 * weights, the originals then freed): its second and third runs, observed
 * (unfused) or not, at 1 and 2 threads, give torch's output as the first. */
static void test_session_runs_again_alike(void **state)
{
    bnf_model *m = load_model("testdata/demo/mobilenet_v2_tiny.onnx");
    bnf_tensor x, want;
    bnf_err err = {0};
    (void)state;
    assert_int_equal(bnf_tensor_load("testdata/demo/input_0.pb", &x, NULL, &err), BNF_OK);
    assert_int_equal(bnf_tensor_load("testdata/demo/output_0.pb", &want, NULL, &err), BNF_OK);
    for (int threads = 1; threads <= 2; threads++) {
        bnf_session_options o = {threads};
        bnf_session *s = NULL;
        const bnf_tensor *in[1] = {&x};
        bnf_tensor first[1];
        if (bnf_session_new(m, &o, &s, &err) != BNF_OK)
            fail_msg("session: %s", err.msg);
        for (int run = 0; run < 3; run++) {
            bnf_tensor y[1];
            bnf_status rc = run == 1 ? bnf_session_run_observed(s, in, y, NULL, NULL, &err)
                                     : bnf_session_run(s, in, y, &err);
            if (rc != BNF_OK)
                fail_msg("run %d: %s", run, err.msg);
            if (rel_err(&y[0], &want) > 1e-4)
                fail_msg("run %d, %d threads: max|diff|/max|out| = %g", run, threads,
                         rel_err(&y[0], &want));
            if (run == 0)
                first[0] = y[0];
            else {
                assert_int_equal(y[0].n, first[0].n);
                if (run == 2) /* fused as the first: the same operations */
                    assert_memory_equal(y[0].data, first[0].data, y[0].n * sizeof(float));
                bnf_tensor_release(&y[0]);
            }
        }
        bnf_tensor_release(&first[0]);
        bnf_session_free(s);
    }
    bnf_tensor_release(&x);
    bnf_tensor_release(&want);
    bnf_model_free(m);
}

/* Every float32/double fold case: the original model on input_X gives output_Y,
 * and so does the folded one. */
static void test_fold_cases_against_reference_outputs(void **state)
{
    static const char *const cases[] = {
        "conv1d", "conv2d", "conv3d", "conv2d_nobias", "conv2d_group", "conv2d_depthwise",
        "conv2d_pads", "conv2d_dilated", "convtranspose1d", "convtranspose2d_group",
        "convtranspose2d_nobias", "convtranspose3d", "gemm_tA0_tB0", "gemm_tA0_tB1",
        "gemm_tA1_tB0", "gemm_tA1_tB1", "gemm_c_none", "gemm_c_scalar", "gemm_c_1n",
        "gemm_c_mn", "gemm_c_m1", "conv2d_float_data", "conv2d_constant_nodes",
        "conv2d_identity", "conv2d_bn_bn", "bn_opset6", "bn_opset7", "bn_opset9",
        "bn_opset14", "bn_opset15", "conv2d_ir3_init_inputs",
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bnf_model *m = load_named(MODELS, cases[i], ".onnx");
        bnf_model *e = load_named(MODELS, cases[i], ".expected.onnx");
        bnf_array xa, ya;
        bnf_tensor x = {0}, want = {0}, y[1], z[1];
        bnf_report *r = NULL;
        bnf_err err = {0};
        read_const(e, "input_X", &xa);
        read_const(e, "output_Y", &ya);
        assert_int_equal(bnf_tensor_alloc(&x, 1, xa.dims, xa.rank, &err), BNF_OK);
        assert_int_equal(bnf_tensor_alloc(&want, 1, ya.dims, ya.rank, &err), BNF_OK);
        for (size_t k = 0; k < xa.n; k++)
            ((float *)x.data)[k] = (float)xa.v[k];
        for (size_t k = 0; k < ya.n; k++)
            ((float *)want.data)[k] = (float)ya.v[k];
        run_one(m, &x, y);
        if (rel_err(&y[0], &want) > 1e-5)
            fail_msg("%s: original model: max|diff|/max|out| = %g", cases[i], rel_err(&y[0], &want));
        if (bnf_fold(m, NULL, &r, &err) != BNF_OK)
            fail_msg("%s: %s", cases[i], err.msg);
        assert_true(r->e2e.ran && r->e2e.equivalent);
        run_one(m, &x, z);
        if (rel_err(&z[0], &want) > 1e-5)
            fail_msg("%s: folded model: max|diff|/max|out| = %g", cases[i], rel_err(&z[0], &want));
        bnf_report_free(r);
        bnf_tensor_release(&x);
        bnf_tensor_release(&want);
        bnf_tensor_release(&y[0]);
        bnf_tensor_release(&z[0]);
        bnf_array_release(&xa);
        bnf_array_release(&ya);
        bnf_model_free(e);
        bnf_model_free(m);
    }
}

/* Scales one output channel of the weight of the node producing `output`: the
 * one with the largest weights (a channel whose BN scale was 0 has none). */
static void scale_channel(bnf_model *m, const char *output, double factor)
{
    const Onnx__NodeProto *layer = node_producing(m, output);
    Onnx__GraphProto *g = m->proto->graph;
    assert_non_null(layer);
    for (size_t i = 0; i < g->n_initializer; i++) {
        Onnx__TensorProto *t = g->initializer[i];
        size_t per;
        if (strcmp(t->name, layer->input[1]) != 0)
            continue;
        assert_true(t->has_raw_data && t->data_type == 1);
        per = t->raw_data.len / 4 / (size_t)t->dims[0];
        size_t ch = 0;
        double best = -1;
        for (size_t c = 0; c < (size_t)t->dims[0]; c++) {
            double sum = 0;
            for (size_t k = 0; k < per; k++) {
                float v;
                memcpy(&v, t->raw_data.data + 4 * (c * per + k), 4);
                sum += fabs(v);
            }
            if (sum > best) {
                best = sum;
                ch = c;
            }
        }
        for (size_t k = 0; k < per; k++) {
            float v;
            memcpy(&v, t->raw_data.data + 4 * (ch * per + k), 4);
            v = (float)(v * factor);
            memcpy(t->raw_data.data + 4 * (ch * per + k), &v, 4);
        }
        m->changed = 1;
        return;
    }
    fail_msg("no initializer for %s", layer->input[1]);
}

static void check_tamper(const char *path, const char *output)
{
    bnf_model *orig = load_model(path), *folded = load_model(path);
    bnf_report *r = NULL;
    bnf_verify_result v;
    bnf_err err = {0};
    assert_int_equal(bnf_fold(folded, NULL, &r, &err), BNF_OK);
    assert_int_equal(bnf_verify_models(orig, folded, NULL, &v, &err), BNF_OK);
    if (!v.equivalent)
        fail_msg("%s: honest fold judged different: %s", path, v.reason);
    scale_channel(folded, output, 1.001);
    assert_int_equal(bnf_verify_models(orig, folded, NULL, &v, &err), BNF_OK);
    assert_true(v.ran);
    if (v.equivalent)
        fail_msg("%s: a channel scaled by 1.001 not caught (worst rel %g)", path, v.worst_rel);
    assert_string_equal(v.worst_output, output);
    bnf_report_free(r);
    bnf_model_free(orig);
    bnf_model_free(folded);
}

static void test_verify_catches_one_channel_scaled(void **state)
{
    (void)state;
    check_tamper(MODELS "conv2d.onnx", "Y");
    check_tamper(MODELS "conv3d.onnx", "Y");
    /* deep in a network the change is below float noise at the logits; it is
     * caught where it happens, at the value both models compute */
    check_tamper("testdata/demo/mobilenet_v2_tiny.onnx",
                 "/features/features.0/features.0.1/BatchNormalization_output_0");
}

/* ---- the lockstep engine against full runs --------------------------------------- */

typedef struct {
    char *name[512];
    bnf_tensor value[512];
    size_t n;
} value_log;

/* Keeps a copy of every value a run computes. */
static bnf_status log_value(void *ctx, const char *name, bnf_tensor *value, bnf_err *err)
{
    value_log *l = ctx;
    uint8_t *buf = NULL;
    size_t n = 0;
    bnf_status rc;
    if (l->n == 512)
        return BNF_OK;
    if ((rc = bnf_tensor_serialize(value, name, &buf, &n, err)) ||
        (rc = bnf_tensor_load_buffer(buf, n, &l->value[l->n], NULL, err))) {
        bnf_buffer_free(buf);
        return rc;
    }
    bnf_buffer_free(buf);
    l->name[l->n++] = strdup(name);
    return BNF_OK;
}

static void value_log_run(const bnf_model *m, uint64_t seed, value_log *l)
{
    bnf_session *s = NULL;
    bnf_tensors in = {0};
    bnf_tensor out[8] = {{0}};
    bnf_err err = {0};
    memset(l, 0, sizeof *l);
    assert_int_equal(bnf_session_new(m, NULL, &s, &err), BNF_OK);
    assert_true(bnf_session_n_outputs(s) <= 8);
    assert_int_equal(bnf_session_make_inputs(s, NULL, 0, NULL, 0, seed, &in, &err), BNF_OK);
    if (bnf_session_run_observed(s, in.ptr, out, log_value, l, &err) != BNF_OK)
        fail_msg("run: %s", err.msg);
    for (size_t i = 0; i < bnf_session_n_outputs(s); i++)
        bnf_tensor_release(&out[i]);
    bnf_tensors_release(&in);
    bnf_session_free(s);
}

static void value_log_free(value_log *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->name[i]);
        bnf_tensor_release(&l->value[i]);
    }
}

/* A tampered channel deep in a network: the lockstep engine (B's nodes fed
 * with A's values) names the value where the difference arises and its size;
 * two whole runs of A and B, every value kept and compared afterwards (first
 * value outside tolerance in B's order, as the engine stops at the first),
 * name the same value with the same difference, up to rounding. */
static void test_lockstep_agrees_with_full_runs(void **state)
{
    const char *path = "testdata/demo/mobilenet_v2_tiny.onnx";
    const char *tampered = "/features/features.3/conv/conv.0/conv.0.1/BatchNormalization_output_0";
    bnf_model *a = load_model(path), *b = load_model(path);
    bnf_report *r = NULL;
    bnf_verify_options o;
    bnf_verify_result v;
    bnf_err err = {0};
    value_log la, lb;
    const char *first = NULL;
    double first_rel = 0;
    (void)state;
    assert_int_equal(bnf_fold(b, NULL, &r, &err), BNF_OK);
    scale_channel(b, tampered, 1.002);
    bnf_verify_defaults(&o);
    o.random_sets = 1;
    o.seed = 5;
    assert_int_equal(bnf_verify_models(a, b, &o, &v, &err), BNF_OK);
    assert_true(v.ran && !v.equivalent);
    assert_string_equal(v.worst_output, tampered);

    value_log_run(a, o.seed, &la);
    value_log_run(b, o.seed, &lb);
    for (size_t j = 0; j < lb.n && !first; j++)
        for (size_t i = 0; i < la.n; i++) {
            bnf_compare_result c;
            if (strcmp(la.name[i], lb.name[j]) != 0)
                continue;
            bnf_tensor_compare(&lb.value[j], &la.value[i], 0, 0, &c);
            assert_true(c.shape_ok);
            bnf_tensor_compare(&lb.value[j], &la.value[i], o.rtol, o.atol * c.max_want, &c);
            if (!c.pass) {
                first = lb.name[j];
                first_rel = c.max_abs / c.max_want;
            }
            break;
        }
    if (!first)
        fail_msg("the full runs find no value outside tolerance");
    assert_string_equal(first, v.worst_output);
    if (!(fabs(first_rel - v.worst_rel) <= 0.05 * v.worst_rel))
        fail_msg("worst |diff| / max|value| at %s: lockstep %g, full runs %g", first, v.worst_rel,
                 first_rel);
    value_log_free(&la);
    value_log_free(&lb);
    bnf_report_free(r);
    bnf_model_free(a);
    bnf_model_free(b);
}

static void test_broken_fold_is_refused(void **state)
{
    bnf_model *m = load_model(MODELS "conv2d.onnx");
    bnf_fold_options o;
    bnf_report *r = NULL;
    bnf_err err = {0};
    (void)state;
    bnf_fold_defaults(&o);
    o.break_for_testing = 1;
    assert_int_equal(bnf_fold(m, &o, &r, &err), BNF_ERR_CHECK);
    assert_non_null(strstr(err.msg, "'bn'"));
    assert_null(r);
    bnf_model_free(m);
}

static void test_tensor_files_round_trip(void **state)
{
    char *dir = temp_dir(), path[300];
    bnf_tensor t = {0}, back;
    bnf_err err = {0};
    char *name = NULL;
    int64_t dims[3] = {2, 3, 4};
    (void)state;
    assert_int_equal(bnf_tensor_random(&t, 1, dims, 3, 7, &err), BNF_OK);
    snprintf(path, sizeof path, "%s/t.pb", dir);
    assert_int_equal(bnf_tensor_save(path, &t, "x", &err), BNF_OK);
    assert_int_equal(bnf_tensor_load(path, &back, &name, &err), BNF_OK);
    assert_string_equal(name, "x");
    assert_int_equal(back.n, 24);
    assert_memory_equal(back.data, t.data, 24 * 4);
    free(name);
    bnf_tensor_release(&back);
    bnf_tensor_release(&t);
    unlink(path);
    rmdir(dir);
    free(dir);
}

/* A Gemm whose B is large (18 MB) in a lean session (the verifier's): B is
 * read a few rows at a time from where the file holds it, aligned or not (the
 * initializer's name moves its bytes), for both layouts of B.  Each gives what
 * a plain double-precision product gives, and what a session that reads B
 * whole gives. */
static void test_lean_gemm_streams_big_weight(void **state)
{
    enum { M = 2, K = 1024, N = 4500 };
    char *dir = temp_dir(), path[4096];
    float *w = malloc((size_t)K * N * sizeof *w), xv[M * K], cv[N];
    int aligned = 0; /* bit 0: B's bytes seen misaligned, bit 1: aligned */
    (void)state;
    assert_non_null(w);
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    for (size_t i = 0; i < M * K; i++)
        xv[i] = (float)((i * 40503u) % 101) / 50.0f - 1.0f;
    for (size_t i = 0; i < N; i++)
        cv[i] = (float)i / N;
    for (int tb = 0; tb <= 1; tb++)
        for (int shift = 0; shift < 4; shift++) {
            Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
            Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT, *ops[1] = {&op};
            Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
            Onnx__NodeProto node = ONNX__NODE_PROTO__INIT, *nodes[1] = {&node};
            Onnx__AttributeProto at = ONNX__ATTRIBUTE_PROTO__INIT, *ats[1] = {&at};
            Onnx__TensorProto tw = ONNX__TENSOR_PROTO__INIT, tc = ONNX__TENSOR_PROTO__INIT;
            Onnx__TensorProto *inits[2] = {&tw, &tc};
            Onnx__ValueInfoProto vx = ONNX__VALUE_INFO_PROTO__INIT, vy = ONNX__VALUE_INFO_PROTO__INIT;
            Onnx__ValueInfoProto *gin[1] = {&vx}, *gout[1] = {&vy};
            Onnx__TypeProto tx = ONNX__TYPE_PROTO__INIT, ty = ONNX__TYPE_PROTO__INIT;
            Onnx__TypeProto__Tensor ttx = ONNX__TYPE_PROTO__TENSOR__INIT,
                                    tty = ONNX__TYPE_PROTO__TENSOR__INIT;
            Onnx__TensorShapeProto sx = ONNX__TENSOR_SHAPE_PROTO__INIT;
            Onnx__TensorShapeProto__Dimension d0 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT,
                                              d1 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
            Onnx__TensorShapeProto__Dimension *dx[2] = {&d0, &d1};
            char wname[8] = "w";
            char *node_in[3] = {"x", wname, "c"}, *node_out[1] = {"y"};
            int64_t wdims[2] = {tb ? N : K, tb ? K : N}, cdims[1] = {N}, xdims[2] = {M, K};
            float *wt = malloc((size_t)K * N * sizeof *wt);
            bnf_model *m;
            bnf_err err = {0};
            bnf_tensor x = {0}, full[1], lean[1];
            const bnf_tensor *in[1] = {&x};
            uint8_t *buf;
            size_t len;
            FILE *f;

            assert_non_null(wt);
            for (size_t r = 0; r < (size_t)K; r++) /* B as stored: W (k x n) or its transpose */
                for (size_t c = 0; c < (size_t)N; c++)
                    wt[tb ? c * K + r : r * N + c] = w[r * N + c];
            memset(wname + 1, 'w', (size_t)shift);
            op.has_version = 1;
            op.version = 13;
            mp.has_ir_version = 1;
            mp.ir_version = 8;
            mp.n_opset_import = 1;
            mp.opset_import = ops;
            mp.graph = &g;
            g.name = "g";
            g.n_node = 1;
            g.node = nodes;
            node.op_type = "Gemm";
            node.name = "gemm";
            node.n_input = 3;
            node.input = node_in;
            node.n_output = 1;
            node.output = node_out;
            at.name = "transB";
            at.has_type = 1;
            at.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
            at.has_i = 1;
            at.i = tb;
            node.n_attribute = 1;
            node.attribute = ats;
            tw.name = wname;
            tw.has_data_type = tc.has_data_type = 1;
            tw.data_type = tc.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
            tw.n_dims = 2;
            tw.dims = wdims;
            tw.has_raw_data = 1;
            tw.raw_data.len = (size_t)K * N * sizeof(float);
            tw.raw_data.data = (uint8_t *)wt;
            tc.name = "c";
            tc.n_dims = 1;
            tc.dims = cdims;
            tc.n_float_data = N;
            tc.float_data = cv;
            g.n_initializer = 2;
            g.initializer = inits;
            d0.value_case = d1.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d0.dim_value = M;
            d1.dim_value = K;
            sx.n_dim = 2;
            sx.dim = dx;
            ttx.has_elem_type = tty.has_elem_type = 1;
            ttx.elem_type = tty.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
            ttx.shape = &sx;
            tx.value_case = ty.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
            tx.tensor_type = &ttx;
            ty.tensor_type = &tty;
            vx.name = "x";
            vx.type = &tx;
            vy.name = "y";
            vy.type = &ty;
            g.n_input = 1;
            g.input = gin;
            g.n_output = 1;
            g.output = gout;
            len = onnx__model_proto__get_packed_size(&mp);
            buf = malloc(len);
            assert_non_null(buf);
            onnx__model_proto__pack(&mp, buf);
            snprintf(path, sizeof path, "%s/gemm.onnx", dir);
            f = fopen(path, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(buf, 1, len, f), len);
            fclose(f);
            free(buf);
            free(wt);

            if (bnf_model_load(path, &m, &err) != BNF_OK)
                fail_msg("load: %s", err.msg);
            aligned |= 1 << ((uintptr_t)m->proto->graph->initializer[0]->raw_data.data % 4 == 0);
            assert_int_equal(bnf_tensor_alloc(&x, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, xdims, 2,
                                              &err),
                             BNF_OK);
            memcpy(x.data, xv, sizeof xv);
            for (int leaned = 0; leaned <= 1; leaned++) {
                bnf_session *s = NULL;
                bnf_tensor *y = leaned ? lean : full;
                if (bnf_session_new(m, NULL, &s, &err) != BNF_OK)
                    fail_msg("session: %s", err.msg);
                if (leaned)
                    bnf_session_lean(s);
                if (bnf_session_run(s, in, y, &err) != BNF_OK)
                    fail_msg("run (tb %d, lean %d): %s", tb, leaned, err.msg);
                bnf_session_free(s);
                assert_int_equal(y->n, (size_t)M * N);
            }
            for (size_t i = 0; i < M; i++)
                for (size_t j = 0; j < (size_t)N; j++) {
                    double want = cv[j];
                    float got = ((const float *)lean[0].data)[i * N + j];
                    for (size_t r = 0; r < (size_t)K; r++)
                        want += (double)xv[i * K + r] * w[r * N + j];
                    if (fabs(got - want) > 1e-4 * (1 + fabs(want)))
                        fail_msg("tb %d, name shift %d: y[%zu, %zu] = %.9g, want %.9g", tb, shift,
                                 i, j, got, want);
                    assert_float_equal(got, ((const float *)full[0].data)[i * N + j],
                                       1e-4 * (1 + fabs(want)));
                }
            bnf_tensor_release(&x);
            bnf_tensor_release(&lean[0]);
            bnf_tensor_release(&full[0]);
            bnf_model_free(m);
            unlink(path);
        }
    assert_int_equal(aligned, 3); /* both ways were tried */
    free(w);
    rmdir(dir);
    bnf_free(dir);
}

/* The in-memory forms (for bindings) agree with the files: the bytes
 * bnf_tensor_serialize makes are the file bnf_tensor_save writes, and
 * bnf_tensor_load_buffer reads them (and .npy bytes) back. */
static void test_tensor_buffers_round_trip(void **state)
{
    char *dir = temp_dir(), path[300];
    bnf_tensor t = {0}, back;
    bnf_err err = {0};
    char *name = NULL;
    uint8_t *bytes = NULL, file[4096];
    size_t n = 0, got;
    int64_t dims[2] = {3, 5};
    FILE *f;
    static const uint8_t npy[] = "\x93NUMPY\x01\x00\x3a\x00{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n"
                                 "\x07\0\0\0\0\0\0\0\x09\0\0\0\0\0\0\0";
    (void)state;
    assert_int_equal(bnf_tensor_random(&t, 1, dims, 2, 3, &err), BNF_OK);
    assert_int_equal(bnf_tensor_serialize(&t, "y", &bytes, &n, &err), BNF_OK);
    snprintf(path, sizeof path, "%s/t.pb", dir);
    assert_int_equal(bnf_tensor_save(path, &t, "y", &err), BNF_OK);
    assert_non_null(f = fopen(path, "rb"));
    got = fread(file, 1, sizeof file, f);
    fclose(f);
    assert_int_equal(got, n);
    assert_memory_equal(file, bytes, n);
    assert_int_equal(bnf_tensor_load_buffer(bytes, n, &back, &name, &err), BNF_OK);
    assert_string_equal(name, "y");
    assert_int_equal(back.n, 15);
    assert_memory_equal(back.data, t.data, 15 * 4);
    bnf_buffer_free(name);
    bnf_tensor_release(&back);
    assert_int_equal(bnf_tensor_load_buffer(npy, sizeof npy - 1, &back, NULL, &err), BNF_OK);
    assert_int_equal(back.dtype, 7);
    assert_int_equal(back.n, 2);
    assert_int_equal(((int64_t *)back.data)[1], 9);
    bnf_tensor_release(&back);
    assert_int_equal(bnf_tensor_load_buffer("\x0a\xff", 2, &back, NULL, &err), BNF_ERR_INVALID);
    assert_non_null(strstr(err.msg, "tensor buffer"));
    bnf_buffer_free(bytes);
    bnf_tensor_release(&t);
    unlink(path);
    rmdir(dir);
    bnf_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_matches_torch_on_demo),
        cmocka_unit_test(test_session_runs_again_alike),
        cmocka_unit_test(test_fold_cases_against_reference_outputs),
        cmocka_unit_test(test_verify_catches_one_channel_scaled),
        cmocka_unit_test(test_lockstep_agrees_with_full_runs),
        cmocka_unit_test(test_broken_fold_is_refused),
        cmocka_unit_test(test_tensor_files_round_trip),
        cmocka_unit_test(test_lean_gemm_streams_big_weight),
        cmocka_unit_test(test_tensor_buffers_round_trip),
    };
    return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
