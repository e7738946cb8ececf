/* test_tensor.c: float16 / bfloat16 conversions (against values worked out by
 * hand from IEEE 754) and tensor decoding of every storage form. */
#include "testutil.h"

static void test_half_known_values(void **state)
{
    static const struct { double x; uint16_t bits; } cases[] = {
        {0.0, 0x0000}, {-0.0, 0x8000}, {1.0, 0x3c00}, {-2.0, 0xc000},
        {65504.0, 0x7bff},              /* largest finite */
        {65519.99, 0x7bff},             /* rounds down to it */
        {65520.0, 0x7c00},              /* ties away to infinity */
        {0x1p-24, 0x0001},              /* smallest subnormal */
        {0x1p-25, 0x0000},              /* tie: to even, zero */
        {0x1.8p-24, 0x0002},            /* 1.5 units: tie to even, 2 */
        {0x1p-14, 0x0400},              /* smallest normal */
        {0x1.ffcp-15, 0x0400},          /* subnormal that rounds up into the normals */
        {1.0 + 0x1p-11, 0x3c00},        /* tie: to even (down) */
        {1.0 + 0x3p-11, 0x3c02},        /* tie: to even (up) */
        {0.1, 0x2e66},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = bnf_double_to_half(cases[i].x);
        if (got != cases[i].bits)
            fail_msg("half(%a) = 0x%04x, expected 0x%04x", cases[i].x, got, cases[i].bits);
    }
    assert_true(isinf(bnf_half_to_double(0x7c00)));
    assert_true(isnan(bnf_half_to_double(0x7e00)));
    assert_true(bnf_half_to_double(0x0001) == 0x1p-24);
    assert_true(bnf_half_to_double(0x7bff) == 65504.0);
}

static void test_minifloat_round_trip(void **state)
{
    (void)state;
    for (uint32_t b = 0; b < 0x10000; b++) {
        uint16_t h = (uint16_t)b;
        double v = bnf_half_to_double(h), w = bnf_bf16_to_double(h);
        if (!isnan(v) && bnf_double_to_half(v) != h)
            fail_msg("half 0x%04x -> %a -> 0x%04x", h, v, bnf_double_to_half(v));
        if (!isnan(w) && bnf_double_to_bf16(w) != h)
            fail_msg("bf16 0x%04x -> %a -> 0x%04x", h, w, bnf_double_to_bf16(w));
        /* a value halfway to the next one up rounds to the even of the two */
        if (isfinite(v) && v > 0 && (h & 0x7fff) < 0x7bff) {
            double next = bnf_half_to_double((uint16_t)(h + 1));
            uint16_t r = bnf_double_to_half((v + next) / 2);
            assert_int_equal(r, (h & 1) ? h + 1 : h);
        }
    }
}

static void test_bf16_known_values(void **state)
{
    (void)state;
    assert_int_equal(bnf_double_to_bf16(1.0), 0x3f80);
    assert_int_equal(bnf_double_to_bf16(-1.0), 0xbf80);
    assert_int_equal(bnf_double_to_bf16(1.0 + 0x1p-8), 0x3f80); /* tie to even */
    assert_int_equal(bnf_double_to_bf16(1.0 + 0x3p-8), 0x3f82);
    assert_int_equal(bnf_double_to_bf16(3.0e38), 0x7f62);
    assert_int_equal(bnf_double_to_bf16(1e39), 0x7f80); /* overflow */
    assert_true(bnf_bf16_to_double(0x4049) == 3.140625);
}

/* One conv weight in five storage forms decodes to the same values. */
static void test_storage_forms_agree(void **state)
{
    static const char *const models[] = {
        MODELS "conv2d_float_data.onnx", MODELS "conv2d_double.onnx",
        MODELS "conv2d_external.onnx",
    };
    (void)state;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        bnf_model *m = load_model(models[i]);
        const Onnx__NodeProto *conv = NULL;
        bnf_array w;
        for (size_t k = 0; k < m->proto->graph->n_node; k++)
            if (strcmp(m->proto->graph->node[k]->op_type, "Conv") == 0)
                conv = m->proto->graph->node[k];
        assert_non_null(conv);
        read_const(m, conv->input[1], &w);
        assert_true(w.n > 0);
        for (size_t k = 0; k < w.n; k++)
            assert_true(isfinite(w.v[k]) && fabs(w.v[k]) < 10);
        bnf_array_release(&w);
        bnf_model_free(m);
    }
}

static void test_bad_sizes_are_errors(void **state)
{
    Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
    int64_t dims[2] = {2, 3};
    uint8_t raw[20] = {0};
    bnf_array a;
    bnf_err err = {0};
    (void)state;
    t.name = "w";
    t.has_data_type = 1;
    t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t.n_dims = 2;
    t.dims = dims;
    t.has_raw_data = 1;
    t.raw_data.data = raw;
    t.raw_data.len = sizeof raw; /* 20 bytes, 24 needed */
    assert_int_equal(bnf_proto_read(NULL, &t, &a, &err), BNF_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'w'"));
    dims[0] = -1;
    assert_int_equal(bnf_proto_read(NULL, &t, &a, &err), BNF_ERR_INVALID);
    assert_non_null(strstr(err.msg, "negative"));
    dims[0] = INT64_MAX / 2;
    dims[1] = INT64_MAX / 2;
    assert_int_equal(bnf_proto_read(NULL, &t, &a, &err), BNF_ERR_INVALID);
    t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    assert_int_equal(bnf_proto_read(NULL, &t, &a, &err), BNF_ERR_UNSUPPORTED);
}

/* bnf_proto_scaled checking only (out NULL: the screen on the bits of |w|,
 * then value by value when it hits) finds the same first bad element as the
 * scaling that writes (value by value always), on weights and scales drawn to
 * hit the edges: near FLT_MAX / s, subnormals near FLT_TRUE_MIN / s, zeros,
 * infinities, NaN, zero scales. */
static void test_scaled_check_screen(void **state)
{
    static const double scales[] = {0.0, 1e-30, 1e-3, -0.5, 1.0, 3.0, 1e3, 1e30, 3.4e38};
    static const float specials[] = {0.0f, -0.0f, 1e-45f, 1e-44f, 3e-39f, 1e-38f, 1.17e-38f,
                                     3.4e38f, -3.4e38f, 1e35f, 1e8f, 1e-8f, 0.25f};
    bnf_model *m = load_model(MODELS "conv2d.onnx");
    uint64_t rng = 88172645463325252ull;
    size_t screened_clear = 0, bad_found = 0;
    (void)state;
    for (int trial = 0; trial < 400; trial++) {
        enum { C = 6, INNER = 50 };
        double w[C * INNER], s[C];
        int64_t dims[2] = {C, INNER};
        bnf_scaling sc = {INNER, C, 0};
        Onnx__TensorProto *t = NULL, *out = NULL;
        size_t bad1 = 0, bad2 = 0;
        double v1 = 0, v2 = 0;
        bnf_err err = {0};
        for (int c = 0; c < C; c++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            s[c] = scales[rng % (sizeof scales / sizeof scales[0])];
        }
        for (int i = 0; i < C * INNER; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            w[i] = ((double)(rng % 2001) - 1000.0) / 500.0;
            if (rng % 97 == 0 && trial % 2)
                w[i] = specials[(rng >> 20) % (sizeof specials / sizeof specials[0])];
        }
        if (trial % 50 == 7)
            w[trial % (C * INNER)] = NAN;
        assert_int_equal(bnf_proto_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, 2, w,
                                       C * INNER, &t, &err), BNF_OK);
        assert_int_equal(bnf_proto_scaled(m, t, "w1", s, &sc, NULL, &bad1, &v1, &err), BNF_OK);
        assert_int_equal(bnf_proto_scaled(m, t, "w2", s, &sc, &out, &bad2, &v2, &err), BNF_OK);
        if (bad1 != bad2 || (bad1 && !(v1 == v2 || (isnan(v1) && isnan(v2)))))
            fail_msg("trial %d: checking only: bad %zu (%g); writing: bad %zu (%g)", trial, bad1,
                     v1, bad2, v2);
        bad_found += bad1 != 0;
        screened_clear += bad1 == 0;
        if (out) { /* the written values, bit for bit: one double multiply, one rounding */
            bnf_array got = {0};
            assert_int_equal(bnf_proto_read(m, out, &got, &err), BNF_OK);
            for (int i = 0; i < C * INNER; i++) {
                float want = (float)((double)(float)w[i] * s[i / INNER]), g = (float)got.v[i];
                if (memcmp(&want, &g, 4) != 0 && !(isnan(want) && isnan(g)))
                    fail_msg("trial %d: element %d: %a * %g wrote %a, not %a", trial, i,
                             (double)(float)w[i], s[i / INNER], (double)g, (double)want);
            }
            bnf_array_release(&got);
        }
        if (out)
            onnx__tensor_proto__free_unpacked(out, bnf_model_alloc(m));
        onnx__tensor_proto__free_unpacked(t, &bnf_pbc_allocator);
    }
    /* both outcomes drawn often */
    assert_true(bad_found > 40 && screened_clear > 40);
    bnf_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_known_values),
        cmocka_unit_test(test_minifloat_round_trip),
        cmocka_unit_test(test_bf16_known_values),
        cmocka_unit_test(test_storage_forms_agree),
        cmocka_unit_test(test_bad_sizes_are_errors),
        cmocka_unit_test(test_scaled_check_screen),
    };
    return cmocka_run_group_tests_name("tensor", tests, NULL, NULL);
}
