#!/usr/bin/python3
"""Generate the bnfold test models into testdata/models/.

Run with Debian's interpreter (python3-onnx 1.12, python3-numpy, python3-torch):

    /usr/bin/python3 testdata/gen_models.py        (or: make testdata)

Every model is built by hand with onnx.helper; nothing is exported from torch.
The output is deterministic: each case seeds its own generator from its name.

For every FOLD case NAME the script also writes NAME.expected.onnx, a trivial
model (one Identity node) whose initializers are the independent expectation:

    expected_W, expected_B   folded weight / bias (Gemm: the new C), in the
                             dtype of the original weight, computed in float64
    input_X                  a random input (float32, exact in the model dtype)
    output_Y                 the ORIGINAL model's output on input_X (float32),
                             computed with torch.nn.functional in float64

and asserts that the folded layer, evaluated with the rounded expected weights,
reproduces output_Y (per output channel, relative to that channel's largest
magnitude; see TOL).  Skip cases get no expected file.
"""

import os
import sys
import zlib

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, external_data_helper, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models")

EPS = 1e-5

# Tolerance of the self check "folded layer (rounded to the weight dtype)
# reproduces output_Y": max |diff| per output channel <= TOL * max |Y| of that
# channel.  The unrounded float64 fold must agree to EXACT_TOL.
TOL = {"float32": 1e-4, "float64": 1e-4, "float16": 5e-3, "bfloat16": 4e-2}
EXACT_TOL = 1e-9

ELEM = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "float16": TensorProto.FLOAT16,
    "bfloat16": TensorProto.BFLOAT16,
    "int32": TensorProto.INT32,
}

torch.set_num_threads(1)


# --------------------------------------------------------------------------
# dtypes: values are carried as float64 arrays that are exact in their dtype
# --------------------------------------------------------------------------

def bf16_bits(a):
    """float -> bfloat16 bit patterns (uint16), round to nearest even."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def quant(a, dtype):
    """Round a to the nearest value of dtype, returned as float64."""
    a = np.asarray(a, dtype=np.float64)
    if dtype == "float32":
        return a.astype(np.float32).astype(np.float64)
    if dtype == "float64":
        return a.copy()
    if dtype == "float16":
        return a.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return bf16_value(bf16_bits(a))
    if dtype == "int32":
        return np.rint(a)
    raise ValueError(dtype)


def make_tensor(name, a, dtype, storage="raw"):
    """TensorProto for the float64 array a (exact in dtype).

    storage: "raw" (raw_data, little-endian), "float_data" (float32 only),
    "int32_data" (float16/bfloat16 bit patterns, or int32 values)."""
    a = np.asarray(a, dtype=np.float64)
    t = TensorProto()
    t.name = name
    t.data_type = ELEM[dtype]
    t.dims.extend(a.shape)
    if dtype == "float16":
        bits = a.astype(np.float16).view(np.uint16)
    elif dtype == "bfloat16":
        bits = bf16_bits(a)
    if storage == "raw":
        if dtype in ("float16", "bfloat16"):
            t.raw_data = bits.astype("<u2").tobytes()
        else:
            np_t = {"float32": "<f4", "float64": "<f8", "int32": "<i4"}[dtype]
            t.raw_data = a.astype(np_t).tobytes()
    elif storage == "float_data":
        assert dtype == "float32"
        t.float_data.extend(a.astype(np.float32).ravel().tolist())
    elif storage == "int32_data":
        if dtype in ("float16", "bfloat16"):
            t.int32_data.extend(bits.ravel().astype(np.int32).tolist())
        else:
            assert dtype == "int32"
            t.int32_data.extend(a.astype(np.int32).ravel().tolist())
    else:
        raise ValueError(storage)
    return t


def tensor_values(t):
    """Decode a TensorProto written by make_tensor (for the read-back check)."""
    if t.data_type == TensorProto.BFLOAT16:
        return bf16_value(np.frombuffer(t.raw_data, "<u2")).reshape(tuple(t.dims))
    return numpy_helper.to_array(t).astype(np.float64)


# --------------------------------------------------------------------------
# BatchNorm statistics and the fold (numpy float64)
# --------------------------------------------------------------------------

def make_bn_stats(rng, C, dtype="float32", stat_dtype=None, shape=None):
    """Random inference statistics: var in [0.1, 2] with one channel at 1e-5,
    gamma with one negative and one zero entry, nonzero mean and beta.
    scale/B get dtype, mean/var stat_dtype (default dtype)."""
    assert C >= 3
    stat_dtype = stat_dtype or dtype
    i_zero, i_neg, i_tiny = rng.permutation(C)[:3]
    var = rng.uniform(0.1, 2.0, C)
    var[i_tiny] = 1e-5
    scale = rng.uniform(0.5, 1.5, C) * rng.choice([-1.0, 1.0], C)
    scale[i_neg] = -abs(scale[i_neg])
    scale[i_zero] = 0.0
    nonzero = lambda: rng.uniform(0.2, 1.0, C) * rng.choice([-1.0, 1.0], C)
    st = {"scale": scale, "B": nonzero(), "mean": nonzero(), "var": var}
    if shape is not None:
        st = {k: np.broadcast_to(v.reshape((C,) + (1,) * (len(shape) - 1)), shape)
              + (0.0 if k == "var" else 0.01) * rng.standard_normal(shape)
              for k, v in st.items()}
    dts = {"scale": dtype, "B": dtype, "mean": stat_dtype, "var": stat_dtype}
    return {k: quant(v, dts[k]) for k, v in st.items()}, dts


def eps_value(eps):
    """The epsilon attribute is a float32; the fold computes with that value."""
    return float(np.float32(EPS if eps is None else eps))


def bn_factors(st, eps):
    s = st["scale"] / np.sqrt(st["var"] + eps_value(eps))
    t = st["B"] - st["mean"] * s
    return s, t


def fold_conv(W, b, s, t):
    """Conv W[M, C/g, k...]: W' = W * s[m], b' = b*s + t."""
    b = np.zeros(W.shape[0]) if b is None else b
    return W * s.reshape((-1,) + (1,) * (W.ndim - 1)), b * s + t


def fold_convtranspose(W, b, s, t, group):
    """ConvTranspose W[C_in, M/g, k...]: output channel of W[i, j] is
    o = (i // (C_in/g)) * (M/g) + j."""
    cin, mg = W.shape[0], W.shape[1]
    i = np.arange(cin)[:, None]
    j = np.arange(mg)[None, :]
    o = (i // (cin // group)) * mg + j
    b = np.zeros(mg * group) if b is None else b
    return W * s[o].reshape(o.shape + (1,) * (W.ndim - 2)), b * s + t


def fold_gemm(Bm, C, s, t, transB, beta):
    """Gemm: scale output column n of B' by s[n]; C' = s*(beta*C) + t."""
    Bf = Bm * s[None, :] if not transB else Bm * s[:, None]
    Cf = t.copy() if C is None else s * (beta * C) + t   # broadcasts to the rules
    return Bf, Cf


# --------------------------------------------------------------------------
# Independent reference evaluation (torch float64)
# --------------------------------------------------------------------------

def same_pads(in_shape, k, strides, dilations, mode):
    dim = len(in_shape)
    begin, end = [0] * dim, [0] * dim
    for i in range(dim):
        out = -(-in_shape[i] // strides[i])
        total = max((out - 1) * strides[i] + (k[i] - 1) * dilations[i] + 1 - in_shape[i], 0)
        small, big = total // 2, total - total // 2
        begin[i], end[i] = (small, big) if mode == "SAME_UPPER" else (big, small)
    return begin + end


def conv_params(attrs, X, W):
    dim = X.ndim - 2
    k = list(W.shape[2:])
    strides = attrs.get("strides", [1] * dim)
    dil = attrs.get("dilations", [1] * dim)
    pads = attrs.get("pads", [0] * (2 * dim))
    if attrs.get("auto_pad", "NOTSET").startswith("SAME"):
        pads = same_pads(X.shape[2:], k, strides, dil, attrs["auto_pad"])
    return dim, strides, dil, pads, attrs.get("group", 1)


def ref_conv(X, W, b, attrs):
    dim, strides, dil, pads, group = conv_params(attrs, X, W)
    torch_pad = []
    for i in reversed(range(dim)):
        torch_pad += [pads[i], pads[i + dim]]
    x = F.pad(torch.from_numpy(X), torch_pad)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dim]
    bt = None if b is None else torch.from_numpy(b)
    return fn(x, torch.from_numpy(W), bt, stride=strides, dilation=dil, groups=group).numpy()


def ref_convtranspose(X, W, b, attrs):
    dim, strides, dil, pads, group = conv_params(attrs, X, W)
    assert pads[:dim] == pads[dim:], "torch needs symmetric pads"
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[dim]
    bt = None if b is None else torch.from_numpy(b)
    return fn(torch.from_numpy(X), torch.from_numpy(W), bt, stride=strides,
              padding=pads[:dim], output_padding=attrs.get("output_padding", [0] * dim),
              groups=group, dilation=dil).numpy()


def ref_bn(Y, st, eps):
    f = lambda k: torch.from_numpy(np.ascontiguousarray(st[k]))
    return F.batch_norm(torch.from_numpy(Y), f("mean"), f("var"), f("scale"), f("B"),
                        training=False, eps=eps_value(eps)).numpy()


def ref_gemm(A, Bm, C, alpha, beta, transA, transB):
    Ap = A.T if transA else A
    Bp = Bm.T if transB else Bm
    Y = alpha * (Ap @ Bp)
    return Y if C is None else Y + beta * C


def assert_close(what, got, want, tol):
    """Per output channel (axis 1): max|got-want| <= tol * max|want|."""
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(want)), what
    g = np.moveaxis(got, 1, 0).reshape(got.shape[1], -1)
    w = np.moveaxis(want, 1, 0).reshape(want.shape[1], -1)
    err = np.abs(g - w).max(axis=1)
    ref = np.abs(w).max(axis=1)
    bad = err > tol * ref + 1e-12
    assert not bad.any(), "%s: channel error %s > %g * %s" % (what, err, tol, ref)
    return float((err / np.maximum(ref, 1e-300)).max())


# --------------------------------------------------------------------------
# Graph building
# --------------------------------------------------------------------------

class Graph:
    """Collects nodes, initializers and I/O of one graph, in order."""

    def __init__(self, storage="raw"):
        self.nodes, self.inits, self.inputs, self.outputs, self.value_info = [], [], [], [], []
        self.storage = storage

    def input(self, name, dtype, shape):
        self.inputs.append(helper.make_tensor_value_info(name, ELEM[dtype], list(shape)))
        return name

    def output(self, name, dtype, shape):
        self.outputs.append(helper.make_tensor_value_info(name, ELEM[dtype], list(shape)))
        return name

    def node(self, op, inputs, outputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def const(self, name, a, dtype, source="init"):
        """A constant parameter named `name` coming from `source`:
        init (initializer), constant (Constant node), identity (Identity of an
        initializer), input (graph input without initializer: not constant)."""
        storage = self.storage
        if dtype in ("float16", "bfloat16") and storage == "float_data":
            storage = "raw"
        if source == "init":
            self.inits.append(make_tensor(name, a, dtype, storage))
        elif source == "constant":
            self.node("Constant", [], [name], "const_" + name,
                      value=make_tensor(name, a, dtype, storage))
        elif source == "identity":
            self.inits.append(make_tensor(name + "_init", a, dtype, storage))
            self.node("Identity", [name + "_init"], [name], "id_" + name)
        elif source == "input":
            self.input(name, dtype, np.shape(a))
        else:
            raise ValueError(source)
        return name

    def model(self, opset=13, ir=8, init_as_inputs=False, extra_opsets=(), name="g"):
        inputs = list(self.inputs)
        if init_as_inputs:
            have = {i.name for i in inputs}
            for t in self.inits:
                if t.name not in have:
                    inputs.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        g = helper.make_graph(self.nodes, name, inputs, self.outputs, self.inits,
                              value_info=self.value_info)
        ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
        m = helper.make_model(g, opset_imports=ops, producer_name="bnfold-testdata",
                              producer_version="1")
        m.ir_version = ir
        return m


def bn_node(g, x, st, dts, y="Y", name="bn", opset=13, eps=EPS, bn_attrs=None,
            sources=None, prefix="", outputs=None):
    """Add the BN parameters and node. sources maps a parameter to its source."""
    sources = sources or {}
    names = []
    for k in ("scale", "B", "mean", "var"):
        names.append(g.const(prefix + k, st[k], dts[k], sources.get(k, "init")))
    attrs = dict(bn_attrs or {})
    if eps is not None:
        attrs["epsilon"] = eps
    if opset < 6 and "consumed_inputs" not in attrs:
        attrs["consumed_inputs"] = [0, 0, 0, 1, 1]
    return g.node("BatchNormalization", [x] + names, outputs or [y], name, **attrs)


# --------------------------------------------------------------------------
# Expected files
# --------------------------------------------------------------------------

class Expect:
    """Expected tensors of one fold case and its self check."""

    def __init__(self):
        self.tensors = []       # TensorProto, in order
        self.values = {}        # name -> float64 array actually stored

    def add(self, name, a, dtype):
        a = quant(a, dtype)
        self.tensors.append(make_tensor(name, a, dtype))
        self.values[name] = a
        return a

    def model(self):
        x = self.tensors[[t.name for t in self.tensors].index("input_X")]
        g = helper.make_graph(
            [helper.make_node("Identity", ["input_X"], ["input_X_copy"], name="identity")],
            "expected", [],
            [helper.make_tensor_value_info("input_X_copy", TensorProto.FLOAT, list(x.dims))],
            self.tensors)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="bnfold-testdata", producer_version="1")
        m.ir_version = 8
        return m


def check_fold(name, expect, dtype, y_ref, evaluate, unrounded, rounded):
    """Assert that the folded layer reproduces the original output.

    evaluate(params) -> output; unrounded: float64 folded params;
    rounded: the same params rounded to the weight dtype (what is stored)."""
    exact = assert_close(name + " (float64 fold)", evaluate(*unrounded), y_ref, EXACT_TOL)
    err = assert_close(name + " (stored fold)", evaluate(*rounded), y_ref, TOL[dtype])
    CHECKS.append((name, dtype, exact, err))


CHECKS = []
WRITTEN = []


# --------------------------------------------------------------------------
# Case builders
# --------------------------------------------------------------------------

def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def x_values(rng, shape, dtype):
    """Random input, exact in float32 and in dtype."""
    return quant(quant(rng.uniform(-1, 1, shape), "float32"), dtype)


def conv_case(name, op="Conv", dim=2, N=2, C=3, M=4, size=5, k=3, bias=True,
              attrs=None, dtype="float32", stat_dtype=None, storage="raw",
              opset=13, ir=8, eps=EPS, bn_attrs=None, sources=None,
              init_as_inputs=False, fold=True, stats=None, edit=None):
    """X -> Conv|ConvTranspose -> BN -> Y.

    stats(rng, M, dtype, stat_dtype) may replace the BN statistics;
    edit(g, ctx) may change the graph before the model is made."""
    rng = rng_for(name)
    attrs = dict(attrs or {})
    size = tuple(size) if isinstance(size, (tuple, list)) else (size,) * dim
    group = attrs.get("group", 1)
    X = x_values(rng, (N, C) + size, dtype)
    if op == "Conv":
        W = quant(rng.uniform(-1, 1, (M, C // group) + (k,) * dim), dtype)
    else:
        W = quant(rng.uniform(-1, 1, (C, M // group) + (k,) * dim), dtype)
    b = quant(rng.uniform(-0.5, 0.5, M), dtype) if bias else None
    if stats:
        st, dts = stats(rng, M, dtype, stat_dtype)
    else:
        st, dts = make_bn_stats(rng, M, dtype, stat_dtype)
    attrs.setdefault("kernel_shape", [k] * dim)

    ref_layer = ref_conv if op == "Conv" else ref_convtranspose
    y_layer = ref_layer(X, W, b, attrs)
    y_ref = ref_bn(y_layer, st, eps) if fold else None

    sources = sources or {}
    g = Graph(storage)
    g.input("X", dtype, X.shape)
    w = g.const("W", W, dtype, sources.get("W", "init"))
    ins = ["X", w]
    if bias:
        ins.append(g.const("conv_B", b, dtype, sources.get("conv_B", "init")))
    layer = "conv" if op == "Conv" else "convtranspose"
    g.node(op, ins, ["conv_out"], layer, **attrs)
    bn_node(g, "conv_out", st, dts, opset=opset, eps=eps, bn_attrs=bn_attrs, sources=sources)
    g.output("Y", dtype, y_layer.shape)
    ctx = dict(X=X, W=W, b=b, st=st, dts=dts, attrs=attrs, y_layer=y_layer, dtype=dtype)
    if edit:
        edit(g, ctx)
    model = g.model(opset, ir, init_as_inputs)
    if not fold:
        return model, None

    s, t = bn_factors(st, eps)
    if op == "Conv":
        Wf, bf = fold_conv(W, b, s, t)
    else:
        Wf, bf = fold_convtranspose(W, b, s, t, group)
    e = Expect()
    Wq = e.add("expected_W", Wf, dtype)
    bq = e.add("expected_B", bf, dtype)
    e.add("input_X", X, "float32")
    e.add("output_Y", y_ref, "float32")
    check_fold(name, e, dtype, y_ref, lambda w_, b_: ref_layer(X, w_, b_, attrs),
               (Wf, bf), (Wq, bq))
    return model, e


def gemm_case(name, transA=0, transB=1, alpha=1.5, beta=0.25, c_shape=(4,),
              M=3, K=5, N=4):
    """A -> Gemm -> BN -> Y, BN over axis 1 of [M, N]."""
    rng = rng_for(name)
    A = x_values(rng, (K, M) if transA else (M, K), "float32")
    Bm = quant(rng.uniform(-1, 1, (N, K) if transB else (K, N)), "float32")
    C = None if c_shape is None else quant(rng.uniform(-0.5, 0.5, c_shape), "float32")
    st, dts = make_bn_stats(rng, N)
    y_ref = ref_bn(ref_gemm(A, Bm, C, alpha, beta, transA, transB), st, EPS)

    g = Graph()
    g.input("A", "float32", A.shape)
    ins = ["A", g.const("W", Bm, "float32")]
    if C is not None:
        ins.append(g.const("C", C, "float32"))
    g.node("Gemm", ins, ["gemm_out"], "gemm", alpha=alpha, beta=beta,
           transA=transA, transB=transB)
    bn_node(g, "gemm_out", st, dts)
    g.output("Y", "float32", (M, N))
    model = g.model()

    s, t = bn_factors(st, EPS)
    Bf, Cf = fold_gemm(Bm, C, s, t, transB, beta)
    want_shape = {None: (N,), (): (N,), (N,): (N,), (1, N): (1, N), (M, N): (M, N),
                  (M, 1): (M, N)}[None if c_shape is None else tuple(c_shape)]
    assert Cf.shape == want_shape, (name, Cf.shape)
    e = Expect()
    Bq = e.add("expected_W", Bf, "float32")
    Cq = e.add("expected_B", Cf, "float32")
    e.add("input_X", A, "float32")
    e.add("output_Y", y_ref, "float32")
    check_fold(name, e, "float32", y_ref,
               lambda b_, c_: ref_gemm(A, b_, c_, alpha, 1.0, transA, transB),
               (Bf, Cf), (Bq, Cq))
    return model, e


def shared_weight_case(name):
    """Two Convs share W and bias; each has its own BN (Y1, Y2)."""
    rng = rng_for(name)
    X = x_values(rng, (2, 3, 5, 5), "float32")
    W = quant(rng.uniform(-1, 1, (4, 3, 3, 3)), "float32")
    b = quant(rng.uniform(-0.5, 0.5, 4), "float32")
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    g = Graph()
    g.input("X", "float32", X.shape)
    g.const("W", W, "float32")
    g.const("conv_B", b, "float32")
    e = Expect()
    outs = []
    for i in (1, 2):
        st, dts = make_bn_stats(rng, 4)
        g.node("Conv", ["X", "W", "conv_B"], ["conv%d_out" % i], "conv%d" % i, **attrs)
        bn_node(g, "conv%d_out" % i, st, dts, y="Y%d" % i, name="bn%d" % i,
                prefix="bn%d_" % i)
        y_layer = ref_conv(X, W, b, attrs)
        g.output("Y%d" % i, "float32", y_layer.shape)
        y_ref = ref_bn(y_layer, st, EPS)
        s, t = bn_factors(st, EPS)
        Wf, bf = fold_conv(W, b, s, t)
        Wq = e.add("expected_W%d" % i, Wf, "float32")
        bq = e.add("expected_B%d" % i, bf, "float32")
        check_fold("%s/Y%d" % (name, i), e, "float32", y_ref,
                   lambda w_, b_: ref_conv(X, w_, b_, attrs), (Wf, bf), (Wq, bq))
        outs.append(y_ref)
    e.add("input_X", X, "float32")
    e.add("output_Y1", outs[0], "float32")
    e.add("output_Y2", outs[1], "float32")
    return g.model(), e


def bn_bn_case(name):
    """Conv -> BN -> BN: expected is both folds in sequence."""
    rng = rng_for(name)
    X = x_values(rng, (2, 3, 5, 5), "float32")
    W = quant(rng.uniform(-1, 1, (4, 3, 3, 3)), "float32")
    b = quant(rng.uniform(-0.5, 0.5, 4), "float32")
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    st1, dts1 = make_bn_stats(rng, 4)
    st2, dts2 = make_bn_stats(rng, 4)
    g = Graph()
    g.input("X", "float32", X.shape)
    g.const("W", W, "float32")
    g.const("conv_B", b, "float32")
    g.node("Conv", ["X", "W", "conv_B"], ["conv_out"], "conv", **attrs)
    bn_node(g, "conv_out", st1, dts1, y="bn1_out", name="bn1", prefix="bn1_")
    bn_node(g, "bn1_out", st2, dts2, y="Y", name="bn2", prefix="bn2_")
    y_layer = ref_conv(X, W, b, attrs)
    g.output("Y", "float32", y_layer.shape)
    y_ref = ref_bn(ref_bn(y_layer, st1, EPS), st2, EPS)
    Wf, bf = fold_conv(W, b, *bn_factors(st1, EPS))
    Wf, bf = fold_conv(Wf, bf, *bn_factors(st2, EPS))
    e = Expect()
    Wq = e.add("expected_W", Wf, "float32")
    bq = e.add("expected_B", bf, "float32")
    e.add("input_X", X, "float32")
    e.add("output_Y", y_ref, "float32")
    check_fold(name, e, "float32", y_ref, lambda w_, b_: ref_conv(X, w_, b_, attrs),
               (Wf, bf), (Wq, bq))
    return g.model(), e


def standalone_case(name):
    """BN directly on the graph input X (no layer)."""
    rng = rng_for(name)
    st, dts = make_bn_stats(rng, 4)
    g = Graph()
    g.input("X", "float32", (2, 4, 5, 5))
    bn_node(g, "X", st, dts)
    g.output("Y", "float32", (2, 4, 5, 5))
    return g.model(), None


def roundtrip_no_bn_case(name):
    """Conv -> Relu with everything a writer could lose; nothing to fold."""
    rng = rng_for(name)
    g = Graph()
    g.input("X", "float32", (2, 3, 5, 5))
    g.const("W", quant(rng.uniform(-1, 1, (4, 3, 3, 3)), "float32"), "float32")
    g.const("conv_B", quant(rng.uniform(-0.5, 0.5, 4), "float32"), "float32")
    g.node("Conv", ["X", "W", "conv_B"], ["conv_out"], "conv", kernel_shape=[3, 3],
           pads=[1, 1, 1, 1], doc_string="a 3x3 convolution")
    g.node("Relu", ["conv_out"], ["Y"], "relu", doc_string="rectifier")
    g.output("Y", "float32", (2, 4, 5, 5))
    g.value_info.append(helper.make_tensor_value_info("conv_out", TensorProto.FLOAT,
                                                      [2, 4, 5, 5]))
    m = g.model(extra_opsets=[("com.example.custom", 1)], name="roundtrip")
    decorate(m)
    return m, None


def decorate(m):
    m.doc_string = "bnfold test model: every field must survive"
    m.graph.doc_string = "graph doc string"
    m.domain = "org.example.bnfold"
    m.model_version = 7
    helper.set_model_props(m, {"author": "bnfold testdata", "license": "MIT",
                               "note": "metadata must survive"})


# ----- edits and statistics for the variants ------------------------------

def constant_sources():
    return {k: "constant" for k in ("W", "conv_B", "scale", "B", "mean", "var")}


def identity_sources():
    return {k: "identity" for k in ("W", "scale", "B", "mean", "var")}


def edit_multi_consumer(g, ctx):
    g.node("Relu", ["conv_out"], ["Y2"], "relu")
    g.output("Y2", ctx["dtype"], ctx["y_layer"].shape)


def edit_graph_output(g, ctx):
    g.output("conv_out", ctx["dtype"], ctx["y_layer"].shape)


def edit_training_outputs(names):
    def edit(g, ctx):
        bn = g.nodes[-1]
        assert bn.op_type == "BatchNormalization"
        del bn.output[:]
        bn.output.extend(names)
    return edit


def stats_spatial0(shape_fn):
    def stats(rng, M, dtype, stat_dtype):
        return make_bn_stats(rng, M, dtype, stat_dtype, shape=shape_fn(M))
    return stats


def stats_len(n):
    return lambda rng, M, dtype, stat_dtype: make_bn_stats(rng, n, dtype, stat_dtype)


def stats_int_mean(rng, M, dtype, stat_dtype):
    st, dts = make_bn_stats(rng, M, dtype, stat_dtype)
    st["mean"] = np.rint(st["mean"] * 10)
    dts["mean"] = "int32"
    return st, dts


def stats_negative_var(rng, M, dtype, stat_dtype):
    st, dts = make_bn_stats(rng, M, dtype, stat_dtype)
    st["var"][1] = -1.0
    return st, dts


def roundtrip_unknown_case(name):
    def edit(g, ctx):
        for n in g.nodes:
            n.doc_string = "doc of " + n.name
        g.value_info.append(helper.make_tensor_value_info(
            "conv_out", TensorProto.FLOAT, list(ctx["y_layer"].shape)))
    m, e = conv_case(name, attrs={"pads": [1, 1, 1, 1]}, edit=edit)
    decorate(m)
    # field 99, wire type 0 (varint), value 42: unknown to every ONNX reader
    return m.SerializeToString() + b"\x98\x06\x2a", e


# --------------------------------------------------------------------------
# The table of cases: name -> builder returning (model or bytes, Expect|None)
# --------------------------------------------------------------------------

P1 = {"pads": [1, 1, 1, 1]}
C2 = lambda **kw: (lambda name: conv_case(name, **dict({"attrs": P1}, **kw)))

CASES = [
    # ---- Conv folds
    ("conv1d", lambda n: conv_case(n, dim=1, C=3, M=5, size=6, attrs={"pads": [1, 1]})),
    ("conv2d", C2()),
    ("conv3d", lambda n: conv_case(n, dim=3, N=1, C=3, M=4, size=4, k=2,
                                   attrs={"pads": [1, 0, 1, 0, 1, 0]})),
    ("conv2d_nobias", C2(bias=False)),
    ("conv2d_group", lambda n: conv_case(n, C=4, M=6, attrs={"group": 2, "pads": [1, 1, 1, 1]})),
    ("conv2d_depthwise", lambda n: conv_case(n, C=4, M=4, attrs={"group": 4, "pads": [1, 1, 1, 1]})),
    ("conv2d_pads", lambda n: conv_case(n, size=(6, 5),
                                        attrs={"auto_pad": "SAME_UPPER", "strides": [2, 2]})),
    ("conv2d_dilated", lambda n: conv_case(n, size=6,
                                           attrs={"dilations": [2, 2], "pads": [1, 2, 0, 1]})),
    # ---- ConvTranspose folds
    ("convtranspose1d", lambda n: conv_case(n, op="ConvTranspose", dim=1, C=3, M=4,
                                            attrs={"strides": [2], "pads": [1, 1]})),
    ("convtranspose2d_group", lambda n: conv_case(
        n, op="ConvTranspose", C=4, M=6, size=3,
        attrs={"group": 2, "strides": [2, 2], "dilations": [2, 2],
               "output_padding": [1, 1], "pads": [1, 1, 1, 1]})),
    ("convtranspose2d_nobias", lambda n: conv_case(n, op="ConvTranspose", C=3, M=5, size=4,
                                                   bias=False)),
    ("convtranspose3d", lambda n: conv_case(n, op="ConvTranspose", dim=3, N=1, C=2, M=4,
                                            size=3, k=2, attrs={"strides": [2, 2, 2]})),
    # ---- Gemm folds
] + [
    ("gemm_tA%d_tB%d" % (a, b), (lambda a, b: lambda n: gemm_case(
        n, transA=a, transB=b, alpha=0.5, beta=2.0, c_shape=(4,)))(a, b))
    for a in (0, 1) for b in (0, 1)
] + [
    ("gemm_c_none", lambda n: gemm_case(n, c_shape=None)),
    ("gemm_c_scalar", lambda n: gemm_case(n, c_shape=())),
    ("gemm_c_1n", lambda n: gemm_case(n, c_shape=(1, 4))),
    ("gemm_c_mn", lambda n: gemm_case(n, c_shape=(3, 4))),
    ("gemm_c_m1", lambda n: gemm_case(n, c_shape=(3, 1))),
    # ---- storage and type variants of conv2d
    ("conv2d_float_data", C2(storage="float_data")),
    ("conv2d_double", C2(dtype="float64")),
    ("conv2d_fp16", C2(dtype="float16")),
    ("conv2d_fp16_int32", C2(dtype="float16", storage="int32_data")),
    ("conv2d_bf16", C2(dtype="bfloat16", opset=15)),
    ("conv2d_mixed15", C2(dtype="float16", stat_dtype="float32", opset=15)),
    ("conv2d_external", C2()),          # saved with external data, see save_case
    # a weight of 1 KiB and more: external in the folded model too
    ("conv2d_external_big", lambda n: conv_case(n, C=16, M=32, attrs=P1)),
    ("conv2d_external_escape", C2(fold=False)),
    # ---- parameter sources
    ("conv2d_constant_nodes", C2(sources=constant_sources())),
    ("conv2d_identity", C2(sources=identity_sources())),
    ("conv2d_shared_weight", shared_weight_case),
    ("conv2d_bn_bn", bn_bn_case),
    # ---- BatchNormalization opsets
    ("bn_opset1", C2(opset=1, ir=3, init_as_inputs=True,
                     bn_attrs={"is_test": 1, "spatial": 1, "consumed_inputs": [0, 0, 0, 1, 1]})),
    ("bn_opset6", C2(opset=6, bn_attrs={"is_test": 1})),
    ("bn_opset7", C2(opset=7, bn_attrs={"spatial": 1})),
    ("bn_opset9", C2(opset=9, eps=None)),            # epsilon left at its default
    ("bn_opset14", C2(opset=14, bn_attrs={"training_mode": 0})),
    ("bn_opset15", C2(opset=15, eps=None)),          # epsilon left at its default
    # ---- initializers listed as graph inputs
    ("conv2d_ir3_init_inputs", C2(opset=8, ir=3, init_as_inputs=True)),
    ("conv2d_ir4_init_inputs", C2(init_as_inputs=True, fold=False)),
    # ---- skips
    ("skip_multi_consumer", C2(fold=False, edit=edit_multi_consumer)),
    ("skip_graph_output", C2(fold=False, edit=edit_graph_output)),
    ("skip_param_not_constant", C2(fold=False, sources={"scale": "input"})),
    ("skip_training_opset15", C2(fold=False, opset=15, bn_attrs={"training_mode": 1},
                                 edit=edit_training_outputs(["Y", "running_mean", "running_var"]))),
    ("skip_is_test0_opset6", C2(fold=False, opset=6, bn_attrs={"is_test": 0})),
    ("skip_extra_outputs_opset9", C2(fold=False, opset=9, edit=edit_training_outputs(
        ["Y", "running_mean", "running_var", "saved_mean", "saved_var"]))),
    ("skip_spatial0_opset7", C2(fold=False, opset=7, bn_attrs={"spatial": 0},
                                stats=stats_spatial0(lambda M: (M, 5, 5)))),
    ("skip_shape_mismatch", C2(fold=False, stats=stats_len(5))),
    ("skip_dtype", C2(fold=False, stats=stats_int_mean)),
    ("skip_standalone", standalone_case),
    ("skip_nonfinite", C2(fold=False, stats=stats_negative_var)),
    # ---- round trip
    ("roundtrip_no_bn", roundtrip_no_bn_case),
    ("roundtrip_unknown", roundtrip_unknown_case),
]

# Models saved with all their tensors as external data, in NAME.data.
EXTERNAL = {"conv2d_external", "conv2d_external_big"}

# Models that are deliberately invalid for onnx.checker.
NO_CHECKER = {"skip_shape_mismatch", "skip_dtype"}


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def note(path):
    rel = os.path.relpath(path, os.path.dirname(HERE))
    WRITTEN.append(path)
    print("wrote %s (%d bytes)" % (rel, os.path.getsize(path)))


def save_case(name, model, expect):
    path = os.path.join(OUT, name + ".onnx")
    if isinstance(model, bytes):
        with open(path, "wb") as f:
            f.write(model)
        onnx.checker.check_model(onnx.load_from_string(model))
        note(path)
    elif name in EXTERNAL:
        if name not in NO_CHECKER:
            onnx.checker.check_model(model)
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=name + ".data", size_threshold=0)
        note(path)
        note(os.path.join(OUT, name + ".data"))
    elif name == "conv2d_external_escape":
        onnx.checker.check_model(model)
        external_data_helper.convert_model_to_external_data(
            model, all_tensors_to_one_file=True, location=name + ".data", size_threshold=0)
        w = [t for t in model.graph.initializer if t.name == "W"][0]
        external_data_helper.set_external_data(w, "../escape.data")
        onnx.save_model(model, path)   # writes W to OUT/../escape.data
        note(path)
        note(os.path.join(OUT, name + ".data"))
        note(os.path.join(OUT, "..", "escape.data"))
    else:
        if name not in NO_CHECKER:
            onnx.checker.check_model(model)
        onnx.save_model(model, path)
        note(path)
    if expect is not None:
        epath = os.path.join(OUT, name + ".expected.onnx")
        m = expect.model()
        onnx.checker.check_model(m)
        onnx.save_model(m, epath)
        # read back: the file holds exactly the values that were checked
        back = onnx.load(epath)
        for t in back.graph.initializer:
            assert np.array_equal(tensor_values(t), expect.values[t.name]), (name, t.name)
        note(epath)


def readback(name):
    """Reload the model file and compare its initializers with what was built."""
    path = os.path.join(OUT, name + ".onnx")
    if name in EXTERNAL:
        m = onnx.load(path)   # resolves NAME.data
        assert all(t.data_location == TensorProto.DEFAULT for t in m.graph.initializer)
        raw = onnx.load(path, load_external_data=False)
        assert all(t.data_location == TensorProto.EXTERNAL for t in raw.graph.initializer)
    elif name == "conv2d_external_escape":
        raw = onnx.load(path, load_external_data=False)
        w = [t for t in raw.graph.initializer if t.name == "W"][0]
        assert dict((e.key, e.value) for e in w.external_data)["location"] == "../escape.data"


def clean():
    os.makedirs(OUT, exist_ok=True)
    for f in sorted(os.listdir(OUT)):
        if f.endswith(".onnx") or f.endswith(".data"):
            os.remove(os.path.join(OUT, f))
    esc = os.path.join(HERE, "escape.data")
    if os.path.exists(esc):
        os.remove(esc)


def main():
    clean()
    names = [n for n, _ in CASES]
    assert len(names) == len(set(names))
    for name, build in CASES:
        model, expect = build(name)
        save_case(name, model, expect)
        readback(name)
    total = sum(os.path.getsize(p) for p in WRITTEN)
    worst = max(CHECKS, key=lambda c: c[3] / TOL[c[1]])
    print("%d cases, %d files, %d bytes; %d fold checks passed (worst: %s %s %.2e of %g)"
          % (len(CASES), len(WRITTEN), total, len(CHECKS), worst[0], worst[1], worst[3],
             TOL[worst[1]]), file=sys.stderr)
    assert total < 2 * 1024 * 1024


if __name__ == "__main__":
    main()
