/*
 * eval/eval_tensor.c: the evaluator's tensors: allocation (at most
 * BNF_EVAL_MAX_TENSOR_BYTES per value), element access in any type, and the
 * decoding of ONNX TensorProtos (float16 and bfloat16 become float32).
 */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t bnf_eval_size(int32_t dtype)
{
    switch (dtype) {
    case BNF_T_FLOAT: case BNF_T_INT32: case BNF_T_UINT32: return 4;
    case BNF_T_INT64: case BNF_T_DOUBLE: case BNF_T_UINT64: return 8;
    case BNF_T_UINT16: case BNF_T_INT16: return 2;
    case BNF_T_UINT8: case BNF_T_INT8: case BNF_T_BOOL: return 1;
    default: return 0;
    }
}

void bnf_tensor_release(bnf_tensor *t)
{
    bnf_free(t->data);
    memset(t, 0, sizeof *t);
}

bnf_status bnf_tensor_alloc(bnf_tensor *t, int32_t dtype, const int64_t *dims, size_t rank,
                            bnf_err *err)
{
    size_t es = bnf_eval_size(dtype), n;
    bnf_status rc;
    bnf_free(t->data);
    memset(t, 0, sizeof *t);
    if (!es)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "the evaluator has no %s tensors",
                        bnf_dtype_name(dtype));
    if (rank > BNF_MAX_RANK)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "rank %zu is over the evaluator's %d", rank,
                        BNF_MAX_RANK);
    if ((rc = bnf_numel(dims, rank, "result", &n, err)))
        return rc;
    if (n > SIZE_MAX / 16 / es)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "a tensor of %zu elements is too large", n);
    /* One value of 2 GiB is beyond any model this evaluator is for, and a few bytes
     * of a crafted model can ask for far more: refuse instead of filling memory. */
    if (n * es > BNF_EVAL_MAX_TENSOR_BYTES)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                        "a %s tensor of %zu elements (%.1f GiB) is over the evaluator's limit "
                        "of 2 GiB per value", bnf_dtype_name(dtype), n,
                        (double)(n * es) / (1024.0 * 1024 * 1024));
    t->data = bnf_malloc(n * es > 0 ? n * es : 1);
    if (!t->data)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory allocating %zu bytes", n * es);
    t->dtype = dtype;
    t->rank = rank;
    if (rank)
        memcpy(t->dims, dims, rank * sizeof *dims);
    t->n = n;
    return BNF_OK;
}

bnf_status bnf_tensor_copy(bnf_tensor *dst, const bnf_tensor *src, bnf_err *err)
{
    bnf_status rc = bnf_tensor_alloc(dst, src->dtype, src->dims, src->rank, err);
    if (!rc)
        memcpy(dst->data, src->data, src->n * bnf_eval_size(src->dtype));
    return rc;
}

/* A case of the switches below: element i of a tensor of integer type TT (C
 * type CT), converted to R. */
#define ELEMENT_CASE(R, TT, CT) case TT: return (R)((const CT *)t->data)[i];
#define F64_CASE(TT, CT) ELEMENT_CASE(double, TT, CT)
#define I64_CASE(TT, CT) ELEMENT_CASE(int64_t, TT, CT)

double bnf_get_f64(const bnf_tensor *t, size_t i)
{
    switch (t->dtype) {
    case BNF_T_FLOAT: return ((const float *)t->data)[i];
    case BNF_T_DOUBLE: return ((const double *)t->data)[i];
    case BNF_T_BOOL: return ((const uint8_t *)t->data)[i];
    BNF_INT_TYPES(F64_CASE)
    default: return NAN;
    }
}

int64_t bnf_get_i64(const bnf_tensor *t, size_t i)
{
    switch (t->dtype) {
    case BNF_T_BOOL: return ((const uint8_t *)t->data)[i];
    BNF_INT_TYPES(I64_CASE)
    default: {
        double v = bnf_get_f64(t, i);
        if (!(v >= -9.2e18 && v <= 9.2e18))
            return v > 0 ? INT64_MAX : INT64_MIN;
        return (int64_t)v;
    }
    }
}

/* v converted to an integer type: truncated toward zero, saturated at the
 * type's range, NaN as 0 (a plain C cast is undefined for those). */
static double to_int_range(double v, double lo, double hi)
{
    if (v != v)
        return 0;
    v = v < 0 ? ceil(v) : floor(v);
    return v < lo ? lo : v > hi ? hi : v;
}

void bnf_set_f64(bnf_tensor *t, size_t i, double v)
{
    switch (t->dtype) {
    case BNF_T_FLOAT: ((float *)t->data)[i] = (float)v; break;
    case BNF_T_DOUBLE: ((double *)t->data)[i] = v; break;
    case BNF_T_INT64:
        ((int64_t *)t->data)[i] = v != v ? 0 : v >= 9223372036854775807.0 ? INT64_MAX
                                  : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
        break;
    case BNF_T_INT32:
        ((int32_t *)t->data)[i] = (int32_t)to_int_range(v, INT32_MIN, INT32_MAX);
        break;
    case BNF_T_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)to_int_range(v, 0, UINT8_MAX); break;
    case BNF_T_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case BNF_T_INT8: ((int8_t *)t->data)[i] = (int8_t)to_int_range(v, INT8_MIN, INT8_MAX); break;
    case BNF_T_INT16:
        ((int16_t *)t->data)[i] = (int16_t)to_int_range(v, INT16_MIN, INT16_MAX);
        break;
    case BNF_T_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)to_int_range(v, 0, UINT16_MAX); break;
    case BNF_T_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)to_int_range(v, 0, UINT32_MAX); break;
    case BNF_T_UINT64:
        ((uint64_t *)t->data)[i] = v != v || v <= 0 ? 0 : v >= 18446744073709551615.0 ? UINT64_MAX
                                   : (uint64_t)v;
        break;
    default: break;
    }
}

static const char *pname(const Onnx__TensorProto *p)
{
    return p->name ? p->name : "";
}

/* float16 / bfloat16 bits to float. */
static float widen(int32_t dt, uint16_t h)
{
    return (float)(dt == BNF_T_FLOAT16 ? bnf_half_to_double(h) : bnf_bf16_to_double(h));
}

bnf_status bnf_tensor_from_proto(const bnf_model *m, const Onnx__TensorProto *p, bnf_tensor *t,
                                 bnf_err *err)
{
    int32_t dt = p->data_type;
    int half = dt == BNF_T_FLOAT16 || dt == BNF_T_BFLOAT16;
    int32_t eval_dt = half ? BNF_T_FLOAT : dt;
    size_t n, es = bnf_eval_size(eval_dt), stored = half ? 2 : es;
    bnf_status rc;
    const uint8_t *raw = NULL;
    uint8_t *ext = NULL;
    size_t raw_len = 0;

    if (!es)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "tensor '%s': the evaluator has no %s tensors",
                        pname(p), bnf_dtype_name(dt));
    if ((rc = bnf_numel(p->dims, p->n_dims, pname(p), &n, err)))
        return rc;
    if ((rc = bnf_tensor_alloc(t, eval_dt, p->dims, p->n_dims, err)))
        return rc;
    if (bnf_proto_is_external(p) && !half) { /* straight into the tensor */
        if ((rc = bnf_proto_read_external_into(m, p, t->data, n * es, err)))
            goto fail;
        return BNF_OK;
    }
    if (bnf_proto_is_external(p)) {
        if ((rc = bnf_proto_read_external(m, p, &ext, &raw_len, err)))
            goto fail;
        raw = ext;
    } else if (p->has_raw_data) {
        raw = p->raw_data.data;
        raw_len = p->raw_data.len;
    }
    if (raw) {
        if (raw_len != n * stored) {
            rc = bnf_fail(err, BNF_ERR_INVALID, "tensor '%s' holds %zu bytes, its shape needs %zu",
                          pname(p), raw_len, n * stored);
            goto fail;
        }
        if (half) {
            float *f = t->data;
            for (size_t i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, raw + 2 * i, 2);
                f[i] = widen(dt, h);
            }
        } else if (n) {
            memcpy(t->data, raw, n * es);
        }
        if (!ext && m) /* the pages read: back to the page cache */
            bnf_mapped_release_range(m, raw, raw_len);
        bnf_free(ext);
        return BNF_OK;
    }
    if (dt == BNF_T_FLOAT) {
        if (p->n_float_data != n)
            goto bad_count;
        if (n)
            memcpy(t->data, p->float_data, n * 4);
    } else if (dt == BNF_T_DOUBLE) {
        if (p->n_double_data != n)
            goto bad_count;
        if (n)
            memcpy(t->data, p->double_data, n * 8);
    } else if (half) {
        if (p->n_int32_data != n)
            goto bad_count;
        for (size_t i = 0; i < n; i++)
            ((float *)t->data)[i] = widen(dt, (uint16_t)p->int32_data[i]);
    } else if (dt == BNF_T_INT64) {
        if (p->n_int64_data != n)
            goto bad_count;
        if (n)
            memcpy(t->data, p->int64_data, n * 8);
    } else if (dt == BNF_T_UINT32 || dt == BNF_T_UINT64) {
        if (p->n_uint64_data != n)
            goto bad_count;
        for (size_t i = 0; i < n; i++) {
            if (dt == BNF_T_UINT64)
                ((uint64_t *)t->data)[i] = p->uint64_data[i];
            else
                ((uint32_t *)t->data)[i] = (uint32_t)p->uint64_data[i];
        }
    } else {
        if (p->n_int32_data != n)
            goto bad_count;
        for (size_t i = 0; i < n; i++)
            bnf_set_f64(t, i, p->int32_data[i]);
    }
    return BNF_OK;
bad_count:
    rc = bnf_fail(err, BNF_ERR_INVALID, "tensor '%s' (%s) has the wrong number of values for its shape",
                  pname(p), bnf_dtype_name(dt));
fail:
    bnf_free(ext);
    bnf_tensor_release(t);
    return rc;
}
