/* skeleton.c: a model's structure without its weight bytes, for protobuf-c.
 *
 * protobuf-c copies every bytes field it unpacks, so unpacking a mapped file
 * would copy all its weights onto the heap.  Instead the top graph's
 * initializers lose their raw_data fields (the lengths of the enclosing
 * messages rewritten to match), protobuf-c unpacks that small skeleton, and
 * each raw_data is then pointed back into the mapping.  Only the top graph's
 * initializers are treated, as they hold the weights; a message out of the
 * ordinary (the graph field twice, raw_data twice in one tensor) is left
 * whole, which is correct, only not lean.  The input has passed
 * bnf_wire_precheck: lengths fit, no groups. */
#include "internal.h"

#include <string.h>

enum { MODEL_GRAPH = 7, GRAPH_INITIALIZER = 5, TENSOR_RAW_DATA = 9 };

typedef struct {
    uint8_t *d;
    size_t n, cap;
    int nomem;
} growbuf;

static void put(growbuf *b, const void *p, size_t n)
{
    if (b->nomem || n == 0)
        return;
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *grown;
        while (cap - b->n < n)
            cap *= 2;
        if (!(grown = bnf_realloc(b->d, cap))) {
            b->nomem = 1;
            return;
        }
        b->d = grown;
        b->cap = cap;
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put_varint(growbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t k = 0;
    do {
        tmp[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, tmp, k);
}

/* One field at *pos: its number and wire type, where its payload lies (for a
 * length-delimited field) and where it ends.  -1 on anything unexpected. */
typedef struct {
    unsigned number, wire_type;
    size_t start, payload, end;
} field;

static int next_field(const uint8_t *d, size_t end, size_t *pos, field *f)
{
    uint64_t key, v;
    f->start = *pos;
    if (bnf_wire_varint(d, end, pos, &key) != 0)
        return -1;
    f->number = (unsigned)(key >> 3);
    f->wire_type = (unsigned)(key & 7);
    switch (f->wire_type) {
    case 0:
        if (bnf_wire_varint(d, end, pos, &v) != 0)
            return -1;
        break;
    case 1:
    case 5:
        if (end - *pos < (f->wire_type == 1 ? 8u : 4u))
            return -1;
        *pos += f->wire_type == 1 ? 8 : 4;
        break;
    case 2:
        if (bnf_wire_varint(d, end, pos, &v) != 0 || v > end - *pos)
            return -1;
        f->payload = *pos;
        *pos += (size_t)v;
        break;
    default:
        return -1;
    }
    f->end = *pos;
    return 0;
}

/* Count of length-delimited fields `number` in [start, end), or -1. */
static int count_fields(const uint8_t *d, size_t start, size_t end, unsigned number)
{
    size_t pos = start;
    int k = 0;
    field f;
    while (pos < end) {
        if (next_field(d, end, &pos, &f) != 0)
            return -1;
        k += f.number == number && f.wire_type == 2;
    }
    return k;
}

/* Appends the length-delimited field `number` holding body. */
static void put_message(growbuf *out, unsigned number, const growbuf *body)
{
    put_varint(out, (uint64_t)number << 3 | 2);
    put_varint(out, body->n);
    put(out, body->d, body->n);
}

static int tensor(const uint8_t *d, size_t start, size_t end, size_t index, growbuf *out,
                  bnf_stripped **list, size_t *n_list, size_t *cap_list)
{
    size_t pos = start;
    field f;
    int raws = count_fields(d, start, end, TENSOR_RAW_DATA);
    if (raws < 0)
        return -1;
    while (pos < end) {
        if (next_field(d, end, &pos, &f) != 0)
            return -1;
        if (raws == 1 && f.number == TENSOR_RAW_DATA && f.wire_type == 2) {
            if (*n_list == *cap_list) {
                size_t cap = *cap_list ? 2 * *cap_list : 64;
                bnf_stripped *grown = bnf_realloc(*list, cap * sizeof *grown);
                if (!grown) {
                    out->nomem = 1;
                    return 0;
                }
                *list = grown;
                *cap_list = cap;
            }
            (*list)[(*n_list)++] = (bnf_stripped){index, f.payload, f.end - f.payload};
            continue;
        }
        put(out, d + f.start, f.end - f.start);
    }
    return 0;
}

static int graph(const uint8_t *d, size_t start, size_t end, growbuf *out, bnf_stripped **list,
                 size_t *n_list, size_t *cap_list)
{
    size_t pos = start, index = 0;
    field f;
    growbuf t = {0};
    int rc = 0;
    while (pos < end && rc == 0) {
        if (next_field(d, end, &pos, &f) != 0) {
            rc = -1;
            break;
        }
        if (f.number == GRAPH_INITIALIZER && f.wire_type == 2) {
            t.n = 0;
            if ((rc = tensor(d, f.payload, f.end, index++, &t, list, n_list, cap_list)) != 0)
                break;
            out->nomem |= t.nomem;
            put_message(out, GRAPH_INITIALIZER, &t);
            continue;
        }
        put(out, d + f.start, f.end - f.start);
    }
    bnf_free(t.d);
    return rc;
}

bnf_status bnf_skeleton_make(const uint8_t *d, size_t n, bnf_skeleton *sk, bnf_err *err)
{
    size_t pos = 0, cap_list = 0;
    field f;
    growbuf out = {0}, g = {0};
    int rc = 0;

    memset(sk, 0, sizeof *sk);
    if (count_fields(d, 0, n, MODEL_GRAPH) != 1)
        return BNF_OK; /* nothing stripped: unpack the file itself */
    while (pos < n && rc == 0) {
        if (next_field(d, n, &pos, &f) != 0) {
            rc = -1;
            break;
        }
        if (f.number == MODEL_GRAPH && f.wire_type == 2) {
            if ((rc = graph(d, f.payload, f.end, &g, &sk->stripped, &sk->n_stripped,
                            &cap_list)) != 0)
                break;
            out.nomem |= g.nomem;
            put_message(&out, MODEL_GRAPH, &g);
            continue;
        }
        put(&out, d + f.start, f.end - f.start);
    }
    bnf_free(g.d);
    if (rc != 0 || out.nomem || !out.d) {
        int nomem = out.nomem;
        bnf_free(out.d);
        bnf_skeleton_release(sk);
        if (nomem)
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory indexing the model");
        return BNF_OK; /* an oddity precheck let through: unpack the file itself */
    }
    sk->bytes = out.d;
    sk->n_bytes = out.n;
    for (size_t i = 0; i < sk->n_stripped; i++)
        sk->stripped_bytes += sk->stripped[i].len;
    return BNF_OK;
}

void bnf_skeleton_release(bnf_skeleton *sk)
{
    bnf_free(sk->bytes);
    bnf_free(sk->stripped);
    memset(sk, 0, sizeof *sk);
}

bnf_status bnf_skeleton_attach(const bnf_skeleton *sk, const uint8_t *d, Onnx__GraphProto *g,
                               bnf_err *err)
{
    for (size_t i = 0; i < sk->n_stripped; i++) {
        const bnf_stripped *s = &sk->stripped[i];
        Onnx__TensorProto *t = s->index < g->n_initializer ? g->initializer[s->index] : NULL;
        if (!t || t->has_raw_data)
            return bnf_fail(err, BNF_ERR_INVALID, "the model's initializers do not match their "
                            "index (initializer %zu)", s->index);
        t->has_raw_data = 1;
        t->raw_data.data = (uint8_t *)d + s->off;
        t->raw_data.len = s->len;
    }
    return BNF_OK;
}
