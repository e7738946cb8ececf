#!/usr/bin/python3
"""Export randomly initialised torchvision models to ONNX for the bnfold interop check.

Usage: /usr/bin/python3 tests/interop/export_models.py OUTDIR [NAME ... | --none]

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14, onnx 1.12).
Nothing is downloaded: every model is built with weights=None (and
weights_backbone=None for the segmentation model).  Besides the torchvision
architectures, a small custom model covers what they lack: grouped
ConvTranspose -> BN, Gemm -> BN, and a Transpose-fed MatMul -> BN (skipped).

A second group, the fold patterns (names torch_*), are small torch models for
the patterns beyond "layer -> BN": BN -> Gemm, MatMul -> BN, BN -> unpadded
Conv, Conv -> Mul -> Add by per-channel constants.  Each spec states what
`bnfold fold` (default options) must do with it (BNs folded and lowered, the
ops of its actions, BNs left), and the export checks the graph torch produced
really has the pattern (e.g. a MatMul with a constant B feeding a BN).

Before export every BatchNorm gets random running statistics and affine
parameters (fixed seed per model), so that folding is exercised on values far
from the trivial init (mean 0, var 1, gamma 1, beta 0): running_var
log-uniform in [1e-5, 10] with a few channels at ~1e-5, running_mean normal,
gamma normal (some negative, a few exactly zero), beta normal.

Random statistics make activations grow layer after layer (a channel with
var 1e-5 multiplies its input by ~300).  To keep the network numerically sane
the gamma of each BN is then calibrated, in forward order, on one seeded input:
per channel, if the BN's scaled term gamma*(x-mean)/sqrt(var+eps) has an RMS
above CAL_TARGET, gamma is shrunk so it equals CAL_TARGET (channels already
below are untouched; signs and exact zeros are kept).  The running statistics
are not touched, so tiny variances stay in the exported model.

Writes OUTDIR/NAME.onnx and OUTDIR/NAME.meta.json per model, skipping models
whose both files already exist (cache), OUTDIR/manifest.tsv listing every
torchvision/custom model of this run (name, opset, BN count, foldable BN count,
input shape) and OUTDIR/patterns_manifest.tsv every fold-pattern model of this
run (name, opset, BN count, expected folded, lowered, actions, BNs after, input
shape).  Prints one line per model.  Exit status 1 if any model failed.
With NAMEs, only those models (any NAME no spec has: exit status 2); with the
single argument --none, no model (both manifests are written empty).
"""
import json
import math
import os
import sys
import time
import zlib

CAL_TARGET = 2.0          # per-channel RMS cap of the BN's gamma*(x-mean)/std term
MAX_ABS_OUT = 1e6         # an exported model's output must stay below this


def spec_list():
    """(name, arch, opset, input shape, dynamic batch, expect) for every exported model.

    expect is None for the torchvision/custom group (manifest.tsv), else the
    fold-pattern expectation (patterns_manifest.tsv): what `bnfold fold` with
    default options must report, {"folded", "lowered", "bn_after", "actions"}
    with actions the sorted multiset of its actions' ops ("Add:2,Mul:2").
    """
    def img(hw):
        return [1, 3, hw, hw]

    specs = []
    for arch in ("resnet18", "mobilenet_v2"):
        for opset in (9, 11, 13, 15, 17):
            specs.append((f"{arch}_op{opset}", arch, opset, img(224), False, None))
    for arch in ("resnet50", "mobilenet_v3_small", "efficientnet_b0", "densenet121",
                 "regnet_x_400mf", "shufflenet_v2_x1_0", "mnasnet0_5", "googlenet"):
        specs.append((f"{arch}_op13", arch, 13, img(224), False, None))
    specs.append(("inception_v3_op13", "inception_v3", 13, img(299), False, None))
    specs.append(("lraspp_mobilenet_v3_large_op13", "lraspp_mobilenet_v3_large", 13, img(224),
                  False, None))
    # a second opset for a couple of cheap ones; one with a symbolic batch dim
    specs.append(("mobilenet_v3_small_op11_dynbatch", "mobilenet_v3_small", 11, img(224), True, None))
    specs.append(("efficientnet_b0_op17", "efficientnet_b0", 17, img(224), False, None))
    specs.append(("shufflenet_v2_x1_0_op9", "shufflenet_v2_x1_0", 9, img(224), False, None))
    # not torchvision: the layer kinds torchvision lacks (grouped ConvTranspose,
    # Gemm, MatMul -> BN which must be skipped), small so it costs nothing
    for opset in (9, 13):
        specs.append((f"custom_convtranspose_gemm_op{opset}", "custom_convtranspose_gemm",
                      opset, img(32), False, None))
    # fold patterns (small, default fold options)
    specs.append(("torch_mlp_bn1d_op13", "mlp_bn1d", 13, [8, 16], False,
                  # bn0 -> fc1 (BN -> Gemm), fc1 -> bn1 (Gemm -> BN), matmul(w2) -> bn2
                  # (MatMul -> BN: becomes Gemm); fc3 (no bias: Transpose + MatMul) -> bn3
                  # is left (B is not a constant)
                  {"folded": 3, "lowered": 0, "bn_after": 1, "actions": "BatchNormalization:3"}))
    specs.append(("torch_bn2d_conv1x1_op13", "bn2d_conv1x1", 13, img(32), False,
                  # relu -> bn1 -> 1x1 conv, relu -> bn2 -> unpadded 3x3 conv (no bias),
                  # both BN -> Conv; bn3 -> padded 3x3 conv is left (PADDING)
                  {"folded": 2, "lowered": 0, "bn_after": 1, "actions": "BatchNormalization:2"}))
    specs.append(("torch_conv_scale_shift_op13", "conv_scale_shift", 13, img(32), False,
                  # conv * scale + shift twice (scale [C,1,1] / [1,C,1,1]): Mul, Add into the Conv
                  {"folded": 0, "lowered": 0, "bn_after": 0, "actions": "Add:2,Mul:2"}))
    return specs


def custom_convtranspose_gemm():
    """Conv, grouped ConvTranspose, ConvTranspose with bias, Gemm and MatMul, each -> BN."""
    import torch
    import torch.nn as nn

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=True)
            self.bn1 = nn.BatchNorm2d(16)
            self.ct = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, groups=2, bias=False)
            self.bn2 = nn.BatchNorm2d(8)
            self.ct2 = nn.ConvTranspose2d(8, 6, 3, padding=1, bias=True)
            self.bn3 = nn.BatchNorm2d(6)
            self.pool = nn.AdaptiveAvgPool2d(4)
            self.fc = nn.Linear(96, 32)                # exported as Gemm
            self.bn4 = nn.BatchNorm1d(32)
            self.fc2 = nn.Linear(32, 10, bias=False)   # exported as Transpose + MatMul: BN skipped
            self.bn5 = nn.BatchNorm1d(10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv(x)))
            x = torch.relu(self.bn2(self.ct(x)))
            x = self.bn3(self.ct2(x))
            x = torch.flatten(self.pool(x), 1)
            x = torch.relu(self.bn4(self.fc(x)))
            return self.bn5(self.fc2(x))

    return Custom()


def pattern_model(arch):
    """The torch models of the fold-pattern group (see spec_list)."""
    import torch
    import torch.nn as nn

    class MlpBn1d(nn.Module):
        """2-D input: BN -> Linear (Gemm), Linear -> BN, matmul(x, w) -> BN, Linear(no bias) -> BN."""
        def __init__(self):
            super().__init__()
            self.bn0 = nn.BatchNorm1d(16)
            self.fc1 = nn.Linear(16, 32)                              # Gemm, transB 1
            self.bn1 = nn.BatchNorm1d(32)
            self.w2 = nn.Parameter(torch.randn(32, 24) / math.sqrt(32))  # MatMul, B constant
            self.bn2 = nn.BatchNorm1d(24)
            self.fc3 = nn.Linear(24, 10, bias=False)                   # Transpose + MatMul
            self.bn3 = nn.BatchNorm1d(10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.fc1(self.bn0(x))))
            x = torch.relu(self.bn2(torch.matmul(x, self.w2)))
            return self.bn3(self.fc3(x))

    class BnConv1x1(nn.Module):
        """BatchNorm2d directly before an unpadded Conv2d (1x1 with bias, 3x3 without)."""
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 16, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(16)
            self.c2 = nn.Conv2d(16, 24, 1)
            self.bn2 = nn.BatchNorm2d(24)
            self.c3 = nn.Conv2d(24, 12, 3, bias=False)
            self.bn3 = nn.BatchNorm2d(12)
            self.c4 = nn.Conv2d(12, 8, 3, padding=1)

        def forward(self, x):
            x = torch.relu(self.c2(self.bn1(torch.relu(self.c1(x)))))
            x = torch.relu(self.c3(self.bn2(x)))
            return self.c4(self.bn3(x))

    class ConvScaleShift(nn.Module):
        """Conv2d followed by x * scale + shift with per-channel constants (Conv -> Mul -> Add)."""
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 16, 3, padding=1)
            self.scale1 = nn.Parameter(torch.randn(16, 1, 1))
            self.shift1 = nn.Parameter(torch.randn(1, 16, 1, 1))
            self.c2 = nn.Conv2d(16, 8, 3, stride=2, padding=1, bias=False)
            self.scale2 = nn.Parameter(torch.randn(1, 8, 1, 1))
            self.shift2 = nn.Parameter(torch.randn(8, 1, 1))

        def forward(self, x):
            x = torch.relu(self.c1(x) * self.scale1 + self.shift1)
            return self.c2(x) * self.scale2 + self.shift2

    return {"mlp_bn1d": MlpBn1d, "bn2d_conv1x1": BnConv1x1,
            "conv_scale_shift": ConvScaleShift}[arch]()


# the node patterns each fold-pattern model must contain after export:
# (producer op, consumer op, which of the producer's inputs must be initializers)
PATTERN_CHECKS = {
    "mlp_bn1d": [("BatchNormalization", "Gemm", ()), ("Gemm", "BatchNormalization", (1, 2)),
                 ("MatMul", "BatchNormalization", (1,))],
    "bn2d_conv1x1": [("BatchNormalization", "Conv", ())],
    "conv_scale_shift": [("Conv", "Mul", (1,)), ("Mul", "Add", (1,))],
}


def check_patterns(m, arch):
    """Raise unless the exported graph has every edge PATTERN_CHECKS lists."""
    g = m.graph
    inits = {t.name for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    for a, b, const_inputs in PATTERN_CHECKS.get(arch, []):
        found = False
        for n in g.node:
            if n.op_type != b or not n.input:
                continue
            if b in ("Mul", "Add"):      # either operand may be the layer's output
                p = next((producer[i] for i in n.input if i in producer and producer[i].op_type == a),
                         None)
            else:
                p = producer.get(n.input[0])
            if p is not None and p.op_type == a and \
                    all(k < len(p.input) and p.input[k] in inits for k in const_inputs):
                found = True
                break
        if not found:
            raise RuntimeError(f"exported graph has no {a} -> {b} edge "
                               f"(with constant inputs {list(const_inputs)}): "
                               f"ops {sorted({n.op_type for n in g.node})}")


def build_model(arch):
    import torch
    import torchvision.models as tvm
    import torchvision.models.segmentation as tvs

    if arch == "custom_convtranspose_gemm":
        return custom_convtranspose_gemm()
    if arch in PATTERN_CHECKS:
        return pattern_model(arch)
    if arch == "googlenet":
        return tvm.googlenet(weights=None, aux_logits=False, init_weights=True)
    if arch == "inception_v3":
        return tvm.inception_v3(weights=None, aux_logits=False, init_weights=True)
    if arch in ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"):
        seg = getattr(tvs, arch)(weights=None, weights_backbone=None)

        class OutOnly(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m(x)["out"]

        return OutOnly(seg)
    return getattr(tvm, arch)(weights=None)


def randomise_bn(model, seed):
    """Random running stats and affine params for every BatchNorm (fixed seed)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            c = bn.num_features
            u = torch.rand(c, generator=g, dtype=torch.float64)
            var = torch.pow(10.0, -5.0 + 6.0 * u)            # log-uniform [1e-5, 10]
            k_small = max(1, c // 32)
            idx = torch.randperm(c, generator=g)[:k_small]
            var[idx] = 1e-5 * (0.9 + 0.2 * torch.rand(k_small, generator=g, dtype=torch.float64))
            mean = torch.randn(c, generator=g, dtype=torch.float64)
            gamma = torch.randn(c, generator=g, dtype=torch.float64)
            k_zero = max(1, c // 64)
            gamma[torch.randperm(c, generator=g)[:k_zero]] = 0.0
            beta = torch.randn(c, generator=g, dtype=torch.float64)
            bn.running_var.copy_(var)
            bn.running_mean.copy_(mean)
            if bn.affine:
                bn.weight.copy_(gamma)
                bn.bias.copy_(beta)
    return bns


def calibrate_gamma(model, bns, x):
    """Shrink per-channel gamma where gamma*(x-mean)/std has RMS > CAL_TARGET.

    Done in one forward pass: each BN's hook rescales its own gamma and returns
    the rescaled output, so later BNs see already-bounded activations.
    Returns (number of channels changed, total channels).
    """
    import torch
    stats = [0, 0]

    def hook(bn, inputs, y):
        if not bn.affine:
            return y
        shape = [1, -1] + [1] * (y.dim() - 2)
        beta = bn.bias.view(shape)
        z = (y - beta).double()
        dims = [d for d in range(z.dim()) if d != 1]
        rms = z.pow(2).mean(dim=dims).sqrt()
        s = torch.where(rms > CAL_TARGET, CAL_TARGET / rms, torch.ones_like(rms))
        s = torch.nan_to_num(s, nan=0.0, posinf=0.0)          # non-finite -> silence channel
        stats[0] += int((s < 1).sum())
        stats[1] += s.numel()
        bn.weight.mul_(s.to(bn.weight.dtype))
        zs = torch.nan_to_num(z * s.view(shape), nan=0.0, posinf=0.0, neginf=0.0)
        return (zs.to(y.dtype) + beta)

    handles = [bn.register_forward_hook(hook) for bn in bns]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return stats


def out_max(model, x):
    import torch
    with torch.no_grad():
        y = model(x)
    if isinstance(y, (tuple, list)):
        y = y[0]
    m = y.abs().max().item()
    return m if math.isfinite(m) else float("inf")


def count_foldable(m):
    """BNs that bnfold must fold per docs/contract.md (a lower bound: one pass,
    no fixed point): input produced by Conv/ConvTranspose/Gemm whose output has
    no other consumer and is no graph output, all parameters plain initializers
    not listed as graph inputs, inference mode (single output, training_mode 0)."""
    from collections import Counter
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers = Counter(i for n in g.node for i in n.input)
    graph_outputs = {o.name for o in g.output}
    graph_inputs = {i.name for i in g.input}
    inits = {t.name for t in g.initializer} - graph_inputs
    count = 0
    for n in g.node:
        if n.op_type != "BatchNormalization" or len(n.output) != 1:
            continue
        if any(a.name == "training_mode" and a.i != 0 for a in n.attribute):
            continue
        layer = producer.get(n.input[0])
        if layer is None or layer.op_type not in ("Conv", "ConvTranspose", "Gemm"):
            continue
        if consumers[layer.output[0]] != 1 or layer.output[0] in graph_outputs:
            continue
        params = list(n.input[1:5]) + [i for i in layer.input[1:] if i]
        if all(p in inits for p in params):
            count += 1
    return count


def export_one(outdir, name, arch, opset, shape, dynamic, expect):
    import torch
    import onnx

    seed = zlib.crc32(name.encode())
    torch.manual_seed(seed)                  # the random (init_weights) init of the model
    model = build_model(arch)
    model.eval()
    bns = randomise_bn(model, seed)
    gx = torch.Generator().manual_seed(seed ^ 0x5A5A)
    x = torch.randn(*shape, generator=gx)

    raw_max = out_max(model, x)
    changed, total = calibrate_gamma(model, bns, x)
    final_max = out_max(model, x)
    if not (final_max <= MAX_ABS_OUT):
        raise RuntimeError(f"output still unbounded after calibration: max|out|={final_max}")

    path = os.path.join(outdir, name + ".onnx")
    tmp = path + ".tmp"
    kwargs = {}
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    torch.onnx.export(model, x, tmp, opset_version=opset,
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False,
                      keep_initializers_as_inputs=False,
                      input_names=["input"], output_names=["output"], **kwargs)
    m = onnx.load(tmp)
    onnx.checker.check_model(m)
    check_patterns(m, arch)
    n_bn = sum(1 for n in m.graph.node if n.op_type == "BatchNormalization")
    n_foldable = count_foldable(m)
    if n_bn != len(bns):
        raise RuntimeError(f"exported {n_bn} BatchNormalization nodes, torch model has {len(bns)}")
    os.replace(tmp, path)
    meta = {"name": name, "arch": arch, "opset": opset, "input_shape": list(shape),
            "dynamic_batch": dynamic, "bn_count": n_bn, "bn_foldable": n_foldable, "seed": seed,
            "raw_max_abs_out": raw_max if math.isfinite(raw_max) else None,
            "max_abs_out": final_max, "gamma_channels_rescaled": changed,
            "gamma_channels_total": total}
    if expect is not None:
        meta["expect"] = expect
    with open(os.path.join(outdir, name + ".meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    outdir = argv[1]
    only = set(argv[2:])
    none = only == {"--none"}
    if none:
        only = set()
    os.makedirs(outdir, exist_ok=True)
    specs = [] if none else [s for s in spec_list() if not only or s[0] in only]
    if only - {s[0] for s in specs}:
        print(f"unknown model(s): {sorted(only - {s[0] for s in specs})}", file=sys.stderr)
        return 2

    torch_ready = False
    failed = 0
    rows = []
    for name, arch, opset, shape, dynamic, expect in specs:
        path = os.path.join(outdir, name + ".onnx")
        meta_path = os.path.join(outdir, name + ".meta.json")
        t0 = time.time()
        status = "cached"
        meta = None
        if os.path.exists(path) and os.path.exists(meta_path):
            try:
                with open(meta_path) as f:
                    meta = json.load(f)
                if "bn_foldable" not in meta or meta.get("expect") != expect:
                    meta = None          # written by an older version: export again
            except (OSError, ValueError):
                meta = None
        if meta is None:
            status = "exported"
            if not torch_ready:
                import torch
                torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
                import warnings
                warnings.filterwarnings("ignore")
                torch_ready = True
            try:
                meta = export_one(outdir, name, arch, opset, shape, dynamic, expect)
            except Exception as e:  # noqa: BLE001 - report and go on with the next model
                failed += 1
                print(f"{name:36s} opset {opset:2d}  EXPORT FAILED: {type(e).__name__}: {e}",
                      flush=True)
                continue
        rows.append(meta)
        shape = "x".join(str(d) for d in meta["input_shape"])
        resc = f"{meta['gamma_channels_rescaled']}/{meta['gamma_channels_total']}"
        e = meta.get("expect")
        fold = (f"foldable {meta['bn_foldable']:3d}" if e is None else
                f"expect folded {e['folded']}, lowered {e['lowered']}, actions {e['actions']}")
        print(f"{name:36s} opset {opset:2d}  input {shape:11s}  BN {meta['bn_count']:3d}  "
              f"{fold}  max|out| {meta['max_abs_out']:.3g}  gamma rescaled {resc:9s}  "
              f"{status} ({time.time() - t0:.1f}s)", flush=True)

    with open(os.path.join(outdir, "manifest.tsv"), "w") as f:
        for meta in rows:
            if "expect" in meta:
                continue
            f.write(f"{meta['name']}\t{meta['opset']}\t{meta['bn_count']}\t{meta['bn_foldable']}\t"
                    f"{'x'.join(str(d) for d in meta['input_shape'])}\n")
    with open(os.path.join(outdir, "patterns_manifest.tsv"), "w") as f:
        for meta in rows:
            e = meta.get("expect")
            if e is None:
                continue
            f.write(f"{meta['name']}\t{meta['opset']}\t{meta['bn_count']}\t{e['folded']}\t"
                    f"{e['lowered']}\t{e['actions']}\t{e['bn_after']}\t"
                    f"{'x'.join(str(d) for d in meta['input_shape'])}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
