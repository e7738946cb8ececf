#!/usr/bin/python3
"""Generate the fold-pattern test models into testdata/patterns/.

Run with Debian's interpreter (python3-onnx 1.12, python3-numpy, python3-torch):

    /usr/bin/python3 testdata/gen_patterns.py

The patterns beyond "layer -> BatchNormalization": MatMul -> BN, BN -> Conv/Gemm,
Mul/Add by constants, chains, standalone BNs (lowered to Mul + Add), BNs inside
If/Loop bodies, fp16 overflow, training-mode BNs and initializers listed as graph
inputs.  Helpers, statistics and reference operators come from gen_common.py
(as for gen_models.py); the output is deterministic (every case seeds its generator
from its name).

For every case that folds (or lowers) under some option, NAME.expected.onnx holds
the independent expectation, computed in numpy float64:

    expected_W, expected_B   the folded layer's weight and bias (Gemm: B and C)
    expected_S, expected_T   a lowered BN's Mul and Add constants, [C, 1, ..., 1]
    input_X                  a random input (float32; float64 for double models)
    output_Y                 the model's output on input_X (torch / numpy float64)

and the script asserts that the folded layer, with the stored (rounded) weights,
reproduces output_Y.  cases.txt lists every case, the option it runs with and
what must happen; tests/test_patterns.c checks that its table agrees.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_common as gen  # noqa: E402  (testdata/gen_common.py: the shared helpers)

OUT = os.path.join(gen.HERE, "patterns")
EPS = gen.EPS
P1 = {"pads": [1, 1, 1, 1]}


# --------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------

def io_dtype(dtype):
    return "float64" if dtype == "float64" else "float32"


def finish(name, e, dtype, X, y_ref, evaluate, unrounded, rounded):
    """Stores W/B (rounded to dtype), input_X, output_Y and runs the self check."""
    Wq = e.add("expected_W", unrounded[0], dtype)
    Bq = e.add("expected_B", unrounded[1], dtype)
    assert np.array_equal(Wq, rounded[0]) and np.array_equal(Bq, rounded[1])
    e.add("input_X", X, io_dtype(dtype))
    e.add("output_Y", y_ref, io_dtype(dtype))
    gen.check_fold(name, e, dtype, y_ref, evaluate, unrounded, rounded)


def fold_params(dtype, Wf, bf):
    return (Wf, bf), (gen.quant(Wf, dtype), gen.quant(bf, dtype))


# --------------------------------------------------------------------------
# Independent folds (numpy float64) beyond gen_common's
# --------------------------------------------------------------------------

def fold_bn_conv(W, b, s, t, group):
    """BN -> Conv: input channel c of W[m, cl] is (m // (M/g)) * (C/g) + cl;
    W' = W * s_c, b'_m = b_m + sum_{cl,k} W[m, cl, k] * t_c."""
    M, cpg = W.shape[0], W.shape[1]
    mpg = M // group
    c = (np.arange(M)[:, None] // mpg) * cpg + np.arange(cpg)[None, :]
    tail = (1,) * (W.ndim - 2)
    Wf = W * s[c].reshape(c.shape + tail)
    bf = (np.zeros(M) if b is None else b) + (W * t[c].reshape(c.shape + tail)).reshape(M, -1).sum(1)
    return Wf, bf


def fold_bn_gemm(Bm, C, s, t, alpha, beta, transB):
    """BN -> Gemm (transA = 0): row k of B' scaled by s_k; C' = alpha t B' + beta C."""
    Bp = Bm.T if transB else Bm            # [K, N]
    Bfp = Bp * s[:, None]
    Cf = alpha * (t @ Bp) + (0.0 if C is None else beta * C)
    return (Bfp.T if transB else Bfp), Cf


def lowered(st, rank):
    """A standalone BN as Mul(S) -> Add(T), S and T shaped [C, 1, ..., 1]."""
    s, t = gen.bn_factors(st, EPS)
    shape = (len(s),) + (1,) * (rank - 2)
    return s.reshape(shape), t.reshape(shape)


def per_channel(k, rank, M):
    """The per-channel vector [M] of a constant broadcast against a rank-`rank`
    value whose axis 1 has M channels (numpy's trailing alignment)."""
    full = np.broadcast_to(k, (1, M) + (1,) * (rank - 2) if k.ndim <= rank else k.shape)
    assert full.shape == (1, M) + (1,) * (rank - 2), (k.shape, rank, M)
    return np.ascontiguousarray(full).reshape(M)


def ref_relu(Y):
    return np.maximum(Y, 0.0)


# --------------------------------------------------------------------------
# Case builders: each returns (model, Expect or None)
# --------------------------------------------------------------------------

def matmul_case(name, rank3=False, dtype="float32"):
    """X -> MatMul(B [5, 4]) -> BN -> Y.  Rank 3: BN over axis 1 (T = 3): skip."""
    rng = gen.rng_for(name)
    xshape = (2, 3, 5) if rank3 else (3, 5)
    X = gen.x_values(rng, xshape, dtype)
    Bm = gen.quant(rng.uniform(-1, 1, (5, 4)), dtype)
    C = xshape[1] if rank3 else 4
    st, dts = gen.make_bn_stats(rng, C, dtype)
    y_layer = X @ Bm
    g = gen.Graph()
    g.input("X", dtype, X.shape)
    g.const("W", Bm, dtype)
    g.node("MatMul", ["X", "W"], ["matmul_out"], "matmul")
    gen.bn_node(g, "matmul_out", st, dts)
    g.output("Y", dtype, y_layer.shape)
    model = g.model()
    if rank3:
        return model, None
    y_ref = gen.ref_bn(y_layer, st, EPS)
    s, t = gen.bn_factors(st, EPS)
    unr, rnd = fold_params(dtype, Bm * s[None, :], t)
    e = gen.Expect()
    finish(name, e, dtype, X, y_ref, lambda w_, b_: X @ w_ + b_, unr, rnd)
    return model, e


def bn_matmul_case(name, rank3=False, dtype="float32"):
    """X -> BN -> MatMul(B [5, 4]) -> Y: becomes Gemm with B's rows scaled,
    C = t B.  Rank 3 (X [2, 3, 5]): BN normalises axis 1 (3), not the 5
    features the MatMul reads: skip."""
    rng = gen.rng_for(name)
    xshape = (2, 3, 5) if rank3 else (3, 5)
    X = gen.x_values(rng, xshape, dtype)
    Bm = gen.quant(rng.uniform(-1, 1, (5, 4)), dtype)
    st, dts = gen.make_bn_stats(rng, xshape[1], dtype)
    g = gen.Graph()
    g.input("X", dtype, X.shape)
    gen.bn_node(g, "X", st, dts, y="bn_out")
    g.const("W", Bm, dtype)
    g.node("MatMul", ["bn_out", "W"], ["Y"], "matmul")
    y_ref = gen.ref_bn(X, st, EPS) @ Bm
    g.output("Y", dtype, y_ref.shape)
    model = g.model()
    if rank3:
        return model, None
    s, t = gen.bn_factors(st, EPS)
    unr, rnd = fold_params(dtype, Bm * s[:, None], t @ Bm)
    e = gen.Expect()
    finish(name, e, dtype, X, y_ref, lambda w_, b_: X @ w_ + b_, unr, rnd)
    return model, e


def bn_conv_case(name, C=3, M=4, group=1, bias=True, attrs=None, fold=True, size=6, k=3):
    """X -> BN(C) -> Conv (k x k) -> Y (the BN before the layer)."""
    rng = gen.rng_for(name)
    attrs = dict(attrs or {})
    attrs.setdefault("kernel_shape", [k, k])
    if group != 1:
        attrs["group"] = group
    X = gen.x_values(rng, (2, C, size, size), "float32")
    W = gen.quant(rng.uniform(-1, 1, (M, C // group, k, k)), "float32")
    b = gen.quant(rng.uniform(-0.5, 0.5, M), "float32") if bias else None
    st, dts = gen.make_bn_stats(rng, C)
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    gen.bn_node(g, "X", st, dts, y="bn_out")
    g.const("W", W, "float32")
    ins = ["bn_out", "W"]
    if bias:
        ins.append(g.const("conv_B", b, "float32"))
    g.node("Conv", ins, ["Y"], "conv", **attrs)
    y_ref = gen.ref_conv(gen.ref_bn(X, st, EPS), W, b, attrs)
    g.output("Y", "float32", y_ref.shape)
    model = g.model()
    if not fold:
        return model, None
    s, t = gen.bn_factors(st, EPS)
    unr, rnd = fold_params("float32", *fold_bn_conv(W, b, s, t, group))
    e = gen.Expect()
    finish(name, e, "float32", X, y_ref, lambda w_, b_: gen.ref_conv(X, w_, b_, attrs), unr, rnd)
    return model, e


def bn_two_readers_case(name):
    """X -> BN -> Conv -> Y, and the BN's output also -> Relu -> Z: folding the
    BN into the Conv would change what the Relu reads: skip."""
    rng = gen.rng_for(name)
    X = gen.x_values(rng, (1, 3, 6, 6), "float32")
    W = gen.quant(rng.uniform(-1, 1, (4, 3, 3, 3)), "float32")
    st, dts = gen.make_bn_stats(rng, 3)
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    gen.bn_node(g, "X", st, dts, y="bn_out")
    g.const("W", W, "float32")
    g.node("Conv", ["bn_out", "W"], ["Y"], "conv", kernel_shape=[3, 3])
    g.node("Relu", ["bn_out"], ["Z"], "relu")
    g.output("Y", "float32", (1, 4, 4, 4))
    g.output("Z", "float32", X.shape)
    bn_ref = gen.ref_bn(X, st, EPS)
    e = gen.Expect()
    e.add("input_X", X, "float32")
    e.add("output_Y", gen.ref_conv(bn_ref, W, None, {"kernel_shape": [3, 3]}), "float32")
    add_lowered(name, e, st, 4, lambda S, T: X * S + T, bn_ref)
    return g.model(), e


def bn_bn_conv_case(name):
    """X -> BN1 -> BN2 -> Conv (no padding): both fold into the Conv."""
    rng = gen.rng_for(name)
    attrs = {"kernel_shape": [3, 3]}
    X = gen.x_values(rng, (2, 3, 6, 6), "float32")
    W = gen.quant(rng.uniform(-1, 1, (4, 3, 3, 3)), "float32")
    b = gen.quant(rng.uniform(-0.5, 0.5, 4), "float32")
    st1, dts1 = gen.make_bn_stats(rng, 3)
    st2, dts2 = gen.make_bn_stats(rng, 3)
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    gen.bn_node(g, "X", st1, dts1, y="bn1_out", name="bn1", prefix="bn1_")
    gen.bn_node(g, "bn1_out", st2, dts2, y="bn2_out", name="bn2", prefix="bn2_")
    g.const("W", W, "float32")
    g.const("conv_B", b, "float32")
    g.node("Conv", ["bn2_out", "W", "conv_B"], ["Y"], "conv", **attrs)
    y_ref = gen.ref_conv(gen.ref_bn(gen.ref_bn(X, st1, EPS), st2, EPS), W, b, attrs)
    g.output("Y", "float32", y_ref.shape)
    # conv(bn2(bn1(x))): BN2 into the Conv, then BN1 into the result
    Wf, bf = fold_bn_conv(W, b, *gen.bn_factors(st2, EPS), 1)
    Wf, bf = fold_bn_conv(Wf, bf, *gen.bn_factors(st1, EPS), 1)
    unr, rnd = fold_params("float32", Wf, bf)
    e = gen.Expect()
    finish(name, e, "float32", X, y_ref, lambda w_, b_: gen.ref_conv(X, w_, b_, attrs), unr, rnd)
    return g.model(), e


def bn_gemm_case(name, transA=0, fold=True):
    """X -> BN -> Gemm(transB 1, alpha 0.5, beta 2, C [4]) -> Y.
    transA = 1: X is [K, M] = [5, 3], the BN normalises M (3): skip."""
    rng = gen.rng_for(name)
    alpha, beta, K, M, N = 0.5, 2.0, 5, 3, 4
    X = gen.x_values(rng, (K, M) if transA else (M, K), "float32")
    Bm = gen.quant(rng.uniform(-1, 1, (N, K)), "float32")
    C = gen.quant(rng.uniform(-0.5, 0.5, N), "float32")
    st, dts = gen.make_bn_stats(rng, X.shape[1])
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    gen.bn_node(g, "X", st, dts, y="bn_out")
    g.const("W", Bm, "float32")
    g.const("C", C, "float32")
    g.node("Gemm", ["bn_out", "W", "C"], ["Y"], "gemm", alpha=alpha, beta=beta,
           transA=transA, transB=1)
    y_ref = gen.ref_gemm(gen.ref_bn(X, st, EPS), Bm, C, alpha, beta, transA, 1)
    g.output("Y", "float32", y_ref.shape)
    model = g.model()
    if not fold:
        return model, None
    s, t = gen.bn_factors(st, EPS)
    unr, rnd = fold_params("float32", *fold_bn_gemm(Bm, C, s, t, alpha, beta, 1))
    e = gen.Expect()
    finish(name, e, "float32", X, y_ref,
           lambda w_, c_: gen.ref_gemm(X, w_, c_, alpha, 1.0, 0, 1), unr, rnd)
    return model, e


def affine_case(name, op="Conv", mul=None, add=None, bn=False, mul_first_operand=False,
                add_first_operand=False, fold=True):
    """X -> layer -> [BN] -> [Mul(K)] -> [Add(A)] -> Y, K and A constants of the
    given shapes ("M" stands for the layer's output channels)."""
    rng = gen.rng_for(name)
    if op == "Gemm":
        X = gen.x_values(rng, (3, 5), "float32")
        W = gen.quant(rng.uniform(-1, 1, (4, 5)), "float32")
        b = gen.quant(rng.uniform(-0.5, 0.5, 4), "float32")
        attrs = {"alpha": 0.5, "beta": 2.0, "transB": 1}
        layer = lambda x, w_, b_, beta=2.0: gen.ref_gemm(x, w_, b_, 0.5, beta, 0, 1)
        M, group = 4, 1
    elif op == "Conv":
        X, W, b, attrs = gen.conv_layer(rng, (2, 3, 5, 5))
        layer = lambda x, w_, b_: gen.ref_conv(x, w_, b_, attrs)
        M, group = 4, 1
    else:  # ConvTranspose, group 2: C_in 4, M 6
        X = gen.x_values(rng, (2, 4, 3, 3), "float32")
        W = gen.quant(rng.uniform(-1, 1, (4, 3, 3, 3)), "float32")
        b = gen.quant(rng.uniform(-0.5, 0.5, 6), "float32")
        attrs = {"kernel_shape": [3, 3], "group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1]}
        layer = lambda x, w_, b_: gen.ref_convtranspose(x, w_, b_, attrs)
        M, group = 6, 2
    y = layer(X, W, b)
    shape_of = lambda shp: tuple(M if d == "M" else d for d in shp)
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    g.const("W", W, "float32")
    g.const("layer_B", b, "float32")
    lname = op.lower()
    g.node(op, ["X", "W", "layer_B"], [lname + "_out"], lname, **attrs)
    cur = lname + "_out"
    steps = []
    if bn:
        st, dts = gen.make_bn_stats(rng, M)
        gen.bn_node(g, cur, st, dts, y="bn_out")
        cur = "bn_out"
        y = gen.ref_bn(y, st, EPS)
        steps.append(gen.bn_factors(st, EPS))
    for kind, shp, first in (("Mul", mul, mul_first_operand), ("Add", add, add_first_operand)):
        if shp is None:
            continue
        shp = shape_of(shp)
        if kind == "Mul":
            k = gen.quant(rng.uniform(0.5, 1.5, shp) * rng.choice([-1.0, 1.0], shp), "float32")
        else:
            k = gen.quant(rng.uniform(-0.5, 0.5, shp), "float32")
        kname = kind.lower() + "_K"
        g.const(kname, k, "float32")
        out = kind.lower() + "_out"
        g.node(kind, [kname, cur] if first else [cur, kname], [out], kind.lower())
        cur = out
        y = y * k if kind == "Mul" else y + k      # numpy broadcasting: the reference
        if fold:
            kc = per_channel(k, y.ndim, M)
            steps.append((kc, np.zeros(M)) if kind == "Mul" else (np.ones(M), kc))
    g.nodes[-1].output[0] = "Y"
    g.output("Y", "float32", y.shape)
    model = g.model()
    if not fold:
        return model, None
    Wf, bf = W, b
    beta = attrs.get("beta", 1.0)
    for s, t in steps:
        if op == "Gemm":
            Wf, bf = gen.fold_gemm(Wf, bf, s, t, 1, beta)
            beta = 1.0
        elif op == "Conv":
            Wf, bf = gen.fold_conv(Wf, bf, s, t)
        else:
            Wf, bf = gen.fold_convtranspose(Wf, bf, s, t, group)
    unr, rnd = fold_params("float32", Wf, bf)
    e = gen.Expect()
    if op == "Gemm":
        ev = lambda w_, b_: layer(X, w_, b_, beta=1.0)
    else:
        ev = lambda w_, b_: layer(X, w_, b_)
    finish(name, e, "float32", X, y, ev, unr, rnd)
    return model, e


def conv_bn_bn_relu_bn_case(name):
    """Conv -> BN1 -> BN2 -> Relu -> BN3 -> Y: BN1 and BN2 fold, BN3 has no
    layer (NO_LAYER; lowered with lower_standalone: relu_out's shape is in
    value_info)."""
    rng = gen.rng_for(name)
    X, W, b, attrs = gen.conv_layer(rng, (2, 3, 5, 5))
    st = [gen.make_bn_stats(rng, 4) for _ in range(3)]
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    g.const("W", W, "float32")
    g.const("conv_B", b, "float32")
    g.node("Conv", ["X", "W", "conv_B"], ["conv_out"], "conv", **attrs)
    gen.bn_node(g, "conv_out", *st[0], y="bn1_out", name="bn1", prefix="bn1_")
    gen.bn_node(g, "bn1_out", *st[1], y="bn2_out", name="bn2", prefix="bn2_")
    g.node("Relu", ["bn2_out"], ["relu_out"], "relu")
    gen.bn_node(g, "relu_out", *st[2], y="Y", name="bn3", prefix="bn3_")
    g.value_info.append(helper.make_tensor_value_info("relu_out", TensorProto.FLOAT,
                                                      [2, 4, 5, 5]))
    tail = lambda z: gen.ref_bn(ref_relu(z), st[2][0], EPS)
    y_ref = tail(gen.ref_bn(gen.ref_bn(gen.ref_conv(X, W, b, attrs), st[0][0], EPS),
                           st[1][0], EPS))
    g.output("Y", "float32", y_ref.shape)
    Wf, bf = gen.fold_conv(W, b, *gen.bn_factors(st[0][0], EPS))
    Wf, bf = gen.fold_conv(Wf, bf, *gen.bn_factors(st[1][0], EPS))
    unr, rnd = fold_params("float32", Wf, bf)
    e = gen.Expect()
    finish(name, e, "float32", X, y_ref, lambda w_, b_: tail(gen.ref_conv(X, w_, b_, attrs)),
           unr, rnd)
    add_lowered(name, e, st[2][0], 4, lambda S, T: ref_relu(gen.ref_conv(X, Wf, bf, attrs)) * S + T,
                y_ref)
    return g.model(), e


def add_lowered(name, e, st, rank, evaluate, y_ref, dtype="float32"):
    """expected_S / expected_T of a lowered BN (in dtype), checked against y_ref."""
    S, T = lowered(st, rank)
    Sq = e.add("expected_S", S, dtype)
    Tq = e.add("expected_T", T, dtype)
    gen.assert_close(name + " (lowered, float64)", evaluate(S, T), y_ref, gen.EXACT_TOL)
    err = gen.assert_close(name + " (lowered, stored)", evaluate(Sq, Tq), y_ref, gen.TOL[dtype])
    gen.CHECKS.append((name + "/lowered", dtype, 0.0, err))


def standalone_case(name, relu, dtype="float32"):
    """X -> [Relu] -> BN -> Y, X [1, 4, 4, 4] (relu_out's shape in value_info)."""
    rng = gen.rng_for(name)
    shape = (1, 4, 4, 4) if relu else (2, 4, 5, 5)
    X = gen.x_values(rng, shape, dtype)
    st, dts = gen.make_bn_stats(rng, 4, dtype)
    g = gen.Graph()
    g.input("X", dtype, shape)
    x = "X"
    if relu:
        x = g.node("Relu", ["X"], ["relu_out"], "relu")
        g.value_info.append(helper.make_tensor_value_info(
            "relu_out", TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT,
            list(shape)))
    gen.bn_node(g, x, st, dts)
    g.output("Y", dtype, shape)
    xin = ref_relu(X) if relu else X
    y_ref = gen.ref_bn(xin, st, EPS)
    e = gen.Expect()
    e.add("input_X", X, io_dtype(dtype))
    e.add("output_Y", y_ref, io_dtype(dtype))
    add_lowered(name, e, st, len(shape), lambda S, T: xin * S + T, y_ref, dtype)
    return g.model(), e


def bn_params_tensors(st, dts, prefix):
    return [gen.make_tensor(prefix + k, st[k], dts[k]) for k in ("scale", "B", "mean", "var")]


def if_case(name):
    """If(cond): then_branch Conv(X, W, conv_B) -> BN -> then_out; else_branch
    Conv(X, W, conv_B) -> Relu -> else_out.  W and conv_B are initializers of the
    OUTER graph (the else branch still needs them unchanged); the BN parameters
    are then_branch initializers.  output_Y is the then branch (cond = true)."""
    rng = gen.rng_for(name)
    X, W, b, attrs = gen.conv_layer(rng, (1, 3, 5, 5))
    st, dts = gen.make_bn_stats(rng, 4)
    yshape = [1, 4, 5, 5]
    then_g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W", "conv_B"], ["then_conv_out"], name="then_conv",
                          **attrs),
         helper.make_node("BatchNormalization", ["then_conv_out", "bn_scale", "bn_B",
                                                 "bn_mean", "bn_var"], ["then_out"],
                          name="then_bn", epsilon=EPS)],
        "then_branch", [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, yshape)],
        bn_params_tensors(st, dts, "bn_"))
    else_g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W", "conv_B"], ["else_conv_out"], name="else_conv",
                          **attrs),
         helper.make_node("Relu", ["else_conv_out"], ["else_out"], name="else_relu")],
        "else_branch", [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, yshape)])
    g = gen.Graph()
    g.inputs.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    g.input("X", "float32", X.shape)
    g.const("W", W, "float32")
    g.const("conv_B", b, "float32")
    g.nodes.append(helper.make_node("If", ["cond"], ["Y"], name="if1",
                                    then_branch=then_g, else_branch=else_g))
    g.output("Y", "float32", yshape)
    y_ref = gen.ref_bn(gen.ref_conv(X, W, b, attrs), st, EPS)
    unr, rnd = fold_params("float32", *gen.fold_conv(W, b, *gen.bn_factors(st, EPS)))
    e = gen.Expect()
    finish(name, e, "float32", X, y_ref, lambda w_, b_: gen.ref_conv(X, w_, b_, attrs), unr, rnd)
    e.add("output_Y_else", ref_relu(gen.ref_conv(X, W, b, attrs)), "float32")
    return g.model(), e


def function_case(name):
    """A model-local function local.ConvBN(x) = BN(Conv(x, W, conv_B)): a function
    holds no initializers, so its weights and BN parameters are Constant nodes of
    its body, and the folded weights must become Constant nodes too."""
    rng = gen.rng_for(name)
    X, W, b, attrs = gen.conv_layer(rng, (1, 3, 5, 5))
    st, dts = gen.make_bn_stats(rng, 4)
    consts = [helper.make_node("Constant", [], [t.name], name="const_" + t.name, value=t)
              for t in [gen.make_tensor("W", W, "float32"), gen.make_tensor("conv_B", b, "float32")]
              + bn_params_tensors(st, dts, "bn_")]
    body = consts + [
        helper.make_node("Conv", ["x", "W", "conv_B"], ["c"], name="conv", **attrs),
        helper.make_node("BatchNormalization", ["c", "bn_scale", "bn_B", "bn_mean", "bn_var"],
                         ["y"], name="bn", epsilon=EPS)]
    fn = helper.make_function("local", "ConvBN", ["x"], ["y"], body,
                              [helper.make_opsetid("", 13)])
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    g.nodes.append(helper.make_node("ConvBN", ["X"], ["Y"], name="f1", domain="local"))
    g.output("Y", "float32", [1, 4, 5, 5])
    model = g.model(extra_opsets=(("local", 1),))
    model.functions.extend([fn])
    y_ref = gen.ref_bn(gen.ref_conv(X, W, b, attrs), st, EPS)
    unr, rnd = fold_params("float32", *gen.fold_conv(W, b, *gen.bn_factors(st, EPS)))
    e = gen.Expect()
    finish(name, e, "float32", X, y_ref, lambda w_, b_: gen.ref_conv(X, w_, b_, attrs), unr, rnd)
    return model, e


def loop_case(name):
    """Loop(trip count 2): body v_out = BN(Conv(v_in, W, conv_B)), W and conv_B
    from the outer graph, BN parameters body initializers; Y = the final v."""
    rng = gen.rng_for(name)
    X, W, b, attrs = gen.conv_layer(rng, (1, 3, 4, 4), M=3, w_range=0.6)
    st, dts = gen.make_bn_stats(rng, 3)
    shape = list(X.shape)
    body = helper.make_graph(
        [helper.make_node("Conv", ["v_in", "W", "conv_B"], ["body_conv_out"], name="body_conv",
                          **attrs),
         helper.make_node("BatchNormalization", ["body_conv_out", "bn_scale", "bn_B",
                                                 "bn_mean", "bn_var"], ["v_out"],
                          name="body_bn", epsilon=EPS),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond")],
        "loop_body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, shape)],
        bn_params_tensors(st, dts, "bn_"))
    g = gen.Graph()
    g.input("X", "float32", X.shape)
    g.const("W", W, "float32")
    g.const("conv_B", b, "float32")
    g.inits.append(numpy_helper.from_array(np.array(2, dtype=np.int64), "trip_count"))
    g.nodes.append(helper.make_node("Loop", ["trip_count", "", "X"], ["Y"], name="loop1",
                                    body=body))
    g.output("Y", "float32", shape)
    step = lambda v, w_, b_: gen.ref_conv(v, w_, b_, attrs)
    y_ref = X
    for _ in range(2):
        y_ref = gen.ref_bn(step(y_ref, W, b), st, EPS)
    unr, rnd = fold_params("float32", *gen.fold_conv(W, b, *gen.bn_factors(st, EPS)))
    e = gen.Expect()
    finish(name, e, "float32", X, y_ref, lambda w_, b_: step(step(X, w_, b_), w_, b_), unr, rnd)
    return g.model(), e


def stats_fp16_overflow(rng, M, dtype, stat_dtype):
    """Channel 1: scale 60000, var 0.1: s ~ 1.9e5, so W * s passes 65504."""
    st, dts = gen.make_bn_stats(rng, M, dtype, stat_dtype)
    st["scale"][1] = 60000.0
    st["var"][1] = gen.quant(0.1, dtype)
    return st, dts


def edit_stats_used(g, ctx):
    """BN outputs Y, running_mean, running_var; running_mean is a graph output."""
    gen.edit_training_outputs(["Y", "running_mean", "running_var"])(g, ctx)
    g.output("running_mean", ctx["dtype"], (ctx["y_layer"].shape[1],))


def conv_fp16_overflow(name):
    model, _ = gen.conv_case(name, attrs=P1, dtype="float16", stats=stats_fp16_overflow,
                            fold=False)
    # the self check: this fold must overflow float16
    W = gen.tensor_values([t for t in model.graph.initializer if t.name == "W"][0])
    st = {k: gen.tensor_values([t for t in model.graph.initializer if t.name == k][0])
          for k in ("scale", "B", "mean", "var")}
    s, _ = gen.bn_factors(st, EPS)
    Wf = W * s.reshape(-1, 1, 1, 1)
    assert np.abs(Wf).max() > 65504, np.abs(Wf).max()
    return model, None


# --------------------------------------------------------------------------
# The table: name, builder, [(option, expectation, note), ...]
#   expectation: fold | lower | fold+lower | skip CODE | no-action
#   option: - | lower_standalone | assume_inference | freeze_inputs
# --------------------------------------------------------------------------

CONV = lambda **kw: (lambda n: gen.conv_case(n, **dict({"attrs": P1}, **kw)))

CASES = [
    ("matmul_bn", lambda n: matmul_case(n),
     [("-", "fold", "MatMul becomes Gemm: B's columns scaled, C = t")]),
    ("matmul_bn_rank3", lambda n: matmul_case(n, rank3=True),
     [("-", "skip UNSUPPORTED_LAYER", "X [2,3,5]: BN axis 1 is T, not B's column")]),
    ("matmul_bn_double", lambda n: matmul_case(n, dtype="float64"),
     [("-", "fold", "float64 matmul_bn; input_X/output_Y double")]),
    ("bn_matmul", lambda n: bn_matmul_case(n),
     [("-", "fold", "BN(5) -> MatMul becomes Gemm: B's rows scaled, C = t B")]),
    ("bn_matmul_rank3", lambda n: bn_matmul_case(n, rank3=True),
     [("-", "skip UNSUPPORTED_LAYER", "X [2,3,5]: BN axis 1 is T, not the features")]),
    ("bn_matmul_double", lambda n: bn_matmul_case(n, dtype="float64"),
     [("-", "fold", "float64 bn_matmul; input_X/output_Y double")]),
    ("bn_conv", lambda n: bn_conv_case(n),
     [("-", "fold", "BN before a Conv without padding, with bias")]),
    ("bn_conv_group", lambda n: bn_conv_case(n, C=4, M=6, group=2, bias=False),
     [("-", "fold", "group 2, no bias (a bias is added)")]),
    ("bn_conv_padded", lambda n: bn_conv_case(n, attrs=P1, fold=False),
     [("-", "skip PADDING", "pads 1")]),
    ("bn_conv_same", lambda n: bn_conv_case(n, attrs={"auto_pad": "SAME_UPPER"}, fold=False),
     [("-", "skip PADDING", "auto_pad SAME_UPPER")]),
    ("bn_conv_same_k1", lambda n: bn_conv_case(n, attrs={"auto_pad": "SAME_UPPER",
                                                         "strides": [2, 2]}, k=1),
     [("-", "fold", "auto_pad SAME_UPPER, kernel 1, stride 2: SAME pads nothing")]),
    ("bn_conv_same_k2s2", lambda n: bn_conv_case(n, attrs={"auto_pad": "SAME_LOWER",
                                                           "strides": [2, 2]}, k=2),
     [("-", "fold", "auto_pad SAME_LOWER, kernel 2 = stride 2 dividing 6: pads nothing")]),
    ("bn_conv_same_k2s2_odd", lambda n: bn_conv_case(n, attrs={"auto_pad": "SAME_UPPER",
                                                               "strides": [2, 2]}, k=2,
                                                     size=7, fold=False),
     [("-", "skip PADDING", "auto_pad SAME_UPPER, kernel 2, stride 2, size 7: pads 1")]),
    ("bn_two_readers", bn_two_readers_case,
     [("-", "skip LAYER_MULTI_CONSUMER", "BN -> Conv and BN -> Relu"),
      ("lower_standalone", "lower", "the BN becomes Mul + Add")]),
    ("bn_gemm", lambda n: bn_gemm_case(n),
     [("-", "fold", "BN(5) -> Gemm transB 1, alpha 0.5, beta 2, C [4]")]),
    ("bn_gemm_transA", lambda n: bn_gemm_case(n, transA=1, fold=False),
     [("-", "skip UNSUPPORTED_LAYER", "transA 1")]),
    ("conv_mul_add", lambda n: affine_case(n, mul=("M", 1, 1), add=(1, "M", 1, 1)),
     [("-", "fold", "no BN: actions Mul, Add")]),
    ("conv_mul", lambda n: affine_case(n, mul=(1, "M", 1, 1), mul_first_operand=True),
     [("-", "fold", "Mul(K, conv_out), K [1,M,1,1]")]),
    ("conv_add", lambda n: affine_case(n, add=("M", 1, 1), add_first_operand=True),
     [("-", "fold", "Add(K, conv_out), K [M,1,1]")]),
    ("conv_mul_scalar", lambda n: affine_case(n, mul=()),
     [("-", "fold", "Mul by a scalar constant")]),
    ("gemm_mul_add", lambda n: affine_case(n, op="Gemm", mul=("M",), add=(1, "M")),
     [("-", "fold", "Gemm(alpha 0.5, beta 2, C [4]) -> Mul([N]) -> Add([1,N])")]),
    ("conv_mul_spatial", lambda n: affine_case(n, mul=(1, 1, 5, 5), fold=False),
     [("-", "no-action", "Mul by [1,1,H,W] is not per channel: model unchanged")]),
    ("convtranspose_mul_add",
     lambda n: affine_case(n, op="ConvTranspose", mul=(1, "M", 1, 1), add=("M", 1, 1)),
     [("-", "fold", "ConvTranspose group 2 (C_in 4, M 6) -> Mul -> Add")]),
    ("conv_bn_mul_add", lambda n: affine_case(n, bn=True, mul=("M", 1, 1), add=(1, "M", 1, 1)),
     [("-", "fold", "actions BatchNormalization, Mul, Add")]),
    ("bn_bn_conv", bn_bn_conv_case,
     [("-", "fold", "both BNs fold into the Conv (position before)")]),
    ("conv_bn_bn_relu_bn", conv_bn_bn_relu_bn_case,
     [("-", "fold", "bn1, bn2 fold; bn3 (after Relu) skips NO_LAYER"),
      ("lower_standalone", "fold+lower", "bn1, bn2 fold; bn3 becomes Mul + Add")]),
    ("relu_bn", lambda n: standalone_case(n, relu=True),
     [("-", "skip NO_LAYER", "X [1,4,4,4] -> Relu -> BN"),
      ("lower_standalone", "lower", "BN becomes Mul(S) -> Add(T), S/T [4,1,1]")]),
    ("relu_bn_fp16", lambda n: standalone_case(n, relu=True, dtype="float16"),
     [("-", "skip NO_LAYER", "float16 X -> Relu -> BN"),
      ("lower_standalone", "lower", "float16 S/T; checked at float16's tolerance")]),
    ("input_bn", lambda n: standalone_case(n, relu=False),
     [("-", "skip NO_LAYER", "BN on graph input X [2,4,5,5]"),
      ("lower_standalone", "lower", "BN becomes Mul(S) -> Add(T), S/T [4,1,1]")]),
    ("function_conv_bn", function_case,
     [("-", "fold", "the body of model-local function local.ConvBN: new weights are Constant nodes")]),
    ("if_conv_bn", if_case,
     [("-", "fold", "then_branch BN folds; outer W, conv_B stay for else_branch")]),
    ("loop_conv_bn", loop_case,
     [("-", "fold", "Loop body (trip count 2) Conv -> BN, W from the outer graph")]),
    ("conv2d_fp16_overflow", conv_fp16_overflow,
     [("-", "skip NON_FINITE", "folded weight > 65504: model unchanged")]),
    ("conv2d_bf16_ok", CONV(dtype="bfloat16", opset=15),
     [("-", "fold", "bfloat16, opset 15")]),
    ("conv_bn_opset99", CONV(opset=99, fold=False),
     [("-", "skip UNKNOWN_OPSET", "ai.onnx opset 99: BatchNormalization's meaning unknown")]),
    ("conv_bn_training15", CONV(opset=15, bn_attrs={"training_mode": 1}),
     [("-", "skip TRAINING_MODE", "training_mode 1, only Y"),
      ("assume_inference", "fold", "expected = the inference fold (running stats)")]),
    ("conv_bn_is_test0_opset6", CONV(opset=6, bn_attrs={"is_test": 0}),
     [("-", "skip TRAINING_MODE", "is_test 0, only Y"),
      ("assume_inference", "fold", "expected = the inference fold")]),
    ("conv_bn_extra_outputs_opset9", CONV(opset=9, edit=gen.edit_training_outputs(
        ["Y", "running_mean", "running_var", "saved_mean", "saved_var"])),
     [("-", "skip TRAINING_MODE", "5 outputs named, none used"),
      ("assume_inference", "fold", "expected = the inference fold")]),
    ("conv_bn_training15_stats_used", CONV(opset=15, bn_attrs={"training_mode": 1},
                                           edit=edit_stats_used, fold=False),
     [("-", "skip TRAINING_MODE", "running_mean is a graph output"),
      ("assume_inference", "skip TRAINING_MODE", "the statistics are used: still a skip")]),
    ("conv_bn_ir4_inputs", CONV(init_as_inputs=True),
     [("-", "skip PARAM_OVERRIDABLE", "IR 8, every initializer also a graph input"),
      ("freeze_inputs", "fold", "6 inputs frozen; graph inputs afterwards: X only")]),
]


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def save_case(name, model, expect):
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name + ".onnx")
    onnx.save_model(model, path)
    gen.note(path)
    if expect is not None:
        gen.save_expected(OUT, name, expect)


def write_cases_txt():
    path = os.path.join(OUT, "cases.txt")
    with open(path, "w") as f:
        f.write("# Fold-pattern cases (testdata/gen_patterns.py; tests/test_patterns.c checks\n"
                "# that its table agrees with this file).  One line per (model, option) run:\n"
                "#   NAME  OPTION  EXPECTATION  [CODE]  -- note\n"
                "# OPTION: - (defaults) | lower_standalone | assume_inference | freeze_inputs\n"
                "# EXPECTATION: fold | lower | fold+lower | skip CODE | no-action\n"
                "# fold, lower, fold+lower: NAME.expected.onnx exists.\n")
        for name, _, runs in CASES:
            for opt, expect, text in runs:
                f.write("%-30s %-17s %-24s -- %s\n" % (name, opt, expect, text))
    gen.note(path)


def main():
    gen.clean(OUT, names=("cases.txt",))
    names = [n for n, _, _ in CASES]
    assert len(names) == len(set(names))
    for name, build, runs in CASES:
        model, expect = build(name)
        needs_expect = any(not e.startswith("skip") and e != "no-action" for _, e, _ in runs)
        assert (expect is not None) == needs_expect, name
        save_case(name, model, expect)
    write_cases_txt()
    gen.summary(len(CASES), 1024 * 1024)


if __name__ == "__main__":
    main()
