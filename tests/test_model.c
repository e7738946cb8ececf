/* test_model.c: loading and saving: errors name the file, an unchanged model
 * is written back byte for byte, unknown fields and metadata survive a fold, a
 * failed save leaves nothing behind. */
#include "testutil.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    closedir(d);
    return n;
}

static void test_load_errors_name_the_file(void **state)
{
    bnf_model *m = NULL;
    bnf_err err = {0};
    (void)state;
    assert_int_equal(bnf_model_load("testdata/no-such-model.onnx", &m, &err), BNF_ERR_IO);
    assert_non_null(strstr(err.msg, "no-such-model.onnx"));
    assert_null(m);
    assert_int_equal(bnf_model_load("testdata/README.md", &m, &err), BNF_ERR_INVALID);
    assert_non_null(strstr(err.msg, "README.md"));
    assert_int_equal(bnf_model_load("testdata", &m, &err), BNF_ERR_IO);
    assert_int_equal(bnf_model_load_buffer("", 0, NULL, &m, &err), BNF_ERR_INVALID);
    assert_null(m);
}

static void test_unchanged_model_is_byte_identical(void **state)
{
    const char *in = MODELS "roundtrip_no_bn.onnx";
    char *dir = temp_dir(), out[256];
    bnf_model *m = load_model(in);
    bnf_report *r = NULL;
    bnf_err err = {0};
    (void)state;
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
    assert_int_equal(r->n_bns, 0);
    snprintf(out, sizeof out, "%s/out.onnx", dir);
    assert_int_equal(bnf_model_save(m, out, &err), BNF_OK);
    if (!same_files(in, out))
        fail_msg("%s differs from %s", out, in);
    unlink(out);
    rmdir(dir);
    free(dir);
    bnf_report_free(r);
    bnf_model_free(m);
}

/* protobuf-c repacks a changed model; unknown fields, metadata, doc strings
 * and opset imports must come through. */
static void test_fold_keeps_unknown_fields_and_metadata(void **state)
{
    bnf_model *orig = load_model(MODELS "roundtrip_unknown.onnx"), *m, *back;
    bnf_report *r = NULL;
    bnf_err err = {0};
    uint8_t *bytes;
    size_t n;
    (void)state;
    m = load_model(MODELS "roundtrip_unknown.onnx");
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
    assert_int_equal(r->n_folded, 1);
    assert_int_equal(bnf_model_serialize(m, &bytes, &n, &err), BNF_OK);
    /* the unknown field 99 = varint 42 is still there */
    assert_true(n > 3 && memcmp(bytes + n - 3, "\x98\x06\x2a", 3) == 0);
    assert_int_equal(bnf_model_load_buffer(bytes, n, NULL, &back, &err), BNF_OK);
    assert_int_equal(back->proto->n_metadata_props, orig->proto->n_metadata_props);
    assert_true(back->proto->n_metadata_props > 0);
    for (size_t i = 0; i < orig->proto->n_metadata_props; i++) {
        assert_string_equal(back->proto->metadata_props[i]->key, orig->proto->metadata_props[i]->key);
        assert_string_equal(back->proto->metadata_props[i]->value,
                            orig->proto->metadata_props[i]->value);
    }
    assert_int_equal(back->proto->n_opset_import, orig->proto->n_opset_import);
    assert_string_equal(back->proto->producer_name, orig->proto->producer_name);
    if (orig->proto->doc_string)
        assert_string_equal(back->proto->doc_string, orig->proto->doc_string);
    /* node order: the non-BN nodes keep their relative order */
    {
        size_t j = 0;
        for (size_t i = 0; i < orig->proto->graph->n_node; i++) {
            const Onnx__NodeProto *o = orig->proto->graph->node[i];
            if (strcmp(o->op_type, "BatchNormalization") == 0 || strcmp(o->op_type, "Constant") == 0 ||
                strcmp(o->op_type, "Identity") == 0)
                continue;
            while (j < back->proto->graph->n_node &&
                   strcmp(back->proto->graph->node[j]->name, o->name) != 0)
                j++;
            assert_true(j < back->proto->graph->n_node);
            if (o->doc_string)
                assert_string_equal(back->proto->graph->node[j]->doc_string, o->doc_string);
        }
    }
    bnf_buffer_free(bytes);
    bnf_model_free(back);
    bnf_model_free(m);
    bnf_model_free(orig);
    bnf_report_free(r);
}

static void test_failed_save_leaves_nothing(void **state)
{
    char *dir = temp_dir(), out[300], blocker[300];
    bnf_model *m = load_model(MODELS "conv2d.onnx");
    bnf_report *r = NULL;
    bnf_err err = {0};
    FILE *f;
    (void)state;
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
    /* a folder that does not exist */
    snprintf(out, sizeof out, "%s/missing/out.onnx", dir);
    assert_int_equal(bnf_model_save(m, out, &err), BNF_ERR_IO);
    assert_non_null(strstr(err.msg, "out.onnx"));
    /* the destination is a folder: refused before anything is written */
    snprintf(out, sizeof out, "%s/taken", dir);
    assert_int_equal(mkdir(out, 0755), 0);
    snprintf(blocker, sizeof blocker, "%s/taken/x", dir);
    f = fopen(blocker, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(bnf_model_save(m, out, &err), BNF_ERR_IO);
    assert_non_null(strstr(err.msg, "directory"));
    assert_int_equal(count_entries(dir), 1); /* only "taken": no temporary file left */
    unlink(blocker);
    rmdir(out);
    /* success replaces an existing file */
    snprintf(out, sizeof out, "%s/out.onnx", dir);
    f = fopen(out, "w");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    assert_int_equal(bnf_model_save(m, out, &err), BNF_OK);
    {
        bnf_model *back = load_model(out);
        assert_int_equal(count_op(back, "BatchNormalization"), 0);
        bnf_model_free(back);
    }
    assert_int_equal(count_entries(dir), 1);
    unlink(out);
    rmdir(dir);
    free(dir);
    bnf_report_free(r);
    bnf_model_free(m);
}

static void test_refuses_to_overwrite_input(void **state)
{
    char *dir = temp_dir(), path[300];
    bnf_model *m;
    bnf_report *r = NULL;
    bnf_err err = {0};
    size_t n;
    uint8_t *orig = slurp(MODELS "conv2d.onnx", &n);
    FILE *f;
    (void)state;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(orig, 1, n, f), n);
    fclose(f);
    m = load_model(path);
    assert_int_equal(bnf_fold(m, NULL, &r, &err), BNF_OK);
    assert_int_equal(bnf_model_save(m, path, &err), BNF_ERR_USAGE);
    if (!file_holds(path, orig, n))
        fail_msg("%s was changed", path);
    free(orig);
    unlink(path);
    rmdir(dir);
    free(dir);
    bnf_report_free(r);
    bnf_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_errors_name_the_file),
        cmocka_unit_test(test_unchanged_model_is_byte_identical),
        cmocka_unit_test(test_fold_keeps_unknown_fields_and_metadata),
        cmocka_unit_test(test_failed_save_leaves_nothing),
        cmocka_unit_test(test_refuses_to_overwrite_input),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
