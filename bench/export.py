#!/usr/bin/python3
"""Export the evaluator-benchmark models to ONNX.

Usage: /usr/bin/python3 bench/export.py [OUTDIR [ARCH ...]]   (default OUTDIR: build/bench)

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14, onnx 1.12).
Exports torchvision resnet50, mobilenet_v2 and efficientnet_b0 (or the ARCHs
named: those three and vgg11_bn, ~530 MB, for the model I/O benchmark
bench/io.sh), built with
weights=None (random init, fixed seed, nothing downloaded), in eval mode, at
opset 13 with a 1x3x224x224 input, the way a real export is made with
BatchNormalization nodes kept (training=PRESERVE, do_constant_folding=False).

The BatchNorm running statistics are set, before export, to the batch
statistics of one seeded random batch (4x3x224x224, forward pass in training
mode with momentum=None) instead of torchvision's init (mean 0, var 1): with
the init statistics the activations of mobilenet_v2 and efficientnet_b0 shrink
layer after layer (to ~1e-13 at the output), which no trained model does, and
a benchmark must not run on vanishing (possibly subnormal) numbers.  With the
calibrated statistics every BN output has roughly unit scale, as in a trained
network.  Weights stay random (weights=None, torch.manual_seed(0)).
Files already in OUTDIR are kept (cache).  Exit status 1 if an export failed.
"""
import os
import sys
import time

MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0")   # the default set
EXTRA = ("vgg11_bn",)                                        # only when named
OPSET = 13
SHAPE = (1, 3, 224, 224)


def calibrate_bn(model):
    """BN running stats := statistics of one seeded random batch (see above)."""
    import torch
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None                 # cumulative average: one batch -> its stats
    model.train()
    x = torch.randn(4, *SHAPE[1:], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(x)
    for bn, mom in zip(bns, saved):
        bn.momentum = mom
        bn.num_batches_tracked.zero_()


def export(arch, path):
    import torch
    import torchvision.models as tvm
    import onnx

    torch.manual_seed(0)
    model = getattr(tvm, arch)(weights=None)
    calibrate_bn(model)
    model.eval()
    x = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(1))
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=OPSET,
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False,
                      input_names=["input"], output_names=["output"])
    m = onnx.load(tmp)
    onnx.checker.check_model(m)
    n_bn = sum(1 for n in m.graph.node if n.op_type == "BatchNormalization")
    os.replace(tmp, path)
    return len(m.graph.node), n_bn


def main(argv):
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    archs = argv[2:] or list(MODELS)
    unknown = [a for a in archs if a not in MODELS + EXTRA]
    if unknown:
        print(f"export: unknown model(s) {' '.join(unknown)}; known: {' '.join(MODELS + EXTRA)}",
              file=sys.stderr)
        return 2
    outdir = argv[1] if len(argv) >= 2 else "build/bench"
    os.makedirs(outdir, exist_ok=True)
    failed = 0
    torch_ready = False
    for arch in archs:
        path = os.path.join(outdir, arch + ".onnx")
        if os.path.exists(path):
            print(f"export: {path} (cached)", flush=True)
            continue
        if not torch_ready:
            import warnings
            warnings.filterwarnings("ignore")
            import torch
            torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
            torch_ready = True
        t0 = time.time()
        try:
            nodes, n_bn = export(arch, path)
        except Exception as e:  # noqa: BLE001 - report and go on with the next model
            failed += 1
            print(f"export: {arch} FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            continue
        print(f"export: {path} ({nodes} nodes, {n_bn} BatchNormalization, "
              f"{time.time() - t0:.1f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
