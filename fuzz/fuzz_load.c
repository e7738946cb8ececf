/* fuzz/fuzz_load.c: libFuzzer harness for loading: the wire pre-check, the
 * protobuf-c unpack under its memory budget and semantic validation
 * (bnf_model_load_buffer runs all three), without and with a folder for
 * external data (with one, loading also checks each external tensor's file
 * and range, without reading it: only such a check may change the status). */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bnf_status first = BNF_OK;
    for (int with_dir = 0; with_dir < 2; with_dir++) {
        bnf_err err = {0};
        bnf_model *m = (bnf_model *)1;
        bnf_status rc = bnf_model_load_buffer(data, size, with_dir ? fuzz_base_dir() : NULL,
                                              &m, &err);
        check_status(rc, &err, "bnf_model_load_buffer");
        if (!with_dir)
            first = rc;
        else
            FUZZ_CHECK(rc == first || strstr(err.msg, "external data"),
                       "status %d without a folder, %d with one (%s)", (int)first, (int)rc,
                       err.msg);
        if (rc) {
            FUZZ_CHECK(m == NULL, "failed load left *out = %p", (void *)m);
            if (rc == BNF_ERR_INVALID || rc == BNF_ERR_UNSUPPORTED ||
                (with_dir && rc == BNF_ERR_IO && strstr(err.msg, "external data")))
                continue;
            FUZZ_CHECK(rc == BNF_ERR_NOMEM, "load of a buffer returned %d: %s", (int)rc,
                       err.msg);
            return 0;
        }
        FUZZ_CHECK(m != NULL, "load succeeded without a model");
        if (with_dir) { /* a model that loaded serialises */
            uint8_t *bytes = NULL;
            size_t n = 0;
            memset(&err, 0, sizeof err);
            rc = bnf_model_serialize(m, &bytes, &n, &err);
            check_status(rc, &err, "bnf_model_serialize");
            FUZZ_CHECK(rc == BNF_OK, "a loaded model does not serialise: %s", err.msg);
            free(bytes);
        }
        bnf_model_free(m);
    }
    return 0;
}
