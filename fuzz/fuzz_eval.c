/* fuzz/fuzz_eval.c: libFuzzer harness for the evaluator: load,
 * bnf_session_new, random inputs from bnf_session_inputs, bnf_session_run,
 * output statistics.  Only models whose inputs are small (MAX_ELEMS elements
 * in total, from the model's own shapes, symbolic dimensions 1) are run. */
#include "common.h"

#define MAX_ELEMS 100000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bnf_err err = {0};
    bnf_model *m = NULL;
    bnf_session *s = NULL;
    bnf_session_options so = {1};
    bnf_tensors in = {0}, out = {0};
    size_t n_in = 0, n_out = 0;
    bnf_status rc;

    rc = bnf_model_load_buffer(data, size, NULL, &m, &err);
    check_status(rc, &err, "bnf_model_load_buffer");
    if (rc || !fuzz_small_inputs(m, MAX_ELEMS))
        goto out;
    memset(&err, 0, sizeof err);
    rc = bnf_session_new(m, &so, &s, &err);
    check_status(rc, &err, "bnf_session_new");
    if (rc)
        goto out;
    n_in = bnf_session_n_inputs(s);
    n_out = bnf_session_n_outputs(s);
    for (size_t i = 0; i < n_in; i++)
        FUZZ_CHECK(bnf_session_input_name(s, i) != NULL, "input %zu has no name", i);
    for (size_t i = 0; i < n_out; i++)
        FUZZ_CHECK(bnf_session_output_name(s, i) != NULL, "output %zu has no name", i);
    memset(&err, 0, sizeof err);
    rc = bnf_session_make_inputs(s, NULL, 0, NULL, 0, fuzz_seed(data, size), &in, &err);
    check_status(rc, &err, "bnf_session_make_inputs");
    if (rc)
        goto out;
    memset(&err, 0, sizeof err);
    rc = bnf_session_run_tensors(s, &in, &out, &err);
    check_status(rc, &err, "bnf_session_run_tensors");
    if (rc == BNF_OK) {
        for (size_t k = 0; k < n_out; k++) {
            double lo, hi, mean;
            bnf_compare_result c;
            FUZZ_CHECK(out.t[k].rank <= BNF_MAX_RANK, "output %zu has rank %zu", k, out.t[k].rank);
            bnf_tensor_stats(&out.t[k], &lo, &hi, &mean);
            bnf_tensor_compare(&out.t[k], &out.t[k], 0, 0, &c);
            FUZZ_CHECK(c.shape_ok && c.pass, "output %zu differs from itself", k);
        }
    }
out:
    bnf_tensors_release(&in);
    bnf_tensors_release(&out);
    bnf_session_free(s);
    bnf_model_free(m);
    return 0;
}
