"""One case of the differential test, end to end: the model saved, bnfold run
on it (fold --json, inspect --json, run), the decisions compared with
spec.expected(), and two judges of the numbers:

  judge 1 (onnxruntime)  the original and the folded model on the same inputs.
      float32 (and double without Conv): as they are; float16, bfloat16 and
      double with Conv: float32 copies of both ("widened": every float16,
      bfloat16 and double tensor and type becomes float32, an exact copy of
      float16 / bfloat16 values), so the folded low-precision model is judged
      against a float32 computation of the original, not against a float16 one.
  judge 2 (bnfold run)   bnfold's evaluator runs both models; each is compared
      with onnxruntime's outputs of the original (judge 1's reference).

Tolerances (README "Verification": |b - a| <= atol * max|a| + rtol * |a|):
TOL1 for judge 1, TOL2 for judge 2; NaN at the same place in both is equal,
an infinity equal to an infinity of the same sign.

A case fails on: a decision that differs from the expected one, a crash
(exit >= 5 or a signal), a hang, a sanitizer report, an exit code the case
does not expect, an invalid output model (onnx.checker, onnxruntime loads it),
numbers beyond tolerance.  Failures that match a known bnfold bug carry its id
(KNOWN).
"""

import copy
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time

import numpy as np
import onnx
from onnx import TensorProto, helper

import spec
from tensors import BF16, ELEM, F16, F32, F64, NAME_OF, externalize, make_tensor, quant, read_tensor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# judge 1: original vs folded (widened to float32 for the narrow types)
TOL1 = {F32: (1e-4, 1e-4), F64: (1e-4, 1e-4), F16: (2e-3, 2e-3), BF16: (1.6e-2, 1.6e-2)}
# judge 2: bnfold's evaluator vs onnxruntime (bnfold's documented factors: x50, x400)
TOL2 = {F32: (1e-4, 1e-4), F64: (1e-4, 1e-4), F16: (5e-3, 5e-3), BF16: (4e-2, 4e-2)}
TIMEOUT = float(os.environ.get("DIFFTEST_TIMEOUT", "60"))

# Known bnfold bugs (reported, fixed by others): id -> one line.  A failure
# matching one is counted as known, not as new.
KNOWN = {
    "a": "BN -> Conv with auto_pad SAME_* whose computed padding is zero is skipped PADDING; should fold",
    "b": "fold --lower-standalone on a float16/bfloat16 model exits 1, writes nothing (lowered BNs "
         "checked at float32 tolerance); should succeed",
    "c": "a BN -> layer whose BN output has another reader (or is a graph output) is reported "
         "NO_LAYER instead of LAYER_MULTI_CONSUMER / LAYER_GRAPH_OUTPUT",
    # found by this test (tests/difftest/regressions/, README there)
    "d": "--lower-standalone: a standalone BN fed by another BN that was just lowered is not "
         "lowered ('not lowered: the rank of 'X' is not known'): its rank was known in the input",
    "e": "a BN with an infinite per-channel scale (variance 0 with epsilon 0, or an infinite "
         "gamma or mean): bnfold's evaluator gives NaN where onnxruntime (and the operator's "
         "formula) give +-inf; fold's end-to-end check then flags NaN vs inf between the "
         "original and the folded model (exit 1) when such a BN is left unfolded downstream of a "
         "fold.  Degenerate models only",
    "f": "inspect reports 'fold' for a BN that fold skips as UNVERIFIED (inspect does not "
         "foresee the local check)",
    "i": "fold exits 1 (nothing written) on a fold our judges accept (weights exact, onnxruntime "
         "within tolerance + noise floor): bnfold's end-to-end check has no noise floor, so a "
         "correctly rounded float16/bfloat16 bias whose rounding is amplified downstream "
         "(cancellation after a large mean, a zero-variance BN) fails it",
    "j": "fold of a model with external data writes Constant-node tensors of 1 KiB or more to "
         "OUT.data; bnfold run then refuses its own output ('a constant with external data is "
         "not supported')",
    "h": "--lower-standalone on a BN-15 whose scale/B type (T1) differs from X's (T) when X's type "
         "is not declared: the lowered Mul/Add constants take the scale's type, the output model "
         "is type-invalid (Mul of float16 by float)",
}

SAN_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                    r"SUMMARY: (Address|Undefined|Leak)Sanitizer")


# ---------------------------------------------------------------------------
# onnxruntime, one node process per worker
# ---------------------------------------------------------------------------

class Ort:
    def __init__(self):
        self.p = None
        node_path = os.path.join(ROOT, "build", "node", "node_modules")
        self.env = dict(os.environ, NODE_PATH=node_path + (":" + os.environ["NODE_PATH"]
                                                           if os.environ.get("NODE_PATH") else ""))
        self.node = os.environ.get("NODE") or ("/usr/bin/node" if os.path.exists("/usr/bin/node")
                                               else "node")

    def start(self):
        self.p = subprocess.Popen([self.node, os.path.join(HERE, "ort_server.js")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=self.env, text=True, bufsize=1)

    def stop(self):
        if self.p:
            try:
                self.p.kill()
                self.p.wait(5)
            except Exception:
                pass
        self.p = None

    def run(self, model, inputs, outdir, timeout=TIMEOUT):
        """-> {"ok": True, "outputs": [...]} | {"ok": False, "stage", "error"};
        stage "crash" when onnxruntime died (the process is restarted)."""
        if self.p is None or self.p.poll() is not None:
            self.start()
        req = json.dumps({"model": model, "inputs": inputs, "outdir": outdir})
        try:
            self.p.stdin.write(req + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return {"ok": False, "stage": "crash", "error": "onnxruntime process died"}
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            self.stop()
            return {"ok": False, "stage": "timeout", "error": "onnxruntime took over %gs" % timeout}
        line = self.p.stdout.readline()
        if not line:
            rc = self.p.poll()
            self.stop()
            return {"ok": False, "stage": "crash", "error": "onnxruntime exited (%s)" % rc}
        return json.loads(line)


# ---------------------------------------------------------------------------
# models: saving, widening, the inference-mode reference
# ---------------------------------------------------------------------------

def all_graphs(model):
    def rec(g):
        yield g
        for n in g.node:
            for a in n.attribute:
                if a.type == a.GRAPH:
                    yield from rec(a.g)
                elif a.type == a.GRAPHS:
                    for sg in a.graphs:
                        yield from rec(sg)
    yield from rec(model.graph)
    for f in model.functions:
        # a function body as a graph-like: its nodes
        for n in f.node:
            for a in n.attribute:
                if a.type == a.GRAPH:
                    yield from rec(a.g)


def all_nodes(model):
    for g in all_graphs(model):
        yield from g.node
    for f in model.functions:
        yield from f.node


def save_model(case, path):
    """Write case.model to path; with case.external, initializers of 16 bytes
    or more go to PATH.data (external data)."""
    m = case.model
    if case.external:
        m = copy.deepcopy(m)
        folder = os.path.dirname(path)
        loc = os.path.basename(path) + ".data"
        if os.path.exists(os.path.join(folder, loc)):
            os.remove(os.path.join(folder, loc))
        for t in m.graph.initializer:
            if t.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
                               TensorProto.BFLOAT16) and len(t.raw_data or b"") + \
                    4 * (len(t.float_data) + len(t.int32_data)) + 8 * len(t.double_data) >= 16:
                externalize(t, folder, loc)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def widen_tensor(t, folder):
    dt = NAME_OF.get(t.data_type)
    if dt in (F16, BF16, F64):
        v = read_tensor(t, folder)
        nt = make_tensor(t.name, v.astype(np.float32).astype(np.float64), F32)
        t.CopyFrom(nt)
    elif t.data_location == TensorProto.EXTERNAL:
        v = read_tensor(t, folder)
        t.CopyFrom(make_tensor(t.name, v, dt))


def widen_type(tp):
    if tp.HasField("tensor_type") and tp.tensor_type.elem_type in (
            TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE):
        tp.tensor_type.elem_type = TensorProto.FLOAT


def widen(model, folder):
    """A float32 copy: every float16 / bfloat16 / double tensor and type
    becomes float32 (external data read in)."""
    m = copy.deepcopy(model)

    def do_graph(g):
        for t in g.initializer:
            widen_tensor(t, folder)
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            widen_type(vi.type)
        do_nodes(g.node)

    def do_nodes(nodes):
        for n in nodes:
            for a in n.attribute:
                if a.type == a.TENSOR:
                    widen_tensor(a.t, folder)
                elif a.type == a.SPARSE_TENSOR:
                    widen_tensor(a.sparse_tensor.values, folder)
                elif a.type == a.GRAPH:
                    do_graph(a.g)
                elif a.type == a.GRAPHS:
                    for sg in a.graphs:
                        do_graph(sg)
    do_graph(m.graph)
    for f in m.functions:
        do_nodes(f.node)
    return m


def needs_widening(model):
    for g in all_graphs(model):
        for t in g.initializer:
            if t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE):
                return True
        for vi in list(g.input) + list(g.output):
            if vi.type.tensor_type.elem_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16,
                                                 TensorProto.DOUBLE):
                return True
    for n in all_nodes(model):
        for a in n.attribute:
            if a.type == a.TENSOR and a.t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16,
                                                        TensorProto.DOUBLE):
                return True
            if a.type == a.SPARSE_TENSOR and a.sparse_tensor.values.data_type in (
                    TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE):
                return True
    return False


def ort_native_ok(model, dtype):
    """onnxruntime 1.30 CPU has no bfloat16 kernels and no double Conv /
    ConvTranspose."""
    if dtype == BF16:
        return False
    ops = {n.op_type for n in all_nodes(model)}
    if dtype == F64 and ops & {"Conv", "ConvTranspose"}:
        return False
    for g in all_graphs(model):
        for t in g.initializer:
            if t.data_type == TensorProto.BFLOAT16:
                return False
    for n in all_nodes(model):
        for a in n.attribute:
            if a.type == a.TENSOR and a.t.data_type == TensorProto.BFLOAT16:
                return False
    return True


def inference_reference(model, opset):
    """--assume-inference's reference: every training-mode BN whose batch
    statistics nobody reads becomes an inference BN."""
    m = copy.deepcopy(model)

    def uses(g, name):
        c = sum(1 for n in g.node for x in n.input if x == name)
        c += sum(1 for o in g.output if o.name == name)
        for n in g.node:
            for a in n.attribute:
                if a.type == a.GRAPH:
                    c += sum(1 for nn in a.g.node for x in nn.input if x == name)
        return c

    def conv(nodes, g, op):
        v = spec.bn_version(op)
        for n in nodes:
            if n.op_type != "BatchNormalization":
                continue
            attrs = {a.name: a for a in n.attribute}
            training = (v <= 6 and (attrs.get("is_test") is None or attrs["is_test"].i == 0)) or \
                (v >= 14 and attrs.get("training_mode") is not None and attrs["training_mode"].i) or \
                any(o and (7 <= v < 14 or (g is not None and uses(g, o))) for o in n.output[1:])
            if not training:
                continue
            if g is not None and any(o and uses(g, o) for o in n.output[1:]):
                continue
            keep = [a for a in n.attribute if a.name not in ("training_mode", "is_test")]
            del n.attribute[:]
            n.attribute.extend(keep)
            if v <= 6:
                n.attribute.append(helper.make_attribute("is_test", 1))
            del n.output[1:]

    for g in all_graphs(m):
        conv(g.node, g, opset)
    for f in m.functions:
        conv(f.node, None, opset)
    return m


def count_bns(model):
    return sum(1 for n in all_nodes(model) if n.op_type == "BatchNormalization")


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------

def make_inputs(case, rng, k):
    """Input set k: data N(0, 1) rounded to its type, conditions alternating,
    run-time parameters their values.  -> {name: (dtype, float64 array)}"""
    out = {}
    for i, inp in enumerate(case.inputs):
        dt, shape = inp["dtype"], inp["shape"]
        if inp["kind"] == "data":
            a = quant(quant(rng.standard_normal(shape), F32), dt) if dt != "bool" else None
        elif inp["kind"] == "cond":
            a = np.array(bool((k + case.index) % 2))
        else:
            a = np.asarray(inp["value"], np.float64)
        out[inp["name"]] = (dt, a)
    return out


def save_inputs(inputs, folder, k):
    """npy native (onnxruntime), npy float32 (widened) and .pb native (bnfold run)."""
    native, wide, pbs = {}, {}, {}
    for i, (name, (dt, a)) in enumerate(inputs.items()):
        base = os.path.join(folder, "in%d_%d" % (k, i))
        if dt == "bool":
            arr = np.asarray(a, np.bool_)
            np.save(base + ".npy", arr)
            native[name] = wide[name] = base + ".npy"
            t = make_tensor(name, arr.astype(np.float64), "bool")
        else:
            if dt == BF16:
                native[name] = None
            else:
                np.save(base + ".npy", a.astype({F32: np.float32, F64: np.float64, F16: np.float16}[dt]))
                native[name] = base + ".npy"
            np.save(base + ".w.npy", a.astype(np.float32))
            wide[name] = base + ".w.npy"
            t = make_tensor(name, a, dt)
        with open(base + ".pb", "wb") as f:
            f.write(t.SerializeToString())
        pbs[name] = base + ".pb"
    return native, wide, pbs


def load_npy_output(o):
    a = np.load(o["file"])
    if o["type"] == "bfloat16":
        from tensors import bf16_value
        return bf16_value(a.view(np.uint16))
    return a.astype(np.float64)


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

def compare(ref, got, atol, rtol, lax_nonfinite=False):
    """(pass, worst, where): |got - ref| <= atol * max|ref| + rtol * |ref|
    elementwise; NaN equal to NaN, an infinity to the same infinity.  With
    lax_nonfinite any non-finite value equals any other: for a BN whose
    per-channel scale is infinite, where the operator's formula
    (x - mean) * s + B gives an infinity and onnxruntime's x * s + t a NaN;
    and a NaN of the reference equals any value, since an operator after the
    BN may map the spec's infinity to a number (Relu(-inf) = 0) where it keeps
    onnxruntime's NaN."""
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    if ref.shape != got.shape:
        return False, float("inf"), "shape %s vs %s" % (list(ref.shape), list(got.shape))
    fin = np.isfinite(ref)
    same = (np.isnan(ref) & np.isnan(got)) | (np.isinf(ref) & (ref == got))
    if lax_nonfinite:
        same = same | ~np.isfinite(got) | np.isnan(ref)
    bad_special = (~fin) & ~same
    if bad_special.any():
        i = int(np.argmax(bad_special.ravel()))
        return False, float("inf"), "index %d: reference %r, got %r" % (i, ref.ravel()[i], got.ravel()[i])
    if not fin.any():
        return True, 0.0, ""
    scale = float(np.max(np.abs(ref[fin])))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(fin, np.abs(got - ref), 0.0)
        diff = np.where(fin & ~np.isfinite(got), np.inf, diff)
        bound = atol * scale + rtol * np.abs(ref)
        over = fin & ~(diff <= bound)
    worst = float(np.max(diff) / scale) if scale > 0 else (0.0 if not diff.any() else float("inf"))
    if over.any():
        i = int(np.argmax(np.where(over, diff, -1).ravel()))
        return False, worst, "index %d: reference %.9g, got %.9g (|diff| %.3g, max|ref| %.3g)" % (
            i, ref.ravel()[i], got.ravel()[i], diff.ravel()[i], scale)
    return True, worst, ""


# ---------------------------------------------------------------------------
# bnfold
# ---------------------------------------------------------------------------

def run_bnfold(bnfold, args, timeout=TIMEOUT, env=None):
    """-> (rc or 'timeout' or 'signal N', stdout, stderr, seconds)"""
    t0 = time.time()
    e = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    e.update(env or {})
    try:
        p = subprocess.run([bnfold] + args, capture_output=True, timeout=timeout, env=e)
    except subprocess.TimeoutExpired as ex:
        return "timeout", (ex.stdout or b"").decode(errors="replace"), \
            (ex.stderr or b"").decode(errors="replace"), time.time() - t0
    rc = p.returncode if p.returncode >= 0 else "signal %d" % -p.returncode
    return rc, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.time() - t0


def tool_problem(rc, err):
    """A crash, hang or sanitizer report in one bnfold run, or None."""
    if SAN_RE.search(err or ""):
        m = SAN_RE.search(err)
        line = err[m.start():].splitlines()[0][:200]
        return "sanitizer", line
    if rc == "timeout":
        return "timeout", "over %gs" % TIMEOUT
    if isinstance(rc, str):
        return "crash", rc
    if rc >= 5:
        return "crash", "exit %d" % rc
    return None


def first_line(s, n=240):
    s = (s or "").strip().replace("\n", " | ")
    return s[:n]


# ---------------------------------------------------------------------------
# the case
# ---------------------------------------------------------------------------

class Result:
    def __init__(self, case):
        self.r = {"seed": case.seed, "index": case.index, "pattern": case.pattern,
                  "detail": getattr(case, "pattern_detail", case.pattern), "dtype": case.dtype,
                  "opset": case.opset, "ir": case.ir, "opts": case.opts, "tags": sorted(case.tags),
                  "expected": [], "failures": [], "na": [], "times": {}, "worst": {}}

    def fail(self, kind, detail, known=None, judge=None):
        self.r["failures"].append({"kind": kind, "detail": detail, "known": known, "judge": judge})

    def na(self, what, why):
        self.r["na"].append({"what": what, "why": first_line(why, 200)})


def decision_of(b):
    return b.get("decision"), b.get("reason_code")


def classify_decision(case, exp, got, model, what="", reason=""):
    """The known bug a decision mismatch is, or None."""
    if exp["decision"] == "lower" and got[0] == "skip" and \
            "rank of 'X' is not known" in (reason or ""):
        return "d"
    if what == "inspect" and exp["decision"] == "skip" and exp["code"] == "UNVERIFIED" and \
            got[0] == "fold":
        return "f"
    if exp["decision"] == "fold" and exp.get("same_zero_pad") and got[0] in ("skip", "lower"):
        return "a"
    if exp["decision"] == "skip" and exp["code"] in ("LAYER_MULTI_CONSUMER", "LAYER_GRAPH_OUTPUT") \
            and got == ("skip", "NO_LAYER") and exp.get("position") == "before":
        return "c"
    if exp["decision"] == "lower" and exp["code"] in ("LAYER_MULTI_CONSUMER", "LAYER_GRAPH_OUTPUT") \
            and got == ("lower", "NO_LAYER"):
        return "c"
    return None


def ulp(x, dtype):
    """The spacing of dtype's values at |x| (elementwise)."""
    x = np.abs(np.asarray(x, np.float64))
    with np.errstate(all="ignore"):
        if dtype == F64:
            return np.spacing(x)
        if dtype == F32:
            return np.spacing(x.astype(np.float32)).astype(np.float64)
        if dtype == F16:
            return np.spacing(x.astype(np.float16)).astype(np.float64)
        if dtype == BF16:
            return np.spacing(x.astype(np.float32)).astype(np.float64) * 65536.0
    return np.zeros_like(x)


def close_in_type(got, exp, dtype, rel_sum=0.0):
    """got within 2 units in the last place of exp in dtype (the fold rounds
    one double result; a sum taken in another order may round the other way)."""
    got = np.asarray(got, np.float64)
    exp = np.asarray(exp, np.float64)
    if got.size != exp.size:
        return False, "%d values, expected %d" % (got.size, exp.size)
    got = got.reshape(-1)
    exp = exp.reshape(-1)
    tol = 2 * ulp(exp, dtype) + rel_sum
    bad = ~((got == exp) | (np.abs(got - exp) <= tol))
    if bad.any():
        i = int(np.argmax(bad))
        return False, "value %d is %.9g, expected %.9g (%d of %d differ)" % (
            i, got[i], exp[i], int(bad.sum()), bad.size)
    return True, ""


def check_weights(res, sim, folded, case, skip_bns=()):
    """The weights judge: every layer the fold changed holds exactly the
    weight and bias the specification's fold gives (spec.Sim, in double,
    rounded to the weight's type), and every lowered BN the scale and shift."""
    if not sim.layers and not sim.lowered:
        return
    try:
        fm = onnx.load(folded)
    except Exception as e:
        res.fail("weights", "cannot load the folded model: %s" % first_line(str(e)), judge="weights")
        return
    graphs = []
    main = spec.Graph.from_proto(fm.graph, os.path.dirname(folded), None, case.opset, fm.ir_version, "")

    def collect(g):
        graphs.append(g)
        for n in g.nodes:
            for _, sg in n.subgraphs:
                collect(sg)
    collect(main)
    for f in fm.functions:
        collect(spec.Graph.from_proto(None, None, None, case.opset, fm.ir_version, f.name, function=f))
    nodes = {}
    for g in graphs:
        for n in g.nodes:
            nodes.setdefault(n.name, (g, n))
    for name, (W, B, op, attrs) in sim.layers.items():
        if set(sim.layer_nodes.get(name, [])) & set(skip_bns):
            continue       # a decision differs already: reported
        if name not in nodes:
            res.fail("weights", "layer '%s' is not in the folded model" % name, judge="weights")
            continue
        g, n = nodes[name]
        if n.op != op:
            res.fail("weights", "layer '%s' is a %s, expected %s" % (name, n.op, op), judge="weights")
            continue
        if op == "Gemm" and n.attr("beta", 1.0) != 1.0:
            res.fail("weights", "Gemm '%s' keeps beta %g after the fold" % (name, n.attr("beta", 1.0)),
                     judge="weights")
        for k, (what, want) in enumerate((("weight", W), ("bias", B))):
            x = n.inputs[k + 1] if len(n.inputs) > k + 1 else ""
            kind, t = g.const(x) if x else (None, None)
            if kind != spec.YES:
                res.fail("weights", "%s '%s': %s '%s' is not a constant" % (op, name, what, x),
                         judge="weights")
                continue
            if t.dtype != want.dtype:
                res.fail("weights", "%s '%s': %s stored as %s, expected %s" % (
                    op, name, what, t.dtype, want.dtype), judge="weights")
                continue
            if tuple(t.v.shape) != tuple(want.v.shape):
                res.fail("weights", "%s '%s': %s of shape %s, expected %s" % (
                    op, name, what, list(t.v.shape), list(want.v.shape)), judge="weights")
                continue
            slack = 1e-12 * float(np.max(np.abs(want.v))) if what == "bias" and want.v.size else 0.0
            ok, why = close_in_type(t.v, want.v, want.dtype, slack)
            if not ok:
                res.fail("weights", "%s '%s': %s %s" % (op, name, what, why), judge="weights")
    for bn_name, (S, T) in sim.lowered.items():
        if bn_name in skip_bns:
            continue
        key = bn_name + "_bnfold_mul"
        if key not in nodes or (bn_name + "_bnfold_add") not in nodes:
            res.fail("weights", "lowered BN '%s': no %s / _bnfold_add node" % (bn_name, key),
                     judge="weights")
            continue
        for nm, want in ((key, S), (bn_name + "_bnfold_add", T)):
            g, n = nodes[nm]
            consts = [g.const(x) for x in n.inputs[1:2]]
            kind, t = consts[0] if consts else (None, None)
            if kind != spec.YES:
                res.fail("weights", "lowered BN '%s': %s operand is not a constant" % (bn_name, nm),
                         judge="weights")
                continue
            if tuple(t.v.shape) != tuple(want.shape):
                res.fail("weights", "lowered BN '%s': %s constant of shape %s, expected %s" % (
                    bn_name, nm, list(t.v.shape), list(want.shape)), judge="weights")
                continue
            ok, why = close_in_type(t.v, quant(want, t.dtype), t.dtype)
            if not ok:
                res.fail("weights", "lowered BN '%s': %s constant %s" % (bn_name, nm, why),
                         judge="weights")


def check_health(res, expected, doc, what):
    """Every BN's findings: the codes, their channels, BN_EPS_NONPOS's severity."""
    by_bn = {}
    for f in doc.get("findings", []):
        by_bn.setdefault((f.get("node"), f.get("graph")), []).append(f)
    names = {}
    for e in expected:
        names[e["name"]] = names.get(e["name"], 0) + 1
    for e in expected:
        if names[e["name"]] > 1:
            continue
        want = e.get("findings", {})
        got = {}
        for f in [f for (nm, _), fs in by_bn.items() if nm == e["name"] for f in fs]:
            if f["code"] == "BN_EPS_NONPOS":
                got[f["code"]] = f.get("severity")
            elif f.get("n_channels"):
                got[f["code"]] = list(f.get("channels", []))[:16]
            else:
                got[f["code"]] = None
        if got != want:
            res.fail("health", "%s: BN '%s' findings %s, expected %s" % (
                what, e["name"], json.dumps(got, sort_keys=True), json.dumps(want, sort_keys=True)),
                judge="decision")


def check_decisions(res, case, expected, doc, what, judge):
    check_health(res, expected, doc, what)
    got = doc.get("batchnorms", [])
    if len(got) != len(expected):
        res.fail("decision", "%s reports %d BNs, the model has %d" % (what, len(got), len(expected)),
                 judge=judge)
        return
    for e, b in zip(expected, got):
        if b.get("name") != e["name"]:
            res.fail("decision", "%s: BN #%d is '%s', expected '%s' (report order)" % (
                what, expected.index(e), b.get("name"), e["name"]), judge=judge)
            return
        g = decision_of(b)
        want = (e["decision"], e["code"])
        if e["decision"] == "fold":
            ok = g[0] == "fold"
            if ok and (b.get("position") != e["position"] or b.get("layer_op") != e["layer_op"]):
                res.fail("report", "%s: BN '%s' folded %s %s, expected %s %s" % (
                    what, e["name"], b.get("position"), b.get("layer_op"), e["position"],
                    e["layer_op"]), judge="decision")
        else:
            ok = g == want
        if not ok:
            known = classify_decision(case, e, g, case.model, what, b.get("reason"))
            res.fail("decision", "%s: BN '%s': expected %s %s, got %s %s (%s)" % (
                what, e["name"], want[0], want[1] or "", g[0], g[1] or "",
                first_line(b.get("reason"), 120)), known=known, judge=judge)


def run_case(case, work, bnfold, ort, keep=False, bnfold_env=None):
    """Everything about one case; returns the result dict (JSON-able)."""
    res = Result(case)
    r = res.r
    t_start = time.time()
    os.makedirs(work, exist_ok=True)
    orig = os.path.join(work, "model.onnx")
    folded = os.path.join(work, "folded.onnx")
    for f in (folded, folded + ".data"):
        if os.path.exists(f):
            os.remove(f)
    save_model(case, orig)
    expected, exp_actions, sim = spec.expected(case.model, case.opts, work,
                                               verify="--no-verify" not in case.opts)
    r["expected"] = [{k: e.get(k) for k in ("name", "decision", "code", "position", "layer_op",
                                            "same_zero_pad", "findings")} for e in expected]
    r["expected_actions"] = exp_actions
    t0 = time.time()

    # ---- fold ---------------------------------------------------------------------
    rc, out, err, secs = run_bnfold(bnfold, ["fold", orig, "-o", folded, "--json"] + case.opts,
                                    env=bnfold_env)
    r["times"]["fold"] = secs
    r["fold_rc"] = rc
    prob = tool_problem(rc, err)
    fold_doc = None
    lowered_expected = any(e["decision"] == "lower" for e in expected)
    if prob:
        res.fail(prob[0], "fold: %s: %s" % (prob[1], first_line(err)), judge="bnfold")
    elif rc != 0:
        known = None
        if rc == 1 and "--lower-standalone" in case.opts and case.dtype in (F16, BF16) and \
                "computes something else" in err:
            known = "b"
        elif rc == 1 and re.search(r"-?nan vs -?inf|-?inf vs -?nan", err):
            known = "e"
        second = rc == 1 and "--no-verify" not in case.opts and \
            re.search(r"computes something else|changes its result", err)
        if second and known is None:
            known = "i?"          # settled below: a false alarm if the judges pass the fold
        res.fail("fold_exit", "fold exited %s: %s" % (rc, first_line(err)), known=known,
                 judge="bnfold")
        if second:
            # a second opinion: the fold without bnfold's checks, judged by ours
            rc2, out2, err2, _ = run_bnfold(bnfold, ["fold", orig, "-o", folded, "--json",
                                                     "--no-verify"] + case.opts, env=bnfold_env)
            if rc2 == 0:
                try:
                    fold_doc = json.loads(out2)
                    r["second_opinion"] = True
                    expected, exp_actions, sim = spec.expected(case.model, case.opts, work,
                                                               verify=False)
                except ValueError:
                    fold_doc = None
    else:
        try:
            fold_doc = json.loads(out)
        except ValueError:
            res.fail("json", "fold --json is not one JSON document", judge="bnfold")
    if fold_doc is not None:
        check_decisions(res, case, expected, fold_doc, "fold", "decision")
        s = fold_doc.get("summary", {})
        for key, dec in (("folded", "fold"), ("lowered", "lower")):
            n_exp = sum(1 for e in expected if e["decision"] == dec)
            n_got = sum(1 for b in fold_doc.get("batchnorms", []) if b.get("decision") == dec)
            if s.get(key) != n_got:
                res.fail("report", "summary.%s is %s, the batchnorms list has %d" % (
                    key, s.get(key), n_got), judge="bnfold")
        acts = {}
        for a in fold_doc.get("actions", []):
            acts[a.get("op")] = acts.get(a.get("op"), 0) + 1
        for op in ("Mul", "Add"):
            if acts.get(op, 0) != exp_actions.get(op, 0):
                res.fail("decision", "fold: %d %s actions, expected %d" % (
                    acts.get(op, 0), op, exp_actions.get(op, 0)), judge="decision")
        if not os.path.exists(folded):
            res.fail("no_output", "fold exited 0 and wrote nothing", judge="bnfold")
        elif not r.get("second_opinion") and not case.external and \
                not any(e["decision"] in ("fold", "lower") for e in expected) and \
                not exp_actions.get("Mul") and not exp_actions.get("Add") and \
                not {"--assume-inference", "--freeze-inputs"} & set(case.opts):
            # README: "A model in which nothing changed is written byte for byte as read"
            with open(orig, "rb") as fa, open(folded, "rb") as fb:
                if fa.read() != fb.read():
                    res.fail("report", "nothing folded, but the output is not the input byte for "
                             "byte", judge="bnfold")

    # ---- inspect -------------------------------------------------------------------
    rc_i, out_i, err_i, secs = run_bnfold(bnfold, ["inspect", orig, "--json"] +
                                          [o for o in case.opts if o != "--no-verify"],
                                          env=bnfold_env)
    r["times"]["inspect"] = secs
    prob = tool_problem(rc_i, err_i)
    if prob:
        res.fail(prob[0], "inspect: %s: %s" % (prob[1], first_line(err_i)), judge="bnfold")
    elif rc_i != 0:
        res.fail("inspect_exit", "inspect exited %s: %s" % (rc_i, first_line(err_i)), judge="bnfold")
    else:
        try:
            idoc = json.loads(out_i)
            # inspect foresees the fold as made with its local check (it has no
            # --no-verify): the decisions of a verified fold
            exp_i = expected if "--no-verify" not in case.opts and not r.get("second_opinion") \
                else spec.expected(case.model, [o for o in case.opts if o != "--no-verify"],
                                   work, verify=True)[0]
            check_decisions(res, case, exp_i, idoc, "inspect", "decision")
        except ValueError:
            res.fail("json", "inspect --json is not one JSON document", judge="bnfold")

    # ---- the output model ------------------------------------------------------------
    fmodel = None
    if fold_doc is not None and os.path.exists(folded):
        try:
            fmodel = onnx.load(folded, load_external_data=False)
            try:
                onnx.checker.check_model(folded, full_check=True)
            except Exception as e:
                msg = first_line(str(e))
                known = "h" if re.search(r"_bnfold_(mul|add).*inconsistent type", msg) and \
                    "bn15_mixed_types" in case.tags else None
                res.fail("invalid_output", "onnx.checker: %s" % msg, judge="onnx", known=known)
            left = count_bns(fmodel)
            want_left = sum(1 for e in expected if e["decision"] == "skip")
            if left != want_left and not any(f["kind"] == "decision" for f in r["failures"]):
                res.fail("decision", "folded model has %d BNs, expected %d left" % (left, want_left),
                         judge="decision")
            mism = {b.get("name") for e, b in zip(expected, fold_doc.get("batchnorms", []))
                    if (e["decision"], e["code"] if e["decision"] != "fold" else None) !=
                    (b.get("decision"), b.get("reason_code") if b.get("decision") != "fold" else None)}
            check_weights(res, sim, folded, case, mism)
            s = fold_doc.get("summary", {})
            if s.get("batchnorms_after") != left:
                res.fail("report", "summary.batchnorms_after %s, the file has %d" % (
                    s.get("batchnorms_after"), left), judge="bnfold")
        except Exception as e:
            res.fail("invalid_output", "cannot read the output: %s" % first_line(str(e)),
                     judge="onnx")
            fmodel = None
    r["times"]["bnfold_checks"] = time.time() - t0

    # ---- numbers ---------------------------------------------------------------------
    t1 = time.time()
    judge_numbers(res, case, work, orig, folded if fmodel is not None else None, fmodel, bnfold,
                  ort, bnfold_env)
    r["times"]["numbers"] = time.time() - t1
    r["times"]["total"] = time.time() - t_start
    # fold exited 1 but its output (--no-verify) passes every judge: a false alarm of
    # bnfold's end-to-end check (known i); otherwise the exit is a new failure
    judged = [f for f in r["failures"] if f.get("judge") in ("weights", "ort", "onnx")]
    for f in r["failures"]:
        if f["known"] == "i?":
            f["known"] = None if judged or not r.get("second_opinion") else "i"
    r["ok"] = not r["failures"]
    r["new_failures"] = sum(1 for f in r["failures"] if not f["known"])
    # files kept: every new failure, and the first few cases of each known bug (per process)
    kept_known = False
    for k in {f["known"] for f in r["failures"] if f["known"]}:
        if _KEPT.get(k, 0) < 3:
            _KEPT[k] = _KEPT.get(k, 0) + 1
            kept_known = True
    if not (keep or r["new_failures"] or kept_known):
        shutil.rmtree(work, ignore_errors=True)
    return r


_KEPT = {}


UNIT = {F16: 2.0 ** -11, BF16: 2.0 ** -8, F32: 2.0 ** -24, F64: 2.0 ** -24}


def tensor_dtypes(model):
    """name -> dtype of every initializer and Constant tensor (all graphs)."""
    out = {}
    for g in all_graphs(model):
        for t in g.initializer:
            out[t.name] = NAME_OF.get(t.data_type)
    for n in all_nodes(model):
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.type == a.TENSOR:
                    out[n.output[0]] = NAME_OF.get(a.t.data_type)
    return out


def perturbed(model_w, dtypes, rng):
    """The (widened) folded model with every tensor bnfold wrote (its names
    end in _bnfold...) moved by one unit roundoff of its stored type, random
    signs: how much the outputs move when the fold's new weights are rounded
    differently, the noise floor of judge 1."""
    m = copy.deepcopy(model_w)
    n = 0

    def move(t, key):
        nonlocal n
        v = read_tensor(t)
        u = UNIT.get(dtypes.get(key), 2.0 ** -24)
        v = v * (1 + u * rng.choice([-1.0, 1.0], v.shape))
        t.CopyFrom(make_tensor(t.name, v.astype(np.float32).astype(np.float64), F32))
        n += 1
    for g in all_graphs(m):
        for t in g.initializer:
            if "_bnfold" in t.name and t.data_type == TensorProto.FLOAT:
                move(t, t.name)
    for nd in all_nodes(m):
        if nd.op_type == "Constant" and nd.output and "_bnfold" in nd.output[0]:
            for a in nd.attribute:
                if a.type == a.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    move(a.t, nd.output[0])
    return m, n


# ops whose first output is a float value a native float16 / bfloat16 run rounds
ROUNDING_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "Mul", "Add",
                "Sub", "Div"}
NATIVE_DRAWS = 3


def native_jitter(model_w, unit, seed):
    """The widened model with the first output of every computing node of its
    main graph multiplied by (1 + r), r uniform in [-unit, unit] per element
    (RandomUniformLike, seeded per node): Monte Carlo arithmetic, the original
    as a native float16 / bfloat16 run would round its values.  How far its
    outputs move from the float32 run is the original's own arithmetic noise
    in its type, independent of the inputs' luck in landing on the grid."""
    m = copy.deepcopy(model_w)
    g = m.graph
    nodes = []
    for i, n in enumerate(g.node):
        nodes.append(n)
        if n.op_type not in ROUNDING_OPS or not n.output or not n.output[0]:
            continue
        o = n.output[0]
        raw, r, one_r = o + "__mca_raw", o + "__mca_r", o + "__mca_1r"
        n.output[0] = raw
        nodes.append(helper.make_node("RandomUniformLike", [raw], [r], low=-unit, high=unit,
                                      seed=float(seed * 1000 + i)))
        nodes.append(helper.make_node("Add", [r, o + "__mca_one"], [one_r]))
        nodes.append(helper.make_node("Mul", [raw, one_r], [o]))
        g.initializer.append(helper.make_tensor(o + "__mca_one", TensorProto.FLOAT, [], [1.0]))
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return m


def max_abs_diff(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        return 0.0
    fin = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[fin] - b[fin]))) if fin.any() else 0.0


def judge_numbers(res, case, work, orig, folded, fmodel, bnfold, ort, bnfold_env):
    """Judge 1 (onnxruntime: original vs folded) and judge 2 (bnfold run vs
    onnxruntime) on two input sets.

    References, all run by onnxruntime: R = the original (its inference-mode
    version under --assume-inference), widened to float32 when it has other
    float types; O = the original itself (= R without --assume-inference), for
    judge 2 on the original.  Noise floors added to the tolerances: judge 1
    adds 4x how much the folded model's outputs move when its new tensors are
    moved by one unit roundoff (a downstream BN with a tiny variance amplifies
    a correct fold's rounding); for float16 / bfloat16 models both judges
    add 2x the original's own arithmetic noise in its type (native_jitter);
    judge 2 on float16 adds 2x how far onnxruntime's own float16 run is from
    R."""
    r = res.r
    model = case.model
    atol1, rtol1 = TOL1[case.dtype]
    atol2, rtol2 = TOL2[case.dtype]
    ref_model = model
    if "--assume-inference" in case.opts and any(
            e.get("assumed") for e in spec.Sim(copy.deepcopy(model), case.opts, work).run()):
        ref_model = inference_reference(model, case.opset)
    wide = needs_widening(model) or (fmodel is not None and needs_widening(fmodel))

    def as_run(m, name):
        p = os.path.join(work, name)
        onnx.save(widen(m, work) if wide else m, p)
        return p
    ref_path = as_run(ref_model, "ref.onnx") if (wide or ref_model is not model) else orig
    orig_path = ref_path if ref_model is model else as_run(model, "orig.w.onnx")
    fold_w = fold_p = None
    rng = np.random.default_rng([case.seed & 0xFFFFFFFF, case.index & 0xFFFFFFFF, 7])
    if folded:
        fl = onnx.load(folded)
        fw = widen(fl, work) if wide else fl
        fold_w = os.path.join(work, "folded.w.onnx")
        onnx.save(fw, fold_w)
        pm, moved = perturbed(fw, tensor_dtypes(fl), rng)
        if moved:
            fold_p = os.path.join(work, "folded.p.onnx")
            onnx.save(pm, fold_p)
    native_ok = ort_native_ok(model, case.dtype) and wide
    mca = []
    if wide and case.dtype in (F16, BF16):
        base = widen(ref_model, work)
        for d in range(NATIVE_DRAWS):
            p = os.path.join(work, "native_mca%d.onnx" % d)
            onnx.save(native_jitter(base, UNIT[case.dtype], d + 1), p)
            mca.append(p)
    worst1 = worst2 = 0.0
    j1 = case.ort_na is None
    if not j1:
        res.na("judge1", case.ort_na)
    for k in range(2):
        inputs = make_inputs(case, rng, k)
        native_in, wide_in, pb_in = save_inputs(inputs, work, k)
        feed = wide_in if wide else native_in
        if not j1:
            break
        a = ort.run(ref_path, feed, os.path.join(work, "ort_ref%d" % k))
        if not a["ok"]:
            if a["stage"] in ("crash", "timeout"):
                res.fail("ort_" + a["stage"], "onnxruntime on the reference: %s" % a["error"],
                         judge="ort")
            else:
                res.na("judge1", "onnxruntime refuses the reference: " + a["error"])
            break
        R = [load_npy_output(o) for o in a["outputs"]]
        names = [o["name"] for o in a["outputs"]]
        O = R
        if orig_path != ref_path:
            a2 = ort.run(orig_path, feed, os.path.join(work, "ort_orig%d" % k))
            O = [load_npy_output(o) for o in a2["outputs"]] if a2["ok"] else None
        noise = [0.0] * len(R)
        # the original's own arithmetic noise in its type (native_jitter)
        nat = [0.0] * len(R)
        for d, p in enumerate(mca):
            c = ort.run(p, feed, os.path.join(work, "ort_mca%d_%d" % (k, d)))
            if c["ok"]:
                nat = [max(x, max_abs_diff(ra, load_npy_output(o)))
                       for x, ra, o in zip(nat, R, c["outputs"])]
        F = None
        if fold_w:
            b = ort.run(fold_w, feed, os.path.join(work, "ort_fold%d" % k))
            if not b["ok"]:
                res.fail("ort_folded", "onnxruntime on the folded model (%s): %s" % (
                    b["stage"], first_line(b["error"])), judge="ort")
            else:
                F = [load_npy_output(o) for o in b["outputs"]]
                if fold_p:
                    c = ort.run(fold_p, feed, os.path.join(work, "ort_pert%d" % k))
                    if c["ok"]:
                        noise = [max_abs_diff(f, load_npy_output(o)) for f, o in zip(F, c["outputs"])]
                for i, (name, ra, fa) in enumerate(zip(names, R, F)):
                    scale = float(np.max(np.abs(ra[np.isfinite(ra)]))) if np.isfinite(ra).any() else 1.0
                    extra = (4 * noise[i] + 2 * nat[i]) / scale if scale > 0 else 0.0
                    # a BN of infinite scale left in both models: inf or NaN
                    # hangs on the sign of x - mean, which correct rounding
                    # upstream moves (judge 2 is as lax)
                    ok, worst, where = compare(ra, fa, atol1 + extra, rtol1, lax_nonfinite=bool(
                        case.tags & {"stats_inf", "stats_eps0_zero_var"}))
                    worst1 = max(worst1, worst)
                    r.setdefault("noise1", 0.0)
                    r["noise1"] = max(r["noise1"], extra)
                    if not ok:
                        res.fail("ort_diff", "input set %d, output %s: %s (noise floor %.2g)" % (
                            k, name, where, extra), judge="ort")
        # the native low-precision models: onnxruntime loads and runs the folded one
        # whenever it runs the original; its float16 run gives judge 2's noise floor
        noise2 = [0.0] * len(R)
        if native_ok and case.ort_na is None:
            d = ort.run(orig, native_in, os.path.join(work, "ort_nat_orig%d" % k))
            if folded and k == 0:
                c = ort.run(folded, native_in, os.path.join(work, "ort_nat_fold%d" % k))
                if not c["ok"] and d["ok"]:
                    res.fail("ort_folded_native", "onnxruntime runs the original %s model but "
                             "not the folded one: %s" % (case.dtype, first_line(c["error"])),
                             judge="ort")
            if d["ok"] and O is not None and ref_model is model:
                noise2 = [max_abs_diff(o_, load_npy_output(x)) for o_, x in zip(O, d["outputs"])]
        # ---- judge 2: bnfold run ------------------------------------------------------
        ran_original = False
        for which, path, refs in (("original", orig, O), ("folded", folded, R)):
            if path is None or refs is None:
                continue
            od = os.path.join(work, "run_%s%d" % (which, k))
            shutil.rmtree(od, ignore_errors=True)
            os.makedirs(od)
            args = ["run", path, "--output-dir", od, "--threads", "1"]
            for name, f in pb_in.items():
                args += ["--input", "%s=%s" % (name, f)]
            rc, out, err, secs = run_bnfold(bnfold, args, env=bnfold_env)
            r["times"]["run"] = r["times"].get("run", 0) + secs
            prob = tool_problem(rc, err)
            if prob:
                res.fail(prob[0], "run %s: %s: %s" % (which, prob[1], first_line(err)),
                         judge="bnfold run")
                continue
            if rc != 0:
                if rc == 3 and re.search(r"not supported|does not implement|only float32 is "
                                         r"supported", err):
                    if which == "folded" and ran_original:
                        # bnfold's own output is something its evaluator cannot read
                        res.fail("run_folded_unsupported", "run folded exited 3 on bnfold's own "
                                 "output (the original runs): %s" % first_line(err),
                                 judge="bnfold run",
                                 known="j" if "constant with external data" in err else None)
                        break
                    res.na("judge2", "bnfold run: " + first_line(err, 160))
                    break
                res.fail("run_exit", "run %s exited %s: %s" % (which, rc, first_line(err)),
                         judge="bnfold run")
                continue
            ran_original = ran_original or which == "original"
            for i, (name, ra) in enumerate(zip(names, refs)):
                f = os.path.join(od, "output_%d.pb" % i)
                if not os.path.exists(f):
                    res.fail("run_output", "run %s wrote no %s" % (which, f), judge="bnfold run")
                    continue
                t = TensorProto()
                with open(f, "rb") as fh:
                    t.ParseFromString(fh.read())
                got = read_tensor(t)
                fin = np.isfinite(ra)
                if case.dtype == F16 and np.any(np.abs(ra[fin]) > 65504):
                    res.na("judge2", "output %s beyond float16's range" % name)
                    continue
                scale = float(np.max(np.abs(ra[fin]))) if fin.any() else 1.0
                # float32 rounding of two implementations (FMA or not, summation
                # order) differs by a few ulps of the values inside the graph,
                # which a cancellation near the output (a BN subtracting almost
                # all of its input) makes large next to the output itself: the
                # perturbation noise (weights moved by their rounding) measures
                # that amplification, for the original as for the folded model
                nat_i = nat[i] if j1 else 0.0
                extra = (2 * noise2[i] + 8 * noise[i] + 2 * nat_i) / scale if scale > 0 else 0.0
                ok, worst, where = compare(ra, got, atol2 + extra, rtol2,
                                           lax_nonfinite=bool(case.tags & {"stats_inf",
                                                                           "stats_eps0_zero_var"}))
                worst2 = max(worst2, worst)
                if not ok:
                    known = "e" if re.search(r"reference -?inf, got -?nan", where) or (
                        re.search(r"got -?nan", where) and
                        case.tags & {"stats_inf", "stats_eps0_zero_var"}) else None
                    res.fail("run_vs_ort", "bnfold run on the %s model, input set %d, output %s: %s"
                             " (noise floor %.2g)" % (which, k, name, where, extra),
                             judge="bnfold run", known=known)
    r["worst"] = {"judge1": worst1, "judge2": worst2}
