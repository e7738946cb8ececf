#!/usr/bin/python3
"""Generate ONNX backend-style node tests of OLD operator versions (opsets 1-9).

    /usr/bin/python3 testdata/gen_legacy_node_tests.py OUTDIR

Why: the ONNX backend test generator (`backend-test-tools generate-data`, which
`make conformance` runs from Debian's python3-onnx 1.12) writes every operator
only at its newest version, so the versions old models still use -- the legacy
`broadcast`/`axis` attributes of the binary operators before opset 7,
`consumed_inputs` and `is_test` of opset 1, the old Gemm, PRelu, Softmax,
Upsample, ... -- are never run by it.  This script writes such cases in the same
layout, for build/tests/conformance:

    OUTDIR/test_legacy_<op>_<version>_<variant>/model.onnx
    OUTDIR/test_legacy_<op>_<version>_<variant>/test_data_set_0/input_<i>.pb
    OUTDIR/test_legacy_<op>_<version>_<variant>/test_data_set_0/output_<i>.pb

Every model is one node importing exactly the ai.onnx opset of the version
tested (IR 3 up to opset 8, IR 4 for opset 9, as the ONNX releases that brought
those opsets wrote them) and passes onnx.checker.check_model.  It has no
initializers: every operand is a graph input (IR 3 would require each
initializer to be listed as an input too).  The .pb files are TensorProtos named
after the graph inputs/outputs, as in the official backend tests.

The expected outputs are computed here with numpy, in float64 from the float32
inputs and rounded to float32, from each operator's definition in THAT version
(onnx's docs/Changelog.md; the same text is onnx.defs.get_schema(op, version).doc);
no runtime produces them.  Where the old text is vague the function says which
reading it takes and why.  The output is deterministic: every case seeds its own
generator from its name.  Re-running removes OUTDIR/test_legacy_* first.
"""

import os
import shutil
import sys
import zlib

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.mapping import NP_TYPE_TO_TENSOR_TYPE

CASES = []  # (name, op, opset, inputs, outputs, attrs); inputs/outputs: [(name, array)]


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def f32(rng, shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def nonzero(rng, shape, lo=0.5, hi=2.0):
    """float32 of magnitude in [lo, hi], random sign: safe divisors."""
    return (rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def add(name, op, opset, inputs, outputs, **attrs):
    """Registers test_legacy_<name>: one `op` node of ai.onnx `opset`.  inputs
    and outputs are [(name, array)]; outputs are cast to the inputs' float32
    unless already bool or integer."""
    outs = []
    for oname, arr in outputs:
        arr = np.asarray(arr)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        outs.append((oname, arr))
    CASES.append(("test_legacy_" + name, op, opset, inputs, outs, attrs))


def legacy_b(a_shape, b, axis=None):
    """B of the binary operators before opset 7 with broadcast=1, reshaped so
    that numpy's broadcasting computes what the old text says: a B of one
    element is a scalar; otherwise B's shape is a contiguous run of A's shape
    starting at `axis`, by default at the end of A (suffix matching)."""
    if b.size == 1:
        return b.reshape(())
    if axis is None:
        axis = len(a_shape) - b.ndim
    assert tuple(a_shape[axis:axis + b.ndim]) == b.shape, (a_shape, b.shape, axis)
    return b.reshape((1,) * axis + b.shape + (1,) * (len(a_shape) - axis - b.ndim))


# ---- binary arithmetic: Add Sub Mul Div 1 and 6 ---------------------------------------------

ARITH = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}

# (variant, A's shape, B's shape, attributes)
LEGACY_BROADCASTS = [
    ("bcast0", (2, 3, 4, 5), (2, 3, 4, 5), {"broadcast": 0}),
    ("suffix", (2, 3, 4, 5), (4, 5), {"broadcast": 1}),
    ("axis", (2, 3, 4, 5), (3, 4), {"broadcast": 1, "axis": 1}),
    ("scalar", (2, 3, 4, 5), (1,), {"broadcast": 1}),
    # B [1, 1]: one element too, a scalar though of rank 2 (the text's example)
    ("one_element", (2, 3, 4, 5), (1, 1), {"broadcast": 1}),
    # B fits A from axis 0 and at A's end: numpy's (suffix) reading is wrong here
    ("axis0", (2, 3, 2, 3), (2, 3), {"broadcast": 1, "axis": 0}),
]
SUFFIX, AXIS = LEGACY_BROADCASTS[1], LEGACY_BROADCASTS[2]


def gen_arith():
    """Add, Sub, Mul, Div 1 and 6: C = A op B, for every LEGACY_BROADCASTS
    variant; with broadcast=1 B is broadcast onto A (legacy_b), with
    broadcast=0 the shapes are equal.  Opset 1 also has
    consumed_inputs, a hint for in-place execution that does not change the
    result (one case with it, and with broadcast left at its default 0)."""
    for op, fn in ARITH.items():
        for opset in (1, 6):
            for variant, a_shape, b_shape, attrs in LEGACY_BROADCASTS:
                name = "%s_%d_%s" % (op.lower(), opset, variant)
                rng = rng_for(name)
                a = f32(rng, a_shape)
                b = nonzero(rng, b_shape) if op == "Div" else f32(rng, b_shape)
                want = fn(a.astype(np.float64),
                          legacy_b(a.shape, b.astype(np.float64), attrs.get("axis")))
                add(name, op, opset, [("A", a), ("B", b)], [("C", want)], **attrs)
    rng = rng_for("add_1_consumed_inputs")
    a, b = f32(rng, (3, 4, 5)), f32(rng, (3, 4, 5))
    add("add_1_consumed_inputs", "Add", 1, [("A", a), ("B", b)],
        [("C", a.astype(np.float64) + b)], consumed_inputs=[1, 0])


# ---- Pow 1 --------------------------------------------------------------------------------

def gen_pow():
    """Pow 1: Z = X ^ Y elementwise, Y broadcast onto X as Add's B (positive
    bases, so every power is real)."""
    for variant, y_shape, attrs in [("equal", (3, 4, 5), {}),
                                    ("suffix", (4, 5), {"broadcast": 1})]:
        name = "pow_1_" + variant
        rng = rng_for(name)
        x = f32(rng, (2, 3, 4, 5) if attrs else y_shape, 0.5, 2.0)
        y = f32(rng, y_shape, -2.0, 2.0)
        yb = legacy_b(x.shape, y.astype(np.float64)) if attrs else y.astype(np.float64)
        add(name, "Pow", 1, [("X", x), ("Y", y)], [("Z", np.power(x.astype(np.float64), yb))],
            **attrs)


# ---- comparisons and logic: Equal Less Greater And Or Xor 1 ------------------------------------

def gen_compare():
    """Equal (int32, int64), Less and Greater (float) 1: C = A op B as bool,
    B broadcast onto A as Add's (broadcast=1; by suffix, or from axis 1)."""
    for op, fn, dtype in [("Equal", np.equal, np.int32), ("Equal", np.equal, np.int64),
                          ("Less", np.less, np.float32), ("Greater", np.greater, np.float32)]:
        for variant, a_shape, b_shape, attrs in (SUFFIX, AXIS):
            tag = "_int32" if dtype == np.int32 else "_int64" if dtype == np.int64 else ""
            name = "%s_1_%s%s" % (op.lower(), variant, tag)
            rng = rng_for(name)
            if dtype == np.float32:
                a, b = f32(rng, a_shape), f32(rng, b_shape)
                # some equal pairs, so that < and > are told from <= and >=
                a.reshape(-1)[::7] = np.broadcast_to(legacy_b(a.shape, b, attrs.get("axis")),
                                                     a.shape).reshape(-1)[::7]
            else:  # small integers: many equal pairs
                a = rng.integers(0, 3, a_shape).astype(dtype)
                b = rng.integers(0, 3, b_shape).astype(dtype)
            want = fn(a, legacy_b(a.shape, b, attrs.get("axis")))
            add(name, op, 1, [("A", a), ("B", b)], [("C", want)], **attrs)


def gen_logical():
    """And, Or, Xor 1 on bool: B broadcast onto A (broadcast=1 with axis=1,
    and by suffix)."""
    for op, fn in [("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor)]:
        for variant, a_shape, b_shape, attrs in (SUFFIX, AXIS):
            name = "%s_1_%s" % (op.lower(), variant)
            rng = rng_for(name)
            a = rng.integers(0, 2, a_shape).astype(bool)
            b = rng.integers(0, 2, b_shape).astype(bool)
            add(name, op, 1, [("A", a), ("B", b)],
                [("C", fn(a, legacy_b(a.shape, b, attrs.get("axis"))))], **attrs)


# ---- PRelu 1 and 6 ------------------------------------------------------------------------

def gen_prelu():
    """PRelu 1 and 6: Y = slope * X where X < 0, else X.  The text says only
    that a slope of size 1 is shared across channels; the slope of C values of
    an [N, C, H, W] X (caffe2's exports) is read along axis 1, as the ONNX
    reference implementation reads the old versions (onnx/reference/ops/
    op_prelu.py: when numpy's broadcasting fails, a 1-D slope of d values goes
    along the one dimension of X of size d).  C = 3 differs from N, H and W,
    so that reading is unambiguous, and numpy alone could not broadcast it."""
    for opset in (1, 6):
        for variant, s_shape in [("scalar", (1,)), ("channel", (3,)), ("full", (2, 3, 4, 5))]:
            name = "prelu_%d_%s" % (opset, variant)
            rng = rng_for(name)
            x = f32(rng, (2, 3, 4, 5))
            slope = f32(rng, s_shape, 0.05, 0.5)
            s = slope.astype(np.float64)
            if variant == "channel":
                s = s.reshape(1, 3, 1, 1)
            want = np.where(x < 0, s * x, x)
            add(name, "PRelu", opset, [("X", x), ("slope", slope)], [("Y", want)])


# ---- pointwise activations 1 and 6 -------------------------------------------------------

def gen_activations():
    """Relu, Sigmoid, Tanh, LeakyRelu (alpha, default 0.01) and Elu (alpha,
    default 1.0) at 1, with consumed_inputs (a hint that changes nothing), and
    at 6, where it is gone; LeakyRelu and Elu also with their default alpha."""
    acts = [
        ("Relu", {}, lambda x: np.maximum(x, 0.0)),
        ("Sigmoid", {}, lambda x: 1.0 / (1.0 + np.exp(-x))),
        ("Tanh", {}, np.tanh),
        ("LeakyRelu", {"alpha": 0.2}, lambda x: np.where(x < 0, 0.2 * x, x)),
        ("Elu", {"alpha": 0.5}, lambda x: np.where(x < 0, 0.5 * (np.exp(x) - 1.0), x)),
    ]
    defaults = [
        ("LeakyRelu", lambda x: np.where(x < 0, np.float64(np.float32(0.01)) * x, x)),
        ("Elu", lambda x: np.where(x < 0, np.exp(x) - 1.0, x)),
    ]
    for op, attrs, fn in acts:
        for opset in (1, 6):
            extra = {"consumed_inputs": [1]} if opset == 1 else {}
            name = "%s_%d%s" % (op.lower(), opset, "_consumed_inputs" if extra else "")
            rng = rng_for(name)
            x = f32(rng, (3, 4, 5), -3.0, 3.0)
            add(name, op, opset, [("X", x)], [("Y", fn(x.astype(np.float64)))],
                **attrs, **extra)
    for op, fn in defaults:
        for opset in (1, 6):
            name = "%s_%d_default_alpha" % (op.lower(), opset)
            rng = rng_for(name)
            x = f32(rng, (3, 4, 5), -3.0, 3.0)
            add(name, op, opset, [("X", x)], [("Y", fn(x.astype(np.float64)))])


# ---- BatchNormalization 1, 6, 7, 9 ---------------------------------------------------------

def gen_batchnorm():
    """BatchNormalization in test mode, output Y only: Y = scale * (X - mean) /
    sqrt(var + epsilon) + B per channel (axis 1).  Test mode is is_test=1 at 1
    and 6 (with spatial=1; opset 1 also requires consumed_inputs: mean and var
    updated in place, as caffe2 wrote it); from 7 on is_test is gone and one
    output means inference."""
    for opset, attrs in [(1, {"is_test": 1, "epsilon": 1e-3, "spatial": 1,
                              "consumed_inputs": [0, 0, 0, 1, 1]}),
                         (6, {"is_test": 1, "epsilon": 1e-3, "spatial": 1}),
                         (7, {"epsilon": 1e-3}),
                         (9, {"epsilon": 1e-3})]:
        name = "batchnormalization_%d" % opset
        rng = rng_for(name)
        x = f32(rng, (2, 3, 4, 5))
        scale, b, mean = f32(rng, 3), f32(rng, 3), f32(rng, 3)
        var = f32(rng, 3, 0.1, 2.0)
        eps = np.float64(np.float32(attrs["epsilon"]))
        ch = lambda t: t.astype(np.float64).reshape(1, 3, 1, 1)
        want = ch(scale) * (x - ch(mean)) / np.sqrt(ch(var) + eps) + ch(b)
        add(name, "BatchNormalization", opset,
            [("X", x), ("scale", scale), ("B", b), ("mean", mean), ("var", var)],
            [("Y", want)], **attrs)


# ---- variadic Sum Max Min Mean 1, 6, 8 -----------------------------------------------------

def gen_variadic():
    """Sum, Max, Min, Mean of three inputs: at 1 and 6 of one shape, at 8 with
    numpy's (multidirectional) broadcasting, [3,1,5] [4,1] [5] -> [3,4,5]."""
    fns = {"Sum": lambda ts: ts[0] + ts[1] + ts[2],
           "Max": lambda ts: np.maximum(np.maximum(ts[0], ts[1]), ts[2]),
           "Min": lambda ts: np.minimum(np.minimum(ts[0], ts[1]), ts[2]),
           "Mean": lambda ts: (ts[0] + ts[1] + ts[2]) / 3.0}
    for op, fn in fns.items():
        for opset, shapes in [(1, [(3, 4, 5)] * 3), (6, [(3, 4, 5)] * 3),
                              (8, [(3, 1, 5), (4, 1), (5,)])]:
            name = "%s_%d_%s" % (op.lower(), opset, "broadcast" if opset == 8 else "equal")
            rng = rng_for(name)
            ins = [("data_%d" % i, f32(rng, s)) for i, s in enumerate(shapes)]
            want = fn([np.asarray(t, np.float64) for _, t in ins])
            add(name, op, opset, ins, [("result", want)])


# ---- Gemm 1, 6, 7, 9 ----------------------------------------------------------------------

def gen_gemm():
    """Gemm: Y = alpha * A' * B' + beta * C, A' = A^T if transA, B' = B^T if
    transB; M = 3, K = 5, N = 4.  At 1 and 6 C is [M, N] unless broadcast=1,
    which broadcasts it (here [N] along the rows, [1] everywhere); at 7 and 9 C
    broadcasts unidirectionally to [M, N] (here [N] and [M, 1]).  Note that
    onnx's reference Gemm_6 leaves beta out when broadcast=0; the text says
    beta * C in every case, and the broadcast=0 cases use beta != 1."""
    M, K, N = 3, 5, 4
    cases = [  # (opset, variant, C shape, attrs)
        (1, "broadcast_n", (N,), {"broadcast": 1, "alpha": 0.5, "beta": 2.0}),
        (1, "broadcast_scalar", (1,), {"broadcast": 1, "alpha": 1.5, "beta": 0.5}),
        (1, "nobroadcast", (M, N), {"broadcast": 0, "alpha": 0.5, "beta": 1.5}),
        (1, "trans", (N,), {"broadcast": 1, "transA": 1, "transB": 1, "alpha": 2.0, "beta": 0.25}),
        (6, "broadcast_n", (N,), {"broadcast": 1, "alpha": 0.5, "beta": 2.0}),
        (6, "broadcast_scalar", (1,), {"broadcast": 1, "alpha": 1.5, "beta": 0.5}),
        (6, "nobroadcast", (M, N), {"broadcast": 0, "alpha": 0.5, "beta": 1.5}),
        (6, "trans", (M, N), {"transA": 1, "transB": 1, "alpha": 2.0, "beta": 0.25}),
        (7, "bias_n", (N,), {"alpha": 0.5, "beta": 2.0}),
        (7, "trans", (M, 1), {"transA": 1, "transB": 1, "alpha": 2.0, "beta": 0.25}),
        (7, "full", (M, N), {}),
        (9, "bias_n", (N,), {"alpha": 0.5, "beta": 2.0}),
        (9, "trans", (M, 1), {"transA": 1, "transB": 1, "alpha": 2.0, "beta": 0.25}),
    ]
    for opset, variant, c_shape, attrs in cases:
        name = "gemm_%d_%s" % (opset, variant)
        rng = rng_for(name)
        a = f32(rng, (K, M) if attrs.get("transA") else (M, K))
        b = f32(rng, (N, K) if attrs.get("transB") else (K, N))
        c = f32(rng, c_shape)
        a64, b64, c64 = (t.astype(np.float64) for t in (a, b, c))
        if attrs.get("transA"):
            a64 = a64.T
        if attrs.get("transB"):
            b64 = b64.T
        alpha = np.float64(np.float32(attrs.get("alpha", 1.0)))
        beta = np.float64(np.float32(attrs.get("beta", 1.0)))
        want = alpha * (a64 @ b64) + beta * np.broadcast_to(c64, (M, N))
        add(name, "Gemm", opset, [("A", a), ("B", b), ("C", c)], [("Y", want)], **attrs)


# ---- shape operators: Concat Reshape Squeeze Unsqueeze Flatten ------------------------------

def gen_shape_ops():
    """Concat 1 without axis (default 1) and 4 with axis 2; Reshape 1 with the
    shape attribute (0: that dimension of the input, -1: inferred); Squeeze 1
    and Unsqueeze 1 with axes (Unsqueeze's as seen in the output: [3,4,5] with
    [0, 4] -> [1,3,4,5,1]); Flatten 1 at axis 1 and 2."""
    rng = rng_for("concat_1_default_axis")
    a, b = f32(rng, (2, 3, 4)), f32(rng, (2, 2, 4))
    add("concat_1_default_axis", "Concat", 1, [("A", a), ("B", b)],
        [("concat_result", np.concatenate([a, b], axis=1))])
    rng = rng_for("concat_4_axis2")
    a, b, c = f32(rng, (2, 3, 1)), f32(rng, (2, 3, 4)), f32(rng, (2, 3, 2))
    add("concat_4_axis2", "Concat", 4, [("A", a), ("B", b), ("C", c)],
        [("concat_result", np.concatenate([a, b, c], axis=2))], axis=2)

    for variant, shape, out_shape in [("zero_minus1", [0, -1], (2, 12)),
                                      ("minus1_zero", [4, 0, -1], (4, 3, 2))]:
        name = "reshape_1_" + variant
        x = f32(rng_for(name), (2, 3, 4))
        add(name, "Reshape", 1, [("data", x)], [("reshaped", x.reshape(out_shape))], shape=shape)

    for variant, axes, out_shape in [("axes02", [0, 2], (3, 5)), ("axis2", [2], (1, 3, 5))]:
        name = "squeeze_1_" + variant
        x = f32(rng_for(name), (1, 3, 1, 5))
        add(name, "Squeeze", 1, [("data", x)], [("squeezed", x.reshape(out_shape))], axes=axes)
    for variant, axes, out_shape in [("axes04", [0, 4], (1, 3, 4, 5, 1)),
                                     ("axes12", [1, 2], (3, 1, 1, 4, 5))]:
        name = "unsqueeze_1_" + variant
        x = f32(rng_for(name), (3, 4, 5))
        add(name, "Unsqueeze", 1, [("data", x)], [("expanded", x.reshape(out_shape))], axes=axes)

    for axis, out_shape in [(1, (2, 60)), (2, (6, 20))]:
        name = "flatten_1_axis%d" % axis
        x = f32(rng_for(name), (2, 3, 4, 5))
        add(name, "Flatten", 1, [("input", x)], [("output", x.reshape(out_shape))], axis=axis)


# ---- Dropout 1, 6, 7 and Clip 1, 6 --------------------------------------------------------

def gen_dropout_clip():
    """Dropout in test mode, output only (no mask): Y = X (is_test=1 at 1 and
    6; at 7 is_test is gone and inference is the identity).  Clip 1 and 6:
    min and max attributes, each unbounded when absent (numeric_limits lowest()
    and max()); one case of each version with max only."""
    for opset, attrs in [(1, {"is_test": 1, "ratio": 0.3}), (6, {"is_test": 1, "ratio": 0.3}),
                         (7, {"ratio": 0.3})]:
        name = "dropout_%d_test_mode" % opset
        x = f32(rng_for(name), (3, 4, 5))
        add(name, "Dropout", opset, [("data", x)], [("output", x)], **attrs)
    for opset in (1, 6):
        for variant, attrs in [("min_max", {"min": -0.5, "max": 0.8}), ("max_only", {"max": 0.3})]:
            name = "clip_%d_%s" % (opset, variant)
            x = f32(rng_for(name), (3, 4, 5))
            lo = np.float32(attrs.get("min", -np.inf))
            add(name, "Clip", opset, [("input", x)],
                [("output", np.minimum(np.maximum(x, lo), np.float32(attrs["max"])))], **attrs)


# ---- Softmax 1 ----------------------------------------------------------------------------

def gen_softmax():
    """Softmax 1: the input is coerced to 2-D, [a_0*..*a_{k-1}, a_k*..*a_{n-1}]
    for axis k (default 1), and each row is normalised: on [2,3,4] with axis 1
    over all 12 trailing values, not over axis 1 alone as from opset 13."""
    for variant, attrs in [("axis1", {"axis": 1}), ("default_axis", {}), ("axis0", {"axis": 0}),
                           ("axis2", {"axis": 2})]:
        name = "softmax_1_" + variant
        x = f32(rng_for(name), (2, 3, 4), -3.0, 3.0)
        k = attrs.get("axis", 1)
        x2 = x.astype(np.float64).reshape(int(np.prod(x.shape[:k])), -1)
        e = np.exp(x2 - x2.max(axis=1, keepdims=True))
        add(name, "Softmax", 1, [("input", x)],
            [("output", (e / e.sum(axis=1, keepdims=True)).reshape(x.shape))], **attrs)


# ---- pooling: MaxPool 1, AveragePool 1 and 7, GlobalAveragePool 1 ---------------------------

def pool2d(x, kernel, pads, strides, how):
    """Reference 2-D pooling of NCHW x: pads [top, left, bottom, right]; the
    output size floor((in + pads - kernel) / stride + 1).  how: 'max' (pads
    never win), 'avg_exclude' (divide by the real elements in the window),
    'avg_include' (divide by the kernel size: pads count as zeros)."""
    n, c, h, w = x.shape
    oh = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * strides[0] - pads[0], j * strides[1] - pads[1]
            win = x[:, :, max(h0, 0):min(h0 + kernel[0], h), max(w0, 0):min(w0 + kernel[1], w)]
            if how == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            elif how == "avg_exclude":
                y[:, :, i, j] = win.mean(axis=(2, 3))
            else:
                y[:, :, i, j] = win.sum(axis=(2, 3)) / (kernel[0] * kernel[1])
    return y


def gen_pool():
    """MaxPool 1 and AveragePool 1 (average over the real elements: 'exclude
    pad'), AveragePool 7 with count_include_pad=1 (and 0), on [1,2,5,6] with a
    3x3 kernel, pads 1 and strides 2; GlobalAveragePool 1 (mean over H, W;
    output [N, C, 1, 1])."""
    kernel, pads, strides = [3, 3], [1, 1, 1, 1], [2, 2]
    geo = dict(kernel_shape=kernel, pads=pads, strides=strides)
    for name, op, opset, how, extra in [
            ("maxpool_1_pads_strides", "MaxPool", 1, "max", {}),
            ("averagepool_1_pads_strides", "AveragePool", 1, "avg_exclude", {}),
            ("averagepool_7_count_include_pad", "AveragePool", 7, "avg_include",
             {"count_include_pad": 1}),
            ("averagepool_7_exclude_pad", "AveragePool", 7, "avg_exclude",
             {"count_include_pad": 0})]:
        x = f32(rng_for(name), (1, 2, 5, 6))
        add(name, op, opset, [("X", x)],
            [("Y", pool2d(x.astype(np.float64), kernel, pads, strides, how))], **geo, **extra)
    x = f32(rng_for("globalaveragepool_1"), (2, 3, 4, 5))
    add("globalaveragepool_1", "GlobalAveragePool", 1, [("X", x)],
        [("Y", x.astype(np.float64).mean(axis=(2, 3), keepdims=True))])


# ---- Upsample 7 and 9 ---------------------------------------------------------------------

def gen_upsample():
    """Upsample nearest with integer scales [1, 1, 2, 3] on [1,2,2,3]: output
    dimension floor(in * scale), every value repeated scale times along its
    axis (output index i reads input index floor(i / scale)).  Scales are the
    attribute at 7 and the second input (float) at 9."""
    scales = [1.0, 1.0, 2.0, 3.0]

    def nearest(x):
        for axis, s in enumerate(scales):
            x = np.repeat(x, int(s), axis=axis)
        return x
    x = f32(rng_for("upsample_7_nearest"), (1, 2, 2, 3))
    add("upsample_7_nearest", "Upsample", 7, [("X", x)], [("Y", nearest(x))],
        scales=scales, mode="nearest")
    x = f32(rng_for("upsample_9_nearest"), (1, 2, 2, 3))
    add("upsample_9_nearest", "Upsample", 9,
        [("X", x), ("scales", np.array(scales, np.float32))], [("Y", nearest(x))], mode="nearest")


# ---- writing ------------------------------------------------------------------------------

def ir_version_for(opset):
    """The IR version of the ONNX release that brought the opset: 1.0-1.3
    (opsets 1-8) wrote IR 3, 1.4 (opset 9) IR 4."""
    return 3 if opset <= 8 else 4


def value_info(name, arr):
    return helper.make_tensor_value_info(name, NP_TYPE_TO_TENSOR_TYPE[arr.dtype], arr.shape)


def write_case(outdir, name, op, opset, inputs, outputs, attrs):
    node = helper.make_node(op, [n for n, _ in inputs], [n for n, _ in outputs], name=op.lower(),
                            **attrs)
    graph = helper.make_graph([node], name, [value_info(n, a) for n, a in inputs],
                              [value_info(n, a) for n, a in outputs])
    model = helper.make_model(graph, producer_name="gen_legacy_node_tests",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version_for(opset)
    onnx.checker.check_model(model)
    case_dir = os.path.join(outdir, name)
    data_dir = os.path.join(case_dir, "test_data_set_0")
    os.makedirs(data_dir)
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for i, (tname, arr) in enumerate(tensors):
            with open(os.path.join(data_dir, "%s_%d.pb" % (kind, i)), "wb") as f:
                f.write(numpy_helper.from_array(arr, tname).SerializeToString())


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_legacy_node_tests.py OUTDIR")
    outdir = sys.argv[1]
    for gen in (gen_arith, gen_pow, gen_compare, gen_logical, gen_prelu, gen_activations,
                gen_batchnorm, gen_variadic, gen_gemm, gen_shape_ops, gen_dropout_clip,
                gen_softmax, gen_pool, gen_upsample):
        gen()
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    os.makedirs(outdir, exist_ok=True)
    for old in os.listdir(outdir):
        if old.startswith("test_legacy_"):
            shutil.rmtree(os.path.join(outdir, old))
    for case in CASES:
        write_case(outdir, *case)
    os.utime(outdir)  # newer than this script, for make
    print("%d legacy node tests in %s" % (len(CASES), outdir))


if __name__ == "__main__":
    main()
