/* pack.c: a report as bytes and back, so that a worker process can hand the
 * report of its model to the process that prints (bnfold's runs over many
 * models).  The bytes are for the same build of the library on the same
 * machine: native byte order, a magic and a format number, then every field of
 * the report in the order of bnfold.h.  Unpacking trusts nothing: every
 * length is checked against what is left, every code and fixed word (command,
 * severity, position) must be one the library knows, and the result is built
 * with the library's allocator so that bnf_report_free frees it. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define PACK_MAGIC 0x52464e42u /* "BNFR" */
#define PACK_FORMAT 1u
#define NO_STRING UINT64_MAX

/* ---- writing --------------------------------------------------------------------- */

typedef struct {
    uint8_t *d;
    size_t n, cap;
    int failed;
} packer;

static void put(packer *p, const void *v, size_t len)
{
    if (p->failed)
        return;
    if (p->n + len > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        uint8_t *grown;
        while (cap < p->n + len)
            cap *= 2;
        if (!(grown = bnf_realloc(p->d, cap))) {
            p->failed = 1;
            return;
        }
        p->d = grown;
        p->cap = cap;
    }
    memcpy(p->d + p->n, v, len);
    p->n += len;
}

static void put_u64(packer *p, uint64_t v) { put(p, &v, sizeof v); }
static void put_i64(packer *p, int64_t v) { put(p, &v, sizeof v); }
static void put_f64(packer *p, double v) { put(p, &v, sizeof v); }

static void put_str(packer *p, const char *s)
{
    put_u64(p, s ? strlen(s) : NO_STRING);
    if (s)
        put(p, s, strlen(s));
}

static void put_verify(packer *p, const bnf_verify_result *v)
{
    put_i64(p, v->ran);
    put_i64(p, v->equivalent);
    put_u64(p, v->sets);
    put_u64(p, v->outputs);
    put_u64(p, v->values);
    put_f64(p, v->worst_abs);
    put_f64(p, v->worst_rel);
    put_str(p, v->worst_output);
    put_str(p, v->worst_element);
    put_str(p, v->reason);
}

bnf_status bnf_report_pack(const bnf_report *r, uint8_t **data, size_t *size, bnf_err *err)
{
    packer p = {0};
    *data = NULL;
    *size = 0;
    if (!r)
        return bnf_fail(err, BNF_ERR_USAGE, "no report to pack");
    put_u64(&p, PACK_MAGIC);
    put_u64(&p, PACK_FORMAT);
    put_str(&p, r->command);
    put_str(&p, r->input_path);
    put_str(&p, r->output_path);
    put_i64(&p, r->ir_version);
    put_u64(&p, r->n_opsets);
    for (size_t i = 0; i < r->n_opsets; i++) {
        put_str(&p, r->opsets[i].domain);
        put_i64(&p, r->opsets[i].version);
    }
    put_str(&p, r->producer);
    put_u64(&p, r->n_nodes);
    put_u64(&p, r->n_op_counts);
    for (size_t i = 0; i < r->n_op_counts; i++) {
        put_str(&p, r->op_counts[i].op_type);
        put_u64(&p, r->op_counts[i].count);
    }
    put_u64(&p, r->n_initializers);
    put_u64(&p, r->initializer_bytes);
    put_u64(&p, r->n_bns);
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        put_str(&p, b->name);
        put_str(&p, b->output);
        put_str(&p, b->layer);
        put_str(&p, b->layer_op);
        put_i64(&p, b->folded);
        put_str(&p, b->reason_code);
        put_str(&p, b->reason);
        put_i64(&p, b->channels);
        put_f64(&p, b->epsilon);
        put_f64(&p, b->min_var);
        put_f64(&p, b->max_abs_scale);
        put_str(&p, b->new_weight);
        put_str(&p, b->new_bias);
        put_f64(&p, b->local_err);
        put_i64(&p, b->lowered);
        put_i64(&p, b->before_layer);
        put_i64(&p, b->trips);
        put_i64(&p, b->assumed_inference);
        put_str(&p, b->path);
    }
    put_u64(&p, r->n_folded);
    put_u64(&p, r->n_lowered);
    put_u64(&p, r->n_frozen_inputs);
    put_u64(&p, r->n_bns_after);
    put_u64(&p, r->n_actions);
    for (size_t i = 0; i < r->n_actions; i++) {
        const bnf_fold_action *a = &r->actions[i];
        put_str(&p, a->op);
        put_str(&p, a->node);
        put_str(&p, a->layer);
        put_str(&p, a->layer_op);
        put_str(&p, a->position);
        put_str(&p, a->weight);
        put_str(&p, a->bias);
        put_f64(&p, a->local_err);
    }
    put_u64(&p, r->n_findings);
    for (size_t i = 0; i < r->n_findings; i++) {
        const bnf_finding *x = &r->findings[i];
        put_str(&p, x->code);
        put_str(&p, x->severity);
        put_u64(&p, x->bn);
        put_u64(&p, x->n_channels);
        for (size_t k = 0; k < 16; k++)
            put_i64(&p, x->channels[k]);
        put_str(&p, x->message);
        put_i64(&p, x->trips);
    }
    put_i64(&p, r->check_ran);
    put_str(&p, r->check_fail_on);
    put_u64(&p, r->check_trips);
    put_i64(&p, r->verified_local);
    put_f64(&p, r->local_worst);
    put_verify(&p, &r->e2e);
    put_i64(&p, r->e2e_requested);
    put_f64(&p, r->ms.load);
    put_f64(&p, r->ms.fold);
    put_f64(&p, r->ms.local_check);
    put_f64(&p, r->ms.end_to_end);
    put_f64(&p, r->ms.write);
    if (p.failed) {
        bnf_free(p.d);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    *data = p.d;
    *size = p.n;
    return BNF_OK;
}

/* ---- reading ----------------------------------------------------------------------- */

typedef struct {
    const uint8_t *d;
    size_t n, at;
    int bad;      /* malformed: a length past the end, an unknown word */
    int nomem;
} unpacker;

static int take(unpacker *u, void *v, size_t len)
{
    if (u->bad || u->nomem || len > u->n - u->at) {
        u->bad |= !u->nomem;
        memset(v, 0, len);
        return -1;
    }
    memcpy(v, u->d + u->at, len);
    u->at += len;
    return 0;
}

static uint64_t get_u64(unpacker *u)
{
    uint64_t v;
    take(u, &v, sizeof v);
    return v;
}

static int64_t get_i64(unpacker *u)
{
    int64_t v;
    take(u, &v, sizeof v);
    return v;
}

static double get_f64(unpacker *u)
{
    double v;
    take(u, &v, sizeof v);
    return v;
}

/* A count of items of at least `min_bytes` each: no more than the bytes left
 * could hold (so a forged count cannot ask for a huge allocation). */
static size_t get_count(unpacker *u, size_t min_bytes)
{
    uint64_t v = get_u64(u);
    if (!u->bad && v > (u->n - u->at) / min_bytes) {
        u->bad = 1;
        return 0;
    }
    return u->bad ? 0 : (size_t)v;
}

/* A string: NULL for none (also when malformed; u says which). */
static char *get_str(unpacker *u)
{
    uint64_t len = get_u64(u);
    char *s;
    if (u->bad || u->nomem || len == NO_STRING)
        return NULL;
    if (len > u->n - u->at || memchr(u->d + u->at, 0, (size_t)len)) {
        u->bad = 1;
        return NULL;
    }
    if (!(s = bnf_malloc((size_t)len + 1))) {
        u->nomem = 1;
        return NULL;
    }
    memcpy(s, u->d + u->at, (size_t)len);
    s[len] = '\0';
    u->at += (size_t)len;
    return s;
}

/* A string that must be there. */
static char *get_str_set(unpacker *u)
{
    char *s = get_str(u);
    if (!s && !u->nomem)
        u->bad = 1;
    return s;
}

/* A fixed word: one of `words` (NULL-terminated list), as the library's own
 * static string; NULL when the packed string was NULL and may be. */
static const char *get_word(unpacker *u, const char *const *words, int nullable)
{
    char *s = get_str(u);
    const char *found = NULL;
    if (!s) {
        if (!nullable && !u->nomem)
            u->bad = 1;
        return NULL;
    }
    for (size_t i = 0; words[i] && !found; i++)
        if (!strcmp(s, words[i]))
            found = words[i];
    if (!found)
        u->bad = 1;
    bnf_free(s);
    return found;
}

/* A code of the table of the given kind, as its static name. */
static const char *get_code(unpacker *u, bnf_code_kind kind, int nullable)
{
    char *s = get_str(u);
    bnf_code c;
    size_t n;
    if (!s) {
        if (!nullable && !u->nomem)
            u->bad = 1;
        return NULL;
    }
    c = bnf_code_find(s, strlen(s));
    bnf_free(s);
    if (c == BNF_NO_CODE || bnf_codes(&n)[c - 1].kind != kind) {
        u->bad = 1;
        return NULL;
    }
    return bnf_code_name(c);
}

static void get_fixed(unpacker *u, char *dst, size_t size)
{
    char *s = get_str(u);
    dst[0] = '\0';
    if (s) {
        if (strlen(s) >= size)
            u->bad = 1;
        else
            memcpy(dst, s, strlen(s) + 1);
        bnf_free(s);
    }
}

static int get_flag(unpacker *u)
{
    int64_t v = get_i64(u);
    if (v != 0 && v != 1)
        u->bad = 1;
    return (int)v;
}

static const char *const commands[] = {"inspect", "fold", "check", NULL};
static const char *const severities[] = {"error", "warning", "info", NULL};
static const char *const positions[] = {"after", "before", NULL};

bnf_status bnf_report_unpack(const uint8_t *data, size_t size, bnf_report **out, bnf_err *err)
{
    unpacker u = {data, size, 0, 0, 0};
    bnf_report *r;

    *out = NULL;
    if (!data || get_u64(&u) != PACK_MAGIC || get_u64(&u) != PACK_FORMAT)
        return bnf_fail(err, BNF_ERR_INVALID, "not a packed bnfold report");
    if (!(r = bnf_calloc(1, sizeof *r)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    r->command = get_word(&u, commands, 0);
    r->input_path = get_str(&u);
    r->output_path = get_str(&u);
    r->ir_version = get_i64(&u);
    r->n_opsets = get_count(&u, 16);
    if (r->n_opsets && !(r->opsets = bnf_calloc(r->n_opsets, sizeof *r->opsets)))
        goto nomem;
    for (size_t i = 0; i < r->n_opsets; i++) {
        r->opsets[i].domain = get_str_set(&u);
        r->opsets[i].version = get_i64(&u);
    }
    r->producer = get_str_set(&u);
    r->n_nodes = (size_t)get_u64(&u);
    r->n_op_counts = get_count(&u, 16);
    if (r->n_op_counts && !(r->op_counts = bnf_calloc(r->n_op_counts, sizeof *r->op_counts)))
        goto nomem;
    for (size_t i = 0; i < r->n_op_counts; i++) {
        r->op_counts[i].op_type = get_str_set(&u);
        r->op_counts[i].count = (size_t)get_u64(&u);
    }
    r->n_initializers = (size_t)get_u64(&u);
    r->initializer_bytes = get_u64(&u);
    r->n_bns = get_count(&u, 19 * 8);
    if (r->n_bns && !(r->bns = bnf_calloc(r->n_bns, sizeof *r->bns)))
        goto nomem;
    for (size_t i = 0; i < r->n_bns; i++) {
        bnf_bn_info *b = &r->bns[i];
        b->name = get_str_set(&u);
        b->output = get_str_set(&u);
        b->layer = get_str(&u);
        b->layer_op = get_str(&u);
        b->folded = get_flag(&u);
        b->reason_code = get_code(&u, BNF_CODE_SKIP, 1);
        b->reason = get_str(&u);
        b->channels = get_i64(&u);
        b->epsilon = get_f64(&u);
        b->min_var = get_f64(&u);
        b->max_abs_scale = get_f64(&u);
        b->new_weight = get_str(&u);
        b->new_bias = get_str(&u);
        b->local_err = get_f64(&u);
        b->lowered = get_flag(&u);
        b->before_layer = get_flag(&u);
        b->trips = get_flag(&u);
        b->assumed_inference = get_flag(&u);
        b->path = get_str(&u);
    }
    r->n_folded = (size_t)get_u64(&u);
    r->n_lowered = (size_t)get_u64(&u);
    r->n_frozen_inputs = (size_t)get_u64(&u);
    r->n_bns_after = (size_t)get_u64(&u);
    if (r->n_folded + r->n_lowered > r->n_bns)
        u.bad = 1;
    r->n_actions = get_count(&u, 8 * 8);
    if (r->n_actions && !(r->actions = bnf_calloc(r->n_actions, sizeof *r->actions)))
        goto nomem;
    for (size_t i = 0; i < r->n_actions; i++) {
        bnf_fold_action *a = &r->actions[i];
        a->op = get_str_set(&u);
        a->node = get_str_set(&u);
        a->layer = get_str_set(&u);
        a->layer_op = get_str_set(&u);
        a->position = get_word(&u, positions, 0);
        a->weight = get_str_set(&u);
        a->bias = get_str_set(&u);
        a->local_err = get_f64(&u);
    }
    r->n_findings = get_count(&u, 22 * 8);
    if (r->n_findings && !(r->findings = bnf_calloc(r->n_findings, sizeof *r->findings)))
        goto nomem;
    for (size_t i = 0; i < r->n_findings; i++) {
        bnf_finding *x = &r->findings[i];
        x->code = get_code(&u, BNF_CODE_FINDING, 0);
        x->severity = get_word(&u, severities, 0);
        x->bn = (size_t)get_u64(&u);
        x->n_channels = (size_t)get_u64(&u);
        for (size_t k = 0; k < 16; k++)
            x->channels[k] = get_i64(&u);
        get_fixed(&u, x->message, sizeof x->message);
        x->trips = get_flag(&u);
        if (x->bn >= r->n_bns)
            u.bad = 1;
    }
    r->check_ran = get_flag(&u);
    r->check_fail_on = get_str(&u);
    r->check_trips = (size_t)get_u64(&u);
    r->verified_local = get_flag(&u);
    r->local_worst = get_f64(&u);
    r->e2e.ran = get_flag(&u);
    r->e2e.equivalent = get_flag(&u);
    r->e2e.sets = (size_t)get_u64(&u);
    r->e2e.outputs = (size_t)get_u64(&u);
    r->e2e.values = (size_t)get_u64(&u);
    r->e2e.worst_abs = get_f64(&u);
    r->e2e.worst_rel = get_f64(&u);
    get_fixed(&u, r->e2e.worst_output, sizeof r->e2e.worst_output);
    get_fixed(&u, r->e2e.worst_element, sizeof r->e2e.worst_element);
    get_fixed(&u, r->e2e.reason, sizeof r->e2e.reason);
    r->e2e_requested = get_flag(&u);
    r->ms.load = get_f64(&u);
    r->ms.fold = get_f64(&u);
    r->ms.local_check = get_f64(&u);
    r->ms.end_to_end = get_f64(&u);
    r->ms.write = get_f64(&u);
    if (u.nomem)
        goto nomem;
    if (u.bad || u.at != u.n || (r->check_ran && !r->check_fail_on)) {
        bnf_report_free(r);
        return bnf_fail(err, BNF_ERR_INVALID, "a packed bnfold report is malformed (at byte %zu "
                        "of %zu)", u.at, u.n);
    }
    *out = r;
    return BNF_OK;
nomem:
    bnf_report_free(r);
    return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
}
