/* sarif.c: the results of a run over models as a SARIF 2.1.0 log, for GitHub
 * code scanning and other SARIF viewers.  One run; tool.driver.rules holds
 * every code of codes.h (skip reasons, findings, the gate's BN_UNFOLDED) with
 * its text and default level; each finding, each BN that is not folded and
 * each BN that trips the gate is a result located in its model (the
 * artifact: the model's path, relative to the working folder, which is
 * %SRCROOT%) and at its node (a logical location).  A model that could not be
 * read is a tool execution notification of the invocation.  Written as the
 * results come, with json.c's escaper; tests/batch_test.sh validates the
 * output with Microsoft's SARIF Multitool. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S(x) ((x) ? (x) : "")

struct bnf_sarif {
    FILE *f;
    const char *command;
    char *root;            /* file URI of the working folder, ending in '/', or NULL */
    char **artifacts;      /* model paths, in the order first seen */
    size_t n_artifacts, cap_artifacts;
    size_t n_results;
    /* notifications: (artifact index, message) of the models not read */
    size_t *note_artifact;
    char **note_text;
    size_t n_notes, cap_notes;
    int nomem;             /* a list could not grow: the log says less, never breaks */
};

/* ---- URIs ---------------------------------------------------------------------------- */

/* The bytes of s as a URI path: unreserved characters and '/' as they are,
 * every other byte %XX (RFC 3986). */
static void uri_path(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~' || *p == '/')
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

/* "uri": ... and the base it is relative to, of a path as reported. */
static void uri_fields(const bnf_sarif *s, FILE *f, const char *path)
{
    fputs("\"uri\": \"", f);
    if (path[0] == '/') {
        fputs("file://", f);
        uri_path(f, path);
        fputc('"', f);
    } else {
        uri_path(f, path);
        fputc('"', f);
        if (s->root)
            fputs(", \"uriBaseId\": \"%SRCROOT%\"", f);
    }
}

/* "artifactLocation": {...} of artifact `index` (a path as reported). */
static void artifact_location(const bnf_sarif *s, FILE *f, const char *path, long index)
{
    fputs("\"artifactLocation\": {", f);
    uri_fields(s, f, path);
    if (index >= 0)
        fprintf(f, ", \"index\": %ld", index);
    fputc('}', f);
}

/* The working folder as a file URI ending in '/', for %SRCROOT%. */
static char *root_uri(void)
{
    char cwd[4096], *buf = NULL;
    size_t n = 0;
    FILE *mem;
    if (!getcwd(cwd, sizeof cwd) || !(mem = open_memstream(&buf, &n)))
        return NULL;
    fputs("file://", mem);
    uri_path(mem, cwd);
    if (cwd[strlen(cwd) - 1] != '/')
        fputc('/', mem);
    if (fclose(mem) != 0 || !buf) {
        free(buf);
        return NULL;
    }
    {
        char *copy = bnf_strdup(buf);
        free(buf); /* open_memstream's own allocation */
        return copy;
    }
}

/* ---- text ---------------------------------------------------------------------------- */

/* A message: the text as JSON, ending with a period (SARIF's convention). */
static void message(FILE *f, const char *text)
{
    size_t n = strlen(text);
    char *buf = bnf_malloc(n + 2);
    fputs("{\"text\": ", f);
    if (buf) {
        memcpy(buf, text, n + 1);
        if (!n || text[n - 1] != '.') {
            buf[n] = '.';
            buf[n + 1] = '\0';
        }
        bnf_json_str(f, buf);
        bnf_free(buf);
    } else {
        bnf_json_str(f, text);
    }
    fputc('}', f);
}

/* "NO_LAYER" -> "NoLayer": a rule's name (after `lead`: a name that differs
 * from the id only in case is one the Multitool flags, SARIF1001). */
static void pascal(FILE *f, const char *lead, const char *code)
{
    int up = 1;
    fputc('"', f);
    fputs(lead, f);
    for (const char *p = code; *p; p++) {
        if (*p == '_') {
            up = 1;
            continue;
        }
        fputc(up ? *p : (*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p), f);
        up = 0;
    }
    fputc('"', f);
}

static const char *level_of(const char *severity)
{
    return !strcmp(S(severity), "error") ? "error" : !strcmp(S(severity), "warning") ? "warning"
                                                                                     : "note";
}

/* ---- the log ----------------------------------------------------------------------------- */

bnf_status bnf_sarif_new(FILE *f, const char *command, bnf_sarif **out, bnf_err *err)
{
    bnf_sarif *s = bnf_calloc(1, sizeof *s);
    size_t n;
    const bnf_code_info *c = bnf_codes(&n);
    char help[512];

    *out = NULL;
    if (!s)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    s->f = f;
    s->command = command;
    s->root = root_uri();
    fprintf(f, "{\n  \"$schema\": \"https://json.schemastore.org/sarif-2.1.0.json\",\n"
               "  \"version\": \"2.1.0\",\n  \"runs\": [\n    {\n      \"tool\": {\n"
               "        \"driver\": {\n          \"name\": \"bnfold\",\n"
               "          \"version\": \"%s\",\n          \"semanticVersion\": \"%s\",\n"
               "          \"rules\": [",
            BNF_VERSION, BNF_VERSION);
    for (size_t i = 0; i < n; i++) {
        const char *kind = c[i].kind == BNF_CODE_SKIP      ? "skip reason"
                           : c[i].kind == BNF_CODE_FINDING ? "health finding"
                                                           : "check gate";
        fprintf(f, "%s\n            {\"id\": \"%s\", \"name\": ", i ? "," : "", c[i].code);
        pascal(f, c[i].kind == BNF_CODE_SKIP ? "NotFolded" : "", c[i].code);
        fputs(", \"shortDescription\": ", f);
        message(f, c[i].text);
        fputs(", \"fullDescription\": ", f);
        message(f, c[i].text);
        snprintf(help, sizeof help, "%s. See bnfold(1), %s, and docs/contract.md.", c[i].text,
                 c[i].kind == BNF_CODE_SKIP      ? "SKIP REASON CODES"
                 : c[i].kind == BNF_CODE_FINDING ? "HEALTH FINDINGS"
                                                 : "check --fail-on unfolded");
        fputs(", \"help\": ", f); /* GitHub code scanning wants one (GH2012) */
        message(f, help);
        fprintf(f, ", \"defaultConfiguration\": {\"level\": \"%s\"}, \"properties\": "
                   "{\"kind\": \"%s\", \"tags\": [\"onnx\", \"batchnormalization\"]}}",
                c[i].kind == BNF_CODE_SKIP ? "note" : level_of(c[i].severity), kind);
    }
    fputs("\n          ]\n        }\n      },\n", f);
    if (s->root) {
        fputs("      \"originalUriBaseIds\": {\"%SRCROOT%\": {\"uri\": ", f);
        bnf_json_str(f, s->root);
        fputs("}},\n", f);
    }
    fputs("      \"results\": [", f);
    *out = s;
    return BNF_OK;
}

static long artifact(bnf_sarif *s, const char *path)
{
    char *copy;
    if (s->n_artifacts && !strcmp(s->artifacts[s->n_artifacts - 1], path))
        return (long)s->n_artifacts - 1;
    if (s->n_artifacts == s->cap_artifacts) {
        size_t cap = s->cap_artifacts ? 2 * s->cap_artifacts : 32;
        char **grown = bnf_realloc(s->artifacts, cap * sizeof *grown);
        if (!grown) {
            s->nomem = 1;
            return -1;
        }
        s->artifacts = grown;
        s->cap_artifacts = cap;
    }
    if (!(copy = bnf_strdup(path))) {
        s->nomem = 1;
        return -1;
    }
    s->artifacts[s->n_artifacts] = copy;
    return (long)s->n_artifacts++;
}

/* FNV-1a over the parts (each with its terminating NUL): a result's identity
 * across runs, whatever else its message says. */
static uint64_t fingerprint(const char *const *parts, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        for (const unsigned char *p = (const unsigned char *)S(parts[i]);; p++) {
            h = (h ^ *p) * 1099511628211ull;
            if (!*p)
                break;
        }
    return h;
}

/* One result: rule `code` at BN b of model `path`, with the text of `text`. */
static void result(bnf_sarif *s, const char *path, long art, const bnf_bn_info *b,
                   const char *code, const char *level, const char *text)
{
    FILE *f = s->f;
    bnf_code c = bnf_code_find(code, strlen(code));
    const char *parts[4] = {code, path, S(b->path), b->name};
    const char *name = *b->name ? b->name : "(unnamed)";

    fprintf(f, "%s\n        {\"ruleId\": \"%s\", \"ruleIndex\": %d, \"level\": \"%s\", "
               "\"message\": ", s->n_results ? "," : "", code, (int)c - 1, level);
    message(f, text);
    fputs(",\n         \"locations\": [{\"physicalLocation\": {", f);
    artifact_location(s, f, path, art);
    /* a model is binary: no line or byte range of it names a node (the logical
     * location does); GitHub code scanning wants a startLine all the same, and
     * shows a file-level alert for line 1 */
    fputs(", \"region\": {\"startLine\": 1}}, \"logicalLocations\": [{\"name\": ", f);
    bnf_json_str(f, name);
    if (b->path && *b->path) {
        char *fq = bnf_malloc(strlen(b->path) + strlen(name) + 4);
        if (fq) {
            sprintf(fq, "%s / %s", b->path, name);
            fputs(", \"fullyQualifiedName\": ", f);
            bnf_json_str(f, fq);
            bnf_free(fq);
        }
    }
    fprintf(f, ", \"kind\": \"object\"}]}],\n         \"partialFingerprints\": "
               "{\"bnfoldNode/v1\": \"%016llx\"}}",
            (unsigned long long)fingerprint(parts, 4));
    s->n_results++;
}

/* "BatchNormalization 'NAME'" + rest, in a buffer of the caller's. */
static const char *say(char *buf, size_t size, const bnf_bn_info *b, const char *fmt,
                       const char *a, const char *c, const char *d)
{
    int n = snprintf(buf, size, "BatchNormalization '%s'", b->name);
    if (n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, fmt, a, c, d);
    return buf;
}

void bnf_sarif_add(bnf_sarif *s, const bnf_model_result *res)
{
    const bnf_report *r = res->report;
    const char *path = S(res->path);
    long art = artifact(s, path);
    char buf[1024];

    if (res->status != BNF_OK || !r) {
        if (s->n_notes == s->cap_notes) {
            size_t cap = s->cap_notes ? 2 * s->cap_notes : 8;
            size_t *ga = bnf_realloc(s->note_artifact, cap * sizeof *ga);
            char **gt = ga ? bnf_realloc(s->note_text, cap * sizeof *gt) : NULL;
            if (ga)
                s->note_artifact = ga;
            if (gt)
                s->note_text = gt;
            if (!ga || !gt) {
                s->nomem = 1;
                return;
            }
            s->cap_notes = cap;
        }
        snprintf(buf, sizeof buf, "%s: %s", path, S(res->message));
        if (!(s->note_text[s->n_notes] = bnf_strdup(buf))) {
            s->nomem = 1;
            return;
        }
        s->note_artifact[s->n_notes++] = (size_t)art;
        return;
    }
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *x = &r->findings[i];
        const bnf_bn_info *b = &r->bns[x->bn];
        char ch[48] = "";
        if (x->n_channels)
            snprintf(ch, sizeof ch, " (%zu channel%s)", x->n_channels,
                     x->n_channels > 1 ? "s" : "");
        result(s, path, art, b, x->code, x->trips ? "error" : level_of(x->severity),
               say(buf, sizeof buf, b, ": %s%s%s", x->message, ch, ""));
    }
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        if (!b->folded && b->reason_code)
            result(s, path, art, b, b->reason_code, "note",
                   say(buf, sizeof buf, b, " is not folded (%s): %s%s",
                       b->reason_code, S(b->reason), b->lowered ? "; lowered to Mul + Add" : ""));
        if (b->trips)
            result(s, path, art, b, bnf_code_name(BNF_BN_UNFOLDED), "error",
                   say(buf, sizeof buf, b, " can be folded into %s '%s'%s: run bnfold fold",
                       S(b->layer_op), S(b->layer), ""));
    }
}

void bnf_sarif_end(bnf_sarif *s, const bnf_summary *sum)
{
    FILE *f = s->f;
    fputs(s->n_results ? "\n      ],\n" : "],\n", f);
    fputs("      \"artifacts\": [", f);
    for (size_t i = 0; i < s->n_artifacts; i++) {
        fputs(i ? ",\n        {\"location\": {" : "\n        {\"location\": {", f);
        uri_fields(s, f, s->artifacts[i]);
        fputs("}, \"roles\": [\"analysisTarget\"]}", f);
    }
    fputs(s->n_artifacts ? "\n      ],\n" : "],\n", f);
    fprintf(f, "      \"invocations\": [\n        {\"executionSuccessful\": %s, \"exitCode\": %d",
            sum->exit_code <= 1 ? "true" : "false", sum->exit_code);
    if (s->n_notes) {
        fputs(", \"toolExecutionNotifications\": [", f);
        for (size_t i = 0; i < s->n_notes; i++) {
            fputs(i ? ",\n          {\"level\": \"error\", \"message\": "
                    : "\n          {\"level\": \"error\", \"message\": ", f);
            message(f, s->note_text[i]);
            if (s->note_artifact[i] < s->n_artifacts) {
                fputs(", \"locations\": [{\"physicalLocation\": {", f);
                artifact_location(s, f, s->artifacts[s->note_artifact[i]],
                                  (long)s->note_artifact[i]);
                fputs("}}]", f);
            }
            fputc('}', f);
        }
        fputs("\n        ]", f);
    }
    fprintf(f, "}\n      ],\n      \"properties\": {\"command\": \"%s\", \"models\": %zu, "
               "\"passed\": %zu, \"failed\": %zu, \"unreadable\": %zu%s}\n    }\n  ]\n}\n",
            s->command, sum->models, sum->passed, sum->failed, sum->unreadable,
            s->nomem ? ", \"incomplete\": true" : "");
}

void bnf_sarif_free(bnf_sarif *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_artifacts; i++)
        bnf_free(s->artifacts[i]);
    for (size_t i = 0; i < s->n_notes; i++)
        bnf_free(s->note_text[i]);
    bnf_free(s->artifacts);
    bnf_free(s->note_artifact);
    bnf_free(s->note_text);
    bnf_free(s->root);
    bnf_free(s);
}
