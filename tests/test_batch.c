/* test_batch.c: the library side of a run over many models.  A report packed
 * and unpacked says what it said (its JSON document, byte for byte), and
 * unpacking never trusts its bytes (every truncation refused, flipped bytes
 * refused or read, never a crash); the exit status of a mixture follows
 * 2, 4, 3, 1, 0; bnf_find_models searches folders as documented (sorted, only
 * *.onnx, links to folders not followed, --exclude, a folder with no model is
 * an entry of its own, one file named twice taken once); the summary counts. */
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

static bnf_report *checked_report(const char *path, const char *fail_on)
{
    bnf_model *m = load_model(path);
    bnf_report *r = NULL;
    bnf_err err = {0};
    bnf_fold_options fo;
    bnf_fold_defaults(&fo);
    assert_int_equal(bnf_inspect_with(m, &fo, &r, &err), BNF_OK);
    if (fail_on)
        assert_int_equal(bnf_check(r, fail_on, &err), BNF_OK);
    bnf_model_free(m);
    return r;
}

static char *json_of(const bnf_report *r)
{
    char *s = NULL;
    size_t n = 0;
    bnf_err err = {0};
    assert_int_equal(bnf_report_to_json(r, &s, &n, &err), BNF_OK);
    return s;
}

static void test_pack_round_trip(void **state)
{
    (void)state;
    const char *models[] = {"testdata/health/multi_bn.onnx", "testdata/health/neg_var.onnx",
                            MODELS "skip_spatial0_opset7.onnx", MODELS "conv2d_bn_bn.onnx"};
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        bnf_report *r = checked_report(models[k], "info,unfolded"), *back = NULL;
        uint8_t *data = NULL;
        size_t size = 0;
        bnf_err err = {0};
        char *a, *b;
        assert_int_equal(bnf_report_pack(r, &data, &size, &err), BNF_OK);
        assert_int_equal(bnf_report_unpack(data, size, &back, &err), BNF_OK);
        a = json_of(r);
        b = json_of(back);
        assert_string_equal(a, b);
        assert_int_equal(back->check_trips, r->check_trips);
        bnf_buffer_free(a);
        bnf_buffer_free(b);
        bnf_report_free(back);
        bnf_buffer_free(data);
        bnf_report_free(r);
    }
}

static void test_unpack_distrusts_bytes(void **state)
{
    (void)state;
    bnf_report *r = checked_report("testdata/health/multi_bn.onnx", "error"), *back = NULL;
    uint8_t *data = NULL, *copy;
    size_t size = 0, ok = 0;
    bnf_err err = {0};
    assert_int_equal(bnf_report_pack(r, &data, &size, &err), BNF_OK);
    /* every truncation: refused as invalid */
    for (size_t n = 0; n < size; n++) {
        assert_int_equal(bnf_report_unpack(data, n, &back, &err), BNF_ERR_INVALID);
        assert_null(back);
    }
    /* each byte flipped in turn: refused, or a report that can be freed */
    copy = malloc(size);
    assert_non_null(copy);
    for (size_t i = 0; i < size; i++) {
        memcpy(copy, data, size);
        copy[i] ^= 0xff;
        bnf_status st = bnf_report_unpack(copy, size, &back, &err);
        assert_true(st == BNF_OK || st == BNF_ERR_INVALID || st == BNF_ERR_NOMEM);
        if (st == BNF_OK) {
            char *j = json_of(back); /* and written without a crash */
            bnf_buffer_free(j);
            ok++;
        }
        bnf_report_free(back);
        back = NULL;
    }
    assert_true(ok < size); /* the magic and lengths are checked */
    assert_int_equal(bnf_report_unpack(NULL, 0, &back, &err), BNF_ERR_INVALID);
    free(copy);
    bnf_buffer_free(data);
    bnf_report_free(r);
}

static void test_exit_of_mixtures(void **state)
{
    (void)state;
    /* the first of 2, 4, 3, 1, 0, whichever order the models come in */
    static const int order[] = {2, 4, 3, 1, 0};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            int want = order[i < j ? i : j];
            assert_int_equal(bnf_exit_worst(order[i], order[j]), want);
        }
    assert_int_equal(bnf_exit_code(BNF_ERR_UNSUPPORTED), 3);
    assert_int_equal(bnf_exit_code(BNF_ERR_NOMEM), 4);
    assert_int_equal(bnf_exit_code(BNF_ERR_CHECK), 1);
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static void test_find_models(void **state)
{
    (void)state;
    char dir[] = "/tmp/bnfold-find.XXXXXX", p[512], q[512];
    bnf_found_list l = {0};
    bnf_err err = {0};
    assert_non_null(mkdtemp(dir));
#define AT(rel) (snprintf(p, sizeof p, "%s/%s", dir, rel), p)
    assert_int_equal(mkdir(AT("m"), 0777), 0);
    assert_int_equal(mkdir(AT("m/b"), 0777), 0);
    assert_int_equal(mkdir(AT("m/vendor"), 0777), 0);
    assert_int_equal(mkdir(AT("m/empty"), 0777), 0);
    assert_int_equal(mkdir(AT("outside"), 0777), 0);
    touch(AT("m/z.onnx"));
    touch(AT("m/a.onnx"));
    touch(AT("m/a.onnx.data")); /* external data: no model */
    touch(AT("m/b/c.onnx"));
    touch(AT("m/b/notes.txt"));
    touch(AT("m/vendor/v.onnx"));
    touch(AT("outside/o.onnx"));
    snprintf(q, sizeof q, "%s/outside", dir);
    assert_int_equal(symlink(q, AT("m/linked")), 0); /* a folder link: not followed */
    snprintf(q, sizeof q, "%s/m/z.onnx", dir);
    assert_int_equal(symlink(q, AT("m/b/zz.onnx")), 0); /* a file link: taken, once */

    const char *paths[2];
    char mpath[512];
    snprintf(mpath, sizeof mpath, "%s/m/", dir); /* trailing '/' dropped */
    paths[0] = mpath;
    const char *ex[] = {"vendor"};
    bnf_find_options o = {ex, 1, NULL};
    assert_int_equal(bnf_find_models(paths, 1, &o, &l, &err), BNF_OK);
    /* a.onnx, b/c.onnx, b/zz.onnx: z.onnx is the same file as b/zz.onnx, which
     * comes first in path order, so z.onnx goes */
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].rel, "a.onnx");
    assert_string_equal(l.items[1].rel, "b/c.onnx");
    assert_string_equal(l.items[2].rel, "b/zz.onnx");
    snprintf(q, sizeof q, "%s/m/b/c.onnx", dir);
    assert_string_equal(l.items[1].path, q);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.items[i].status, BNF_OK);
    bnf_found_list_release(&l);

    /* without --exclude vendor/v.onnx comes in; a PATH named twice counts once;
     * an empty folder and a missing file are entries of their own */
    char empty[512], missing[512], direct[512];
    snprintf(empty, sizeof empty, "%s/m/empty", dir);
    snprintf(missing, sizeof missing, "%s/m/nope.onnx", dir);
    snprintf(direct, sizeof direct, "%s/m/a.onnx", dir);
    const char *many[] = {mpath, empty, missing, direct};
    assert_int_equal(bnf_find_models(many, 4, NULL, &l, &err), BNF_OK);
    assert_int_equal(l.n, 6); /* a (named twice), b/c, b/zz, empty, nope, vendor/v */
    size_t problems = 0, missing_seen = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (l.items[i].status != BNF_OK) {
            problems++;
            assert_non_null(strstr(l.items[i].message, "no model"));
        }
        if (!strcmp(l.items[i].path, missing)) {
            missing_seen = 1;
            assert_int_equal(l.items[i].status, BNF_OK); /* the loader says what is wrong */
        }
        if (i)
            assert_true(strcmp(l.items[i - 1].path, l.items[i].path) < 0);
    }
    assert_int_equal(problems, 1);
    assert_true(missing_seen);
    bnf_found_list_release(&l);
#undef AT
    snprintf(q, sizeof q, "rm -rf '%s'", dir);
    assert_int_equal(system(q), 0);
}

static void test_summary_counts(void **state)
{
    (void)state;
    bnf_report *good = checked_report("testdata/health/healthy.onnx", "error");
    bnf_report *bad = checked_report("testdata/health/neg_var.onnx", "error");
    bnf_model_result res[3] = {
        {"a.onnx", BNF_OK, NULL, good},
        {"b.onnx", BNF_ERR_INVALID, "b.onnx: not a model", NULL},
        {"c.onnx", BNF_OK, NULL, bad},
    };
    bnf_summary s;
    size_t n;
    const bnf_code_info *c = bnf_codes(&n);
    bnf_summary_init(&s, "check");
    for (int i = 0; i < 3; i++)
        bnf_summary_add(&s, &res[i]);
    assert_int_equal(s.models, 3);
    assert_int_equal(s.passed, 1);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.unreadable, 1);
    assert_int_equal(s.exit_code, 3);
    assert_int_equal(s.batchnorms, 2);
    assert_int_equal(s.findings[0], 1); /* BN_NEG_VAR, an error */
    assert_int_equal(s.problems, 1);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(c[i].code, "BN_NEG_VAR"))
            assert_int_equal(s.by_code[i], 1);
    assert_int_equal(bnf_result_exit(&res[0]), 0);
    assert_int_equal(bnf_result_exit(&res[1]), 3);
    assert_int_equal(bnf_result_exit(&res[2]), 1);
    bnf_report_free(good);
    bnf_report_free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_round_trip),
        cmocka_unit_test(test_unpack_distrusts_bytes),
        cmocka_unit_test(test_exit_of_mixtures),
        cmocka_unit_test(test_find_models),
        cmocka_unit_test(test_summary_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
