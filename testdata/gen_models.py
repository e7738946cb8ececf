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

The helpers (dtypes, BN statistics and folds, the torch references, Graph,
conv_case, Expect, TOL, writing) are testdata/gen_common.py's, shared with
gen_patterns.py and gen_health.py.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, external_data_helper, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_common import (  # noqa: E402  (testdata/gen_common.py: the shared helpers)
    EPS, HERE, Expect, Graph, bn_factors, bn_node, check_fold, clean, conv_case, conv_layer,
    edit_training_outputs, fold_conv, fold_gemm, make_bn_stats, note, quant, ref_bn, ref_conv,
    ref_gemm, rng_for, save_expected, summary, x_values)

OUT = os.path.join(HERE, "models")


# --------------------------------------------------------------------------
# Case builders (conv_case, for every Conv / ConvTranspose case: gen_common)
# --------------------------------------------------------------------------

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
    X, W, b, attrs = conv_layer(rng, (2, 3, 5, 5))
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
    X, W, b, attrs = conv_layer(rng, (2, 3, 5, 5))
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
        save_expected(OUT, name, expect)


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


def main():
    clean(OUT, (".onnx", ".data"))
    esc = os.path.join(HERE, "escape.data")
    if os.path.exists(esc):
        os.remove(esc)
    names = [n for n, _ in CASES]
    assert len(names) == len(set(names))
    for name, build in CASES:
        model, expect = build(name)
        save_case(name, model, expect)
        readback(name)
    summary(len(CASES), 2 * 1024 * 1024)


if __name__ == "__main__":
    main()
