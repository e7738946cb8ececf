/* test_lean_io.c: the mapped model, its skeleton, spilled tensors, the
 * streamed writer and external data (src/io/mapped.c, skeleton.c, writer.c).
 *
 * The reference for every fold is the model folded through the plain path:
 * a fold with verification, whose weights are computed as numbers (and which
 * test_fold.c checks against numpy).  Whatever way the bytes travel (streamed
 * from the mapping, spilled to a file, copied file to file, a skeleton or the
 * whole file unpacked) the output must be the same, byte for byte. */
#include "testutil.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const cases[] = {
    "conv1d", "conv2d", "conv3d", "conv2d_nobias", "conv2d_group", "conv2d_depthwise",
    "convtranspose1d", "convtranspose2d_group", "convtranspose2d_nobias", "convtranspose3d",
    "gemm_tA0_tB0", "gemm_tA1_tB1", "gemm_c_mn", "conv2d_float_data", "conv2d_double",
    "conv2d_fp16", "conv2d_fp16_int32", "conv2d_bf16", "conv2d_mixed15", "conv2d_external",
    "conv2d_external_big", "conv2d_constant_nodes", "conv2d_identity", "conv2d_shared_weight",
    "conv2d_bn_bn", "bn_opset9", "conv2d_ir3_init_inputs", "roundtrip_unknown",
    /* subgraphs and functions (their tensors are unpacked whole), other patterns */
    "../patterns/if_conv_bn", "../patterns/loop_conv_bn", "../patterns/function_conv_bn",
    "../patterns/conv_bn_mul_add", "../patterns/bn_conv", "../patterns/bn_gemm",
    "../patterns/matmul_bn", "../patterns/conv2d_fp16_overflow", "../patterns/conv_mul_add",
};

/* Folds `path` (verify on or off) and saves it as dir/NAME (and, with
 * external data, dir/NAME.data). */
static void fold_to(const char *path, int verify, const char *dir, const char *name)
{
    char out[512];
    bnf_model *m = load_model(path);
    bnf_fold_options o;
    bnf_report *r = NULL;
    bnf_err err = {0};

    bnf_fold_defaults(&o);
    o.verify = verify;
    if (bnf_fold(m, &o, &r, &err) != BNF_OK)
        fail_msg("%s: fold: %s", path, err.msg);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    if (bnf_model_save(m, out, &err) != BNF_OK)
        fail_msg("%s: save: %s", path, err.msg);
    bnf_report_free(r);
    bnf_model_free(m);
}

/* The same model: nodes and every initializer's type, shape and bytes (where
 * the bytes are may differ: a spill file that became the data file keeps its
 * own layout). */
static void expect_same_model(const char *a_path, const char *b_path, const char *what)
{
    bnf_model *a = load_model(a_path), *b = load_model(b_path);
    const Onnx__GraphProto *ga = a->proto->graph, *gb = b->proto->graph;
    bnf_err err = {0};
    assert_int_equal(ga->n_node, gb->n_node);
    assert_int_equal(ga->n_initializer, gb->n_initializer);
    for (size_t i = 0; i < ga->n_initializer; i++) {
        const Onnx__TensorProto *ta = ga->initializer[i], *tb = gb->initializer[i];
        bnf_array va, vb;
        assert_string_equal(ta->name, tb->name);
        if (!bnf_dtype_is_real(ta->data_type))
            continue;
        assert_int_equal(bnf_proto_read(a, ta, &va, &err), BNF_OK);
        assert_int_equal(bnf_proto_read(b, tb, &vb, &err), BNF_OK);
        assert_int_equal(va.n, vb.n);
        if (memcmp(va.v, vb.v, va.n * sizeof *va.v) != 0)
            fail_msg("%s: tensor '%s' differs", what, ta->name);
        bnf_array_release(&va);
        bnf_array_release(&vb);
    }
    bnf_model_free(a);
    bnf_model_free(b);
}

static void expect_same_output(const char *name, const char *how, int verify)
{
    char path[256], ref[512], got[512], what[300];
    char *dir = temp_dir();
    int external;

    snprintf(path, sizeof path, MODELS "%s.onnx", name);
    snprintf(ref, sizeof ref, "%s/ref.onnx", dir);
    snprintf(got, sizeof got, "%s/got.onnx", dir);
    snprintf(what, sizeof what, "%s, %s", name, how);
    bnf_mapped_test_limits(32ull << 20, 64 * 1024);
    fold_to(path, 1, dir, "ref.onnx");
    bnf_mapped_test_limits(0, 0); /* every new tensor spilled */
    fold_to(path, verify, dir, "got.onnx");
    bnf_mapped_test_limits(32ull << 20, 64 * 1024);
    snprintf(path, sizeof path, "%s/ref.onnx.data", dir);
    external = access(path, F_OK) == 0;
    if (!external && !same_files(ref, got))
        fail_msg("%s: the model written differs from the reference", what);
    expect_same_model(ref, got, what);
    unlink(ref);
    unlink(got);
    unlink(path);
    snprintf(path, sizeof path, "%s/got.onnx.data", dir);
    unlink(path);
    rmdir(dir);
    bnf_free(dir);
}

/* Streamed from the mapping and spilled (no verification) or computed as
 * numbers and spilled (verification): the same bytes as the plain path. */
static void test_spilled_and_streamed_folds_match(void **state)
{
    long live = bnf_alloc_live();
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_same_output(cases[i], "streamed and spilled", 0);
        expect_same_output(cases[i], "verified and spilled", 1);
    }
    assert_int_equal(bnf_alloc_live(), live);
}

/* A file protobuf-c would merge (the graph field twice) is unpacked whole,
 * not through a skeleton; it loads and folds all the same. */
static void test_unusual_file_unpacked_whole(void **state)
{
    size_t n;
    uint8_t *bytes = slurp(MODELS "conv2d.onnx", &n), *more;
    bnf_model *a, *b;
    bnf_report *r = NULL;
    bnf_err err = {0};
    uint8_t *pa, *pb;
    size_t na, nb;
    long live = bnf_alloc_live();
    (void)state;

    more = malloc(n + 2);
    assert_non_null(more);
    memcpy(more, bytes, n);
    more[n] = 7 << 3 | 2; /* graph, length-delimited */
    more[n + 1] = 0;      /* empty: merges into the first */
    assert_int_equal(bnf_model_load_buffer(bytes, n, NULL, &a, &err), BNF_OK);
    assert_int_equal(bnf_model_load_buffer(more, n + 2, NULL, &b, &err), BNF_OK);
    assert_int_equal(bnf_fold(a, NULL, &r, &err), BNF_OK);
    bnf_report_free(r);
    assert_int_equal(bnf_fold(b, NULL, &r, &err), BNF_OK);
    bnf_report_free(r);
    assert_int_equal(bnf_model_serialize(a, &pa, &na, &err), BNF_OK);
    assert_int_equal(bnf_model_serialize(b, &pb, &nb, &err), BNF_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na);
    bnf_buffer_free(pa);
    bnf_buffer_free(pb);
    bnf_model_free(a);
    bnf_model_free(b);
    free(bytes);
    free(more);
    assert_int_equal(bnf_alloc_live(), live);
}

/* An external-data model folds to out.onnx + out.onnx.data: every tensor of
 * 1 KiB or more in the new data file, the input's files untouched, and the
 * output readable once the input is gone. */
static void test_external_data_end_to_end(void **state)
{
    long live = bnf_alloc_live();
    char *dir = temp_dir(), src[512], cmd[1200], out[512], out_data[520];
    bnf_model *m;
    bnf_report *r = NULL;
    bnf_err err = {0};
    size_t n_before, n_data;
    uint8_t *before;
    int external = 0;
    (void)state;

    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp " MODELS "conv2d_external_big.onnx "
             MODELS "conv2d_external_big.data '%s/'", src, src);
    assert_int_equal(system(cmd), 0);
    snprintf(src, sizeof src, "%s/src/conv2d_external_big.data", dir);
    before = slurp(src, &n_before);
    snprintf(src, sizeof src, "%s/src/conv2d_external_big.onnx", dir);
    m = load_model(src);
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
    assert_int_equal(r->n_folded, 1);
    bnf_report_free(r);
    snprintf(out, sizeof out, "%s/folded.onnx", dir);
    snprintf(out_data, sizeof out_data, "%s.data", out);
    if (bnf_model_save(m, out, &err) != BNF_OK)
        fail_msg("save: %s", err.msg);
    bnf_model_free(m);
    snprintf(src, sizeof src, "%s/src/conv2d_external_big.data", dir);
    if (!file_holds(src, before, n_before))
        fail_msg("%s was changed", src);
    free(before);
    free(slurp(out_data, &n_data));
    assert_true(n_data > 0);
    snprintf(cmd, sizeof cmd, "rm -r '%s/src'", dir);
    assert_int_equal(system(cmd), 0);

    m = load_model(out);
    for (size_t i = 0; i < m->proto->graph->n_initializer; i++) {
        const Onnx__TensorProto *t = m->proto->graph->initializer[i];
        if (bnf_proto_nbytes(t) >= 1024) {
            assert_true(bnf_proto_is_external(t));
            external++;
        }
    }
    assert_int_equal(external, 1); /* the folded weight; its bias is small */
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK); /* readable: nothing to fold */
    assert_int_equal(r->n_bns, 0);
    bnf_report_free(r);
    bnf_model_free(m);
    unlink(out);
    unlink(out_data);
    rmdir(dir);
    bnf_free(dir);
    assert_int_equal(bnf_alloc_live(), live);
}

/* Spilled tensors of an external-data model: the spill file becomes the
 * first output's data file (not copied); a second save copies, and leaves the
 * first output's data file as it was. */
static void test_spill_file_becomes_data_file(void **state)
{
    long live = bnf_alloc_live();
    char *dir = temp_dir(), a[512], b[512], a_data[520];
    bnf_model *m;
    bnf_report *r = NULL;
    bnf_err err = {0};
    uint8_t *before;
    size_t n_before;
    (void)state;

    bnf_mapped_test_limits(0, 0);
    m = load_model(MODELS "conv2d_external_big.onnx");
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
    bnf_report_free(r);
    snprintf(a, sizeof a, "%s/a.onnx", dir);
    snprintf(a_data, sizeof a_data, "%s/a.onnx.data", dir);
    snprintf(b, sizeof b, "%s/b.onnx", dir);
    assert_int_equal(bnf_model_save(m, a, &err), BNF_OK);
    before = slurp(a_data, &n_before);
    assert_int_equal(bnf_model_save(m, b, &err), BNF_OK);
    bnf_model_free(m);
    bnf_mapped_test_limits(32ull << 20, 64 * 1024);
    if (!file_holds(a_data, before, n_before))
        fail_msg("%s was changed by the second save", a_data);
    free(before);
    expect_same_model(a, b, "conv2d_external_big saved twice");
    unlink(a);
    unlink(a_data);
    unlink(b);
    snprintf(b, sizeof b, "%s/b.onnx.data", dir);
    unlink(b);
    rmdir(dir);
    bnf_free(dir);
    assert_int_equal(bnf_alloc_live(), live);
}

/* inspect folds a private copy and reads no float32 weight: it says the same
 * as fold about every BN of the fold cases. */
static void test_inspect_agrees_with_fold(void **state)
{
    long live = bnf_alloc_live();
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bnf_model *m = load_named(MODELS, cases[i], ".onnx");
        bnf_report *ri = NULL, *rf = NULL;
        bnf_err err = {0};
        assert_int_equal(bnf_inspect(m, &ri, &err), BNF_OK);
        assert_int_equal(bnf_fold(m, NULL, &rf, &err), BNF_OK);
        assert_int_equal(ri->n_bns, rf->n_bns);
        assert_int_equal(ri->n_folded, rf->n_folded);
        assert_int_equal(ri->n_bns_after, rf->n_bns_after);
        bnf_report_free(ri);
        bnf_report_free(rf);
        bnf_model_free(m);
    }
    assert_int_equal(bnf_alloc_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spilled_and_streamed_folds_match),
        cmocka_unit_test(test_unusual_file_unpacked_whole),
        cmocka_unit_test(test_external_data_end_to_end),
        cmocka_unit_test(test_spill_file_becomes_data_file),
        cmocka_unit_test(test_inspect_agrees_with_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
