/* fuzz/fuzz_fold.c: libFuzzer harness for the fold pipeline:
 *
 *   load -> bnf_inspect (reports written) -> bnf_fold, verification off
 *        -> bnf_model_serialize -> load the bytes again (must succeed)
 *
 * and, for small models with small inputs, the same fold with verification on
 * (local check of each fold, end-to-end check on one random input set).
 *
 * Promises checked (src/bnfold.h, README): inspect does not change the model
 * and reports what fold does; a model bnfold wrote always loads again, also
 * after a failed fold ("the model may be partly folded but stays a valid
 * model"); a folded model is at the fixed point (inspecting it folds nothing). */
#include "common.h"
#include "internal.h" /* only for the workaround below */

#define VERIFY_MAX_BYTES 8192
#define VERIFY_MAX_ELEMS 4096

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    fuzz_base_dir();
    return 0;
}

static void write_reports(const bnf_report *r)
{
    bnf_report_write_text(r, devnull);
    bnf_report_write_json(r, devnull);
}

/* Serialises m and loads the bytes again; both must succeed.  Returns the
 * reloaded model (caller frees). */
static bnf_model *reload(bnf_model *m, const char *when)
{
    uint8_t *bytes = NULL;
    size_t n = 0;
    bnf_err err = {0};
    bnf_model *again = NULL;
    bnf_status rc = bnf_model_serialize(m, &bytes, &n, &err);
    check_status(rc, &err, "bnf_model_serialize");
    FUZZ_CHECK(rc == BNF_OK, "%s: serialize failed: %s", when, err.msg);
    memset(&err, 0, sizeof err);
    rc = bnf_model_load_buffer(bytes, n, fuzz_dir, &again, &err);
    check_status(rc, &err, "bnf_model_load_buffer (reload)");
    FUZZ_CHECK(rc == BNF_OK, "%s: a model bnfold wrote does not load: %s", when, err.msg);
    free(bytes);
    return again;
}

static void fold_once(const uint8_t *data, size_t size, int verify)
{
    bnf_err err = {0};
    bnf_model *m = NULL, *again = NULL;
    bnf_report *insp = NULL, *r = NULL;
    bnf_fold_options fo;
    bnf_status rc;

    rc = bnf_model_load_buffer(data, size, fuzz_dir, &m, &err);
    check_status(rc, &err, "bnf_model_load_buffer");
    if (rc)
        return;
    if (verify && !fuzz_small_inputs(m, VERIFY_MAX_ELEMS))
        goto out;

    bnf_fold_defaults(&fo);
    fo.verify = verify;
    fo.check.threads = 1;
    fo.check.random_sets = 1;
    fo.check.seed = fuzz_seed(data, size);

    /* inspect is asked with the options fold gets: it foresees the local check only
     * when the fold would run one */
    memset(&err, 0, sizeof err);
    rc = bnf_inspect_with(m, &fo, &insp, &err);
    check_status(rc, &err, "bnf_inspect_with");
    FUZZ_CHECK(rc || insp, "inspect succeeded without a report");
    if (insp)
        write_reports(insp);

    memset(&err, 0, sizeof err);
    rc = bnf_fold(m, &fo, &r, &err);
    check_status(rc, &err, "bnf_fold");
    if (rc == BNF_OK) {
        FUZZ_CHECK(r != NULL, "fold succeeded without a report");
        FUZZ_CHECK(bnf_report_set_output(r, "out.onnx", &err) == BNF_OK, "set_output failed");
        write_reports(r);
        if (insp && !verify) {
            FUZZ_CHECK(insp->n_bns == r->n_bns, "inspect saw %zu BNs, fold %zu", insp->n_bns,
                       r->n_bns);
            FUZZ_CHECK(insp->n_folded == r->n_folded, "inspect would fold %zu, fold folded %zu",
                       insp->n_folded, r->n_folded);
        }
    }
    if (rc == BNF_ERR_NOMEM)
        goto out;
    /* whatever fold returned, the model is one we can write and read back */
    again = reload(m, rc ? "after a failed fold" : "after fold");
    if (rc == BNF_OK && !verify) {
        bnf_report *r2 = NULL;
        memset(&err, 0, sizeof err);
        rc = bnf_inspect_with(again, &fo, &r2, &err);
        check_status(rc, &err, "bnf_inspect (folded)");
        if (rc == BNF_OK)
            FUZZ_CHECK(r2->n_folded == 0,
                       "not at the fixed point: inspecting the folded model folds %zu more",
                       r2->n_folded);
        bnf_report_free(r2);
    }
out:
    bnf_model_free(again);
    bnf_report_free(insp);
    bnf_report_free(r);
    bnf_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fold_once(data, size, 0);
    if (size <= VERIFY_MAX_BYTES)
        fold_once(data, size, 1);
    return 0;
}
