/* eval/tensor_io.c: tensor files: ONNX TensorProto (.pb, the format of the ONNX
 * test data sets) and numpy .npy (version 1-3, little-endian, C order). */
#include "eval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bnf_status slurp(const char *path, uint8_t **data, size_t *n, bnf_err *err)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    if (!f)
        return bnf_fail(err, BNF_ERR_IO, "%s: %s", path, strerror(errno));
    for (;;) {
        size_t r;
        if (len == cap) {
            uint8_t *grown;
            cap = cap ? cap * 2 : 65536;
            grown = bnf_realloc(buf, cap);
            if (!grown) {
                bnf_free(buf);
                fclose(f);
                return bnf_fail(err, BNF_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = grown;
        }
        r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        bnf_free(buf);
        fclose(f);
        return bnf_fail(err, BNF_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    *data = buf;
    *n = len;
    return BNF_OK;
}

/* The value after `key` in a .npy header dict, or NULL. */
static const char *npy_field(const char *hdr, const char *key)
{
    const char *p = strstr(hdr, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ' || *p == ':' || *p == '\'' || *p == '"')
        p++;
    return p;
}

static bnf_status load_npy(const char *path, const uint8_t *d, size_t n, bnf_tensor *t,
                           bnf_err *err)
{
    size_t hlen, off;
    char *hdr;
    const char *descr, *shape, *fortran;
    int32_t dtype = 0;
    int64_t dims[BNF_MAX_RANK];
    size_t rank = 0, es;
    bnf_status rc;

    if (n < 10 || (d[6] != 1 && d[6] != 2 && d[6] != 3))
        return bnf_fail(err, BNF_ERR_INVALID, "%s: unsupported .npy version", path);
    if (d[6] == 1) {
        hlen = (size_t)d[8] | (size_t)d[9] << 8;
        off = 10;
    } else {
        if (n < 12)
            return bnf_fail(err, BNF_ERR_INVALID, "%s: truncated .npy header", path);
        hlen = (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
        off = 12;
    }
    if (hlen > n - off)
        return bnf_fail(err, BNF_ERR_INVALID, "%s: truncated .npy header", path);
    hdr = bnf_malloc(hlen + 1);
    if (!hdr)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    memcpy(hdr, d + off, hlen);
    hdr[hlen] = '\0';
    descr = npy_field(hdr, "descr");
    fortran = npy_field(hdr, "fortran_order");
    shape = npy_field(hdr, "shape");
    if (!descr || !shape || !fortran) {
        bnf_free(hdr);
        return bnf_fail(err, BNF_ERR_INVALID, "%s: .npy header lacks descr/shape/fortran_order", path);
    }
    if (!strncmp(descr, "<f4", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    else if (!strncmp(descr, "<f8", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    else if (!strncmp(descr, "<i8", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    else if (!strncmp(descr, "<i4", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    else if (!strncmp(descr, "|u1", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
    else if (!strncmp(descr, "|i1", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
    else if (!strncmp(descr, "|b1", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
    else if (!strncmp(descr, "<f2", 3)) dtype = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
    if (!dtype || strncmp(fortran, "False", 5) != 0) {
        bnf_free(hdr);
        return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                        "%s: .npy arrays must be little-endian C-order float16/32/64, int8/32/64, "
                        "uint8 or bool", path);
    }
    shape = strchr(shape, '(');
    for (const char *p = shape ? shape + 1 : NULL; p && *p && *p != ')';) {
        char *end;
        long long v;
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        v = strtoll(p, &end, 10);
        if (end == p || v < 0 || rank == BNF_MAX_RANK) {
            bnf_free(hdr);
            return bnf_fail(err, BNF_ERR_INVALID, "%s: bad .npy shape", path);
        }
        dims[rank++] = v;
        p = end;
    }
    bnf_free(hdr);
    if (!shape)
        return bnf_fail(err, BNF_ERR_INVALID, "%s: bad .npy shape", path);
    off += hlen;
    if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16) {
        size_t cnt;
        if ((rc = bnf_numel(dims, rank, path, &cnt, err)))
            return rc;
        if (n - off != cnt * 2)
            return bnf_fail(err, BNF_ERR_INVALID, "%s: .npy data size does not match its shape", path);
        if ((rc = bnf_tensor_alloc(t, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, rank, err)))
            return rc;
        for (size_t i = 0; i < cnt; i++) {
            uint16_t h;
            memcpy(&h, d + off + 2 * i, 2);
            ((float *)t->data)[i] = (float)bnf_half_to_double(h);
        }
        return BNF_OK;
    }
    if ((rc = bnf_tensor_alloc(t, dtype, dims, rank, err)))
        return rc;
    es = bnf_eval_size(dtype);
    if (n - off != t->n * es) {
        bnf_tensor_release(t);
        return bnf_fail(err, BNF_ERR_INVALID, "%s: .npy data size does not match its shape", path);
    }
    memcpy(t->data, d + off, t->n * es);
    return BNF_OK;
}

/* A tensor from the bytes of a tensor file (d, n: borrowed); `what` names
 * them in messages. */
static bnf_status load_bytes(const char *what, const uint8_t *d, size_t n, bnf_tensor *t,
                             char **name, bnf_err *err)
{
    bnf_status rc;
    Onnx__TensorProto *p;

    if (n >= 6 && memcmp(d, "\x93NUMPY", 6) == 0)
        return load_npy(what, d, n, t, err);
    p = onnx__tensor_proto__unpack(&bnf_pbc_allocator, n, d);
    if (!p)
        return bnf_fail(err, BNF_ERR_INVALID, "%s: neither a .npy array nor an ONNX TensorProto",
                        what);
    if (bnf_proto_is_external(p)) {
        onnx__tensor_proto__free_unpacked(p, &bnf_pbc_allocator);
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "%s: tensor files with external data are not read",
                        what);
    }
    rc = bnf_tensor_from_proto(NULL, p, t, err);
    if (!rc && name && p->name && *p->name && !(*name = bnf_strdup(p->name))) {
        bnf_tensor_release(t);
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    if (rc && err)
        snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg), " (in %s)", what);
    onnx__tensor_proto__free_unpacked(p, &bnf_pbc_allocator);
    return rc;
}

bnf_status bnf_tensor_load(const char *path, bnf_tensor *t, char **name, bnf_err *err)
{
    uint8_t *d = NULL;
    size_t n = 0;
    bnf_status rc;

    memset(t, 0, sizeof *t);
    if (name)
        *name = NULL;
    if ((rc = slurp(path, &d, &n, err)))
        return rc;
    rc = load_bytes(path, d, n, t, name, err);
    bnf_free(d);
    return rc;
}

bnf_status bnf_tensor_load_buffer(const void *data, size_t size, bnf_tensor *t, char **name,
                                  bnf_err *err)
{
    memset(t, 0, sizeof *t);
    if (name)
        *name = NULL;
    if (!data && size)
        return bnf_fail(err, BNF_ERR_USAGE, "bnf_tensor_load_buffer: no data");
    return load_bytes("tensor buffer", data ? data : (const void *)"", size, t, name, err);
}

bnf_status bnf_tensor_serialize(const bnf_tensor *t, const char *name, uint8_t **data,
                                size_t *size, bnf_err *err)
{
    Onnx__TensorProto p = ONNX__TENSOR_PROTO__INIT;
    int64_t dims[BNF_MAX_RANK];
    size_t n;
    uint8_t *buf;

    *data = NULL;
    *size = 0;
    if (t->rank > BNF_MAX_RANK || (t->n && !t->data) || !bnf_eval_size(t->dtype))
        return bnf_fail(err, BNF_ERR_USAGE, "bnf_tensor_serialize: not an evaluator tensor");
    memcpy(dims, t->dims, sizeof dims);
    p.name = (char *)(name ? name : "");
    p.n_dims = t->rank;
    p.dims = dims;
    p.has_data_type = 1;
    p.data_type = t->dtype;
    p.has_raw_data = 1;
    p.raw_data.data = t->data;
    p.raw_data.len = t->n * bnf_eval_size(t->dtype);
    n = onnx__tensor_proto__get_packed_size(&p);
    buf = bnf_malloc(n ? n : 1);
    if (!buf)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    onnx__tensor_proto__pack(&p, buf);
    *data = buf;
    *size = n;
    return BNF_OK;
}

bnf_status bnf_tensor_save(const char *path, const bnf_tensor *t, const char *name, bnf_err *err)
{
    uint8_t *buf;
    size_t n;
    bnf_status rc = bnf_tensor_serialize(t, name, &buf, &n, err);
    if (rc)
        return rc;
    rc = bnf_write_atomic(path, buf, n, err);
    bnf_free(buf);
    return rc;
}
