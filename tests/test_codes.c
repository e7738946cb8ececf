/* test_codes.c: the table of report codes (src/report/codes.h) against the
 * places that list them for users: the "reason_code", "finding_code" and
 * "gate_code" enums of docs/report.schema.json and the three code tables of
 * docs/contract.md (code, and a finding's or gate code's severity).  Every
 * code of one is in the other, in the same order, so the table cannot drift
 * from the documented contract. */
#include "testutil.h"

static char *text_of(const char *path)
{
    size_t n;
    char *s = (char *)slurp(path, &n);
    s[n] = '\0';
    return s;
}

/* The codes of `kind` in table order, joined by spaces. */
static void table_codes(bnf_code_kind kind, char *out, size_t size)
{
    size_t n;
    const bnf_code_info *c = bnf_codes(&n);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (c[i].kind == kind) {
            assert_non_null(c[i].text);
            assert_true(kind == BNF_CODE_SKIP ? c[i].severity == NULL : c[i].severity != NULL);
            assert_true(i < BNF_MAX_CODES); /* bnf_summary.by_code has room for it */
            snprintf(out + strlen(out), size - strlen(out), "%s%s", *out ? " " : "", c[i].code);
        }
}

/* The strings of the "enum" array that follows "name": in the schema. */
static void schema_enum(const char *schema, const char *name, char *out, size_t size)
{
    char key[64];
    const char *p, *end;
    snprintf(key, sizeof key, "\"%s\": {", name);
    p = strstr(schema, key);
    if (!p || !(p = strstr(p, "\"enum\": [")) || !(end = strchr(p, ']')))
        fail_msg("docs/report.schema.json has no enum for %s", name);
    out[0] = '\0';
    for (p = strchr(p, '[') + 1; (p = strchr(p, '"')) && p < end;) {
        const char *q = strchr(p + 1, '"');
        snprintf(out + strlen(out), size - strlen(out), "%s%.*s", *out ? " " : "",
                 (int)(q - p - 1), p + 1);
        p = q + 1;
    }
}

/* The first cells (and, with sev, "CODE:severity") of the table under the
 * heading `heading` in contract.md. */
static void contract_table(const char *doc, const char *heading, int sev, char *out, size_t size)
{
    const char *p = strstr(doc, heading);
    out[0] = '\0';
    if (!p)
        fail_msg("docs/contract.md has no section '%s'", heading);
    for (p = strstr(p, "|---"); p && (p = strchr(p, '\n')) && p[1] == '|'; p++) {
        char code[64], severity[16];
        if (sscanf(p + 1, "| %63[A-Z_0-9] | %15[a-z] |", code, severity) < 1)
            fail_msg("docs/contract.md, '%s': a row without a code", heading);
        snprintf(out + strlen(out), size - strlen(out), "%s%s%s%s", *out ? " " : "", code,
                 sev ? ":" : "", sev ? severity : "");
    }
}

static void test_schema_matches_table(void **state)
{
    char *schema = text_of("docs/report.schema.json");
    char want[2048], got[2048];
    (void)state;
    table_codes(BNF_CODE_SKIP, want, sizeof want);
    schema_enum(schema, "reason_code", got, sizeof got);
    assert_string_equal(got, want);
    table_codes(BNF_CODE_FINDING, want, sizeof want);
    schema_enum(schema, "finding_code", got, sizeof got);
    assert_string_equal(got, want);
    table_codes(BNF_CODE_GATE, want, sizeof want);
    schema_enum(schema, "gate_code", got, sizeof got);
    assert_string_equal(got, want);
    free(schema);
}

static void test_contract_matches_table(void **state)
{
    char *doc = text_of("docs/contract.md");
    char want[2048] = "", got[2048];
    size_t n;
    const bnf_code_info *c = bnf_codes(&n);
    (void)state;
    table_codes(BNF_CODE_SKIP, want, sizeof want);
    contract_table(doc, "## Skip reason codes", 0, got, sizeof got);
    assert_string_equal(got, want);
    want[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (c[i].kind == BNF_CODE_FINDING)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s:%s",
                     *want ? " " : "", c[i].code, c[i].severity);
    contract_table(doc, "## Health finding codes", 1, got, sizeof got);
    assert_string_equal(got, want);
    want[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (c[i].kind == BNF_CODE_GATE)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s:%s",
                     *want ? " " : "", c[i].code, c[i].severity);
    contract_table(doc, "## Gate codes", 1, got, sizeof got);
    assert_string_equal(got, want);
    free(doc);
}

static void test_lookup(void **state)
{
    (void)state;
    assert_int_equal(bnf_code_find("SHAPE_MISMATCH", 14), BNF_SHAPE_MISMATCH);
    assert_int_equal(bnf_code_find("SHAPE_MISMATCHX", 14), BNF_SHAPE_MISMATCH);
    assert_int_equal(bnf_code_find("SHAPE", 5), BNF_NO_CODE);
    assert_string_equal(bnf_code_name(BNF_BN_TINY_VAR), "BN_TINY_VAR");
    assert_string_equal(bnf_code_severity(BNF_BN_NEG_VAR), "error");
    assert_null(bnf_code_name(BNF_NO_CODE));
    assert_null(bnf_code_name(BNF_CODE_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_matches_table),
        cmocka_unit_test(test_contract_matches_table),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
