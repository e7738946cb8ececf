"""Calibration test data and its independent reference (torch), for
tests/calibrate_test.sh.

    /usr/bin/python3 testdata/gen_calibrate.py OUTDIR

writes into OUTDIR:
  trained.onnx     torchvision resnet18 (seeded weights) whose BN running
                   statistics were collected in train mode on seeded data
  untrained.onnx   the same with every BN's statistics reset to mean 0, var 1
                   (what an export before training gives: BN_UNTRAINED)
  data/set_K/input.npy       the calibration sets (K = 0..5, 2 x 3 x 64 x 64 each)
  data2/set_K/input.npy      the same 12 samples as 3 sets of 4 (another batching)
  heldout/input.npy          held-out inputs (4 x 3 x 64 x 64)
  ref.json         per BN (by its running-mean initializer's name): the
                   statistics bnfold must find, computed here in torch by the
                   sequential procedure: in eval mode, BN by BN in execution
                   order, each BN's input collected over all calibration
                   samples with every BN before it already updated; mean and
                   population variance per channel in float64.

Independent of bnfold: torch computes the reference, onnx only exports.
"""

import json
import os
import sys

import numpy as np
import torch
import torchvision.models as tvm

SETS, BATCH, HW = 6, 2, 64


def data(seed, n):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, HW, HW, generator=g) * 0.8 + 0.1


def export(model, path):
    torch.onnx.export(model, data(99, 1), path, opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      input_names=["input"], output_names=["output"])


def bn_modules(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = tvm.resnet18(weights=None)
    # "trained" statistics: a cumulative average over seeded batches in train mode
    for _, m in bn_modules(model):
        m.momentum = None
    model.train()
    with torch.no_grad():
        for b in range(8):
            model(data(1000 + b, 4))
    model.eval()
    export(model, os.path.join(out, "trained.onnx"))
    for _, m in bn_modules(model):
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
    export(model, os.path.join(out, "untrained.onnx"))

    samples = torch.cat([data(2000 + k, BATCH) for k in range(SETS)])
    for k in range(SETS):
        d = os.path.join(out, "data", "set_%d" % k)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "input.npy"), samples[k * BATCH:(k + 1) * BATCH].numpy())
    for k in range(SETS // 2):
        d = os.path.join(out, "data2", "set_%d" % k)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "input.npy"), samples[k * 4:(k + 1) * 4].numpy())
    os.makedirs(os.path.join(out, "heldout"), exist_ok=True)
    np.save(os.path.join(out, "heldout", "input.npy"), data(3000, 4).numpy())

    # the reference: BN by BN in execution order
    order = []
    hooks = [m.register_forward_pre_hook(lambda m, i, name=n: order.append(name))
             for n, m in bn_modules(model)]
    with torch.no_grad():
        model(samples[:1])
    for h in hooks:
        h.remove()
    mods = dict(bn_modules(model))
    ref = {}
    with torch.no_grad():
        for name in order:
            m = mods[name]
            seen = []
            h = m.register_forward_pre_hook(lambda mod, i: seen.append(i[0].double()))
            model(samples)
            h.remove()
            x = torch.cat(seen)                      # N x C x H x W
            c = x.shape[1]
            v = x.transpose(0, 1).reshape(c, -1)
            mean = v.mean(dim=1)
            var = ((v - mean[:, None]) ** 2).mean(dim=1)
            m.running_mean.copy_(mean.float())
            m.running_var.copy_(var.float())
            ref[name + ".running_mean"] = {"mean": mean.tolist(), "var": var.tolist()}
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump({"order": order, "bns": ref}, f)
    print("gen_calibrate: %s: resnet18, %d BNs, %d sets of %d" % (out, len(order), SETS, BATCH))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/calibrate"))
