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
#include <sys/mman.h>
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

void bnf_array_release(bnf_array *a)
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

uint64_t bnf_proto_nbytes(const Onnx__TensorProto *t)
{
    const bnf_dtype_info *d = bnf_dtype(t->data_type);
    size_t n;
    if (!d || bnf_numel(t->dims, t->n_dims, "", &n, NULL) != BNF_OK)
        return 0;
    return (uint64_t)n * d->size;
}

int bnf_proto_is_external(const Onnx__TensorProto *t)
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

bnf_status bnf_proto_external_open(const bnf_model *m, const Onnx__TensorProto *t, int *fd_out,
                                    uint64_t *off_out, uint64_t *len_out, bnf_err *err)
{
    const char *loc = ext_value(t, "location");
    char *joined = NULL, *real = NULL;
    uint64_t offset = 0, length = UINT64_MAX, want = bnf_proto_nbytes(t);
    int fd = -1;
    struct stat st;
    bnf_status rc;
    size_t dl;

    *fd_out = -1;
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
    *fd_out = fd;
    *off_out = offset;
    *len_out = length;
    fd = -1;
    rc = BNF_OK;
out:
    if (fd >= 0)
        close(fd);
    bnf_free(real);
    bnf_free(joined);
    return rc;
}

bnf_status bnf_proto_read_external_into(const bnf_model *m, const Onnx__TensorProto *t,
                                         uint8_t *dst, size_t size, bnf_err *err)
{
    uint64_t offset, length;
    int fd;
    bnf_status rc;

    if ((rc = bnf_proto_external_open(m, t, &fd, &offset, &length, err)))
        return rc;
    if (length != size) {
        rc = bnf_fail(err, BNF_ERR_INVALID, "tensor '%s' holds %llu bytes, its shape needs %zu",
                      tname(t), (unsigned long long)length, size);
        goto out;
    }
    for (uint64_t done = 0; done < length;) {
        ssize_t r = pread(fd, dst + done, length - done, (off_t)(offset + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': reading '%s': %s", tname(t),
                          ext_value(t, "location"),
                          r == 0 ? "unexpected end of file" : strerror(errno));
            goto out;
        }
        done += (uint64_t)r;
    }
out:
    close(fd);
    return rc;
}

bnf_status bnf_proto_read_external(const bnf_model *m, const Onnx__TensorProto *t,
                                    uint8_t **data, size_t *size, bnf_err *err)
{
    uint8_t *buf = NULL;
    uint64_t offset, length;
    int fd;
    bnf_status rc;

    if ((rc = bnf_proto_external_open(m, t, &fd, &offset, &length, err)))
        return rc;
    close(fd);
    if (length > SIZE_MAX - 1 || !(buf = bnf_malloc(length ? (size_t)length : 1)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading tensor '%s'", tname(t));
    if ((rc = bnf_proto_read_external_into(m, t, buf, (size_t)length, err))) {
        bnf_free(buf);
        return rc;
    }
    *data = buf;
    *size = (size_t)length;
    return BNF_OK;
}

static void decode_raw(int32_t dtype, const uint8_t *p, size_t n, double *v)
{
    switch (dtype) { /* one loop per type: these run over every weight */
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            v[i] = f;
        }
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        memcpy(v, p, n * sizeof *v);
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            v[i] = bnf_half_to_double(h);
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            v[i] = bnf_bf16_to_double(h);
        }
    }
}

bnf_status bnf_proto_shape(const Onnx__TensorProto *t, bnf_array *out, bnf_err *err)
{
    int32_t dt = t->data_type;
    size_t n;
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
    if (!out->dims)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading tensor '%s'", tname(t));
    if (t->n_dims)
        memcpy(out->dims, t->dims, t->n_dims * sizeof *t->dims);
    return BNF_OK;
}

bnf_status bnf_proto_read(const bnf_model *m, const Onnx__TensorProto *t, bnf_array *out,
                           bnf_err *err)
{
    const bnf_dtype_info *d = bnf_dtype(t->data_type);
    int32_t dt = t->data_type;
    size_t n, have;
    bnf_status rc;

    if ((rc = bnf_proto_shape(t, out, err)))
        return rc;
    n = out->n;
    out->v = bnf_malloc((n ? n : 1) * sizeof *out->v);
    if (!out->v) {
        bnf_array_release(out);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory reading tensor '%s'", tname(t));
    }

    if (bnf_proto_is_external(t)) {
        uint8_t *data = NULL;
        size_t size = 0;
        if ((rc = bnf_proto_read_external(m, t, &data, &size, err))) {
            bnf_array_release(out);
            return rc;
        }
        if (size != n * d->size) {
            bnf_free(data);
            bnf_array_release(out);
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
    bnf_array_release(out);
    return bnf_fail(err, BNF_ERR_INVALID,
                    "tensor '%s' (%s) holds %zu bytes of data, its shape needs %zu", tname(t),
                    d->name, have, n * d->size);
}

/* ---- writing ----------------------------------------------------------------- */

bnf_status bnf_proto_new(const char *name, int32_t dtype, const int64_t *dims, size_t rank,
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
    /* no values: zeros, left to the kernel to provide as they are read */
    p = v ? bnf_malloc(n * d->size > 0 ? n * d->size : 1) : bnf_calloc(1, n * d->size);
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
    for (size_t i = 0; v && i < n; i++) {
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

/* ---- a weight scaled by channel, streamed ---------------------------------------- */

#define SCALE_CHUNK 65536 /* elements at a time: under a MiB, in cache */

/* Elements [at, at + n) of t as doubles; raw holds them when t's bytes are
 * raw (mapped, heap or read from external data). */
static void decode_typed(const Onnx__TensorProto *t, size_t at, size_t n, double *v)
{
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        for (size_t i = 0; i < n; i++)
            v[i] = t->float_data[at + i];
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        memcpy(v, t->double_data + at, n * sizeof *v);
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)t->int32_data[at + i];
            v[i] = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? bnf_half_to_double(h)
                                                                           : bnf_bf16_to_double(h);
        }
    }
}

size_t bnf_scaling_channel(const bnf_scaling *sc, size_t e)
{
    return (sc->group ? e / sc->group * sc->per_group : 0) + e / sc->inner % sc->per_group;
}

/* Moves pos on by run elements (run <= what is left of the current inner run). */
static void scaling_advance(const bnf_scaling *sc, bnf_scaling_pos *pos, size_t run)
{
    pos->k += run;
    if (pos->k == sc->inner) {
        pos->k = 0;
        if (++pos->c == sc->per_group)
            pos->c = 0;
    }
    if (sc->group && (pos->in_group += run) == sc->group) {
        pos->in_group = 0;
        pos->base += sc->per_group;
    }
}

void bnf_scale_by_channel(double *v, size_t n, const double *s, const bnf_scaling *sc,
                          bnf_scaling_pos *pos)
{
    size_t i = 0;
    while (i < n) {
        size_t run = sc->inner - pos->k < n - i ? sc->inner - pos->k : n - i;
        const double f = s[pos->base + pos->c];
        for (size_t j = 0; j < run; j++)
            v[i + j] *= f;
        i += run;
        scaling_advance(sc, pos, run);
    }
}

bnf_status bnf_proto_stand_in(bnf_model *m, const Onnx__TensorProto *t, int32_t dtype,
                              const int64_t *dims, size_t rank, size_t n,
                              Onnx__TensorProto **out, bnf_err *err)
{
    const bnf_dtype_info *d = bnf_dtype(dtype);
    bnf_status rc;
    if (!d || !t || !t->has_raw_data || t->data_type != dtype || t->raw_data.len != n * d->size ||
        !n || !bnf_mapped_owns(m, t->raw_data.data))
        return bnf_proto_new("", dtype, dims, rank, NULL, n, out, err);
    if ((rc = bnf_proto_new("", dtype, dims, rank, NULL, 0, out, err)))
        return rc;
    bnf_free((*out)->raw_data.data);
    (*out)->raw_data.data = t->raw_data.data; /* the model's region: never freed */
    (*out)->raw_data.len = t->raw_data.len;
    return BNF_OK;
}

/* Encodes v as dtype into p; returns the index + 1 of the first value not
 * finite (or flushed to zero) in dtype, else 0. */
static size_t encode_checked(int32_t dtype, const double *v, size_t n, uint8_t *p)
{
    int bad = 0;
    switch (dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
        float *f = (float *)(void *)p; /* p comes from a malloc or a page: aligned */
        for (size_t i = 0; i < n; i++) {
            float r = (float)v[i];
            f[i] = r;
            bad |= (!(fabsf(r) <= FLT_MAX)) | ((r == 0.0f) & (v[i] != 0.0));
        }
        break;
    }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        memcpy(p, v, n * sizeof *v);
        for (size_t i = 0; i < n; i++)
            bad |= (!(fabs(v[i]) <= DBL_MAX));
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? bnf_double_to_half(v[i])
                                                                        : bnf_double_to_bf16(v[i]);
            double r = dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ? bnf_half_to_double(h)
                                                                      : bnf_bf16_to_double(h);
            memcpy(p + 2 * i, &h, 2);
            bad |= (!isfinite(v[i])) | (!isfinite(r)) | ((r == 0) & (v[i] != 0));
        }
    }
    if (!bad)
        return 0;
    for (size_t i = 0; i < n; i++) { /* which one: the rare, slow way */
        double r = bnf_round_to(dtype, v[i]);
        if (!isfinite(v[i]) || !isfinite(r) || (r == 0 && v[i] != 0))
            return i + 1;
    }
    return 0;
}

static double scaled_value(const uint8_t *p, double sc)
{
    float f;
    memcpy(&f, p, 4);
    return (double)f * sc;
}

/* ---- float32 scaling, the hot loop of a fold --------------------------------------
 *
 * out[j] = (float)((double)w[j] * f): one double multiply, one rounding, and
 * a flag when a value is not finite or a non-zero product rounds to zero.  The
 * AVX2 copy does exactly this four values at a time (cvtps2pd, mulpd,
 * cvtpd2ps round as the scalar conversions do), so the bytes are the same
 * whichever runs. */

static int scale_run_c(const uint8_t *p, size_t n, double f, float *out)
{
    int bad = 0;
    for (size_t j = 0; j < n; j++) {
        float w, r;
        double x;
        memcpy(&w, p + 4 * j, 4);
        x = (double)w * f;
        r = (float)x;
        out[j] = r;
        bad |= (!(fabsf(r) <= FLT_MAX)) | ((r == 0.0f) & (x != 0.0));
    }
    return bad;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SCALE_AVX2 1

__attribute__((target("avx2"))) static int scale_run_avx2(const uint8_t *p, size_t n, double f,
                                                          float *out)
{
    const __m256d vf = _mm256_set1_pd(f), zd = _mm256_setzero_pd();
    const __m128 big = _mm_set1_ps(FLT_MAX), zs = _mm_setzero_ps(),
                 sign = _mm_set1_ps(-0.0f);
    size_t j = 0;
    int bad = 0;
    for (; j + 4 <= n; j += 4) {
        __m256d x = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps((const float *)(const void *)(p + 4 * j))), vf);
        __m128 r = _mm256_cvtpd_ps(x);
        _mm_storeu_ps(out + j, r);
        /* |r| > FLT_MAX or NaN; r == 0 where x != 0 (or NaN) */
        bad |= _mm_movemask_ps(_mm_cmp_ps(_mm_andnot_ps(sign, r), big, _CMP_NLE_UQ)) |
               (_mm_movemask_ps(_mm_cmp_ps(r, zs, _CMP_EQ_OQ)) &
                _mm256_movemask_pd(_mm256_cmp_pd(x, zd, _CMP_NEQ_UQ)));
    }
    return (bad != 0) | scale_run_c(p + 4 * j, n - j, f, out + j);
}
#endif

static int scale_run(const uint8_t *p, size_t n, double f, float *out)
{
#ifdef SCALE_AVX2
    static int avx2 = -1; /* (a benign race: every thread finds the same) */
    if (avx2 < 0)
        avx2 = __builtin_cpu_supports("avx2");
    if (avx2 && n >= 8)
        return scale_run_avx2(p, n, f, out);
#endif
    return scale_run_c(p, n, f, out);
}

/* scale_chunk and encode_checked fused for float32 raw bytes: the index + 1
 * of the first value that is not finite or flushes to zero, else 0. */
static size_t scale_float(const uint8_t *p, size_t n, const double *s, const bnf_scaling *sc,
                          bnf_scaling_pos *pos, float *out)
{
    bnf_scaling_pos at = *pos;
    size_t i = 0;
    int bad = 0;
    while (i < n) {
        size_t run = sc->inner - pos->k < n - i ? sc->inner - pos->k : n - i;
        bad |= scale_run(p + 4 * i, run, s[pos->base + pos->c], out + i);
        i += run;
        scaling_advance(sc, pos, run);
    }
    if (!bad)
        return 0;
    for (i = 0; i < n;) { /* which one: the rare, slow way, as the flag was set */
        size_t run = sc->inner - at.k < n - i ? sc->inner - at.k : n - i;
        const double f0 = s[at.base + at.c];
        for (size_t j = i; j < i + run; j++) {
            float w, r = out[j];
            double x;
            memcpy(&w, p + 4 * j, 4);
            x = (double)w * f0;
            if (!(fabsf(r) <= FLT_MAX) || (r == 0.0f && x != 0.0))
                return j + 1;
        }
        i += run;
        scaling_advance(sc, &at, run);
    }
    return 0;
}

/* ---- the screen of a check-only scaling ---------------------------------------------
 *
 * A float32 w scaled by s (in double, rounded back) is not finite when |w| is
 * above FLT_MAX / |s| (or w is not finite), and flushes to zero when w is not
 * zero and |w| below about FLT_TRUE_MIN / |s|: both monotone in |w|.  With the
 * largest and the smallest non-zero |s| of the map, two bounds on the bits of
 * |w| (ordered as the magnitudes are) clear every element that cannot go wrong
 * under any channel's scale, in one integer pass over the bytes that
 * compilers vectorise.  Bounds a step inside the exact ones: a value near them
 * goes to the exact check, which also finds which element it is. */

typedef struct {
    int32_t lo, hi; /* |w| bits clear when 0, or lo <= bits <= hi */
} f32_screen;

static uint32_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* 0 when the map has a scale that is not finite (no screen: check each). */
static int screen_of(const double *s, size_t n_s, f32_screen *sc)
{
    double big = 0, small = INFINITY;
    for (size_t c = 0; c < n_s; c++) {
        double a = fabs(s[c]);
        if (!isfinite(a))
            return 0;
        big = a > big ? a : big;
        small = a > 0 && a < small ? a : small;
    }
    if (big * (double)FLT_MAX < (double)FLT_MAX) { /* |s| < 1: nothing overflows */
        sc->hi = 0x7f7fffff;
    } else {
        float h = (float)((double)FLT_MAX / big);
        h = nextafterf(nextafterf(h, 0), 0);
        sc->hi = (int32_t)f32_bits(h);
    }
    if (small == INFINITY) { /* every scale zero: nothing is scaled to a non-zero */
        sc->lo = 1;
    } else {
        double l = (double)FLT_TRUE_MIN / small;
        float lf = l > (double)FLT_MAX ? INFINITY : (float)l;
        lf = nextafterf(nextafterf(lf, INFINITY), INFINITY);
        sc->lo = (int32_t)f32_bits(lf);
        if (sc->lo < 1)
            sc->lo = 1;
    }
    return 1;
}

/* Whether any of the n float32 at p is outside the screen. */
static int screen_hits(const uint8_t *p, size_t n, const f32_screen *sc)
{
    const int32_t lo = sc->lo, hi = sc->hi;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        int32_t blk[64], any = 0;
        memcpy(blk, p + 4 * i, sizeof blk);
        for (int j = 0; j < 64; j++) {
            int32_t b = blk[j] & 0x7fffffff;
            any |= (b > hi) | ((b != 0) & (b < lo));
        }
        if (any)
            return 1;
    }
    for (; i < n; i++) {
        int32_t b;
        memcpy(&b, p + 4 * i, 4);
        b &= 0x7fffffff;
        if (b > hi || (b != 0 && b < lo))
            return 1;
    }
    return 0;
}

bnf_status bnf_proto_scaled(bnf_model *m, const Onnx__TensorProto *t, const char *name,
                             const double *s, const bnf_scaling *sc, Onnx__TensorProto **out,
                             size_t *bad, double *bad_value, bnf_err *err)
{
    const bnf_dtype_info *d = bnf_dtype(t->data_type);
    bnf_scaling_pos pos = {0};
    size_t n, es;
    int fd = -1, external = bnf_proto_is_external(t);
    uint64_t ext_off = 0, ext_len = 0;
    double *v = NULL;
    uint8_t *raw = NULL, *enc = NULL, *ext_map = NULL;
    const uint8_t *bytes = NULL; /* the raw bytes, when they can be read in place */
    size_t ext_map_len = 0, released = 0, prefetched = 0;
    bnf_spill_writer w = {0};
    Onnx__TensorProto *nt = NULL;
    bnf_status rc;

    *bad = 0;
    if (out)
        *out = NULL;
    if (!d || !bnf_dtype_is_real(t->data_type) || !sc->inner || !sc->per_group)
        return bnf_fail(err, BNF_ERR_INVALID, "tensor '%s': cannot scale it", tname(t));
    if ((rc = bnf_numel(t->dims, t->n_dims, tname(t), &n, err)))
        return rc;
    es = d->size;
    if (external) {
        if ((rc = bnf_proto_external_open(m, t, &fd, &ext_off, &ext_len, err)))
            return rc;
    } else if (t->has_raw_data ? t->raw_data.len != n * es
               : (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->n_float_data
                  : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? t->n_double_data
                  : t->n_int32_data) != n) {
        return bnf_fail(err, BNF_ERR_INVALID, "tensor '%s' (%s): its data does not match its "
                        "shape", tname(t), d->name);
    }
    if (external && n) { /* mapped, read in place; else read piece by piece */
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), lo = ext_off / page * page;
        void *p;
        ext_map_len = (size_t)(ext_off - lo + ext_len);
        p = mmap(NULL, ext_map_len, PROT_READ, MAP_PRIVATE, fd, (off_t)lo);
        if (p != MAP_FAILED) {
            ext_map = p;
            bytes = ext_map + (ext_off - lo);
        }
    } else if (t->has_raw_data) {
        bytes = t->raw_data.data;
    }
    if (!out && bytes && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        /* a check only: cleared at memory speed, or checked value by value */
        f32_screen scr;
        size_t n_s = sc->group ? n / sc->group * sc->per_group : sc->per_group;
        int hit = !screen_of(s, n_s, &scr);
        for (size_t at = 0; at < n && !hit;) { /* 8 MiB at a time, their pages mapped in one go */
            size_t len = n - at < (2u << 20) ? n - at : (2u << 20);
            bnf_pages_prefetch(bytes + at * es, len * es);
            hit = screen_hits(bytes + at * es, len, &scr);
            at += len;
        }
        if (!hit) {
            if (ext_map)
                bnf_pages_release(ext_map, ext_map_len);
            rc = BNF_OK;
            goto out;
        }
    }
    v = bnf_malloc(SCALE_CHUNK * sizeof *v);
    enc = bnf_malloc(SCALE_CHUNK * es);
    raw = external && !bytes ? bnf_malloc(SCALE_CHUNK * es) : NULL;
    if (!v || !enc || (external && !bytes && !raw)) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (out)
        bnf_spill_begin(m, (uint64_t)n * es, &w);
    for (size_t at = 0; at < n;) {
        size_t len = n - at < SCALE_CHUNK ? n - at : SCALE_CHUNK, b, cap;
        uint8_t *dst = enc; /* where this piece's new bytes go */
        if (out && !(dst = bnf_spill_next(&w, &cap))) {
            rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': writing the folded values to a "
                          "temporary file failed", name);
            goto out;
        }
        if (bytes && at * es + len * es > prefetched) { /* the next few MiB of the source */
            size_t window = (size_t)(n * es - prefetched) < (8u << 20) ? (size_t)(n * es - prefetched)
                                                                        : (8u << 20);
            bnf_pages_prefetch(bytes + prefetched, window);
            prefetched += window;
        }
        if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && bytes) {
            /* the common case in one pass: float -> double, scaled, rounded back */
            if ((b = scale_float(bytes + at * es, len, s, sc, &pos, (float *)(void *)dst))) {
                *bad = at + b;
                *bad_value = scaled_value(bytes + (at + b - 1) * es,
                                          s[bnf_scaling_channel(sc, at + b - 1)]);
                rc = BNF_OK;
                goto out;
            }
            if (out)
                bnf_spill_put(&w, len * es);
            at += len;
            if (ext_map) { /* pages read: back to the page cache */
                size_t page = (size_t)sysconf(_SC_PAGESIZE);
                size_t done = (size_t)(bytes - ext_map) + at * es;
                done = done / page * page;
                if (done - released >= (8u << 20)) {
                    bnf_pages_release(ext_map + released, done - released);
                    released = done;
                }
            }
            continue;
        }
        if (bytes) {
            decode_raw(t->data_type, bytes + at * es, len, v);
        } else if (external) {
            for (size_t done = 0; done < len * es;) {
                ssize_t r = pread(fd, raw + done, len * es - done,
                                  (off_t)(ext_off + at * es + done));
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': reading its external data: %s",
                                  tname(t), r == 0 ? "unexpected end of file" : strerror(errno));
                    goto out;
                }
                done += (size_t)r;
            }
            decode_raw(t->data_type, raw, len, v);
        } else {
            decode_typed(t, at, len, v);
        }
        bnf_scale_by_channel(v, len, s, sc, &pos);
        if ((b = encode_checked(t->data_type, v, len, dst))) {
            *bad = at + b;
            *bad_value = v[b - 1];
            rc = BNF_OK;
            goto out;
        }
        if (out)
            bnf_spill_put(&w, len * es);
        at += len;
    }
    if (!out) {
        rc = BNF_OK;
        goto out;
    }
    if ((rc = bnf_proto_new(name, t->data_type, t->dims, t->n_dims, NULL, 0, &nt, err)))
        goto out;
    bnf_free(nt->raw_data.data);
    nt->raw_data.data = bnf_spill_end(&w);
    nt->raw_data.len = (size_t)n * es;
    if (!nt->raw_data.data) {
        nt->raw_data.len = 0;
        rc = bnf_fail(err, BNF_ERR_IO, "tensor '%s': writing the folded values to a temporary "
                      "file failed", name);
        goto out;
    }
    *out = nt;
    nt = NULL;
    rc = BNF_OK;
out:
    if (nt)
        onnx__tensor_proto__free_unpacked(nt, bnf_model_alloc(m));
    bnf_spill_abort(&w); /* when not ended */
    if (ext_map)
        munmap(ext_map, ext_map_len);
    if (fd >= 0)
        close(fd);
    bnf_free(v);
    bnf_free(enc);
    bnf_free(raw);
    return rc;
}
