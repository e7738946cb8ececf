"""What the test-model generators share: gen_models.py (models/),
gen_patterns.py (patterns/) and gen_health.py (health/) import it.

    dtypes          quant, make_tensor, tensor_values: values are float64 arrays
                    exact in their dtype (float32, float64, float16, bfloat16,
                    int32), stored as raw_data, float_data or int32_data
    BN statistics   make_bn_stats, bn_factors; the independent folds in numpy
                    float64: fold_conv, fold_convtranspose, fold_gemm
    references      ref_conv, ref_convtranspose, ref_bn, ref_gemm (torch,
                    float64; torch is imported on first use), assert_close
    graphs          Graph, bn_node, conv_layer, conv_case (X -> Conv|ConvTranspose
                    -> BN -> Y, the case both gen_models and gen_patterns build)
    expectations    Expect (NAME.expected.onnx), check_fold, CHECKS
    writing         clean, note, save_expected, summary; WRITTEN

Every case seeds its generator from its name (rng_for): the output does not
depend on the order the cases run in, or on which generator runs them.
Debian's interpreter: python3-onnx 1.12, python3-numpy (python3-torch for the
references).
"""

import os
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))

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

_TORCH = []


def torch_f():
    """(torch, torch.nn.functional), imported on first use (gen_health.py needs
    no torch) and set to one thread."""
    if not _TORCH:
        import torch
        import torch.nn.functional
        torch.set_num_threads(1)
        _TORCH.extend([torch, torch.nn.functional])
    return _TORCH


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
    torch, F = torch_f()
    dim, strides, dil, pads, group = conv_params(attrs, X, W)
    torch_pad = []
    for i in reversed(range(dim)):
        torch_pad += [pads[i], pads[i + dim]]
    x = F.pad(torch.from_numpy(X), torch_pad)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dim]
    bt = None if b is None else torch.from_numpy(b)
    return fn(x, torch.from_numpy(W), bt, stride=strides, dilation=dil, groups=group).numpy()


def ref_convtranspose(X, W, b, attrs):
    torch, F = torch_f()
    dim, strides, dil, pads, group = conv_params(attrs, X, W)
    assert pads[:dim] == pads[dim:], "torch needs symmetric pads"
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[dim]
    bt = None if b is None else torch.from_numpy(b)
    return fn(torch.from_numpy(X), torch.from_numpy(W), bt, stride=strides,
              padding=pads[:dim], output_padding=attrs.get("output_padding", [0] * dim),
              groups=group, dilation=dil).numpy()


def ref_bn(Y, st, eps):
    torch, F = torch_f()
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
    """Expected tensors of one fold case and its self check: model() is
    NAME.expected.onnx, one Identity node on input_X (of input_X's dtype)."""

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
            [helper.make_tensor_value_info("input_X_copy", x.data_type, list(x.dims))],
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


CHECKS = []       # (name, dtype, float64 fold error, stored fold error) per check_fold


# --------------------------------------------------------------------------
# Case builders
# --------------------------------------------------------------------------

def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def x_values(rng, shape, dtype):
    """Random input, exact in float32 and in dtype."""
    return quant(quant(rng.uniform(-1, 1, shape), "float32"), dtype)


def conv_layer(rng, x_shape, M=4, w_range=1.0):
    """A 3x3 float32 Conv with pads 1 and a bias, and its input, drawn from rng
    in this order: X of x_shape, W [M, C, 3, 3] in +-w_range, b [M].
    Returns X, W, b, attrs."""
    X = x_values(rng, x_shape, "float32")
    W = quant(rng.uniform(-w_range, w_range, (M, x_shape[1], 3, 3)), "float32")
    b = quant(rng.uniform(-0.5, 0.5, M), "float32")
    return X, W, b, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}


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


def edit_training_outputs(names):
    """A conv_case edit: the BN (the last node) gets the outputs names."""
    def edit(g, ctx):
        bn = g.nodes[-1]
        assert bn.op_type == "BatchNormalization"
        del bn.output[:]
        bn.output.extend(names)
    return edit


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

WRITTEN = []      # every file written, for summary


def note(path):
    """Record a written file and say so."""
    WRITTEN.append(path)
    print("wrote %s (%d bytes)" % (os.path.relpath(path, os.path.dirname(HERE)),
                                   os.path.getsize(path)))


def clean(out, suffixes=(".onnx",), names=()):
    """Create the folder out, or delete what a previous run wrote there: the
    files ending in one of suffixes, and those named in names."""
    os.makedirs(out, exist_ok=True)
    for f in sorted(os.listdir(out)):
        if f.endswith(tuple(suffixes)) or f in names:
            os.remove(os.path.join(out, f))


def save_expected(out, name, expect):
    """Write out/NAME.expected.onnx, check it, and read it back: the file holds
    exactly the values that were checked."""
    epath = os.path.join(out, name + ".expected.onnx")
    m = expect.model()
    onnx.checker.check_model(m)
    onnx.save_model(m, epath)
    back = onnx.load(epath)
    for t in back.graph.initializer:
        assert np.array_equal(tensor_values(t), expect.values[t.name]), (name, t.name)
    note(epath)


def summary(n_cases, max_bytes):
    """The closing line (on stderr): cases, files, bytes, the fold checks and
    the worst of them against its tolerance; the files must stay under max_bytes."""
    total = sum(os.path.getsize(p) for p in WRITTEN)
    worst = max(CHECKS, key=lambda c: c[3] / TOL[c[1]])
    print("%d cases, %d files, %d bytes; %d fold checks passed (worst: %s %s %.2e of %g)"
          % (n_cases, len(WRITTEN), total, len(CHECKS), worst[0], worst[1], worst[3],
             TOL[worst[1]]), file=sys.stderr)
    assert total < max_bytes
