#!/usr/bin/python3
"""Generate the BN health test models into testdata/health/.

Run with Debian's interpreter (python3-onnx 1.12, python3-numpy):

    /usr/bin/python3 testdata/gen_health.py

One tiny model per health finding (docs/contract.md, src/check/health.c): a Conv
followed by a BatchNormalization whose statistics are healthy except for the
channels a case spoils on purpose.  Helpers come from gen_common.py; the output
is deterministic (every case seeds from its name).

expected.txt lists, for every model, the findings bnfold must report, one per
line:

    MODEL CODE SEVERITY CHANNELS NODE

CHANNELS is a comma-separated list of channel indices, or `-` for a finding about
the BN as a whole; NODE is the BatchNormalization node's name.  A model with no
finding has one line `MODEL none - - -`.  The findings are derived here from the
values read back from the written file, by the rules below (the contract), and
then checked against what each case meant to spoil, so a typo in either shows.

    BN_NONFINITE     error    a channel with NaN or Inf in scale, B, mean or var
    BN_NEG_VAR       error    var < 0
    BN_TRAINING_MODE error    the BN is in training mode (whole BN)
    BN_EPS_NONPOS    warning  epsilon <= 0 (whole BN); error when some var == 0
    BN_ZERO_VAR      warning  var == 0
    BN_TINY_VAR      warning  0 < var < 1e-6
    BN_LARGE_SCALE   warning  |scale / sqrt(var + eps)| > 1e4 (NaN: no)
    BN_UNTRAINED     warning  more than one channel, mean all 0 and var all 1 (whole BN)
    BN_DEAD_CHANNEL  info     scale == 0
"""

import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_common as gen  # noqa: E402  (testdata/gen_common.py: the shared helpers)

OUT = os.path.join(HERE, "health")
EPS = gen.EPS
C = 4                         # channels of every BN
X_SHAPE = (1, 3, 6, 6)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def healthy_stats(rng, c=C):
    """Nothing to report: |scale| in [0.5, 1.5], var in [0.1, 2], mean and B
    nonzero; largest |s| = 1.5 / sqrt(0.1) < 5."""
    sign = lambda: rng.choice([-1.0, 1.0], c)
    st = {
        "scale": rng.uniform(0.5, 1.5, c) * sign(),
        "B": rng.uniform(0.2, 1.0, c) * sign(),
        "mean": rng.uniform(0.2, 1.0, c) * sign(),
        "var": rng.uniform(0.1, 2.0, c),
    }
    return st


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

def conv_bn(g, rng, x, c_in, idx, st, eps, opset, y, bn_attrs=None):
    """x -> Conv (3x3, pads 1, bias) -> BN -> y; idx 0: nodes conv / bn and
    parameters W, conv_B, scale, B, mean, var; idx k: conv<k>, bn<k>, W<k>,
    conv_B<k>, bn<k>_scale, ...  Returns y."""
    sfx = str(idx) if idx else ""
    W = gen.quant(rng.uniform(-1, 1, (C, c_in, 3, 3)), "float32")
    b = gen.quant(rng.uniform(-0.5, 0.5, C), "float32")
    g.const("W" + sfx, W, "float32")
    g.const("conv_B" + sfx, b, "float32")
    g.node("Conv", [x, "W" + sfx, "conv_B" + sfx], ["conv_out" + sfx], "conv" + sfx,
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    st = {k: gen.quant(v, "float32") for k, v in st.items()}
    dts = {k: "float32" for k in st}
    return gen.bn_node(g, "conv_out" + sfx, st, dts, y=y, name="bn" + sfx, opset=opset,
                      eps=eps, bn_attrs=bn_attrs, prefix="bn%s_" % sfx if idx else "")


def single(name, spoil=None, eps=EPS, opset=13, bn_attrs=None):
    """X -> conv -> bn -> Y with healthy statistics, then spoil(st) edits them."""
    rng = gen.rng_for(name)
    st = healthy_stats(rng)
    if spoil:
        spoil(st)
    g = gen.Graph()
    g.input("X", "float32", X_SHAPE)
    conv_bn(g, rng, "X", X_SHAPE[1], 0, st, eps, opset, "Y", bn_attrs)
    g.output("Y", "float32", (X_SHAPE[0], C) + X_SHAPE[2:])
    return g.model(opset)


def multi(name):
    """X -> conv1 -> bn1 (healthy) -> Relu -> conv2 -> bn2 (tiny var on channel 1,
    dead channels 0 and 2) -> Relu -> conv3 -> bn3 (negative var on channel 3) -> Y."""
    rng = gen.rng_for(name)
    g = gen.Graph()
    g.input("X", "float32", X_SHAPE)
    x, c_in = "X", X_SHAPE[1]
    for idx in (1, 2, 3):
        st = healthy_stats(rng)
        if idx == 2:
            st["var"][1] = 5e-7
            st["scale"][[0, 2]] = 0.0
        if idx == 3:
            st["var"][3] = -0.5
        y = conv_bn(g, rng, x, c_in, idx, st, EPS, 13, "Y" if idx == 3 else "bn_out%d" % idx)
        if idx < 3:
            x = g.node("Relu", [y], ["relu%d" % idx], "relu%d" % idx)
        c_in = C
    g.output("Y", "float32", (X_SHAPE[0], C) + X_SHAPE[2:])
    return g.model(13)


def setv(key, channels, value):
    def spoil(st):
        st[key][list(channels)] = value
    return spoil


def both(*fs):
    def spoil(st):
        for f in fs:
            f(st)
    return spoil


def untrained(st):
    st["mean"][:] = 0.0
    st["var"][:] = 1.0


# name -> (builder, intended findings {node: [(code, severity, channels or None)]})
CASES = [
    ("healthy", lambda n: single(n), {}),
    ("tiny_var", lambda n: single(n, setv("var", (1, 3), 5e-7)),
     {"bn": [("BN_TINY_VAR", "warning", [1, 3])]}),
    ("zero_var", lambda n: single(n, setv("var", (2,), 0.0), eps=1e-5),
     {"bn": [("BN_ZERO_VAR", "warning", [2])]}),
    ("neg_var", lambda n: single(n, setv("var", (0,), -0.5)),
     {"bn": [("BN_NEG_VAR", "error", [0])]}),
    ("eps_zero", lambda n: single(n, eps=0.0),
     {"bn": [("BN_EPS_NONPOS", "warning", None)]}),
    ("eps_zero_zero_var", lambda n: single(n, setv("var", (2,), 0.0), eps=0.0),
     {"bn": [("BN_EPS_NONPOS", "error", None), ("BN_ZERO_VAR", "warning", [2])]}),
    ("large_scale", lambda n: single(n, both(setv("scale", (1,), 1e3), setv("var", (1,), 1e-5))),
     {"bn": [("BN_LARGE_SCALE", "warning", [1])]}),
    ("dead_channel", lambda n: single(n, setv("scale", (0, 2), 0.0)),
     {"bn": [("BN_DEAD_CHANNEL", "info", [0, 2])]}),
    ("untrained", lambda n: single(n, untrained),
     {"bn": [("BN_UNTRAINED", "warning", None)]}),
    ("nan_param", lambda n: single(n, setv("mean", (1,), np.nan)),
     {"bn": [("BN_NONFINITE", "error", [1])]}),
    ("inf_param", lambda n: single(n, setv("scale", (3,), np.inf)),
     {"bn": [("BN_NONFINITE", "error", [3])]}),
    ("training_mode", lambda n: single(n, opset=15, bn_attrs={"training_mode": 1}),
     {"bn": [("BN_TRAINING_MODE", "error", None)]}),
    ("multi_bn", multi,
     {"bn2": [("BN_TINY_VAR", "warning", [1]), ("BN_DEAD_CHANNEL", "info", [0, 2])],
      "bn3": [("BN_NEG_VAR", "error", [3])]}),
]


# --------------------------------------------------------------------------
# The expectation, from the values in the file
# --------------------------------------------------------------------------

def opset_of(m):
    return [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]


def in_training_mode(node, opset):
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if opset <= 6:
        return attrs.get("is_test", 0) == 0
    named = [o for o in node.output[1:] if o]
    if 7 <= opset < 14 and named:
        return True
    return opset >= 14 and attrs.get("training_mode", 0) != 0


def derive(m):
    """[(node, code, severity, channels or None)] for every BN of model m."""
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    opset = opset_of(m)
    found = []
    for node in m.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        eps = float(np.float32(attrs.get("epsilon", 1e-5)))   # a float attribute
        scale, B, mean, var = (inits[i] for i in node.input[1:5])
        n = node.name
        with np.errstate(all="ignore"):
            s = np.abs(scale / np.sqrt(var + eps))

        def per_channel(code, sev, hit):
            ch = [int(i) for i in np.flatnonzero(hit)]
            if ch:
                found.append((n, code, sev, ch))

        if in_training_mode(node, opset):
            found.append((n, "BN_TRAINING_MODE", "error", None))
        finite = np.isfinite(scale) & np.isfinite(B) & np.isfinite(mean) & np.isfinite(var)
        per_channel("BN_NONFINITE", "error", ~finite)
        per_channel("BN_NEG_VAR", "error", var < 0)
        per_channel("BN_ZERO_VAR", "warning", var == 0)
        per_channel("BN_TINY_VAR", "warning", (var > 0) & (var < 1e-6))
        per_channel("BN_LARGE_SCALE", "warning", s > 1e4)
        per_channel("BN_DEAD_CHANNEL", "info", scale == 0)
        if not eps > 0:
            found.append((n, "BN_EPS_NONPOS", "error" if (var == 0).any() else "warning", None))
        if len(var) > 1 and (mean == 0).all() and (var == 1).all():
            found.append((n, "BN_UNTRAINED", "warning", None))
    return found


def check_intent(name, found, intent):
    """Every intended finding is derived; anything else derived must be a
    consequence named here (an infinite scale is also a large one)."""
    got = {(n, c, s, tuple(ch) if ch else None) for n, c, s, ch in found}
    want = {(n, c, s, tuple(ch) if ch else None) for n, fs in intent.items() for c, s, ch in fs}
    missing = want - got
    assert not missing, "%s: intended findings not derived: %s" % (name, sorted(missing, key=str))
    extra = got - want
    # known consequences: Inf scale / zero var with eps 0 give |s| = inf > 1e4
    allowed = {("inf_param", ("bn", "BN_LARGE_SCALE", "warning", (3,))),
               ("eps_zero_zero_var", ("bn", "BN_LARGE_SCALE", "warning", (2,)))}
    bad = {e for e in extra if (name, e) not in allowed}
    assert not bad, "%s: unintended findings: %s" % (name, sorted(bad, key=str))


def fmt(name, f):
    n, code, sev, ch = f
    return "%s %s %s %s %s" % (name, code, sev, ",".join(map(str, ch)) if ch else "-", n)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def main():
    gen.clean(OUT, names=("expected.txt",))
    names = [n for n, _, _ in CASES]
    assert len(names) == len(set(names))
    lines = [
        "# BN health expectations, written by testdata/gen_health.py; do not edit.",
        "# MODEL CODE SEVERITY CHANNELS NODE   (CHANNELS: comma-separated, '-': the whole BN;",
        "# a model without findings: 'MODEL none - - -')",
    ]
    total = 0
    for name, build, intent in CASES:
        path = os.path.join(OUT, name + ".onnx")
        model = build(name)
        onnx.checker.check_model(model)
        onnx.save_model(model, path)
        found = derive(onnx.load(path))      # from what the file holds
        check_intent(name, found, intent)
        lines += [fmt(name, f) for f in found] or ["%s none - - -" % name]
        total += os.path.getsize(path)
        print("wrote %s (%d bytes): %s" % (os.path.relpath(path, os.path.dirname(HERE)),
                                           os.path.getsize(path),
                                           ", ".join(f[1] for f in found) or "no finding"))
    with open(os.path.join(OUT, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote testdata/health/expected.txt (%d lines); %d models, %d bytes"
          % (len(lines), len(CASES), total), file=sys.stderr)


if __name__ == "__main__":
    main()
