/* test_alloc.c: allocation failure at every allocation, over whole runs.
 *
 * For each model below, the whole pipeline (load, inspect, fold with both
 * checks, serialize, reload, evaluate) is run once to count its allocations,
 * then once per allocation k with the k-th made to fail.  Every run must end
 * in BNF_OK or an error status (never a crash), and once everything is freed
 * no block may be left: failure paths leak nothing. */
#include "testutil.h"

/* One run of the pipeline; returns the first failing status.  A model the
 * evaluator cannot run (If, Loop: its end-to-end check says so) stops before
 * the evaluation. */
static bnf_status pipeline(const char *path)
{
    bnf_model *m = NULL, *back = NULL;
    bnf_report *ri = NULL, *rf = NULL;
    bnf_session *s = NULL;
    bnf_tensor in[4], out[4];
    const bnf_tensor *in_ptr[4];
    uint8_t *bytes = NULL;
    size_t n = 0;
    bnf_err err = {0};
    bnf_status rc;

    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    if ((rc = bnf_model_load(path, &m, &err)) || (rc = bnf_inspect(m, &ri, &err)) ||
        (rc = bnf_fold(m, NULL, &rf, &err)) || (rc = bnf_model_serialize(m, &bytes, &n, &err)) ||
        (rc = bnf_model_load_buffer(bytes, n, NULL, &back, &err)))
        goto out;
    if (rf->e2e_requested && !rf->e2e.ran && strstr(rf->e2e.reason, "does not implement"))
        goto out;
    if ((rc = bnf_session_new(back, NULL, &s, &err)))
        goto out;
    assert_true(bnf_session_n_inputs(s) <= 4 && bnf_session_n_outputs(s) <= 4);
    if ((rc = bnf_session_inputs(s, NULL, 0, NULL, 0, 1, in, &err)))
        goto out;
    for (size_t i = 0; i < 4; i++)
        in_ptr[i] = &in[i];
    rc = bnf_session_run(s, in_ptr, out, &err);
out:
    if (rc && getenv("ALLOC_DEBUG"))
        print_message("%s: %s\n", path, err.msg);
    if (rc)
        assert_true(err.code == rc && err.msg[0]); /* every error says something */
    for (size_t i = 0; i < 4; i++) {
        bnf_tensor_release(&in[i]);
        bnf_tensor_release(&out[i]);
    }
    bnf_session_free(s);
    bnf_model_free(back);
    bnf_buffer_free(bytes);
    bnf_report_free(ri);
    bnf_report_free(rf);
    bnf_model_free(m);
    return rc;
}

static void every_allocation_fails_once(const char *path)
{
    long total, live0 = bnf_alloc_live();
    size_t nomem = 0;
    bnf_alloc_fail_at(-1);
    assert_int_equal(pipeline(path), BNF_OK);
    total = bnf_alloc_calls();
    assert_int_equal(bnf_alloc_live(), live0);
    for (long k = 0; k < total; k++) {
        bnf_status rc;
        bnf_alloc_fail_at(k);
        rc = pipeline(path);
        bnf_alloc_fail_at(-1);
        if (bnf_alloc_live() != live0)
            fail_msg("%s: allocation %ld of %ld failing leaves %ld block(s)", path, k, total,
                     bnf_alloc_live() - live0);
        nomem += rc == BNF_ERR_NOMEM;
    }
    print_message("%s: %ld allocations, each failed once: no crash, no leak (%zu runs ended "
                  "in BNF_ERR_NOMEM)\n", path, total, nomem);
    assert_true(nomem > 0);
}

static void test_conv2d(void **state)
{
    (void)state;
    every_allocation_fails_once(MODELS "conv2d.onnx");
}

static void test_gemm_chain(void **state)
{
    (void)state;
    every_allocation_fails_once(MODELS "gemm_c_mn.onnx");
    every_allocation_fails_once(MODELS "conv2d_bn_bn.onnx");
}

static void test_patterns(void **state)
{
    (void)state;
    every_allocation_fails_once("testdata/patterns/conv_bn_mul_add.onnx");
    every_allocation_fails_once("testdata/patterns/bn_conv_group.onnx");
    every_allocation_fails_once("testdata/patterns/matmul_bn.onnx");
}

/* Verified folds of layers inside subgraphs (If, Loop) and a model-local
 * function, and of a bfloat16 model (its end-to-end check also runs the
 * original with jittered weights for the noise floor). */
static void test_subgraphs_and_16bit(void **state)
{
    (void)state;
    every_allocation_fails_once("testdata/patterns/if_conv_bn.onnx");
    every_allocation_fails_once("testdata/patterns/loop_conv_bn.onnx");
    every_allocation_fails_once("testdata/patterns/function_conv_bn.onnx");
    every_allocation_fails_once(MODELS "conv2d_bf16.onnx");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_gemm_chain),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_subgraphs_and_16bit),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
