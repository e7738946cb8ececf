#!/usr/bin/python3
"""Build the big synthetic model of the model I/O benchmark (bench/io.sh).

Usage: /usr/bin/python3 bench/make_big.py OUT.onnx [--bytes N] [--channels C] [--seed S]

A chain of blocks  Conv(3x3, C -> C, pads 1, no bias) -> BatchNormalization ->
Relu  on a 1xCx4x4 float32 input (so running it is cheap next to reading it),
with as many blocks as it takes for the weights to reach N bytes (default
3.0e9; C = 1536: each Conv weight is C*C*9*4 = 84.9 MB, 36 blocks, 3.06 GB).
Conv weights are He-normal (std sqrt(2 / (9 C))), BN statistics realistic:
gamma ~ N(1, 0.1), beta ~ N(0, 0.1), mean ~ N(0, 0.1), var ~ U(0.5, 2),
epsilon 1e-5, so every BN folds and folding changes every weight.

Every initializer is external data, all in ONE file next to the model named
after it (OUT.onnx.data, the `location` is that file name, relative to the
model's folder), laid out as onnx 1.12's
onnx.save_model(..., save_as_external_data=True, all_tensors_to_one_file=True,
location=..., size_threshold=1024) lays it out: tensors in initializer order,
back to back (offsets not page-aligned), each with location / offset / length
entries.  Unlike onnx.save_model it never holds more than one tensor in memory
(peak ~ 2 x 85 MB): tensors are generated and appended one at a time, then the
small model file is written.  The files are written under temporary names and
renamed at the end (the data file first), so an interrupted run leaves no
half model behind (at worst a data file without its model).

Opset 13, IR 7.  Prints one line with the file sizes.  Exit 0 ok, 1 error,
2 usage.
"""
import argparse
import os
import sys

import numpy as np


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("out", help="the model file (its data file: OUT.data)")
    ap.add_argument("--bytes", type=float, default=3.0e9,
                    help="weights at least this many bytes (default 3.0e9)")
    ap.add_argument("--channels", type=int, default=1536, help="C (default 1536)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv[1:])

    import onnx
    from onnx import TensorProto, helper

    c = args.channels
    if c < 1 or args.bytes <= 0:
        print("make_big: --channels and --bytes must be positive", file=sys.stderr)
        return 2
    w_bytes = c * c * 9 * 4
    block_bytes = w_bytes + 4 * 4 * c
    blocks = max(1, -(-int(args.bytes) // block_bytes))  # ceil

    out = os.path.abspath(args.out)
    folder = os.path.dirname(out)
    location = os.path.basename(out) + ".data"
    data_path = os.path.join(folder, location)
    tmp_model, tmp_data = out + ".tmp", data_path + ".tmp"
    os.makedirs(folder, exist_ok=True)

    rng = np.random.default_rng(args.seed)
    inits, nodes = [], []
    offset = 0

    def external(name, arr, f):
        """Append arr to the data file f; an initializer that points at it."""
        nonlocal offset
        arr = np.ascontiguousarray(arr, dtype="<f4")
        raw = arr.tobytes()
        f.write(raw)
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(arr.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
            e = t.external_data.add()
            e.key, e.value = k, v
        offset += len(raw)
        inits.append(t)

    x = "input"
    std = np.float32(np.sqrt(2.0 / (9 * c)))
    with open(tmp_data, "wb") as f:
        for i in range(blocks):
            p = f"b{i}"
            w = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
            w *= std
            external(f"{p}.conv.weight", w, f)
            del w
            external(f"{p}.bn.weight", rng.normal(1.0, 0.1, c), f)
            external(f"{p}.bn.bias", rng.normal(0.0, 0.1, c), f)
            external(f"{p}.bn.running_mean", rng.normal(0.0, 0.1, c), f)
            external(f"{p}.bn.running_var", rng.uniform(0.5, 2.0, c), f)
            conv_out, bn_out, relu_out = f"{p}.conv_out", f"{p}.bn_out", f"{p}.relu_out"
            if i == blocks - 1:
                relu_out = "output"
            nodes.append(helper.make_node("Conv", [x, f"{p}.conv.weight"], [conv_out],
                                          name=f"{p}.conv", kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[1, 1]))
            nodes.append(helper.make_node("BatchNormalization",
                                          [conv_out, f"{p}.bn.weight", f"{p}.bn.bias",
                                           f"{p}.bn.running_mean", f"{p}.bn.running_var"],
                                          [bn_out], name=f"{p}.bn", epsilon=1e-5))
            nodes.append(helper.make_node("Relu", [bn_out], [relu_out], name=f"{p}.relu"))
            x = relu_out
        f.flush()
        os.fsync(f.fileno())

    graph = helper.make_graph(
        nodes, "big_conv_bn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, c, 4, 4])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="bnfold bench/make_big.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    with open(tmp_model, "wb") as f:
        f.write(model.SerializeToString())
    # the data file first: the checker looks for it (it only checks that it is
    # there: the 3 GB are not read back)
    os.replace(tmp_data, data_path)
    try:
        onnx.checker.check_model(tmp_model)   # by path: external data relative to it
    except Exception:
        os.unlink(tmp_model)
        os.unlink(data_path)
        raise
    os.replace(tmp_model, out)
    print(f"make_big: {out} ({os.path.getsize(out)} bytes) + {data_path} ({offset} bytes): "
          f"{blocks} blocks Conv {c}x{c}x3x3 -> BatchNormalization -> Relu, "
          f"input 1x{c}x4x4", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
