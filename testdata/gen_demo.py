#!/usr/bin/python3
"""Writes testdata/demo/mobilenet_v2_tiny.onnx, the model `make demo` folds.

A real torchvision MobileNetV2 (width 0.25, 100 classes: 1.5 MB) with random
weights and randomised BatchNorm statistics (fixed seed), exported by torch with
its BatchNormalization nodes kept.  Beside it, input_0.pb / output_0.pb: an input
and the output torch computed for it (TensorProto files, as in the ONNX test
data sets).  Run with Debian's python3: /usr/bin/python3 testdata/gen_demo.py
"""
import os

import numpy as np
import onnx
import torch
import torchvision
from onnx import numpy_helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo")


def randomise_bn(model, gen):
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            mod.running_var.copy_(torch.exp(torch.rand(c, generator=gen) * 2 - 1))
            mod.weight.data.copy_(1 + 0.2 * torch.randn(c, generator=gen))
            mod.bias.data.copy_(0.1 * torch.randn(c, generator=gen))


def main():
    os.makedirs(HERE, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=100).eval()
    with torch.no_grad():
        randomise_bn(model, gen)
    x = torch.randn(1, 3, 96, 96, generator=gen)
    path = os.path.join(HERE, "mobilenet_v2_tiny.onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["image"],
                      output_names=["logits"], do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE)
    with torch.no_grad():
        y = model(x).numpy()
    onnx.save_tensor(numpy_helper.from_array(x.numpy(), "image"),
                     os.path.join(HERE, "input_0.pb"))
    onnx.save_tensor(numpy_helper.from_array(y, "logits"), os.path.join(HERE, "output_0.pb"))
    m = onnx.load(path)
    bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(m.graph.node)} nodes, {bn} BatchNormalization")


if __name__ == "__main__":
    main()
