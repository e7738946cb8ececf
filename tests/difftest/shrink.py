"""Reduce a failing case to a small model that still fails the same way, and
save it as a regression case (tests/difftest/regressions/NAME/).

"The same way": the reduced case has a failure of the same kind, judge and
known-bug id as the first new (or else first known) failure of the original;
for a decision failure also the same expected and reported decision.

Reductions, repeated until none applies: drop a graph output, bypass a node
(its readers read its input instead, when the shapes agree), cut the graph at
a value (the value becomes the output, what is no longer needed goes), drop
an option, drop optional attributes, make external data and typed fields
plain raw_data, shrink the batch and the spatial sizes of the inputs; dead
nodes, initializers and inputs are removed after each step.  Every candidate
must still pass onnx.checker (full check).
"""

import copy
import json
import os
import re
import shutil

import numpy as np
import onnx
from onnx import helper, shape_inference

import gen
import judge
from tensors import NAME_OF

HERE = os.path.dirname(os.path.abspath(__file__))
REG = os.path.join(HERE, "regressions")


def signature(f):
    """What must stay the same: kind, judge, known id, and for decisions the
    expected -> got pair (names and reason text left out)."""
    d = f["detail"]
    if f["kind"] == "decision":
        m = re.search(r"expected (\S+) (\S*), got (\S+) (\S*)", d)
        what = d.split(":")[0]
        if m:
            return (f["kind"], f.get("judge"), f.get("known"), what, m.groups())
        return (f["kind"], f.get("judge"), f.get("known"), what, re.sub(r"\d+", "#", d)[:40])
    if f["kind"] in ("fold_exit", "run_exit", "inspect_exit"):
        return (f["kind"], f.get("judge"), f.get("known"), re.sub(r"'[^']*'|\d+", "#", d)[:60])
    return (f["kind"], f.get("judge"), f.get("known"))


def pick_target(result):
    fs = result["failures"]
    new = [f for f in fs if not f["known"]]
    return signature((new or fs)[0]) if fs else None


def case_from(model, meta):
    c = gen.Case()
    c.model = model
    c.opts = list(meta["opts"])
    c.pattern = meta.get("pattern", "regression")
    c.pattern_detail = c.pattern
    c.dtype = meta["dtype"]
    c.opset = meta["opset"]
    c.ir = model.ir_version
    c.tags = set(meta.get("tags", []))
    c.ort_na = meta.get("ort_na")
    c.external = meta.get("external", False)
    c.seed = meta.get("seed", 0)
    c.index = meta.get("index", 0)
    names = {i.name: i for i in model.graph.input}
    inits = {t.name for t in model.graph.initializer}
    c.inputs = []
    for i in meta["inputs"]:
        if i["name"] not in names:
            continue
        vi = names[i["name"]]
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        d = dict(i)
        d["shape"] = shape
        if "value" in d and d["value"] is not None:
            d["value"] = np.asarray(d["value"], np.float64).reshape(shape)
        c.inputs.append(d)
    return c


def meta_of(case):
    return {"opts": case.opts, "dtype": case.dtype, "opset": case.opset, "pattern": case.pattern,
            "tags": sorted(case.tags), "ort_na": case.ort_na, "external": case.external,
            "seed": case.seed, "index": case.index,
            "inputs": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in i.items()}
                       for i in case.inputs]}


# ---- graph edits -------------------------------------------------------------------

def subgraph_names(g):
    out = set()
    for n in g.node:
        for a in n.attribute:
            for sg in ([a.g] if a.type == a.GRAPH else list(a.graphs) if a.type == a.GRAPHS else []):
                for nn in sg.node:
                    out.update(nn.input)
                out.update(o.name for o in sg.output)
                out |= subgraph_names(sg)
    return out


def clean(model):
    """Remove dead nodes (main graph), unused initializers, inputs (not the data
    inputs still read), value_info and unused functions."""
    g = model.graph
    changed = True
    while changed:
        changed = False
        need = {o.name for o in g.output} | subgraph_names(g)
        for n in g.node:
            need.update(x for x in n.input if x)
        keep = []
        for n in g.node:
            if any(o and o in need for o in n.output):
                keep.append(n)
            else:
                changed = True
        if changed:
            del g.node[:]
            g.node.extend(keep)
    need = {o.name for o in g.output} | subgraph_names(g)
    for n in g.node:
        need.update(x for x in n.input if x)
    inits = [t for t in g.initializer if t.name in need]
    del g.initializer[:]
    g.initializer.extend(inits)
    ins = [i for i in g.input if i.name in need]
    del g.input[:]
    g.input.extend(ins)
    used_fn = {n.op_type for n in judge.all_nodes(model) if n.domain == "local"}
    fns = [f for f in model.functions if f.name in used_fn]
    del model.functions[:]
    model.functions.extend(fns)
    return model


def reinfer(model):
    """Output types from onnx's inference again (shapes may have changed)."""
    m = copy.deepcopy(model)
    had_vi = len(m.graph.value_info) > 0
    del m.graph.value_info[:]
    outs = [o.name for o in m.graph.output]
    declared = {o.name: o for o in m.graph.output}
    del m.graph.output[:]
    m.graph.output.extend([helper.make_tensor_value_info(o, 0, None) for o in outs])
    inf = shape_inference.infer_shapes(m)
    known = {vi.name: vi for vi in list(inf.graph.value_info) + list(inf.graph.output)}
    del m.graph.output[:]
    for o in outs:
        vi = known.get(o)
        if vi is None or not vi.type.tensor_type.elem_type:
            vi = declared[o]
        m.graph.output.append(vi)
    if had_vi:
        m.graph.value_info.extend([vi for vi in inf.graph.value_info if vi.name not in outs])
    return m


def candidates(model, meta):
    """Smaller versions of (model, meta), most promising first."""
    g = model.graph
    # drop a graph output
    if len(g.output) > 1:
        for i in range(len(g.output)):
            m = copy.deepcopy(model)
            del m.graph.output[i]
            yield "drop output %s" % g.output[i].name, clean(m), meta
    # shorten one branch: an output is replaced by its producer's data input
    for i, o in enumerate(g.output):
        prod = [n for n in g.node if o.name in n.output]
        if not prod or not prod[0].input or not prod[0].input[0]:
            continue
        x = prod[0].input[0]
        if any(x == q.name for q in g.output) or x in {t.name for t in g.initializer}:
            continue
        m = copy.deepcopy(model)
        m.graph.output[i].CopyFrom(helper.make_tensor_value_info(x, 0, None))
        try:
            yield "output %s -> %s" % (o.name, x), clean(reinfer(m)), meta
        except Exception:
            pass
    # cut: a node's output becomes the only output
    for n in reversed(list(g.node)):
        for o in n.output[:1]:
            if not o or any(o == x.name for x in g.output):
                continue
            m = copy.deepcopy(model)
            del m.graph.output[:]
            m.graph.output.append(helper.make_tensor_value_info(o, 0, None))
            try:
                yield "cut at %s" % o, clean(reinfer(m)), meta
            except Exception:
                pass
    # bypass a node: readers of its output 0 read its input 0
    for i, n in enumerate(g.node):
        if not n.input or not n.output or n.op_type in ("Constant",):
            continue
        x, y = n.input[0], n.output[0]
        m = copy.deepcopy(model)
        del m.graph.node[i]
        for nn in m.graph.node:
            for k, v in enumerate(nn.input):
                if v == y:
                    nn.input[k] = x
        for o in m.graph.output:
            if o.name == y:
                o.name = x
        try:
            yield "bypass %s %s" % (n.op_type, n.name), clean(reinfer(m)), meta
        except Exception:
            pass
    # options
    for o in meta["opts"]:
        mt = dict(meta)
        mt["opts"] = [x for x in meta["opts"] if x != o]
        yield "drop option %s" % o, model, mt
    if meta.get("external"):
        mt = dict(meta)
        mt["external"] = False
        yield "no external data", model, mt
    # attributes that have defaults
    for i, n in enumerate(g.node):
        for a in n.attribute:
            if a.name in ("momentum", "kernel_shape", "epsilon", "alpha", "beta", "strides",
                          "dilations", "group", "transA", "transB", "output_padding"):
                m = copy.deepcopy(model)
                nn = m.graph.node[i]
                keep = [x for x in nn.attribute if x.name != a.name]
                del nn.attribute[:]
                nn.attribute.extend(keep)
                yield "drop attribute %s of %s" % (a.name, n.name), m, meta
    # smaller inputs: batch, then each other dimension
    for k, inp in enumerate(g.input):
        if inp.name not in {i["name"] for i in meta["inputs"] if i["kind"] == "data"}:
            continue
        dims = inp.type.tensor_type.shape.dim
        for d in range(len(dims)):
            v = dims[d].dim_value
            for nv in sorted({1, v // 2, v - 1}):
                if 0 < nv < v:
                    m = copy.deepcopy(model)
                    m.graph.input[k].type.tensor_type.shape.dim[d].dim_value = nv
                    try:
                        yield "input %s dim %d: %d" % (inp.name, d, nv), reinfer(m), meta
                    except Exception:
                        pass
    # typed fields -> raw_data
    if any(t.float_data or t.int32_data or t.double_data for t in g.initializer):
        m = copy.deepcopy(model)
        for t in m.graph.initializer:
            dt = NAME_OF.get(t.data_type)
            if dt and (t.float_data or t.int32_data or t.double_data):
                from tensors import make_tensor, read_tensor
                t.CopyFrom(make_tensor(t.name, read_tensor(t), dt))
        yield "raw_data", m, meta


def valid(model):
    try:
        onnx.checker.check_model(model, full_check=True)
        return True
    except Exception:
        return False


def na_kinds(r):
    return {(x["what"], re.sub(r"'[^']*'|\d+", "#", x["why"])[:50]) for x in r.get("na", [])}


def attempt(model, meta, target, bnfold, ort, work, na=None):
    """Whether (model, meta) is valid and still fails as target, with no judge
    becoming not applicable that was applicable (na: the original's)."""
    if not valid(model):
        return False, None
    case = case_from(model, meta)
    shutil.rmtree(work, ignore_errors=True)
    try:
        r = judge.run_case(case, work, bnfold, ort, keep=True)
    except Exception:
        return False, None
    sigs = {signature(f) for f in r["failures"]}
    if na is not None and not na_kinds(r) <= na:
        return False, r
    return target in sigs, r


def shrink(model, meta, target, bnfold, ort, work, log=print, budget=400, na=None):
    tries = 0
    progress = True
    while progress and tries < budget:
        progress = False
        for what, m, mt in candidates(model, meta):
            tries += 1
            if tries > budget:
                break
            ok, _ = attempt(m, mt, target, bnfold, ort, work, na)
            if ok:
                log("  shrink: %s (%d nodes)" % (what, len(m.graph.node)))
                model, meta = m, mt
                progress = True
                break
    return model, meta, tries


def size(model):
    return len(model.graph.node), sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def save_regression(name, model, meta, result, target, note=""):
    d = os.path.join(REG, name)
    os.makedirs(d, exist_ok=True)
    case = case_from(model, meta)
    judge.save_model(case, os.path.join(d, "model.onnx"))
    fs = [f for f in result["failures"] if signature(f) == target]
    rec = {"name": name, "meta": meta, "expected": result["expected"],
           "failure": fs[0] if fs else None, "signature": list(map(str, target)),
           "all_failures": result["failures"], "status": "known_failing",
           "bug": fs[0]["known"] if fs and fs[0]["known"] else None, "note": note}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(rec, f, indent=1, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x))
        f.write("\n")
    return d


def reshrink(d, bnfold, out, log=print):
    """Shrink a saved regression case further, in place."""
    import regress
    rec, model = regress.load(d)
    ort = judge.Ort()
    work = os.path.join(out, "reshrink_" + os.path.basename(d))
    try:
        meta = rec["meta"]
        ok, r = attempt(model, meta, None, bnfold, ort, work)
        target = pick_target(r)
        if tuple(map(str, target)) != tuple(rec["signature"]):
            log("reshrink: %s fails differently now: %s" % (d, target))
            return 1
        model, meta, tries = shrink(model, meta, target, bnfold, ort, work, log, na=na_kinds(r))
        ok, r2 = attempt(model, meta, target, bnfold, ort, work)
        if ok:
            save_regression(os.path.basename(d), model, meta, r2, target, rec.get("note", ""))
            log("reshrink: %s: %d nodes" % (d, len(model.graph.node)))
        return 0
    finally:
        ort.stop()


def shrink_case(seed, index, bnfold, out, name=None, log=print):
    case = gen.generate(seed, index)
    ort = judge.Ort()
    work = os.path.join(out, "shrink_%d_%d" % (seed, index))
    try:
        r = judge.run_case(case, work, bnfold, ort, keep=True)
        target = pick_target(r)
        if target is None:
            log("shrink: case %d %d does not fail" % (seed, index))
            return 1
        log("shrink: case %d %d (%s), target %s, %d nodes" % (seed, index, case.describe(), target,
                                                             len(case.model.graph.node)))
        model, meta, tries = shrink(copy.deepcopy(case.model), meta_of(case), target, bnfold, ort,
                                    work, log, na=na_kinds(r))
        ok, r2 = attempt(model, meta, target, bnfold, ort, work)
        if not ok:
            log("shrink: the reduced case no longer fails; not saved")
            return 1
        name = name or "s%d_i%d_%s" % (seed, index, target[0])
        d = save_regression(name, model, meta, r2, target)
        log("shrink: %d tries, %d -> %d nodes; saved %s" % (tries, len(case.model.graph.node),
                                                           len(model.graph.node),
                                                           os.path.relpath(d, os.getcwd())))
        return 0
    finally:
        ort.stop()
