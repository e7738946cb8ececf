"""Random valid models around BatchNormalization, reproducible from (seed, index).

generate(seed, index) -> Case: an onnx ModelProto (checked by onnx.checker),
the bnfold options to run it with, the model's graph inputs (data and
run-time parameters) and what the judges can do with it.  The expected fate
of every BN is not decided here but by spec.expected() on the finished model.

A case is one template (the "pattern" of the summary) built from blocks:
layers (Conv 1-D/2-D/3-D, ConvTranspose, Gemm, MatMul with their attributes),
BNs (statistics drawn for normal use and for the edges: tiny, zero and
negative variance, huge scales near float16 overflow, NaN; every opset's
attributes; parameters as initializers, Constant nodes, Identity chains, graph
inputs, initializers listed as inputs, sparse constants), Mul / Add by
per-channel constants, Relu, Flatten, edges that make a value a graph output
or give it a second reader, and If / Loop bodies and model-local functions
holding blocks.
"""

import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper

from tensors import BF16, ELEM, F16, F32, F64, quant, make_tensor

# ---------------------------------------------------------------------------
# the case
# ---------------------------------------------------------------------------


class Case:
    def __init__(self):
        self.model = None
        self.opts = []            # bnfold fold options
        self.pattern = ""
        self.dtype = F32
        self.opset = 13
        self.ir = 8
        self.tags = set()         # what the case exercises (for the summary)
        self.inputs = []          # [{"name", "dtype", "shape", "kind": data|param|cond, "value"}]
        self.ort_na = None        # why onnxruntime cannot run it at all (judge 1 n/a)
        self.external = False     # some initializers go to external data
        self.seed = 0
        self.index = 0

    def describe(self):
        return "%s %s opset %d ir %d %s" % (self.pattern, self.dtype, self.opset, self.ir,
                                            " ".join(self.opts) or "-")


class V:
    """A value of the graph being built: name, concrete shape, dtype."""

    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype

    @property
    def rank(self):
        return len(self.shape)


class Ctx:
    """What the whole model shares: the generator, the names, the choices."""

    def __init__(self, rng, case):
        self.rng = rng
        self.case = case
        self.n = 0
        self.functions = []
        self.extra_domains = {}
        self.typed_storage = rng.random() < 0.25      # typed fields instead of raw_data
        self.param_feeds = []
        self.declared = {}        # outputs whose type onnx does not infer: (dtype, shape)
        self.force_value_info = False
        self.wild = False             # a BN with edge statistics is upstream
        self.dead = False             # a BN with dead (constant) channels is upstream
        self.bn_params = {}           # (C, param types, graph) -> an earlier BN's parameter names

    def fresh(self, base):
        self.n += 1
        return "%s_%d" % (base, self.n)

    def chance(self, p):
        return self.rng.random() < p

    def pick(self, items, weights=None):
        if weights is None:
            return items[int(self.rng.integers(len(items)))]
        w = np.asarray(weights, dtype=np.float64)
        return items[int(self.rng.choice(len(items), p=w / w.sum()))]

    def randint(self, lo, hi):
        """inclusive"""
        return int(self.rng.integers(lo, hi + 1))


class Gb:
    """One graph under construction (the main graph, a subgraph or a function
    body)."""

    def __init__(self, ctx, kind="main", outer=None):
        self.ctx = ctx
        self.kind = kind          # main | sub | function
        self.outer = outer        # the enclosing Gb of a subgraph
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.init_inputs = []     # initializers also listed as graph inputs
        self.fn_inputs = []       # function: formal inputs

    # ---- nodes and values ----------------------------------------------------
    def node(self, op, inputs, outputs, name=None, domain="", **attrs):
        n = helper.make_node(op, inputs, outputs, name=name or self.ctx.fresh(op.lower()),
                             domain=domain, **attrs)
        self.nodes.append(n)
        return n

    def tensor(self, name, a, dtype):
        return make_tensor(name, a, dtype, "typed" if self.ctx.typed_storage else "raw")

    def add_init(self, name, a, dtype, as_input=False):
        """An initializer of this graph (a subgraph's own, or the main graph's)."""
        self.inits.append(self.tensor(name, a, dtype))
        if as_input:
            self.init_inputs.append(helper.make_tensor_value_info(name, ELEM[dtype], list(np.shape(a))))
        return name

    def main(self):
        g = self
        while g.outer is not None:
            g = g.outer
        return g

    def param(self, hint, a, dtype, source="init"):
        """A parameter (weight, bias, BN statistic) from `source`:
        init, outer (an initializer of the main graph, read from a subgraph),
        constant, floats (Constant value_floats), identity, identity2,
        const_identity, input (a graph input: computed at run time), computed
        (Neg of Neg of an initializer), overridable (initializer listed as a
        graph input), sparse (Constant sparse_value)."""
        ctx = self.ctx
        a = quant(a, dtype)
        name = ctx.fresh(hint)
        if self.kind == "function" and source in ("init", "outer", "identity", "identity2",
                                                  "overridable", "computed"):
            source = {"computed": "computed_c"}.get(source, "constant")
        if self.kind == "function" and source == "input":
            self.fn_inputs.append((name, a, dtype))
            return name
        if source == "floats" and (dtype != F32 or np.ndim(a) != 1 or ctx.case.opset < 12):
            source = "constant"
        if source == "sparse" and ctx.case.opset < 11:
            source = "constant"
        if source == "outer" and self.kind == "sub":
            return self.main().add_init(name, a, dtype)
        if source in ("init", "outer"):
            return self.add_init(name, a, dtype)
        if source == "overridable":
            if self.kind == "main":
                return self.add_init(name, a, dtype, as_input=True)
            return self.main().add_init(name, a, dtype, as_input=True)
        if source == "constant":
            self.node("Constant", [], [name], value=self.tensor(name + "_value", a, dtype))
            return name
        if source == "floats":
            self.node("Constant", [], [name], value_floats=[float(x) for x in np.ravel(a)])
            return name
        if source in ("identity", "identity2"):
            src = self.add_init(name + "_src", a, dtype)
            mid = src
            for k in range(1 if source == "identity" else 2):
                nxt = name if k == (0 if source == "identity" else 1) else ctx.fresh(hint + "_id")
                self.node("Identity", [mid], [nxt])
                mid = nxt
            return name
        if source == "const_identity":
            src = name + "_c"
            self.node("Constant", [], [src], value=self.tensor(src + "_value", a, dtype))
            self.node("Identity", [src], [name])
            return name
        if source in ("computed", "computed_c"):
            if source == "computed":
                src = self.add_init(name + "_src", -a, dtype)
            else:
                src = name + "_c"
                self.node("Constant", [], [src], value=self.tensor(src + "_value", -a, dtype))
            self.node("Neg", [src], [name])
            return name
        if source == "input":
            if self.kind == "main":
                self.inputs.append(helper.make_tensor_value_info(name, ELEM[dtype], list(np.shape(a))))
                ctx.case.inputs.append({"name": name, "dtype": dtype, "shape": list(np.shape(a)),
                                        "kind": "param", "value": a})
                return name
            return self.main().param(hint, a, dtype, "input")
        if source == "sparse":
            flat = np.ravel(a)
            idx = np.nonzero(flat)[0]
            if idx.size == 0:
                idx = np.array([0])
            vals = make_tensor(name + "_values", flat[idx], dtype)
            ind = make_tensor(name + "_indices", idx.astype(np.float64), "int64")
            sp = helper.make_sparse_tensor(vals, ind, list(np.shape(a)))
            self.node("Constant", [], [name], sparse_value=sp)
            return name
        raise ValueError(source)


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------

STAT_KINDS = ["normal"] * 8 + ["tiny_var", "zero_var", "huge_scale",
              "tiny_scale", "dead", "untrained", "neg_var_small", "nan", "neg_var", "inf",
              "eps0_zero_var", "big_mean"]


def bn_stats(ctx, C, kind, dtypes, wmax=1.0):
    """scale, B, mean, var (float64, exact in their dtypes) and epsilon."""
    rng = ctx.rng
    eps = ctx.pick([None, 1e-5, 1e-3, 0.1, 1e-12], [4, 2, 1, 1, 0.5])
    var = rng.uniform(0.2, 2.0, C)
    scale = rng.uniform(0.5, 1.5, C) * rng.choice([-1.0, 1.0], C)
    B = rng.uniform(-1, 1, C)
    mean = rng.uniform(-1, 1, C)
    i = int(rng.integers(C))
    if kind == "tiny_var":
        var[i] = ctx.pick([1e-7, 1e-9, 1e-12, 3e-6])
    elif kind == "zero_var":
        var[i] = 0.0
        eps = eps if eps else 1e-5
    elif kind == "huge_scale":
        # |s| up to near (or past) float16 overflow of the folded weight
        target = ctx.pick([6e4 / max(wmax, 1e-3), 1e4, 3e5, 1e5]) * rng.uniform(0.5, 2.0)
        e = eps if eps is not None else 1e-5
        scale[i] = target * np.sqrt(var[i] + e) * rng.choice([-1.0, 1.0])
    elif kind == "tiny_scale":
        scale[i] = ctx.pick([1e-8, 1e-10, 1e-20, 1e-30])
    elif kind == "dead":
        scale[i] = 0.0
    elif kind == "untrained":
        mean[:] = 0.0
        var[:] = 1.0
    elif kind == "neg_var_small":
        e = eps if eps is not None else 1e-5
        var[i] = -e / 2
    elif kind == "nan":
        which = ctx.pick(["scale", "B", "mean", "var"])
        {"scale": scale, "B": B, "mean": mean, "var": var}[which][i] = np.nan
    elif kind == "neg_var":
        var[i] = -ctx.pick([0.5, 1.0, 1e-3])
        eps = 1e-5 if eps is None or eps >= 1e-3 else eps
    elif kind == "inf":
        which = ctx.pick(["scale", "mean", "B"])
        {"scale": scale, "B": B, "mean": mean}[which][i] = np.inf
    elif kind == "eps0_zero_var":
        var[i] = 0.0
        eps = 0.0
    elif kind == "big_mean":
        mean = mean * 50
    st = {"scale": quant(scale, dtypes[0]), "B": quant(B, dtypes[0]),
          "mean": quant(mean, dtypes[1]), "var": quant(var, dtypes[1])}
    return st, eps


def stat_kind(ctx):
    return ctx.pick(STAT_KINDS)


# ---------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------

def param_source(ctx, g, for_bn=True):
    """Where a parameter comes from; mostly initializers."""
    kinds = ["init", "constant", "identity", "identity2", "const_identity", "floats", "outer",
             "input", "computed", "overridable", "sparse"]
    w = [30, 3, 2, 1, 1, 1, 2 if g.kind == "sub" else 0, 0.6, 0.5, 0.6, 0.35]
    return ctx.pick(kinds, w)


def bn(ctx, g, v, kind=None, sources=None, training=None, name=None):
    """v -> BatchNormalization -> new value.  training: None (random, rare),
    'no', 'mode' (opset 14+ training_mode 1), 'outputs' (opset 7/9 extra
    outputs named), 'unnamed' (opset 9 extra outputs named '')."""
    case = ctx.case
    C = v.shape[1]
    opset = case.opset
    pdt = [v.dtype, v.dtype]
    if opset >= 15 and ctx.chance(0.15):
        pdt = [ctx.pick([F16, F32, F64, BF16]), ctx.pick([F16, F32, F64, BF16])]
        case.tags.add("bn15_mixed_types")
    kind = kind or stat_kind(ctx)
    st, eps = bn_stats(ctx, C, kind, pdt, wmax=getattr(ctx, "last_wmax", 1.0))
    if any(np.isinf(a).any() for a in st.values()):
        case.tags.add("stats_inf")         # a value beyond its type's range (float16)
    wild_before, dead_before = ctx.wild, ctx.dead
    if kind not in ("normal", "dead", "untrained"):
        ctx.wild = True
    if kind == "dead":
        ctx.dead = True
    case.tags.add("stats_" + kind)
    attrs = {}
    if eps is not None:
        attrs["epsilon"] = float(eps)
    if ctx.chance(0.3):
        attrs["momentum"] = float(ctx.pick([0.9, 0.1, 0.99]))
    y = ctx.fresh("bn_out")
    outputs = [y]
    if training is None:
        training = "no"
        if ctx.chance(0.06):
            training = "mode" if opset >= 14 else ("outputs" if opset < 14 else "no")
    if training in ("mode", "outputs", "unnamed") and \
            (v.shape[0] * int(np.prod(v.shape[2:])) < 2 or wild_before or dead_before):
        # batch statistics of one value per channel (variance 0: the output is
        # rounding noise times 1/sqrt(eps)), of a channel an earlier BN made
        # constant (the same), or of values that an earlier BN with edge
        # statistics made large against their spread (float32 keeps only the
        # noise): no judge can compare those
        training = "no"
    if training == "mode" and opset >= 14:
        attrs["training_mode"] = 1
        outputs = [y, ctx.fresh("running_mean"), ctx.fresh("running_var")]
        case.tags.add("training_mode")
    elif training in ("outputs", "unnamed") and 7 <= opset < 14:
        extra = [ctx.fresh("bn_mean"), ctx.fresh("bn_var"), ctx.fresh("saved_mean"),
                 ctx.fresh("saved_var")]
        if training == "unnamed" and opset >= 9:
            extra = ["", "", extra[2], extra[3]] if ctx.chance(0.5) else extra[:2] + ["", ""]
            case.ort_na = case.ort_na or "BN-9 with optional outputs named '' (onnxruntime segfaults)"
        outputs = [y] + extra        # BN-7 / BN-9: 1 or 5 outputs
        case.tags.add("training_outputs")
    sources = sources or {}
    names = []
    if opset <= 7 and ctx.chance(0.08) and training == "no" and v.rank >= 3:
        # spatial = 0: parameters of shape C x D1 x ... (per element)
        attrs["spatial"] = 0
        case.tags.add("spatial0")
        full = list(v.shape[1:])
        for k, dt in zip(("scale", "B", "mean", "var"), (pdt[0], pdt[0], pdt[1], pdt[1])):
            a = np.broadcast_to(st[k].reshape([C] + [1] * (len(full) - 1)), full).copy()
            if k != "var":
                a = a + 0.01 * ctx.rng.standard_normal(full)
            names.append(g.param("bn_" + k, a, dt, sources.get(k) or "init"))
    elif (C, tuple(pdt), id(g)) in ctx.bn_params and not sources and training == "no" and \
            ctx.chance(0.12):
        # (never with a training-mode BN: onnxruntime updates its running statistics in
        # place, and a second BN reading them would see the updated values)
        # the parameters of an earlier BN of this graph, shared
        names = list(ctx.bn_params[(C, tuple(pdt), id(g))])
        case.tags.add("shared_bn_params")
    else:
        one_source = param_source(ctx, g) if ctx.chance(0.15) else None
        for k, dt in zip(("scale", "B", "mean", "var"), (pdt[0], pdt[0], pdt[1], pdt[1])):
            src = sources.get(k) or one_source or ("init" if ctx.chance(0.85) else param_source(ctx, g))
            names.append(g.param("bn_" + k, st[k], dt, src))
            case.tags.add("param_" + src)
        if training == "no":
            ctx.bn_params[(C, tuple(pdt), id(g))] = list(names)
    g.node("BatchNormalization", [v.name] + names, outputs, name=name or ctx.fresh("bn"), **attrs)
    return V(y, v.shape, v.dtype), outputs[1:]


def used_extra_outputs(ctx, g, extras, final_outputs):
    """Sometimes a training BN's statistics output is a graph output."""
    ex = [e for e in extras if e]
    if ex and ctx.chance(0.3) and g.kind == "main":
        final_outputs.append(ex[0])
        ctx.declared[ex[0]] = v_of_extra(ctx, g, ex[0])


def v_of_extra(ctx, g, name):
    """(dtype, [C]) of a BN's statistics output, from its node."""
    for n in g.nodes:
        if name in n.output:
            for t in g.inits:
                if t.name == n.input[3]:
                    from tensors import NAME_OF
                    return NAME_OF[t.data_type], list(t.dims)
    return ctx.case.dtype, None


def weight_values(ctx, shape, dtype):
    W = ctx.rng.uniform(-1, 1, shape)
    ctx.last_wmax = float(np.max(np.abs(W))) if W.size else 1.0
    return quant(W, dtype)


def conv(ctx, g, v, M=None, no_pad=False, shape_keep=False, transpose=None):
    """v [N, C, S...] -> Conv or ConvTranspose -> new value."""
    case = ctx.case
    N, C, S = v.shape[0], v.shape[1], list(v.shape[2:])
    dim = len(S)
    if transpose is None:
        transpose = ctx.chance(0.2) and not shape_keep
    divs = [d for d in range(1, C + 1) if C % d == 0]
    grp = ctx.pick(divs) if ctx.chance(0.35) else 1
    if grp == C and C > 1:
        case.tags.add("depthwise")
    if M is None:
        M = grp * ctx.randint(1, max(1, 6 // grp)) if grp > 1 else ctx.randint(1, 6)
    if shape_keep:
        M = C
        grp = ctx.pick([d for d in divs])
    attrs = {}
    k = [ctx.pick([1, 2, 3, 3]) for _ in S]
    strides = [ctx.pick([1, 1, 2, 3], [4, 3, 2, 1]) for _ in S]
    dil = [ctx.pick([1, 1, 1, 2]) for _ in S]
    if shape_keep:
        strides = [1] * dim
        k = [ctx.pick([1, 3]) for _ in S]
        dil = [1] * dim
    ext = [(kk - 1) * dd + 1 for kk, dd in zip(k, dil)]
    mode = ctx.pick(["pads", "none", "zeros", "VALID", "SAME_UPPER", "SAME_LOWER"],
                    [4, 3, 1, 1, 1.2, 0.8])
    if no_pad:
        mode = ctx.pick(["none", "zeros", "VALID"])
    if shape_keep:
        mode = "pads"
    # sizes must fit the kernel
    pads_b = [0] * dim
    pads_e = [0] * dim
    if mode == "pads":
        for i in range(dim):
            if shape_keep:
                pads_b[i] = pads_e[i] = (ext[i] - 1) // 2
            else:
                pads_b[i] = ctx.randint(0, ext[i] - 1) if ext[i] > 1 else ctx.randint(0, 1)
                pads_e[i] = ctx.randint(0, ext[i] - 1) if ext[i] > 1 else ctx.randint(0, 1)
        attrs["pads"] = pads_b + pads_e
    elif mode == "zeros":
        attrs["pads"] = [0] * (2 * dim)
    elif mode != "none":
        attrs["auto_pad"] = mode
        case.tags.add("auto_pad_" + mode)
        if mode.startswith("SAME") and any(d > 1 for d in dil) and not transpose:
            if ctx.chance(0.85):
                dil = [1] * dim
                ext = list(k)
            else:
                case.ort_na = case.ort_na or "SAME padding with dilation > 1 (onnxruntime refuses)"
    if not transpose:
        for i in range(dim):
            if mode.startswith("SAME"):
                continue
            if S[i] + pads_b[i] + pads_e[i] < ext[i]:
                # too small: drop the dilation, then the kernel
                dil[i] = 1
                ext[i] = k[i]
                if S[i] + pads_b[i] + pads_e[i] < ext[i]:
                    k[i] = ext[i] = max(1, S[i] + pads_b[i] + pads_e[i])
    if ctx.chance(0.5) or any(d != 1 for d in dil):
        attrs["dilations"] = dil
    if ctx.chance(0.5) or any(s != 1 for s in strides):
        attrs["strides"] = strides
    if ctx.chance(0.7):
        attrs["kernel_shape"] = k
    if grp != 1 or ctx.chance(0.2):
        attrs["group"] = grp
    dt = v.dtype
    bias = ctx.chance(0.6)
    if transpose:
        Wshape = [C, M // grp] + k
        outp = [0] * dim
        if ctx.chance(0.3) and mode in ("pads", "none", "zeros"):
            outp = [ctx.randint(0, max(0, s - 1)) for s in strides]
            if any(outp):
                attrs["output_padding"] = outp
                case.tags.add("output_padding")
        if mode in ("SAME_UPPER", "SAME_LOWER"):
            if any(ext[i] < strides[i] for i in range(dim)):
                # a kernel extent below the stride: negative total padding, which
                # onnxruntime clamps to 0 (output (L-1)*s + extent, not L*s)
                if ctx.chance(0.8):
                    strides = [1 if ext[i] < strides[i] else strides[i] for i in range(dim)]
                    attrs["strides"] = strides
                else:
                    case.ort_na = case.ort_na or "ConvTranspose SAME with a kernel extent below " \
                        "the stride (onnxruntime clamps the negative padding)"
            out = [S[i] * strides[i] for i in range(dim)]
        else:
            out = [strides[i] * (S[i] - 1) + outp[i] + ext[i] - pads_b[i] - pads_e[i]
                   for i in range(dim)]
        if any(o < 1 for o in out):
            # too much padding: none
            attrs.pop("pads", None)
            pads_b = pads_e = [0] * dim
            out = [strides[i] * (S[i] - 1) + outp[i] + ext[i] for i in range(dim)]
        if mode in ("pads", "none", "zeros") and ctx.chance(0.15):
            # output_shape instead: the pads follow from it
            full = [strides[i] * (S[i] - 1) + ext[i] for i in range(dim)]
            # total padding full - out in [0, extent - 1] (onnxruntime refuses others)
            out = [max(1, full[i] - ctx.randint(0, max(0, min(ext[i] - 1, full[i] - 1))))
                   for i in range(dim)]
            for a in ("pads", "output_padding"):
                attrs.pop(a, None)
            attrs["output_shape"] = out
            case.tags.add("output_shape")
        op = "ConvTranspose"
        case.tags.add("convtranspose")
    else:
        Wshape = [M, C // grp] + k
        if mode.startswith("SAME"):
            out = [-(-S[i] // strides[i]) for i in range(dim)]
        else:
            out = [(S[i] + pads_b[i] + pads_e[i] - ext[i]) // strides[i] + 1 for i in range(dim)]
        op = "Conv"
        case.tags.add("conv%dd" % dim)
    W = weight_values(ctx, Wshape, dt)
    ins = [v.name, g.param("W", W, dt, layer_source(ctx, g))]
    if bias:
        ins.append(g.param("b", ctx.rng.uniform(-0.5, 0.5, M), dt, layer_source(ctx, g)))
    y = ctx.fresh(op.lower() + "_out")
    g.node(op, ins, [y], **attrs)
    return V(y, [N, M] + out, dt)


def layer_source(ctx, g):
    return ctx.pick(["init", "constant", "identity", "outer", "input", "overridable", "computed"],
                    [40, 2, 1, 2 if g.kind == "sub" else 0, 0.5, 0.5, 0.3])


def gemm(ctx, g, v, transA=None):
    """v [M, K] (or [K, M] with transA) -> Gemm -> [M, N]."""
    case = ctx.case
    dt = v.dtype
    if transA is None:
        transA = int(ctx.chance(0.2))
    if transA:
        K, Mr = v.shape
    else:
        Mr, K = v.shape
    N = ctx.randint(1, 7)
    transB = int(ctx.chance(0.5))
    attrs = {}
    if transA or ctx.chance(0.2):
        attrs["transA"] = transA
    if transB or ctx.chance(0.2):
        attrs["transB"] = transB
    if ctx.chance(0.5):
        attrs["alpha"] = float(ctx.pick([0.5, 2.0, -1.5, 1.0]))
    if ctx.chance(0.5):
        attrs["beta"] = float(ctx.pick([0.5, 2.0, -1.5, 1.0, 0.0]))
    Bm = weight_values(ctx, [N, K] if transB else [K, N], dt)
    ins = [v.name, g.param("B", Bm, dt, layer_source(ctx, g))]
    cshape = ctx.pick(["none", "scalar", "N", "1N", "MN", "M1", "1"], [3, 1, 3, 1, 1, 1, 0.5])
    if case.opset < 11 and cshape == "none":
        cshape = "N"
    if cshape != "none":
        shp = {"scalar": [], "N": [N], "1N": [1, N], "MN": [Mr, N], "M1": [Mr, 1], "1": [1]}[cshape]
        ins.append(g.param("C", ctx.rng.uniform(-0.5, 0.5, shp), dt, layer_source(ctx, g)))
    case.tags.add("gemm_C_" + cshape)
    if transA:
        case.tags.add("gemm_transA")
    y = ctx.fresh("gemm_out")
    g.node("Gemm", ins, [y], **attrs)
    return V(y, [Mr, N], dt)


def matmul(ctx, g, v, b3=False):
    """v [..., K] -> MatMul(B [K, N]) (or B [b, K, N] with b3) -> new value."""
    case = ctx.case
    dt = v.dtype
    K = v.shape[-1]
    N = ctx.randint(1, 7)
    if b3:
        bb = ctx.randint(1, 3)
        Bm = weight_values(ctx, [bb, K, N], dt)
        out = [bb] + list(v.shape[:-1]) + [N] if v.rank == 2 else None
        case.tags.add("matmul_b3")
    else:
        Bm = weight_values(ctx, [K, N], dt)
        out = list(v.shape[:-1]) + [N]
    ins = [v.name, g.param("B", Bm, dt, layer_source(ctx, g))]
    y = ctx.fresh("matmul_out")
    g.node("MatMul", ins, [y])
    case.tags.add("matmul_rank%d" % v.rank)
    return V(y, out, dt)


def relu(ctx, g, v):
    y = ctx.fresh("relu_out")
    g.node("Relu", [v.name], [y])
    return V(y, v.shape, v.dtype)


def mul_add(ctx, g, v, which=None):
    """v -> Mul and / or Add by a per-channel constant (or, rarely, one that is not)."""
    which = which or ctx.pick(["mul", "add", "mul_add", "add_mul"])
    C = v.shape[1]
    for op in which.split("_"):
        form = ctx.pick(["c11", "1c11", "scalar", "c", "spatial"], [4, 2, 1, 1, 0.5])
        r = v.rank
        if form == "c11" and r >= 2:
            shp = [C] + [1] * (r - 2)
        elif form == "1c11":
            shp = [1, C] + [1] * (r - 2)
        elif form == "scalar":
            shp = []
        elif form == "c" and r == 2:
            shp = [C]
        elif form == "spatial" and r >= 3:
            shp = [1, 1] + list(v.shape[2:])
        else:
            shp = [1, C] + [1] * (r - 2)
        if op == "mul":
            k = ctx.rng.uniform(0.5, 1.5, shp) * ctx.rng.choice([-1.0, 1.0], shp)
        else:
            k = ctx.rng.uniform(-1, 1, shp)
        kname = g.param("k" + op, k, v.dtype, ctx.pick(["init", "constant", "input"], [10, 2, 0.3]))
        y = ctx.fresh(op + "_out")
        ins = [v.name, kname] if ctx.chance(0.7) else [kname, v.name]
        g.node(op.capitalize(), ins, [y])
        v = V(y, v.shape, v.dtype)
        ctx.case.tags.add("muladd_" + form)
    return v


def flatten(ctx, g, v):
    y = ctx.fresh("flat")
    g.node("Flatten", [v.name], [y])
    return V(y, [v.shape[0], int(np.prod(v.shape[1:]))], v.dtype)


def tap(ctx, g, v, outputs, how=None):
    """v gets a second reader (a Relu whose result is a graph output) or becomes
    a graph output itself."""
    how = how or ctx.pick(["reader", "output", "bn"], [4, 4, 1])
    if how == "output" and g.kind == "main":
        outputs.append(v.name)
        ctx.case.tags.add("edge_graph_output")
    elif how == "bn" and v.rank >= 2:
        r, _ = bn(ctx, g, v, training="no")
        outputs.append(r.name)
        ctx.case.tags.add("edge_second_bn")
    else:
        r = relu(ctx, g, v)
        outputs.append(r.name)
        ctx.case.tags.add("edge_second_reader")


# ---------------------------------------------------------------------------
# templates: one model each
# ---------------------------------------------------------------------------

def layer(ctx, g, v, **kw):
    """The layer for v's rank: Conv / ConvTranspose for rank >= 3, Gemm /
    MatMul for rank 2, MatMul for rank 3 (without a Conv1d)."""
    if v.rank >= 3 and v.dtype != BF16:
        return conv(ctx, g, v, **{k: kw[k] for k in ("no_pad", "transpose", "shape_keep") if k in kw})
    if v.rank == 2:
        if kw.get("before") and ctx.chance(0.15):
            return gemm(ctx, g, v, transA=1)
        if ctx.chance(0.05):
            return matmul(ctx, g, v, b3=True)
        return gemm(ctx, g, v, transA=0 if kw.get("before") else None) if ctx.chance(0.55) \
            else matmul(ctx, g, v)
    return matmul(ctx, g, v)


def t_layer_bn(ctx, g, v, outs):
    if ctx.chance(0.2):
        v = relu(ctx, g, layer(ctx, g, v))
    v = layer(ctx, g, v)
    v, extra = bn(ctx, g, v)
    used_extra_outputs(ctx, g, extra, outs)
    if ctx.chance(0.3):
        v = relu(ctx, g, v)
    return v


def t_bn_layer(ctx, g, v, outs):
    if ctx.chance(0.3) and v.rank >= 3 and v.dtype != BF16:
        v = relu(ctx, g, conv(ctx, g, v))
    v, extra = bn(ctx, g, v)
    used_extra_outputs(ctx, g, extra, outs)
    return layer(ctx, g, v, before=True, no_pad=ctx.chance(0.6), transpose=False)


def t_layer_bn_bn(ctx, g, v, outs):
    v = layer(ctx, g, v)
    v, _ = bn(ctx, g, v)
    v, _ = bn(ctx, g, v)
    return v


def t_bn_bn_layer(ctx, g, v, outs):
    v, _ = bn(ctx, g, v)
    v, _ = bn(ctx, g, v)
    return layer(ctx, g, v, before=True, no_pad=ctx.chance(0.7), transpose=False)


def t_layer_muladd(ctx, g, v, outs):
    v = layer(ctx, g, v)
    if ctx.chance(0.5):
        v, _ = bn(ctx, g, v)
    v = mul_add(ctx, g, v)
    if ctx.chance(0.3):
        v, _ = bn(ctx, g, v)
    return v


def t_standalone(ctx, g, v, outs):
    if ctx.chance(0.5):
        v = relu(ctx, g, v)
    v, extra = bn(ctx, g, v)
    used_extra_outputs(ctx, g, extra, outs)
    if ctx.chance(0.3):
        v = relu(ctx, g, v)
    return v


def t_layer_edge_bn(ctx, g, v, outs):
    v = layer(ctx, g, v)
    tap(ctx, g, v, outs)
    v, _ = bn(ctx, g, v)
    return v


def t_bn_edge_layer(ctx, g, v, outs):
    if ctx.chance(0.4):
        v = relu(ctx, g, v)
    v, _ = bn(ctx, g, v)
    tap(ctx, g, v, outs)
    return layer(ctx, g, v, before=True, no_pad=True, transpose=False)


def t_shared_weight(ctx, g, v, outs):
    """Two layers reading one weight, each followed by a BN."""
    case = ctx.case
    case.tags.add("shared_weight")
    if v.rank >= 3 and v.dtype != BF16:
        a = conv(ctx, g, v, transpose=False)
        first = g.nodes[-1]
        y = ctx.fresh("conv_out")
        attrs = {a_.name: helper.get_attribute_value(a_) for a_ in first.attribute}
        g.node("Conv", list(first.input), [y], **attrs)
        b = V(y, a.shape, a.dtype)
    else:
        a = gemm(ctx, g, v) if ctx.chance(0.5) and v.rank == 2 else matmul(ctx, g, v)
        first = g.nodes[-1]
        y = ctx.fresh("layer2_out")
        attrs = {a_.name: helper.get_attribute_value(a_) for a_ in first.attribute}
        g.node(first.op_type, list(first.input), [y], **attrs)
        b = V(y, a.shape, a.dtype)
    a, _ = bn(ctx, g, a)
    b, _ = bn(ctx, g, b)
    outs.append(b.name)
    return a


def t_unverified(ctx, g, v, outs):
    """A 1-D Conv whose kernel extent is beyond the local check (UNVERIFIED)."""
    case = ctx.case
    case.tags.add("huge_kernel")
    dt = v.dtype
    N = v.shape[0]
    C = ctx.randint(1, 3)
    M = ctx.randint(1, 3)
    before = ctx.chance(0.4)
    if ctx.chance(0.5):
        k, d = ctx.randint(4097, 4110), 1
    else:
        k, d = 3, ctx.randint(2050, 2100)
    ext = (k - 1) * d + 1
    if before:
        L = ext + ctx.randint(0, 3)
        pads = [0, 0]
    else:
        p = min(ext // 2, 4096)
        L = max(1, ext - 2 * p + ctx.randint(0, 3))
        pads = [p, p]
    x = ctx.fresh("X")
    g.inputs.append(helper.make_tensor_value_info(x, ELEM[dt], [N, C, L]))
    case.inputs.append({"name": x, "dtype": dt, "shape": [N, C, L], "kind": "data"})
    xv = V(x, [N, C, L], dt)
    if before:
        xv, _ = bn(ctx, g, xv, kind="normal", training="no")
    W = weight_values(ctx, [M, C, k], dt) / np.sqrt(k)
    ins = [xv.name, g.param("W", quant(W, dt), dt)]
    if ctx.chance(0.5):
        ins.append(g.param("b", ctx.rng.uniform(-0.5, 0.5, M), dt))
    y = ctx.fresh("conv_out")
    attrs = {"pads": pads}
    if d > 1:
        attrs["dilations"] = [d]
    g.node("Conv", ins, [y], **attrs)
    out = (L + pads[0] + pads[1] - ext) + 1
    yv = V(y, [N, M, out], dt)
    if not before:
        yv, _ = bn(ctx, g, yv, kind="normal", training="no")
    outs.append(yv.name)
    return v


def t_bn_conv_same(ctx, g, v, outs):
    """BN -> Conv with auto_pad SAME_* whose padding is zero (kernel 1, or
    kernel = stride dividing the size), or not (known bug a)."""
    case = ctx.case
    if v.rank < 3 or v.dtype == BF16:
        return t_bn_layer(ctx, g, v, outs)
    if ctx.chance(0.5):
        v = relu(ctx, g, v)
    b, _ = bn(ctx, g, v, kind=ctx.pick(["normal", "normal", "dead", "untrained"]), training="no")
    C = v.shape[1]
    dim = v.rank - 2
    S = list(v.shape[2:])
    form = ctx.pick(["k1", "ks", "other"], [3, 3, 1])
    k, st = [], []
    for i in range(dim):
        if form == "k1":
            k.append(1)
            st.append(ctx.pick([1, 2]))
        elif form == "ks":
            divs = [d for d in range(1, S[i] + 1) if S[i] % d == 0]
            d = ctx.pick(divs)
            k.append(d)
            st.append(d)
        else:
            k.append(ctx.pick([2, 3]))
            st.append(1)
    case.tags.add("same_" + form)
    grp = ctx.pick([1, C]) if C > 1 else 1
    M = grp * ctx.randint(1, 2) if grp > 1 else ctx.randint(1, 5)
    attrs = {"auto_pad": ctx.pick(["SAME_UPPER", "SAME_LOWER"]), "strides": st}
    if ctx.chance(0.5):
        attrs["kernel_shape"] = k
    if grp > 1:
        attrs["group"] = grp
    W = weight_values(ctx, [M, C // grp] + k, v.dtype)
    ins = [b.name, g.param("W", W, v.dtype)]
    if ctx.chance(0.5):
        ins.append(g.param("b", ctx.rng.uniform(-0.5, 0.5, M), v.dtype))
    y = ctx.fresh("conv_out")
    g.node("Conv", ins, [y], **attrs)
    if ctx.chance(0.7):
        ctx.force_value_info = True
    return V(y, [v.shape[0], M] + [-(-S[i] // st[i]) for i in range(dim)], v.dtype)


def t_edge(ctx, g, v, outs):
    """One rare condition on purpose: spatial = 0 (opset 7), a sparse or a
    run-time parameter, an initializer listed as an input, a MatMul whose B is
    3-D, a Gemm with transA after a BN, a rank-3 MatMul."""
    case = ctx.case
    what = ctx.pick(["spatial0", "sparse", "input", "overridable", "b3", "transA", "rank3",
                     "layer_input", "computed", "sub_reader"])
    case.pattern_detail = "edge:" + what
    if what == "sub_reader" and case.opset >= 11:
        # layer -> BN, and an If branch reads the layer's output from the outer scope
        y = layer(ctx, g, v)
        b, _ = bn(ctx, g, y, training="no", kind="normal")
        cond = ctx.fresh("cond")
        g.inputs.append(helper.make_tensor_value_info(cond, TensorProto.BOOL, []))
        case.inputs.append({"name": cond, "dtype": "bool", "shape": [], "kind": "cond"})
        branches = []
        for op in ("Relu", "Neg"):
            o = ctx.fresh("branch_out")
            branches.append(helper.make_graph(
                [helper.make_node(op, [y.name], [o], name=ctx.fresh(op.lower()))], ctx.fresh("branch"),
                [], [helper.make_tensor_value_info(o, ELEM[y.dtype], list(y.shape))]))
        yo = ctx.fresh("if_out")
        g.node("If", [cond], [yo], then_branch=branches[0], else_branch=branches[1])
        outs.append(yo)
        case.tags.add("outer_scope_reader")
        return b
    if what == "spatial0" and case.opset <= 8 and v.rank >= 3:
        y = ctx.fresh("bn_out")
        C = v.shape[1]
        v = layer(ctx, g, v) if ctx.chance(0.6) else v
        if v.rank < 3:
            return v
        C = v.shape[1]
        shp = list(v.shape[1:])          # the spec's C x D1 x ... for spatial = 0
        st, eps = bn_stats(ctx, C, "normal", [v.dtype, v.dtype])
        names = [g.param("bn_" + k, np.broadcast_to(st[k].reshape([C] + [1] * (len(shp) - 1)), shp),
                         v.dtype) for k in ("scale", "B", "mean", "var")]
        g.node("BatchNormalization", [v.name] + names, [y], spatial=0)
        case.tags.add("spatial0")
        return V(y, v.shape, v.dtype)
    if what in ("sparse", "input", "overridable", "computed"):
        src = what
        k = ctx.pick(["scale", "B", "mean", "var"])
        pre = ctx.chance(0.6)
        if pre:
            v = layer(ctx, g, v)
            v, _ = bn(ctx, g, v, sources={k: src}, training="no", kind="normal")
            return v
        v, _ = bn(ctx, g, v, sources={k: src}, training="no", kind="normal")
        return layer(ctx, g, v, before=True, no_pad=True, transpose=False)
    if what == "layer_input":
        # the layer's weight a graph input / computed: the BN cannot fold into it
        if v.rank >= 3 and v.dtype != BF16:
            v = conv(ctx, g, v, transpose=False)
            n = g.nodes[-1]
        elif v.rank == 2:
            v = gemm(ctx, g, v)
            n = g.nodes[-1]
        else:
            v = matmul(ctx, g, v)
            n = g.nodes[-1]
        wname = n.input[1]
        for t in list(g.inits):
            if t.name == wname:
                g.inits.remove(t)
                from tensors import read_tensor
                a = read_tensor(t)
                n.input[1] = g.param("Win", a, v.dtype, ctx.pick(["input", "computed", "overridable"]))
        v, _ = bn(ctx, g, v, training="no", kind="normal")
        return v
    if v.rank >= 3:
        v = flatten(ctx, g, v) if what != "rank3" or v.rank != 3 else v
    if what == "b3" and v.rank == 2:
        if ctx.chance(0.5):
            v = matmul(ctx, g, v, b3=True)
            v, _ = bn(ctx, g, v, training="no")
            return v
        v, _ = bn(ctx, g, v, training="no")
        return matmul(ctx, g, v, b3=True)
    if what == "transA" and v.rank == 2:
        v, _ = bn(ctx, g, v, training="no")
        return gemm(ctx, g, v, transA=1)
    if v.rank == 2 and what == "rank3":
        return t_layer_bn(ctx, g, v, outs)
    # rank 3: MatMul -> BN or BN -> MatMul on [b, T, K]
    if ctx.chance(0.5):
        v = matmul(ctx, g, v)
        v, _ = bn(ctx, g, v, training="no")
        return v
    v, _ = bn(ctx, g, v, training="no")
    return matmul(ctx, g, v)


def sub_body(ctx, sg, outer_v, kinds):
    """The blocks of a subgraph or function body on outer_v."""
    t = ctx.pick(kinds, [0.5 if k == "if" else 1 for k in kinds])
    outs = []
    v = (t_if if t == "if" else TEMPLATES_SIMPLE[t])(ctx, sg, outer_v, outs)
    return v, t, outs


def t_if(ctx, g, v, outs):
    """If(cond): then_branch holds the blocks on the outer value, else_branch
    a second version (or Identity when the shapes agree)."""
    case = ctx.case
    case.tags.add("if")
    if g.kind != "main":
        case.tags.add("nested_subgraph")
    cond = ctx.fresh("cond")
    g.main().inputs.append(helper.make_tensor_value_info(cond, TensorProto.BOOL, []))
    case.inputs.append({"name": cond, "dtype": "bool", "shape": [], "kind": "cond"})
    # else_branch: the same blocks drawn again from the same state (other names),
    # then negated, so that the output depends on cond
    state = int(ctx.rng.integers(1 << 62))
    kinds = ["layer_bn", "bn_layer", "standalone", "layer_bn_bn", "layer_muladd"]
    rng = ctx.rng
    ctx.rng = np.random.default_rng(state)
    then_g = Gb(ctx, "sub", g)
    tv, t1, _ = sub_body(ctx, then_g, v, kinds)
    ctx.rng = np.random.default_rng(state)
    else_g = Gb(ctx, "sub", g)
    ev, _, _ = sub_body(ctx, else_g, v, kinds)
    ctx.rng = rng
    if ev.shape != tv.shape:
        raise Retry("branch shapes")
    neg = ctx.fresh("neg")
    else_g.node("Neg", [ev.name], [neg])
    ev = V(neg, ev.shape, ev.dtype)
    yo = ctx.fresh("if_out")

    def graph_of(sb, out_v):
        o = ctx.fresh("branch_out")
        sb.node("Identity", [out_v.name], [o])
        return helper.make_graph(sb.nodes, ctx.fresh("branch"), [],
                                 [helper.make_tensor_value_info(o, ELEM[out_v.dtype], list(out_v.shape))],
                                 sb.inits)
    g.node("If", [cond], [yo], then_branch=graph_of(then_g, tv), else_branch=graph_of(else_g, ev))
    case.pattern_detail = "if:" + t1
    return V(yo, tv.shape, tv.dtype)


def t_loop(ctx, g, v, outs):
    """Loop (trip count 2): the body computes the blocks on the outer value as a
    scan output ([2, ...])."""
    case = ctx.case
    case.tags.add("loop")
    body = Gb(ctx, "sub", g)
    bv, t1, _ = sub_body(ctx, body, v, ["layer_bn", "bn_layer", "standalone", "layer_bn_bn", "if"])
    it, cin, cout, so = ctx.fresh("iter"), ctx.fresh("cond_in"), ctx.fresh("cond_out"), ctx.fresh("scan")
    body.node("Identity", [cin], [cout])
    body.node("Identity", [bv.name], [so])
    bg = helper.make_graph(body.nodes, ctx.fresh("body"),
                           [helper.make_tensor_value_info(it, TensorProto.INT64, []),
                            helper.make_tensor_value_info(cin, TensorProto.BOOL, [])],
                           [helper.make_tensor_value_info(cout, TensorProto.BOOL, []),
                            helper.make_tensor_value_info(so, ELEM[bv.dtype], list(bv.shape))],
                           body.inits)
    trip = g.add_init(ctx.fresh("trip"), np.array(2.0), "int64")
    cond0 = g.add_init(ctx.fresh("cond0"), np.array(1.0), "bool")
    yo = ctx.fresh("loop_out")
    g.node("Loop", [trip, cond0], [yo], body=bg)
    case.pattern_detail = "loop:" + t1
    return V(yo, [2] + list(bv.shape), bv.dtype)


def t_scan(ctx, g, v, outs):
    """Scan over a leading axis of 2: the body holds the blocks on one slice."""
    case = ctx.case
    case.tags.add("scan")
    T = 2
    xs = ctx.fresh("Xs")
    g.inputs.append(helper.make_tensor_value_info(xs, ELEM[v.dtype], [T] + list(v.shape)))
    case.inputs.append({"name": xs, "dtype": v.dtype, "shape": [T] + list(v.shape), "kind": "data"})
    body = Gb(ctx, "sub", g)
    ein = ctx.fresh("elem")
    bv, t1, _ = sub_body(ctx, body, V(ein, v.shape, v.dtype), ["layer_bn", "bn_layer", "standalone",
                                                              "layer_bn_bn", "layer_muladd"])
    so = ctx.fresh("scan_out")
    body.node("Identity", [bv.name], [so])
    bg = helper.make_graph(body.nodes, ctx.fresh("scan_body"),
                           [helper.make_tensor_value_info(ein, ELEM[v.dtype], list(v.shape))],
                           [helper.make_tensor_value_info(so, ELEM[bv.dtype], list(bv.shape))],
                           body.inits)
    yo = ctx.fresh("scan_y")
    g.node("Scan", [xs], [yo], body=bg, num_scan_inputs=1)
    case.pattern_detail = "scan:" + t1
    return V(yo, [T] + list(bv.shape), bv.dtype)


def t_function(ctx, g, v, outs):
    """A model-local function (domain local) holding the blocks, called once or
    twice."""
    case = ctx.case
    case.tags.add("function")
    fb = Gb(ctx, "function", g)
    xin = ctx.fresh("fx")
    fv, t1, _ = sub_body(ctx, fb, V(xin, v.shape, v.dtype), ["layer_bn", "bn_layer", "standalone",
                                                            "layer_bn_bn", "layer_muladd"])
    fout = ctx.fresh("fy")
    fb.node("Identity", [fv.name], [fout])
    fname = ctx.fresh("Block")
    formal = [xin] + [n for n, _, _ in fb.fn_inputs]
    fn = helper.make_function("local", fname, formal, [fout], fb.nodes,
                              [helper.make_opsetid("", case.opset)])
    ctx.functions.append(fn)
    ctx.extra_domains["local"] = 1
    actual = [v.name]
    for n, a, dt in fb.fn_inputs:
        actual.append(g.param("fparam", a, dt, ctx.pick(["init", "input"], [3, 1])))
    calls = 2 if ctx.chance(0.3) else 1
    y = None
    for _ in range(calls):
        y = ctx.fresh("call_out")
        g.node(fname, actual, [y], domain="local")
        if calls == 2 and _ == 0:
            outs.append(y)
    case.pattern_detail = "function:" + t1
    return V(y, fv.shape, fv.dtype)


def t_chain(ctx, g, v, outs):
    """A random chain of 2 to 4 simple templates."""
    for _ in range(ctx.randint(2, 4)):
        t = ctx.pick(list(TEMPLATES_SIMPLE))
        if t in ("unverified",):
            continue
        v = TEMPLATES_SIMPLE[t](ctx, g, v, outs)
        if v.rank >= 3 and ctx.chance(0.2):
            v = flatten(ctx, g, v)
    return v


class Retry(Exception):
    pass


def t_unknown_opset(ctx, g, v, outs):
    """A model importing an ai.onnx opset newer than any bnfold knows (99):
    its BNs' meaning there is not known, every one is skipped UNKNOWN_OPSET."""
    return (t_layer_bn if ctx.chance(0.5) else t_bn_layer)(ctx, g, v, outs)


TEMPLATES_SIMPLE = {
    "layer_bn": t_layer_bn, "bn_layer": t_bn_layer, "layer_bn_bn": t_layer_bn_bn,
    "bn_bn_layer": t_bn_bn_layer, "layer_muladd": t_layer_muladd, "standalone": t_standalone,
    "layer_edge_bn": t_layer_edge_bn, "bn_edge_layer": t_bn_edge_layer,
    "shared_weight": t_shared_weight,
}
TEMPLATES = dict(TEMPLATES_SIMPLE, **{"if": t_if, "loop": t_loop, "function": t_function,
                                      "chain": t_chain, "unverified": t_unverified, "scan": t_scan,
                                      "bn_conv_same": t_bn_conv_same, "edge": t_edge,
                                      "unknown_opset": t_unknown_opset})
TEMPLATE_WEIGHTS = {"layer_bn": 14, "bn_layer": 10, "layer_bn_bn": 4, "bn_bn_layer": 4,
                    "layer_muladd": 5, "standalone": 6, "layer_edge_bn": 5, "bn_edge_layer": 4,
                    "shared_weight": 2, "if": 4, "loop": 3, "function": 4, "chain": 10,
                    "unverified": 1.2, "bn_conv_same": 2, "edge": 5, "scan": 2,
                    "unknown_opset": 0.6}


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------

def rng_for(seed, index):
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF,
                                  zlib.crc32(b"bnfold-difftest")])


def choose_setup(ctx, template):
    case = ctx.case
    rng = ctx
    # opset: BN versions 7, 9, 14, 15 (and 11/13 as 9)
    case.opset = rng.pick([7, 9, 11, 13, 14, 15, 17], [1.5, 1.5, 1, 2, 2, 3, 1])
    if template in ("function",):
        case.opset = max(case.opset, 11)
    if template in ("if", "loop", "scan"):
        case.opset = max(case.opset, 11)
    case.dtype = rng.pick([F32, F16, F64, BF16], [6, 2, 1.5, 1])
    if case.dtype == BF16:
        case.opset = max(case.opset, 14 if template not in ("if", "loop", "scan") else 16)
    if template in ("unverified", "bn_conv_same") and case.dtype == BF16:
        case.dtype = F32
    if template == "edge" and rng.chance(0.3) and case.dtype != BF16:
        case.opset = 7
        case.ir = rng.pick([3, 4])
    # IR: 3 needs every initializer listed as an input; functions need 8
    if template == "unknown_opset":
        case.opset = 99
    irs = {7: [3, 4], 9: [3, 4, 5], 11: [6, 7], 13: [7, 8], 14: [7, 8], 15: [8], 16: [8],
           17: [8], 99: [8]}[case.opset]
    case.ir = rng.pick(irs)
    if template == "function":
        case.ir = 8
    opts = []
    if rng.chance(0.25):
        opts.append("--lower-standalone")
    if rng.chance(0.15):
        opts.append("--assume-inference")
    if rng.chance(0.12):
        opts.append("--freeze-inputs")
    if rng.chance(0.04):
        opts.append("--no-verify")
    if template == "unknown_opset":
        opts = [o for o in opts if o == "--no-verify"]
    case.opts = opts
    case.external = rng.chance(0.1)
    if case.external:
        case.tags.add("external_data")


def input_shape(ctx, world):
    N = ctx.pick([1, 2], [2, 1])
    C = ctx.pick([1, 2, 3, 4, 6, 8], [1, 2, 3, 3, 1, 1])
    if world == "conv1":
        return [N, C, ctx.randint(3, 12)]
    if world == "conv2":
        return [N, C, ctx.randint(3, 7), ctx.randint(3, 7)]
    if world == "conv3":
        return [N, C, ctx.randint(2, 5), ctx.randint(2, 5), ctx.randint(2, 4)]
    if world == "rank2":
        return [ctx.randint(1, 5), ctx.pick([1, 2, 3, 4, 5, 8])]
    if world == "rank3":
        return [N, ctx.randint(2, 4), ctx.randint(2, 6)]
    raise ValueError(world)


def build(seed, index, template=None):
    rng = rng_for(seed, index)
    case = Case()
    case.seed, case.index = seed, index
    ctx = Ctx(rng, case)
    if template is None:
        names = list(TEMPLATE_WEIGHTS)
        template = ctx.pick(names, [TEMPLATE_WEIGHTS[n] for n in names])
    case.pattern = template
    case.pattern_detail = template
    choose_setup(ctx, template)
    g = Gb(ctx, "main")
    world = ctx.pick(["conv1", "conv2", "conv3", "rank2", "rank3"], [2, 5, 1.5, 3, 0.7])
    if case.dtype == BF16:
        world = ctx.pick(["rank2", "rank3"], [5, 1])
        case.ort_na = None
    if template == "unknown_opset":
        case.ort_na = "ai.onnx opset 99 (onnxruntime knows up to its own)"
    xs = input_shape(ctx, world)
    x = ctx.fresh("X")
    g.inputs.append(helper.make_tensor_value_info(x, ELEM[case.dtype], xs))
    case.inputs.append({"name": x, "dtype": case.dtype, "shape": xs, "kind": "data"})
    v = V(x, xs, case.dtype)
    outs = []
    v = TEMPLATES[template](ctx, g, v, outs)
    if v.name not in outs and not (template == "unverified" and v.name == x):
        outs.insert(0, v.name)
    if template == "unverified" and v.name == x:
        pass
    return finish(ctx, g, outs)


def finish(ctx, g, outs):
    """The ModelProto: outputs typed (shapes from onnx's inference where it
    works), value_info sometimes, initializers as inputs at IR 3."""
    case = ctx.case
    seen = set()
    outs = [o for o in outs if not (o in seen or seen.add(o))]
    inputs = list(g.inputs)
    init_inputs = list(g.init_inputs)
    if case.ir < 4:
        have = {i.name for i in inputs} | {i.name for i in init_inputs}
        for t in g.inits:
            if t.name not in have:
                init_inputs.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    # outputs without shapes first; onnx's shape inference gives them
    graph = helper.make_graph(g.nodes, "difftest", inputs + init_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                               for o in outs], g.inits)
    ops = [helper.make_opsetid("", case.opset)] + [helper.make_opsetid(d, v)
                                                  for d, v in ctx.extra_domains.items()]
    m = helper.make_model(graph, opset_imports=ops, producer_name="bnfold-difftest",
                          producer_version="1", functions=ctx.functions) if ctx.functions else \
        helper.make_model(graph, opset_imports=ops, producer_name="bnfold-difftest",
                          producer_version="1")
    m.ir_version = case.ir
    inferred = onnx.shape_inference.infer_shapes(m)
    known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    del m.graph.output[:]
    for o in outs:
        vi = known.get(o)
        if (vi is None or not vi.type.tensor_type.elem_type) and o in ctx.declared:
            dt, shp = ctx.declared[o]
            vi = helper.make_tensor_value_info(o, ELEM[dt], shp)
        if vi is None or not vi.type.tensor_type.elem_type:
            raise Retry("output %s has no inferred type" % o)
        m.graph.output.append(vi)
    if ctx.chance(0.4) or ctx.force_value_info:
        del m.graph.value_info[:]
        m.graph.value_info.extend([vi for vi in inferred.graph.value_info if vi.name not in outs])
        case.tags.add("value_info")
    case.model = m
    return case


def generate(seed, index, template=None):
    """The case (seed, index): retried with derived indices until valid."""
    last = None
    for attempt in range(20):
        try:
            case = build(seed, index * 1000003 + attempt if attempt else index, template)
            case.index = index
            case.attempt = attempt
            onnx.checker.check_model(case.model, full_check=True)
            return case
        except Retry as e:
            last = e
        except onnx.checker.ValidationError as e:
            last = e
        except onnx.shape_inference.InferenceError as e:
            last = e
    raise RuntimeError("no valid model for (%s, %s): %s" % (seed, index, last))
