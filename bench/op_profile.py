#!/usr/bin/python3
"""Where the time goes: bnfold's evaluator against onnxruntime, node by node.

Usage: /usr/bin/python3 bench/op_profile.py MODEL [--threads T] [--repeat R] [--top N]

Run with Debian's /usr/bin/python3 (onnx 1.12), from anywhere.  Times the whole
model in both runtimes with per-node timers, at T threads (default 1), median
of R runs (default 10) per node:

- bnfold: bench/node_times.c (built here against build/libbnfold.a) runs the
  model through bnf_session_run_observed() and takes the time between two
  computed values, i.e. each node's kernel plus the evaluator's overhead
  around it.
- onnxruntime: bench/ort_profile.js, onnxruntime's own profiler, on its
  optimised graph (BatchNormalization and activations fused into Conv, NCHWc
  layouts).

Each onnxruntime node is matched to the chain of original nodes it replaced
(its name is the value or node it ends on; the chain runs back through
single-consumer values), so a layer compares like with like: bnfold's
Conv + BatchNormalization + Clip against onnxruntime's one fused Conv.

Prints (markdown): the totals, bnfold's time by kind of node, onnxruntime's
time by kernel, and the N layers where bnfold loses the most time to
onnxruntime, identical layers (same ops, attributes and shapes) merged.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys

import onnx
from onnx import helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build_node_times(lib, out):
    src = os.path.join(HERE, "node_times.c")
    if (os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src)
            and os.path.getmtime(out) >= os.path.getmtime(lib)):
        return
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run(["cc", "-I" + os.path.join(ROOT, "src"), "-std=c11", "-O2", "-g", "-Wall",
                    "-Wextra", src, lib, "-lprotobuf-c", "-ldl", "-lm", "-o", out], check=True)


def attrs(node):
    d = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        d[a.name] = v.decode(errors="replace") if isinstance(v, bytes) else v
    return d


def kind(node, shapes):
    """A finer op name: Conv split by kind (depthwise, 1x1, kxk)."""
    if node.op_type != "Conv":
        return node.op_type
    a = attrs(node)
    group = a.get("group", 1)
    ks = a.get("kernel_shape") or shapes.get(node.input[1], [0, 0, 0, 0])[2:]
    if group > 1:
        return "Conv depthwise" if shapes.get(node.input[1], [0, 1])[1] == 1 else "Conv grouped"
    return "Conv 1x1" if list(ks) == [1, 1] else "Conv %s" % "x".join(map(str, ks))


def layer_text(nodes, shapes):
    conv = next((n for n in nodes if n.op_type in ("Conv", "Gemm", "MatMul")), nodes[0])
    ins = [i for i in conv.input if i]
    ishape = "x".join(map(str, shapes.get(ins[0], []))) if ins else ""
    oshape = "x".join(map(str, shapes.get(nodes[-1].output[0], [])))
    a = attrs(conv)
    extra = []
    if conv.op_type == "Conv":
        w = shapes.get(conv.input[1])
        if w:
            extra.append("k%s" % "x".join(map(str, w[2:])))
            extra.append("%d->%d ch" % (w[1] * a.get("group", 1), w[0]))
        if a.get("group", 1) > 1:
            extra.append("group %d" % a["group"])
        if any(s != 1 for s in a.get("strides", [1])):
            extra.append("stride %s" % "x".join(map(str, a["strides"])))
    ops = "+".join(n.op_type for n in nodes if n.op_type not in ("Identity", "Constant"))
    return f"{ops} {ishape}->{oshape}" + (f" ({', '.join(extra)})" if extra else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libbnfold.a"))
    ap.add_argument("--node", default="/usr/bin/node" if os.path.exists("/usr/bin/node") else "node")
    a = ap.parse_args()

    tool = os.path.join(ROOT, "build", "bench", "node_times")
    build_node_times(a.lib, tool)
    p = subprocess.run([tool, a.model, "--threads", str(a.threads), "--repeat", str(a.repeat)],
                       stdout=subprocess.PIPE, text=True, check=True)
    lines = p.stdout.splitlines()
    hdr = lines[0].lstrip("# ").split()
    hdr = dict(zip(hdr[::2], hdr[1::2]))
    b_total = float(hdr["median_ms"])
    vtime, shapes = {}, {}
    for ln in lines[1:]:
        _, name, shape, ms = ln.split("\t")
        vtime[name] = float(ms)
        shapes[name] = [] if shape == "scalar" else [int(x) for x in shape.split("x")]
    env = dict(os.environ)
    env["NODE_PATH"] = os.path.join(ROOT, "build", "node", "node_modules")
    p = subprocess.run([a.node, os.path.join(HERE, "ort_profile.js"), a.model, str(a.threads),
                        str(a.repeat)], stdout=subprocess.PIPE, text=True, check=True, env=env)
    ort = json.loads(p.stdout)

    m = onnx.load(a.model)
    g = m.graph
    for vi in g.input:
        shapes.setdefault(vi.name, [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim])
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
    nodes = list(g.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    consumers = collections.defaultdict(list)
    for i, n in enumerate(nodes):
        for x in n.input:
            if x:
                consumers[x].append(i)
    outputs = {o.name for o in g.output}
    by_node_name = {n.name: i for i, n in enumerate(nodes) if n.name}
    ntime = [sum(vtime.get(o, 0.0) for o in n.output) for n in nodes]

    # onnxruntime node -> the original node its chain ends on
    anchor = {}
    ort_unmatched = []
    for k, on in enumerate(ort["nodes"]):
        # "<value>_nchwc", "<node>", "<node>/QuickGeluFusion/", ...
        key = re.sub(r"/[A-Za-z0-9]+Fusion/?$", "", on["name"])
        for suffix in ("_nchwc", ""):
            base = key[: -len(suffix)] if suffix and key.endswith(suffix) else key
            if base in producer:
                anchor.setdefault(producer[base], k)
                break
            if base in by_node_name:
                anchor.setdefault(by_node_name[base], k)
                break
        else:
            ort_unmatched.append(k)

    # each original node -> the onnxruntime node of the first anchor down its single-consumer chain
    group = {}
    for i in range(len(nodes)):
        cur, steps = i, 0
        while cur not in anchor and steps < 64:
            outs = [o for o in nodes[cur].output if o]
            if len(outs) != 1 or outs[0] in outputs or len(consumers[outs[0]]) != 1:
                cur = None
                break
            cur, steps = consumers[outs[0]][0], steps + 1
        if cur is not None and cur in anchor:
            group[i] = anchor[cur]
    members = collections.defaultdict(list)
    for i in range(len(nodes)):
        if i in group:
            members[group[i]].append(i)

    # ---- report
    name = os.path.basename(a.model)
    o_sum = sum(n["ms"] for n in ort["nodes"])
    print(f"### {name}, {a.threads} thread(s), median of {a.repeat} runs per node")
    print()
    print(f"bnfold: {b_total:.2f} ms per run (observed), sum over nodes {sum(ntime):.2f} ms, "
          f"{sum(1 for n in nodes if n.op_type not in ('Identity', 'Constant'))} nodes "
          f"(Identity/Constant not counted), {float(hdr.get('after_last_value_ms', 0)):.2f} ms "
          "after the last node.  ")
    print(f"onnxruntime: {ort['median_ms']:.2f} ms per run (profiler on), sum over kernels "
          f"{o_sum:.2f} ms, {len(ort['nodes'])} nodes after its graph optimisations.")
    print("(A sum of per-node medians below the per-run median means the runs were interrupted: "
          "other processes took the CPU.)")
    print()
    kinds = collections.defaultdict(lambda: [0, 0.0])
    for i, n in enumerate(nodes):
        if n.op_type in ("Identity", "Constant"):
            continue
        e = kinds[kind(n, shapes)]
        e[0] += 1
        e[1] += ntime[i]
    print("| bnfold node kind | nodes | ms | % of bnfold |")
    print("|---|---:|---:|---:|")
    for k, (c, t) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        print(f"| {k} | {c} | {t:.2f} | {100 * t / b_total:.1f} |")
    print()
    okinds = collections.defaultdict(lambda: [0, 0.0])
    for on in ort["nodes"]:
        e = okinds[on["op"]]
        e[0] += 1
        e[1] += on["ms"]
    print("| onnxruntime kernel | nodes | ms | % of onnxruntime |")
    print("|---|---:|---:|---:|")
    for k, (c, t) in sorted(okinds.items(), key=lambda kv: -kv[1][1]):
        print(f"| {k} | {c} | {t:.2f} | {100 * t / ort['median_ms']:.1f} |")
    print()

    layers = collections.OrderedDict()
    for k, on in enumerate(ort["nodes"]):
        idx = members.get(k, [])
        real = [nodes[i] for i in idx if nodes[i].op_type not in ("Identity", "Constant")]
        if not real:
            continue
        txt = layer_text(real, shapes)
        e = layers.setdefault(txt, {"count": 0, "b": 0.0, "o": 0.0, "parts": collections.Counter()})
        e["count"] += 1
        e["o"] += on["ms"]
        for i in idx:
            e["b"] += ntime[i]
            if nodes[i].op_type not in ("Identity", "Constant"):
                e["parts"][nodes[i].op_type] += ntime[i]
    left = [i for i in range(len(nodes)) if i not in group and nodes[i].op_type not in ("Identity", "Constant")]
    print(f"{a.top} layers where bnfold loses the most time (bnfold ms - onnxruntime ms, identical "
          "layers merged; ms are totals over the merged layers):")
    print()
    print("| layer (bnfold nodes, input->output, conv) | layers | bnfold ms | of which | onnxruntime ms | ratio |")
    print("|---|---:|---:|---|---:|---:|")
    for txt, e in sorted(layers.items(), key=lambda kv: -(kv[1]["b"] - kv[1]["o"]))[:a.top]:
        parts = " + ".join(f"{op} {t:.2f}" for op, t in e["parts"].most_common())
        ratio = f"{e['b'] / e['o']:.1f}" if e["o"] > 0 else "n/a"
        print(f"| {txt} | {e['count']} | {e['b']:.2f} | {parts} | {e['o']:.2f} | {ratio} |")
    print()
    if left:
        c = collections.Counter(nodes[i].op_type for i in left)
        t = sum(ntime[i] for i in left)
        print(f"bnfold nodes with no onnxruntime counterpart found: {len(left)} "
              f"({', '.join(f'{k} {v}' for k, v in c.most_common())}), {t:.2f} ms.  ")
    if ort_unmatched:
        c = collections.Counter(ort["nodes"][k]["op"] for k in ort_unmatched)
        t = sum(ort["nodes"][k]["ms"] for k in ort_unmatched)
        print(f"onnxruntime nodes not matched to original nodes: {len(ort_unmatched)} "
              f"({', '.join(f'{k} {v}' for k, v in c.most_common())}), {t:.2f} ms.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
