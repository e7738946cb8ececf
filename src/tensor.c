/* tensor.c: ONNX data types and tensor storage.
 *
 * Reads a tensor's values from any storage the format allows (raw_data in
 * little-endian, possibly unaligned; float_data; double_data; int32_data holding
 * float16/bfloat16 bit patterns; external data relative to the model's folder)
 * into doubles, and writes new tensors into raw_data.  Conversions to float16 and
 * bfloat16 round to nearest even directly from double. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const bnf_dtype_info dtypes[] = {
    {1, "float", 4},     {2, "uint8", 1},     {3, "int8", 1},       {4, "uint16", 2},
    {5, "int16", 2},     {6, "int32", 4},     {7, "int64", 8},      {8, "string", 0},
    {9, "bool", 1},      {10, "float16", 2},  {11, "double", 8},    {12, "uint32", 4},
    {13, "uint64", 8},   {14, "complex64", 8}, {15, "complex128", 16}, {16, "bfloat16", 2},
};

const bnf_dtype_info *bnf_dtype(int32_t dtype)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dtype == dtype)
            return &dtypes[i];
    return NULL;
}

const char *bnf_dtype_name(int32_t dtype)
{
    const bnf_dtype_info *d = bnf_dtype(dtype);
    return d ? d->name : "unknown";
}

int bnf_dtype_is_real(int32_t dtype)
{
    return dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
           dtype == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
           dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
           dtype == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

/* ---- small floats ---------------------------------------------------------- */

/* A binary float with `mbits` mantissa bits and `ebits` exponent bits. */
static double minifloat_to_double(uint16_t h, int mbits, int ebits)
{
    int bias = (1 << (ebits - 1)) - 1;
    int sign = h >> (mbits + ebits);
    int e = (h >> mbits) & ((1 << ebits) - 1);
    int mant = h & ((1 << mbits) - 1);
    double v;
    if (e == (1 << ebits) - 1)
        v = mant ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(mant, 1 - bias - mbits);
    else
        v = ldexp(mant + (1 << mbits), e - bias - mbits);
    return sign ? -v : v;
}

static uint16_t double_to_minifloat(double x, int mbits, int ebits)
{
    int bias = (1 << (ebits - 1)) - 1;
    int emax = (1 << ebits) - 2; /* largest biased exponent of a finite value */
    uint16_t sign = signbit(x) ? (uint16_t)(1u << (mbits + ebits)) : 0;
    uint16_t inf = (uint16_t)(((1u << ebits) - 1) << mbits);
    double a = fabs(x);
    int e;
    if (isnan(x))
        return (uint16_t)(inf | (1u << (mbits - 1)));
    if (isinf(x))
        return sign | inf;
    if (a == 0)
        return sign;
    frexp(a, &e);  /* a = f * 2^e, f in [0.5, 1) */
    e -= 1;        /* a = g * 2^e, g in [1, 2) */
    if (e < 1 - bias) {
        /* subnormal: units of 2^(1 - bias - mbits); nearbyint rounds to even */
        double q = nearbyint(ldexp(a, bias - 1 + mbits));
        return sign | (uint16_t)q; /* q == 2^mbits is the smallest normal: right */
    }
    double q = nearbyint(ldexp(a, mbits - e)); /* in [2^mbits, 2^(mbits+1)] */
    if (q >= ldexp(1, mbits + 1)) {
        q /= 2;
        e++;
    }
    if (e + bias > emax)
        return sign | inf;
    return sign | (uint16_t)((unsigned)(e + bias) << mbits) |
           (uint16_t)((unsigned)q - (1u << mbits));
}

double bnf_half_to_double(uint16_t h) { return minifloat_to_double(h, 10, 5); }
double bnf_bf16_to_double(uint16_t h) { return minifloat_to_double(h, 7, 8); }
uint16_t bnf_double_to_half(double x) { return double_to_minifloat(x, 10, 5); }
uint16_t bnf_double_to_bf16(double x) { return double_to_minifloat(x, 7, 8); }

double bnf_round_to(int32_t dtype, double x)
{
    switch (dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return (double)(float)x;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return bnf_half_to_double(bnf_double_to_half(x));
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return bnf_bf16_to_double(bnf_double_to_bf16(x));
    default: return x;
    }
}

/* ---- reading ----------------------------------------------------------------- */

void bnf_array_free(bnf_array *a)
{
    if (!a)
        return;
    bnf_free(a->dims);
    bnf_free(a->v);
    memset(a, 0, sizeof *a);
}

bnf_status bnf_numel(const int64_t *dims, size_t rank, const char *what, size_t *n,
                     bnf_err *err)
{
    size_t total = 1;
    for (size_t i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return bnf_fail(err, BNF_ERR_INVALID, "tensor '%s' has a negative dimension (%lld)",
                            what, (long long)dims[i]);
        if (dims[i] > 0 && total > (SIZE_MAX / 16) / (size_t)dims[i])
            return bnf_fail(err, BNF_ERR_INVALID, "tensor '%s' has too many elements", what);
        total *= (size_t)dims[i];
    }
    *n = total;
    return BNF_OK;
}

uint64_t bnf_tensor_nbytes(const Onnx__TensorProto *t)
{
    const bnf_dtype_info *d = bnf_dtype(t->data_type);
    size_t n;
    if (!d || bnf_numel(t->dims, t->n_dims, "", &n, NULL) != BNF_OK)
        return 0;
    return (uint64_t)n * d->size;
}

int bnf_tensor_is_external(const Onnx__TensorProto *t)
{
    return t->has_data_location &&
           t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

static const char *tname(const Onnx__TensorProto *t)
{
    return t->name ? t->name : "";
}

static const char *ext_value(const Onnx__TensorProto *t, const char *key)
{
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = t->external_data[i];
        if (e->key && strcmp(e->key, key) == 0)
            return e->value ? e->value : "";
    }
    return NULL;
}

static bnf_status parse_u64(const Onnx__TensorProto *t, const char *key, uint64_t *out,
                            bnf_err *err)
{
    const char *s = ext_value(t, key);
    char *end;
    unsigned long long v;
    if (!s)
        return BNF_OK;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return bnf_fail(err, BNF_ERR_INVALID, "tensor '%s': external data %s '%s' is not a number",
                        tname(t), key, s);
    *out = v;
    return BNF_OK;
}

bnf_status bnf_tensor_read_external(const bnf_model *m, const Onnx__TensorProto *t,
                                    uint8_t **data, size_t *size, bnf_err *err)
{
    const char *loc = ext_value(t, "location");
    char *joined = NULL, *real = NULL;
    uint8_t *buf = NULL;
    uint64_t offset = 0, length = UINT64_MAX, want = bnf_tensor_nbytes(t);
    int fd = -1;
    struct stat st;
    bnf_status rc;
    size_t dl;

    if (!loc || !*loc)
        return bnf_fail(err, BNF_ERR_INVALID, "tensor '%s': external data without a location",
                        tname(t));
    if (!m || !m->dir)
        return bnf_fail(err, BNF_ERR_INVALID,
                        "tensor '%s': external data '%s' but the model has no folder", tname(t),
                        loc);
    if (loc[0] == '/')
        return bnf_fail(err, BNF_ERR_INVALID,
                        "tensor '%s': external data location '%s' is absolute; it must be "
                        "relative to the model's folder", tname(t), loc);
    if ((rc = parse_u64(t, "offset", &offset, err)) || (rc = parse_u64(t, "length", &length, err)))
        return rc;
    dl = strlen(m->dir);
    joined = bnf_malloc(dl + strlen(loc) + 2);
    if (!joined)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    sprintf(joined, "%s/%s", m->dir, loc);
    real = bnf_realpath(joined);
    if (!real) {
        rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': cannot open external data '%s': %s", tname(t),
                      joined, strerror(errno));
        goto out;
    }
    if (strncmp(real, m->dir, dl) != 0 || (real[dl] != '/' && strcmp(m->dir, "/") != 0)) {
        rc = bnf_fail(err, BNF_ERR_INVALID,
                      "tensor '%s': external data location '%s' escapes the model's folder",
                      tname(t), loc);
        goto out;
    }
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': cannot open external data '%s': %s", tname(t),
                      real, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = bnf_fail(err, BNF_ERR_INVALID, "tensor '%s': external data '%s' is not a regular file",
                      tname(t), loc);
        goto out;
    }
    if (length == UINT64_MAX)
        length = offset <= (uint64_t)st.st_size ? (uint64_t)st.st_size - offset : 0;
    if (offset > (uint64_t)st.st_size || length > (uint64_t)st.st_size - offset) {
        rc = bnf_fail(err, BNF_ERR_INVALID,
                      "tensor '%s': external data range %llu+%llu lies outside '%s' (%lld bytes)",
                      tname(t), (unsigned long long)offset, (unsigned long long)length, loc,
                      (long long)st.st_size);
        goto out;
    }
    if (want && length != want) {
        rc = bnf_fail(err, BNF_ERR_INVALID,
                      "tensor '%s': external data holds %llu bytes, its shape needs %llu",
                      tname(t), (unsigned long long)length, (unsigned long long)want);
        goto out;
    }
    buf = bnf_malloc(length ? length : 1);
    if (!buf) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading tensor '%s'", tname(t));
        goto out;
    }
    for (uint64_t done = 0; done < length;) {
        ssize_t r = pread(fd, buf + done, length - done, (off_t)(offset + done));
        if (r <= 0) {
            rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': reading '%s': %s", tname(t), loc,
                          r == 0 ? "unexpected end of file" : strerror(errno));
            goto out;
        }
        done += (uint64_t)r;
    }
    *data = buf;
    *size = length;
    buf = NULL;
    rc = BNF_OK;
out:
    if (fd >= 0)
        close(fd);
    bnf_free(buf);
    bnf_free(real);
    bnf_free(joined);
    return rc;
}

static void decode_raw(int32_t dtype, const uint8_t *p, size_t n, double *v)
{
    for (size_t i = 0; i < n; i++) {
        switch (dtype) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
            float f;
            memcpy(&f, p + 4 * i, 4);
            v[i] = f;
            break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
            memcpy(&v[i], p + 8 * i, 8);
            break;
        default: {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            v[i] = dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? bnf_half_to_double(h)
                                                                  : bnf_bf16_to_double(h);
        }
        }
    }
}

bnf_status bnf_tensor_read(const bnf_model *m, const Onnx__TensorProto *t, bnf_array *out,
                           bnf_err *err)
{
    const bnf_dtype_info *d = bnf_dtype(t->data_type);
    int32_t dt = t->data_type;
    size_t n, have;
    bnf_status rc;

    memset(out, 0, sizeof *out);
    if (!bnf_dtype_is_real(dt))
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s' has data type %s, not a real type",
                        tname(t), bnf_dtype_name(dt));
    if ((rc = bnf_numel(t->dims, t->n_dims, tname(t), &n, err)))
        return rc;
    out->dtype = dt;
    out->rank = t->n_dims;
    out->n = n;
    out->dims = bnf_malloc((t->n_dims ? t->n_dims : 1) * sizeof *out->dims);
    out->v = bnf_malloc((n ? n : 1) * sizeof *out->v);
    if (!out->dims || !out->v) {
        bnf_array_free(out);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading tensor '%s'", tname(t));
    }
    if (t->n_dims)
        memcpy(out->dims, t->dims, t->n_dims * sizeof *t->dims);

    if (bnf_tensor_is_external(t)) {
        uint8_t *data = NULL;
        size_t size = 0;
        if ((rc = bnf_tensor_read_external(m, t, &data, &size, err))) {
            bnf_array_free(out);
            return rc;
        }
        if (size != n * d->size) {
            bnf_free(data);
            bnf_array_free(out);
            return bnf_fail(err, BNF_ERR_INVALID,
                            "tensor '%s': external data holds %zu bytes, its shape needs %zu",
                            tname(t), size, n * d->size);
        }
        decode_raw(dt, data, n, out->v);
        bnf_free(data);
        return BNF_OK;
    }
    if (t->has_raw_data) {
        have = t->raw_data.len;
        if (have != n * d->size)
            goto bad_size;
        decode_raw(dt, t->raw_data.data, n, out->v);
        return BNF_OK;
    }
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        have = t->n_float_data * d->size;
        if (t->n_float_data != n)
            goto bad_size;
        for (size_t i = 0; i < n; i++)
            out->v[i] = t->float_data[i];
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        have = t->n_double_data * d->size;
        if (t->n_double_data != n)
            goto bad_size;
        memcpy(out->v, t->double_data, n * sizeof(double));
        break;
    default: /* float16 and bfloat16 bit patterns in int32_data */
        have = t->n_int32_data * d->size;
        if (t->n_int32_data != n)
            goto bad_size;
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)t->int32_data[i];
            out->v[i] = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? bnf_half_to_double(h)
                                                                    : bnf_bf16_to_double(h);
        }
    }
    return BNF_OK;
bad_size:
    bnf_array_free(out);
    return bnf_fail(err, BNF_ERR_INVALID,
                    "tensor '%s' (%s) holds %zu bytes of data, its shape needs %zu", tname(t),
                    d->name, have, n * d->size);
}

/* ---- writing ----------------------------------------------------------------- */

bnf_status bnf_tensor_new(const char *name, int32_t dtype, const int64_t *dims, size_t rank,
                          const double *v, size_t n, Onnx__TensorProto **out, bnf_err *err)
{
    const bnf_dtype_info *d = bnf_dtype(dtype);
    Onnx__TensorProto *t = bnf_malloc(sizeof *t);
    uint8_t *p;

    if (!t)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    onnx__tensor_proto__init(t);
    t->name = bnf_strdup(name);
    t->dims = bnf_malloc((rank ? rank : 1) * sizeof *t->dims);
    p = bnf_malloc(n * d->size > 0 ? n * d->size : 1);
    t->raw_data.data = p;
    if (!t->name || !t->dims || !p) {
        onnx__tensor_proto__free_unpacked(t, &bnf_pbc_allocator);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory creating tensor '%s'", name);
    }
    t->n_dims = rank;
    if (rank)
        memcpy(t->dims, dims, rank * sizeof *dims);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->has_raw_data = 1;
    t->raw_data.len = n * d->size;
    for (size_t i = 0; i < n; i++) {
        switch (dtype) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
            float f = (float)v[i];
            memcpy(p + 4 * i, &f, 4);
            break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
            memcpy(p + 8 * i, &v[i], 8);
            break;
        default: {
            uint16_t h = dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? bnf_double_to_half(v[i])
                                                                        : bnf_double_to_bf16(v[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        }
    }
    *out = t;
    return BNF_OK;
}
