"""The expected fate of every BatchNormalization of a model, from the
specification (docs/contract.md, /work/shared/DESIGN.md, README "What folds"),
computed without bnfold.

expected(model, opts) simulates the fold pass on a private copy of the graph:
graph by graph (the main graph, then each node's subgraphs right after the
node, then the model-local functions), each folded to a fixed point (a BN into
the layer before it, else into the layer after it; a Mul / Add by a
per-channel constant into the layer before it), then --lower-standalone.  It
returns one entry per BN of the input in report order:

    {"name", "graph", "decision": fold | skip | lower, "code": None | CODE,
     "position": after | before | None, "layer_op"}

and the counts of the fold actions by op (BatchNormalization, Mul, Add).

Where the documents do not say which of two reasons wins, the order below is
the one bnfold documents in its code comments ("training mode outranks
parameter problems"), written down here once:

  1. the BN itself: training mode; else the first parameter (scale, B, mean,
     var) that is not a constant (PARAM_NOT_CONSTANT, PARAM_OVERRIDABLE,
     UNSUPPORTED_DTYPE); else parameter shapes (SHAPE_MISMATCH) / spatial = 0
     (SPATIAL); else a non-finite s or t (NON_FINITE);
  2. the layer before it (layer -> BN), else the layer after it (BN -> layer);
     the reason of the layer before wins when both fail;
  3. per fold: the value between the two nodes a graph output
     (LAYER_GRAPH_OUTPUT), read by other nodes (LAYER_MULTI_CONSUMER), the
     layer's weight and bias constant, the layer's form (SHAPE_MISMATCH,
     PADDING, UNSUPPORTED_LAYER), the folded weight and bias representable in
     their type (NON_FINITE), the fold checkable on its own (UNVERIFIED).

Correct behaviour that bnfold does not have yet is encoded as correct (see
KNOWN in judge.py): a BN before a Conv whose SAME padding is zero folds; a BN
whose output feeds a layer and something else is LAYER_MULTI_CONSUMER (or
LAYER_GRAPH_OUTPUT), not NO_LAYER.
"""

import copy
import math

import numpy as np

from tensors import FLOAT_TYPES, NAME_OF, quant, read_tensor, representable

YES, NO, OVERRIDABLE, DTYPE = "yes", "no", "overridable", "dtype"
CONST_CODE = {NO: "PARAM_NOT_CONSTANT", OVERRIDABLE: "PARAM_OVERRIDABLE", DTYPE: "UNSUPPORTED_DTYPE"}
AFTER_LAYERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")     # layer -> BN
BEFORE_LAYERS = ("Conv", "Gemm", "MatMul")                      # BN -> layer
LOWERABLE = ("NO_LAYER", "LAYER_MULTI_CONSUMER", "LAYER_GRAPH_OUTPUT", "PADDING",
             "UNSUPPORTED_LAYER")
# the local check's limits (README: "a kernel too large for the local check")
CHECK_EXTENT = 4096
CHECK_VALUES = 1 << 22
CHECK_VALUES_MAX = 1 << 24
MAX_RANK = 8
# operators whose output has the element type of their input 0 (bnfold's list)
SAME_TYPE = ("Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Dropout", "Flatten",
             "Reshape", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "AveragePool",
             "GlobalAveragePool", "GlobalMaxPool", "Conv", "ConvTranspose", "Gemm", "MatMul",
             "Add", "Sub", "Mul", "Div", "BatchNormalization", "Concat", "Pad", "Resize",
             "Softmax")
RANK_THROUGH = ("Identity", "Relu", "BatchNormalization", "Dropout", "Sigmoid", "Tanh", "Clip",
                "LeakyRelu")


class Tensor:
    def __init__(self, dtype, v):
        self.dtype = dtype
        self.v = v


class Node:
    def __init__(self, p, folder, outer_graph, opset, ir, path):
        self.op = p.op_type
        self.domain = p.domain
        self.name = p.name
        self.inputs = list(p.input)
        self.outputs = list(p.output)
        self.attrs = {}
        self.subgraphs = []           # (attribute name, Graph)
        self.const_value = None       # Constant: (kind, Tensor)
        for a in p.attribute:
            if a.type == a.GRAPH:
                sub = Graph.from_proto(a.g, folder, outer_graph, opset, ir,
                                       "%s/%s" % (path + "/" if path else "", a.name))
                self.subgraphs.append((a.name, sub))
            elif a.type == a.GRAPHS:
                for k, gp in enumerate(a.graphs):
                    self.subgraphs.append((a.name, Graph.from_proto(gp, folder, outer_graph, opset,
                                                                    ir, path)))
            elif a.type == a.INT:
                self.attrs[a.name] = a.i
            elif a.type == a.INTS:
                self.attrs[a.name] = list(a.ints)
            elif a.type == a.FLOAT:
                self.attrs[a.name] = float(a.f)
            elif a.type == a.FLOATS:
                self.attrs[a.name] = [float(x) for x in a.floats]
            elif a.type == a.STRING:
                self.attrs[a.name] = a.s.decode()
            elif a.type == a.TENSOR:
                self.attrs[a.name] = a.t
            elif a.type == a.SPARSE_TENSOR:
                self.attrs[a.name] = "sparse"
        if self.op == "Constant" and self.domain in ("", "ai.onnx"):
            if "value" in self.attrs:
                t = self.attrs["value"]
                dt = NAME_OF.get(t.data_type)
                if dt in FLOAT_TYPES:
                    self.const_value = (YES, Tensor(dt, read_tensor(t, folder)))
                else:
                    self.const_value = (DTYPE, None)
            elif "value_float" in self.attrs:
                self.const_value = (YES, Tensor("float32", np.array(self.attrs["value_float"])))
            elif "value_floats" in self.attrs:
                self.const_value = (YES, Tensor("float32", np.array(self.attrs["value_floats"])))
            else:
                self.const_value = (DTYPE, None)

    def attr(self, name, default):
        return self.attrs.get(name, default)

    def onnx(self):
        return self.domain in ("", "ai.onnx")


def shape_of(vi):
    t = vi.type
    if t.HasField("tensor_type") and t.tensor_type.HasField("shape"):
        return [d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]
    return None


class Graph:
    @staticmethod
    def from_proto(gp, folder, outer, opset, ir, path, function=None):
        g = Graph()
        g.outer = outer
        g.opset = opset
        g.ir = ir
        g.path = path
        g.is_function = function is not None
        g.inits = {}
        g.input_names = []
        g.output_names = []
        g.shapes = {}
        if function is None:
            for t in gp.initializer:
                dt = NAME_OF.get(t.data_type)
                g.inits[t.name] = Tensor(dt, read_tensor(t, folder) if dt in FLOAT_TYPES else None)
            for vi in list(gp.input) + list(gp.output) + list(gp.value_info):
                sh = shape_of(vi)
                if sh is not None and vi.name not in g.shapes:
                    g.shapes[vi.name] = sh
            g.input_names = [i.name for i in gp.input]
            g.output_names = [o.name for o in gp.output]
            # the lookup order of bnfold's rank: value_info, then inputs, then outputs
            g.vi_shapes = {}
            g.vi_types = {}
            for group in (gp.value_info, gp.input, gp.output):
                for vi in group:
                    sh = shape_of(vi)
                    if sh is not None and vi.name not in g.vi_shapes:
                        g.vi_shapes[vi.name] = sh
                    t = vi.type
                    if t.HasField("tensor_type") and t.tensor_type.elem_type and \
                            vi.name not in g.vi_types:
                        g.vi_types[vi.name] = NAME_OF.get(t.tensor_type.elem_type, "other")
        else:
            g.input_names = list(function.input)
            g.output_names = list(function.output)
            g.vi_shapes = {}
            g.vi_types = {}
        g.nodes = [Node(n, folder, g, opset, ir, path) for n in
                   (gp.node if function is None else function.node)]
        return g

    # ---- index -------------------------------------------------------------------
    def producer(self, name):
        for i, n in enumerate(self.nodes):
            if name in n.outputs:
                return i, n
        return None, None

    def mentions(self):
        """Every name the graph's nodes read and its outputs (as bnfold counts a
        subgraph's uses of outer values)."""
        out = []
        for n in self.nodes:
            out += [x for x in n.inputs if x]
            for _, sg in n.subgraphs:
                out += sg.mentions()
        out += self.output_names
        return out

    def uses(self, name):
        c = 0
        for n in self.nodes:
            c += sum(1 for x in n.inputs if x == name)
            for _, sg in n.subgraphs:
                c += sum(1 for x in sg.mentions() if x == name)
        c += sum(1 for o in self.output_names if o == name)
        return c

    def readers(self, name):
        """(node, input index) of every node of this graph reading name."""
        return [(n, k) for n in self.nodes for k, x in enumerate(n.inputs) if x == name]

    def sub_mentions(self, name):
        return sum(1 for n in self.nodes for _, sg in n.subgraphs for x in sg.mentions() if x == name)

    def is_output(self, name):
        return name in self.output_names

    def init_rank(self, name):
        t = self.inits.get(name) if name else None
        return t.v.ndim if t is not None and t.v is not None else -1

    def elem_type(self, name):
        """A value's element type as the graph declares it: its value_info,
        input or output entry, an initializer, or through an operator whose
        output has its input 0's type; None when unknown."""
        for _ in range(32):
            if name in self.vi_types:
                return self.vi_types[name]
            t = self.inits.get(name)
            if t is not None:
                return t.dtype
            _, n = self.producer(name)
            if n is None or not n.onnx() or n.op not in SAME_TYPE or not n.inputs \
                    or not n.inputs[0]:
                return None
            name = n.inputs[0]
        return None

    def known_shape(self, name):
        """A value's declared shape, looking through shape-preserving operators
        (None when no shape is declared on the way)."""
        for _ in range(16):
            if name in self.vi_shapes:
                return self.vi_shapes[name]
            _, n = self.producer(name)
            if n is None or not n.onnx() or n.op not in RANK_THROUGH or not n.inputs \
                    or not n.inputs[0]:
                return None
            name = n.inputs[0]
        return None

    def rank(self, name, depth=0):
        """The rank of a value as the spec lets it be known from the graph alone:
        a declared shape, or what an operator implies (a convolution's output has
        its weight's rank, a broadcasting binary operator the larger of its two)."""
        for _ in range(16):
            if depth >= 8:
                return -1
            if name in self.vi_shapes:
                return len(self.vi_shapes[name])
            _, n = self.producer(name)
            if n is None or not n.onnx():
                return -1
            if n.op in ("Flatten", "Gemm"):
                return 2
            if n.op in ("Conv", "ConvTranspose") and len(n.inputs) > 1 and \
                    self.init_rank(n.inputs[1]) >= 3:
                return self.init_rank(n.inputs[1])
            if n.op in ("Add", "Mul", "Sub", "Div") and len(n.inputs) == 2:
                r = [self.init_rank(x) if self.init_rank(x) >= 0 else
                     self.rank(x, depth + 1) for x in n.inputs]
                return -1 if min(r) < 0 else max(r)
            if n.op == "Reshape" and len(n.inputs) > 1 and n.inputs[1]:
                t = self.inits.get(n.inputs[1])
                if t is not None and t.v is not None and t.v.ndim == 1:
                    return int(t.v.shape[0])
                return -1
            if n.op not in RANK_THROUGH or not n.inputs or not n.inputs[0]:
                return -1
            name = n.inputs[0]
        return -1

    def const(self, name, frozen=()):
        """(kind, Tensor) of a value as bnfold's constant rule has it (DESIGN 3)."""
        g = self
        for _ in range(64):
            while g.outer is not None and name not in g.inits and g.producer(name)[1] is None \
                    and name not in g.input_names:
                g = g.outer
            if name in g.inits:
                t = g.inits[name]
                if g.ir >= 4 and name in g.input_names and name not in frozen:
                    return OVERRIDABLE, None
                if t.dtype not in FLOAT_TYPES:
                    return DTYPE, None
                return YES, t
            _, n = g.producer(name)
            if n is None:
                break
            if n.op == "Constant" and n.onnx():
                return n.const_value
            if n.op != "Identity" or not n.inputs or not n.inputs[0]:
                break
            name = n.inputs[0]
        return NO, None


# the newest ai.onnx opset whose BatchNormalization bnfold knows (src/fold/fold.h)
BN_NEWEST_OPSET = 23


def bn_version(opset):
    for v in (15, 14, 9, 7, 6, 1):
        if opset >= v:
            return v
    return 1


class Why(Exception):
    def __init__(self, code, text=""):
        Exception.__init__(self, code)
        self.code = code
        self.text = text


class Sim:
    def __init__(self, model, opts, folder=None, verify=True):
        self.opts = set(opts)
        self.verify = verify
        self.ir = model.ir_version
        self.opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
                         or [1])
        self.main = Graph.from_proto(model.graph, folder, None, self.opset, self.ir, "")
        self.functions = []
        for f in model.functions:
            fop = self.opset
            for o in f.opset_import:
                if o.domain in ("", "ai.onnx"):
                    fop = o.version
            self.functions.append(Graph.from_proto(None, folder, None, fop, self.ir,
                                                   f.name, function=f))
        self.frozen = set()
        if "--freeze-inputs" in self.opts and self.ir >= 4:
            self.frozen = set(self.main.input_names) & set(self.main.inits)
            self.main.input_names = [i for i in self.main.input_names if i not in self.frozen]
        self.entries = []        # report order
        self.entry_of = {}       # id(node) -> entry
        for g in self.walk():
            pass
        self.actions = {"BatchNormalization": 0, "Mul": 0, "Add": 0}
        self.fresh = 0
        self.layers = {}         # layer name -> (final W, final bias, op, attrs) of folded layers
        self.lowered = {}        # BN name -> (S, T) of lowered BNs (unrounded)
        self.layer_nodes = {}    # layer name -> the BN / Mul / Add nodes folded into it

    def walk(self):
        """Graphs in the pass's order, registering BN entries in report order."""
        order = []

        def visit(g):
            order.append(g)
            for n in g.nodes:
                if n.op == "BatchNormalization" and n.onnx():
                    e = {"name": n.name, "graph": g.path, "decision": "skip", "code": None,
                         "position": None, "layer_op": None, "assumed": False}
                    e["findings"] = self.health(g, n)
                    self.entries.append(e)
                    self.entry_of[id(n)] = e
                for _, sg in n.subgraphs:
                    visit(sg)
        visit(self.main)
        for f in self.functions:
            visit(f)
        return order

    # ---- health (contract.md "Health finding codes") ------------------------------------
    def health(self, g, n):
        """{code: [channels] (None for the whole BN)}, severity of BN_EPS_NONPOS
        as code "BN_EPS_NONPOS:error" when a variance is 0 too."""
        out = {}
        # at an unknown opset the attributes' meaning is not known: only the
        # statistics are judged
        if g.opset <= BN_NEWEST_OPSET and self.training_reason(g, n):
            out["BN_TRAINING_MODE"] = None
        ps = []
        for name in n.inputs[1:5]:
            kind, t = g.const(name, self.frozen)
            if kind != YES:
                return out
            ps.append(t.v.reshape(-1))
        c = ps[0].size
        if any(p.size != c for p in ps):
            return out
        sc, B, mean, var = ps
        eps = float(np.float32(n.attrs["epsilon"])) if "epsilon" in n.attrs else 1e-5
        with np.errstate(all="ignore"):
            checks = [
                ("BN_NONFINITE", ~(np.isfinite(sc) & np.isfinite(B) & np.isfinite(mean) &
                                   np.isfinite(var))),
                ("BN_NEG_VAR", var < 0),
                ("BN_ZERO_VAR", var == 0),
                ("BN_TINY_VAR", (var > 0) & (var < 1e-6)),
                ("BN_LARGE_SCALE", np.abs(sc / np.sqrt(var + eps)) > 1e4),
                ("BN_DEAD_CHANNEL", sc == 0),
            ]
        for code, hit in checks:
            if hit.any():
                out[code] = [int(i) for i in np.nonzero(hit)[0][:16]]
        if not eps > 0:
            out["BN_EPS_NONPOS"] = "error" if (var == 0).any() else "warning"
        if c > 1 and np.all(mean == 0) and np.all(var == 1):
            out["BN_UNTRAINED"] = None
        return out

    # ---- the BN itself --------------------------------------------------------------
    def training_reason(self, g, n):
        v = bn_version(g.opset)
        if v <= 6 and n.attr("is_test", 0) == 0:
            return "TRAINING_MODE"
        if v >= 14 and n.attr("training_mode", 0) != 0:
            return "TRAINING_MODE"
        for o in n.outputs[1:]:
            if not o:
                continue
            if 7 <= v < 14 or g.uses(o) > 0:
                return "TRAINING_MODE"
        return None

    def bn_read(self, g, n):
        """(code, s, t): the BN's own problem, or its per-channel map."""
        if g.opset > BN_NEWEST_OPSET:
            return "UNKNOWN_OPSET", None, None
        v = bn_version(g.opset)
        code = None
        ps = []
        for name in n.inputs[1:5]:
            kind, t = g.const(name, self.frozen)
            ps.append(t)
            if kind != YES and code is None:
                code = CONST_CODE[kind]
        s = t = None
        if code is None:
            spatial0 = v <= 7 and n.attr("spatial", 1) == 0
            C = ps[0].v.size
            for p in ps:
                if p.v.size != C or p.v.ndim != 1:
                    if not spatial0:
                        code = "SHAPE_MISMATCH"
                    break
            if code is None and spatial0:
                code = "SPATIAL"
            if code is None:
                # the attribute is a float32; absent, bnfold takes 1e-5 in double
                eps = float(np.float32(n.attrs["epsilon"])) if "epsilon" in n.attrs else 1e-5
                with np.errstate(all="ignore"):
                    s = ps[0].v / np.sqrt(ps[3].v + eps)
                    t = ps[1].v - ps[2].v * s
                if not (np.all(np.isfinite(s)) and np.all(np.isfinite(t))):
                    code = "NON_FINITE"
        tr = self.training_reason(g, n)
        if tr:
            code = tr
        if code:
            return code, None, None
        return None, s, t

    def to_inference(self, g, n):
        for o in n.outputs[1:]:
            if o and g.uses(o) > 0:
                return False
        v = bn_version(g.opset)
        if v <= 6:
            n.attrs["is_test"] = 1
        if v >= 14:
            n.attrs["training_mode"] = 0
        del n.outputs[1:]
        return True

    # ---- one fold ---------------------------------------------------------------------
    def new_name(self):
        self.fresh += 1
        return "__sim_%d" % self.fresh

    def layer_consts(self, g, layer, op):
        kw, w = g.const(layer.inputs[1], self.frozen) if len(layer.inputs) > 1 and layer.inputs[1] \
            else (None, None)
        if kw is None:
            raise Why("UNSUPPORTED_LAYER", "%s has no weight input" % op)
        if kw != YES:
            raise Why(CONST_CODE[kw], "%s weight" % op)
        b = None
        if len(layer.inputs) > 2 and layer.inputs[2]:
            kb, b = g.const(layer.inputs[2], self.frozen)
            if kb != YES:
                raise Why(CONST_CODE[kb], "%s bias" % op)
        return w, b

    @staticmethod
    def conv_check(layer, W, transpose):
        """UNVERIFIED when the local check's input would be too large (layers.c)."""
        g = layer.attr("group", 1)
        if W.ndim < 3 or W.ndim > MAX_RANK:
            raise Why("UNVERIFIED", "weight rank")
        if g < 1 or g > (1 << 20) or W.shape[0] % g != 0 or W.shape[1] > (1 << 20):
            raise Why("UNVERIFIED", "group")
        for p in layer.attr("pads", []):
            if p < 0 or p > CHECK_EXTENT:
                raise Why("UNVERIFIED", "pads of %d" % p)
        dil = layer.attr("dilations", [])
        strides = layer.attr("strides", [])
        dims1 = W.shape[0] if transpose else W.shape[1] * g
        least, dims = [], []
        total = dims1
        for d in range(2, W.ndim):
            k = W.shape[d]
            dl = dil[d - 2] if d - 2 < len(dil) else 1
            st = strides[d - 2] if d - 2 < len(strides) else 1
            dl = dl if dl > 0 else 1
            st = st if 0 < st < 64 else 1
            if k < 1 or k > CHECK_EXTENT or dl > CHECK_EXTENT or (k - 1) * dl + 1 > CHECK_EXTENT:
                raise Why("UNVERIFIED", "kernel extent %d x dilation %d" % (k, dl))
            least.append(1 if transpose else (k - 1) * dl + 1)
            dims.append(5 if transpose else least[-1] + 2 * st + 3)
            total = min(total * dims[-1], 1 << 40)
        guard = 0
        while total > CHECK_VALUES and guard < 64:
            guard += 1
            total = dims1
            for i in range(len(dims)):
                if dims[i] > least[i]:
                    dims[i] = least[i] + (dims[i] - least[i]) // 2
                total = min(total * dims[i], 1 << 40)
        if total > CHECK_VALUES_MAX:
            raise Why("UNVERIFIED", "check input of %d values" % total)

    def same_pads_zero(self, g, layer, W):
        """auto_pad SAME_*: True when the computed padding is zero on every axis
        (kernel extent 1, or the input size known and a multiple of the stride
        with extent == stride)."""
        x = layer.inputs[0]
        shape = g.known_shape(x)
        strides = layer.attr("strides", [1] * (W.ndim - 2))
        dil = layer.attr("dilations", [1] * (W.ndim - 2))
        for d in range(2, W.ndim):
            k, st, dl = W.shape[d], strides[d - 2], dil[d - 2]
            ext = (k - 1) * dl + 1
            if ext == 1:
                continue
            L = shape[d] if shape is not None and len(shape) == W.ndim else None
            if L is None or L < 1 or st < 1:
                return False
            out = -(-L // st)
            if max((out - 1) * st + ext - L, 0) != 0:
                return False
        return True

    def fold_after(self, g, node, layer, s, t):
        """layer -> node (BN, or Mul/Add with map s, t).  Returns (new W, new b,
        finish) or raises Why."""
        op = layer.op
        W, B = self.layer_consts(g, layer, op)
        Wv = W.v
        if op == "Conv":
            if Wv.ndim < 3:
                raise Why("SHAPE_MISMATCH")
            if Wv.shape[0] != s.size:
                raise Why("SHAPE_MISMATCH", "Conv %d channels, BN %d" % (Wv.shape[0], s.size))
            if B is not None and (B.v.ndim != 1 or B.v.size != Wv.shape[0]):
                raise Why("SHAPE_MISMATCH", "bias")
            Wn = Wv * s.reshape((-1,) + (1,) * (Wv.ndim - 1))
            bn_ = (B.v if B is not None else 0.0) * s + t
        elif op == "ConvTranspose":
            grp = layer.attr("group", 1)
            if Wv.ndim < 3:
                raise Why("SHAPE_MISMATCH")
            cin, mg = Wv.shape[0], Wv.shape[1]
            if grp <= 0 or cin % grp:
                raise Why("UNSUPPORTED_LAYER", "group")
            if mg * grp != s.size:
                raise Why("SHAPE_MISMATCH")
            if B is not None and (B.v.ndim != 1 or B.v.size != mg * grp):
                raise Why("SHAPE_MISMATCH", "bias")
            i = np.arange(cin)[:, None]
            j = np.arange(mg)[None, :]
            o = (i // (cin // grp)) * mg + j
            Wn = Wv * s[o].reshape(o.shape + (1,) * (Wv.ndim - 2))
            bn_ = (B.v if B is not None else 0.0) * s + t
        else:  # Gemm, MatMul: output columns
            if op == "MatMul":
                r = g.rank(layer.inputs[0])
                if r != 2:
                    raise Why("UNSUPPORTED_LAYER", "MatMul input rank %d" % r)
                transB, beta = 0, 1.0
            else:
                transB, beta = layer.attr("transB", 0), layer.attr("beta", 1.0)
            if Wv.ndim != 2:
                raise Why("SHAPE_MISMATCH", "B rank %d" % Wv.ndim)
            N = Wv.shape[0] if transB else Wv.shape[1]
            if N != s.size:
                raise Why("SHAPE_MISMATCH")
            C = B.v if B is not None else None
            if C is not None and C.ndim > 2:
                raise Why("SHAPE_MISMATCH", "C rank")
            cr = C.shape[0] if C is not None and C.ndim == 2 else 1
            cc = C.shape[1] if C is not None and C.ndim == 2 else (
                C.shape[0] if C is not None and C.ndim == 1 else 1)
            if (cc != 1 and cc != N) or cr < 1:
                raise Why("SHAPE_MISMATCH", "C shape")
            Wn = Wv * s[:, None] if transB else Wv * s[None, :]
            if C is None:
                bn_ = t.copy()
            else:
                rows = C.shape[0] if C.ndim == 2 else 0
                Cb = np.broadcast_to(C.reshape(cr, cc), (cr, N))
                full = s[None, :] * (beta * Cb) + t[None, :]
                bn_ = np.broadcast_to(full, (rows, N)).copy() if rows else full[0].copy()
        bdt = B.dtype if B is not None else W.dtype
        self.representable(Wn, W.dtype, "weight")
        self.representable(bn_, bdt, "bias")
        if self.verify and op in ("Conv", "ConvTranspose"):
            self.conv_check(layer, Wv, op == "ConvTranspose")
        return Tensor(W.dtype, quant(Wn, W.dtype)), Tensor(bdt, quant(bn_, bdt))

    def fold_before(self, g, node, layer, s, t):
        op = layer.op
        W, B = self.layer_consts(g, layer, op)
        Wv = W.v
        if op == "Conv":
            ap = layer.attr("auto_pad", "NOTSET")
            if ap not in ("NOTSET", "VALID"):
                if not (Wv.ndim >= 3 and self.same_pads_zero(g, layer, Wv)):
                    raise Why("PADDING", "auto_pad %s" % ap)
                self.same_zero = True
            if any(p != 0 for p in layer.attr("pads", [])):
                raise Why("PADDING", "pads")
            grp = layer.attr("group", 1)
            if Wv.ndim < 3 or grp <= 0 or Wv.shape[0] % grp:
                raise Why("SHAPE_MISMATCH")
            M, cpg = Wv.shape[0], Wv.shape[1]
            if cpg * grp != s.size:
                raise Why("SHAPE_MISMATCH", "channels")
            if B is not None and (B.v.ndim != 1 or B.v.size != M):
                raise Why("SHAPE_MISMATCH", "bias")
            mpg = M // grp
            c = (np.arange(M)[:, None] // mpg) * cpg + np.arange(cpg)[None, :]
            tail = (1,) * (Wv.ndim - 2)
            Wn = Wv * s[c].reshape(c.shape + tail)
            bn_ = (B.v if B is not None else np.zeros(M)) + \
                (Wv * t[c].reshape(c.shape + tail)).reshape(M, -1).sum(1)
        else:
            if op == "MatMul":
                r = g.rank(layer.inputs[0])
                if r != 2:
                    raise Why("UNSUPPORTED_LAYER", "MatMul input rank %d" % r)
                transB, alpha, beta = 0, 1.0, 1.0
            else:
                if layer.attr("transA", 0):
                    raise Why("UNSUPPORTED_LAYER", "transA")
                transB = layer.attr("transB", 0)
                alpha, beta = layer.attr("alpha", 1.0), layer.attr("beta", 1.0)
            if Wv.ndim != 2:
                raise Why("SHAPE_MISMATCH", "B rank")
            K = Wv.shape[1] if transB else Wv.shape[0]
            N = Wv.shape[0] if transB else Wv.shape[1]
            if K != s.size:
                raise Why("SHAPE_MISMATCH")
            C = B.v if B is not None else None
            if C is not None and C.ndim > 2:
                raise Why("SHAPE_MISMATCH", "C rank")
            cr = C.shape[0] if C is not None and C.ndim == 2 else 1
            cc = C.shape[1] if C is not None and C.ndim == 2 else (
                C.shape[0] if C is not None and C.ndim == 1 else 1)
            if (cc != 1 and cc != N) or cr < 1:
                raise Why("SHAPE_MISMATCH", "C shape")
            Bp = Wv.T if transB else Wv
            Wn = (Bp * s[:, None]).T if transB else Bp * s[:, None]
            row = alpha * (t @ Bp)
            rows = C.shape[0] if C is not None and C.ndim == 2 else 0
            if C is None:
                bn_ = row
            else:
                Cb = np.broadcast_to(C.reshape(cr, cc), (cr, N))
                full = row[None, :] + beta * Cb
                bn_ = np.broadcast_to(full, (rows, N)).copy() if rows else full[0].copy()
        bdt = B.dtype if B is not None else W.dtype
        self.representable(Wn, W.dtype, "weight")
        self.representable(bn_, bdt, "bias")
        if self.verify and op == "Conv":
            self.conv_check(layer, Wv, False)
        return Tensor(W.dtype, quant(Wn, W.dtype)), Tensor(bdt, quant(bn_, bdt))

    @staticmethod
    def representable(v, dtype, what):
        ok = representable(v, dtype)
        if not np.all(ok):
            raise Why("NON_FINITE", "folded %s" % what)

    def link_checks(self, g, link):
        if g.is_output(link):
            raise Why("LAYER_GRAPH_OUTPUT")
        if g.uses(link) != 1:
            raise Why("LAYER_MULTI_CONSUMER")

    def rewrite(self, g, node, layer, Wn, bn_, after):
        wname, bname = self.new_name(), self.new_name()
        g.inits[wname] = Wn
        g.inits[bname] = bn_
        while len(layer.inputs) < 3:
            layer.inputs.append("")
        layer.inputs[1] = wname
        layer.inputs[2] = bname
        if layer.op == "Gemm":
            layer.attrs["beta"] = 1.0
        if layer.op == "MatMul":
            layer.op = "Gemm"
        if after:
            layer.outputs[0] = node.outputs[0]
        else:
            layer.inputs[0] = node.inputs[0]
        g.nodes.remove(node)
        self.layers[layer.name] = (Wn, bn_, layer.op, dict(layer.attrs))
        self.layer_nodes.setdefault(layer.name, []).append(node.name)

    # ---- a BN, a Mul / Add ------------------------------------------------------------
    def try_bn(self, g, n):
        e = self.entry_of[id(n)]
        if not n.outputs or not n.outputs[0]:
            e.update(decision="skip", code="NO_LAYER")
            return False
        code, s, t = self.bn_read(g, n)
        if code == "TRAINING_MODE" and "--assume-inference" in self.opts:
            if self.to_inference(g, n):
                e["assumed"] = True
                code, s, t = self.bn_read(g, n)
        x = n.inputs[0]
        _, before = g.producer(x) if x else (None, None)
        if before is not None:
            e["layer_op"] = before.op
            e["position"] = "after"
        if code:
            e.update(decision="skip", code=code)
            return False
        pat_b = before is not None and before.onnx() and before.op in AFTER_LAYERS
        why_b = None
        if pat_b:
            try:
                if before.outputs[0] != x:
                    raise Why("NO_LAYER")
                self.link_checks(g, x)
                Wn, bn_ = self.fold_after(g, n, before, s, t)
                op = before.op
                self.rewrite(g, n, before, Wn, bn_, True)
                e.update(decision="fold", code=None, position="after", layer_op=op)
                self.actions["BatchNormalization"] += 1
                return True
            except Why as w:
                why_b = w.code
        # the layer after: a Conv / Gemm / MatMul reading the BN's output as its data
        y = n.outputs[0]
        readers = g.readers(y)
        layer_readers = [r for r, k in readers if k == 0 and r.onnx() and r.op in BEFORE_LAYERS]
        why_a = None
        after = None
        if layer_readers:
            after = layer_readers[0]
            try:
                if g.is_output(y):
                    raise Why("LAYER_GRAPH_OUTPUT")
                if g.uses(y) != 1:
                    raise Why("LAYER_MULTI_CONSUMER")
                self.same_zero = False
                Wn, bn_ = self.fold_before(g, n, after, s, t)
                e["same_zero_pad"] = self.same_zero
                op = after.op
                self.rewrite(g, n, after, Wn, bn_, False)
                e.update(decision="fold", code=None, position="before", layer_op=op)
                self.actions["BatchNormalization"] += 1
                return True
            except Why as w:
                why_a = w.code
        if pat_b:
            e.update(decision="skip", code=why_b)
        elif after is not None:
            e.update(decision="skip", code=why_a, position="before", layer_op=after.op)
        else:
            e.update(decision="skip", code="NO_LAYER")
        return False

    def try_affine(self, g, n):
        if not n.outputs or not n.outputs[0] or len(n.inputs) != 2:
            return False
        layer = None
        for k in range(2):
            x = n.inputs[k]
            if not x:
                continue
            _, p = g.producer(x)
            if p is not None and p.onnx() and p.op in AFTER_LAYERS and p.outputs[0] == x:
                layer = p
                break
        if layer is None:
            return False
        link = layer.outputs[0]
        try:
            self.link_checks(g, link)
            W, B = self.layer_consts(g, layer, layer.op)
            Wv = W.v
            if layer.op == "Conv":
                ch = Wv.shape[0] if Wv.ndim >= 3 else -1
                rank = Wv.ndim
            elif layer.op == "ConvTranspose":
                ch = Wv.shape[1] * layer.attr("group", 1) if Wv.ndim >= 3 else -1
                rank = Wv.ndim
            elif layer.op == "Gemm":
                ch = (Wv.shape[0] if layer.attr("transB", 0) else Wv.shape[1]) if Wv.ndim == 2 else -1
                rank = 2
            else:
                ch = Wv.shape[1] if Wv.ndim == 2 else -1
                rank = g.rank(layer.inputs[0])
            if ch < 0:
                raise Why("SHAPE_MISMATCH")
            other = n.inputs[1] if n.inputs[0] == link else n.inputs[0]
            kind, K = g.const(other, self.frozen)
            if kind != YES:
                raise Why(CONST_CODE[kind])
            if rank < 2 or K.v.ndim > rank:
                raise Why("SHAPE_MISMATCH")
            for d in range(K.v.ndim):
                axis = rank - K.v.ndim + d
                if K.v.shape[d] != 1 and not (axis == 1 and K.v.shape[d] == ch):
                    raise Why("SHAPE_MISMATCH")
            kv = K.v.reshape(-1)
            vals = np.array([kv[0 if kv.size == 1 else c] for c in range(ch)], dtype=np.float64)
            if n.op == "Mul":
                s, t = vals, np.zeros(ch)
            else:
                s, t = np.ones(ch), vals
            Wn, bn_ = self.fold_after(g, n, layer, s, t)
            self.rewrite(g, n, layer, Wn, bn_, True)
            self.actions[n.op] += 1
            return True
        except Why:
            return False

    def fold_graph(self, g):
        changed = True
        while changed:
            changed = False
            for n in list(g.nodes):
                if not n.onnx():
                    continue
                if n.op == "BatchNormalization":
                    changed = self.try_bn(g, n)
                elif n.op in ("Mul", "Add"):
                    changed = self.try_affine(g, n)
                if changed:
                    break
        if "--lower-standalone" in self.opts:
            for n in list(g.nodes):
                if n.op != "BatchNormalization" or not n.onnx():
                    continue
                e = self.entry_of.get(id(n))
                if e is None or e["decision"] != "skip" or e["code"] not in LOWERABLE:
                    continue
                if not n.inputs or not n.inputs[0] or not n.outputs or not n.outputs[0]:
                    continue
                code, s, t = self.bn_read(g, n)
                r = g.rank(n.inputs[0])
                if code or r < 2 or r > MAX_RANK:
                    continue
                # S and T take the output's type (before opset 15, when unknown,
                # the scale's); not lowered when they do not fit in it
                dt = g.elem_type(n.outputs[0])
                if dt is None and bn_version(g.opset) < 15:
                    kind, sc = g.const(n.inputs[1], self.frozen)
                    dt = sc.dtype if kind == YES else None
                if dt is None or (dt in FLOAT_TYPES and not (
                        np.all(representable(s, dt)) and np.all(representable(t, dt)))):
                    continue
                e["decision"] = "lower"
                self.lowered[n.name] = (s.reshape((-1,) + (1,) * (r - 2)),
                                        t.reshape((-1,) + (1,) * (r - 2)))

    def run(self):
        def visit(g):
            self.fold_graph(g)
            for n in list(g.nodes):
                for _, sg in n.subgraphs:
                    visit(sg)
        visit(self.main)
        for f in self.functions:
            visit(f)
        return self.entries


def expected(model, opts=(), folder=None, verify=True):
    """The expected report entries of `bnfold fold MODEL [opts]` (verify: the
    local check runs, as in fold without --no-verify), and the fold actions by op."""
    sim = Sim(copy.deepcopy(model), opts, folder, verify)
    entries = sim.run()
    return entries, sim.actions, sim


def is_finite_number(x):
    return isinstance(x, float) and math.isfinite(x)
