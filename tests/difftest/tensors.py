"""Tensors of the differential test: values carried as float64 numpy arrays
exact in their ONNX type, written as raw_data, typed fields or external data,
and read back exactly (every storage form, float16 and bfloat16 included).

Independent of bnfold and of testdata/gen_common.py on purpose: the test's
own view of the ONNX format.
"""

import os

import numpy as np
from onnx import TensorProto

F16, F32, F64, BF16 = "float16", "float32", "float64", "bfloat16"
FLOAT_TYPES = (F16, F32, F64, BF16)

ELEM = {F32: TensorProto.FLOAT, F64: TensorProto.DOUBLE, F16: TensorProto.FLOAT16,
        BF16: TensorProto.BFLOAT16, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
        "bool": TensorProto.BOOL}
NAME_OF = {v: k for k, v in ELEM.items()}

# largest finite value of each type
FMAX = {F16: 65504.0, BF16: 3.3895313892515355e38, F32: 3.4028234663852886e38,
        F64: np.finfo(np.float64).max}


def bf16_bits(a):
    """float64 -> bfloat16 bit patterns, round to nearest even (through float32)."""
    f = np.atleast_1d(np.asarray(a, dtype=np.float64).astype(np.float32))
    bits = f.view(np.uint32).astype(np.uint64)
    u = np.uint64
    rounded = ((bits + u(0x7FFF) + ((bits >> u(16)) & u(1))) >> u(16)).astype(np.uint16)
    rounded[np.isnan(f)] = 0x7FC0
    return rounded.reshape(np.shape(a))


def bf16_value(bits):
    b = np.asarray(bits)
    v = (np.atleast_1d(b).astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    return v.reshape(b.shape)


def quant(a, dtype):
    """Round to the nearest value of dtype (overflow gives inf), as float64."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype == F32:
            return a.astype(np.float32).astype(np.float64)
        if dtype == F64:
            return a.copy()
        if dtype == F16:
            return a.astype(np.float16).astype(np.float64)
        if dtype == BF16:
            return bf16_value(bf16_bits(a))
        if dtype in ("int64", "int32"):
            return np.rint(a)
    raise ValueError(dtype)


def representable(v, dtype):
    """bnfold's rule (DESIGN.md 3): finite after rounding, and a value that is
    not zero does not flush to zero.  Elementwise boolean array."""
    v = np.asarray(v, dtype=np.float64)
    r = quant(v, dtype)
    return np.isfinite(v) & np.isfinite(r) & ~((r == 0) & (v != 0))


def np_type(dtype):
    return {F32: np.float32, F64: np.float64, F16: np.float16, "int64": np.int64,
            "int32": np.int32, "bool": np.bool_}[dtype]


def raw_bytes(a, dtype):
    a = np.asarray(a)
    if dtype == BF16:
        return bf16_bits(a).astype("<u2").tobytes()
    if dtype == F16:
        return np.asarray(a, np.float64).astype("<f2").tobytes()
    if dtype == "bool":
        return np.asarray(a).astype(np.bool_).tobytes()
    return np.asarray(a).astype(np.dtype(np_type(dtype)).newbyteorder("<")).tobytes()


def make_tensor(name, a, dtype, storage="raw"):
    """TensorProto holding a (exact in dtype).  storage: raw (raw_data) or
    typed (float_data / double_data / int32_data bit patterns / int64_data);
    external storage is set afterwards by externalize()."""
    a = np.asarray(a)
    t = TensorProto()
    t.name = name
    t.data_type = ELEM[dtype]
    t.dims.extend(a.shape)
    if storage == "raw":
        t.raw_data = raw_bytes(a, dtype)
        return t
    flat = np.asarray(a).ravel()
    if dtype == F32:
        t.float_data.extend(flat.astype(np.float32).tolist())
    elif dtype == F64:
        t.double_data.extend(flat.astype(np.float64).tolist())
    elif dtype == F16:
        t.int32_data.extend(flat.astype(np.float64).astype(np.float16).view(np.uint16)
                            .astype(np.int32).tolist())
    elif dtype == BF16:
        t.int32_data.extend(bf16_bits(flat).astype(np.int32).tolist())
    elif dtype == "int64":
        t.int64_data.extend(flat.astype(np.int64).tolist())
    elif dtype in ("int32", "bool"):
        t.int32_data.extend(flat.astype(np.int32).tolist())
    else:
        raise ValueError(dtype)
    return t


def externalize(t, folder, location, offset_align=16):
    """Move t's data into the file folder/location (appended, aligned)."""
    data = t.raw_data if t.HasField("raw_data") else raw_bytes(read_tensor(t), NAME_OF[t.data_type])
    path = os.path.join(folder, location)
    with open(path, "ab") as f:
        pos = f.tell()
        pad = (-pos) % offset_align
        f.write(b"\0" * pad)
        f.write(data)
    for fld in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
        t.ClearField(fld)
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for k, v in (("location", location), ("offset", str(pos + pad)), ("length", str(len(data)))):
        e = t.external_data.add()
        e.key, e.value = k, v


def read_tensor(t, folder=None):
    """The values of a TensorProto as float64 (ints as float64 too), any
    storage; external data read relative to folder."""
    dtype = NAME_OF.get(t.data_type)
    if dtype is None:
        raise ValueError("tensor %s: data_type %d" % (t.name, t.data_type))
    shape = tuple(t.dims)
    n = int(np.prod(shape)) if shape else 1
    raw = None
    if t.data_location == TensorProto.EXTERNAL:
        kv = {e.key: e.value for e in t.external_data}
        with open(os.path.join(folder or ".", kv["location"]), "rb") as f:
            f.seek(int(kv.get("offset", 0)))
            raw = f.read(int(kv["length"])) if "length" in kv else f.read()
    elif t.HasField("raw_data"):
        raw = t.raw_data
    if raw is not None:
        if dtype == BF16:
            v = bf16_value(np.frombuffer(raw, "<u2", count=n))
        elif dtype == "bool":
            v = np.frombuffer(raw, np.uint8, count=n).astype(np.float64)
        else:
            code = {F32: "<f4", F64: "<f8", F16: "<f2", "int64": "<i8", "int32": "<i4"}[dtype]
            v = np.frombuffer(raw, code, count=n).astype(np.float64)
    elif dtype == F32:
        v = np.array(t.float_data, np.float32).astype(np.float64)
    elif dtype == F64:
        v = np.array(t.double_data, np.float64)
    elif dtype == F16:
        v = np.array(t.int32_data, np.int64).astype(np.uint16).view(np.float16).astype(np.float64)
    elif dtype == BF16:
        v = bf16_value(np.array(t.int32_data, np.int64).astype(np.uint16))
    elif dtype == "int64":
        v = np.array(t.int64_data, np.int64).astype(np.float64)
    else:
        v = np.array(t.int32_data, np.int64).astype(np.float64)
    if v.size != n:
        raise ValueError("tensor %s: %d values for shape %s" % (t.name, v.size, shape))
    return v.reshape(shape)
