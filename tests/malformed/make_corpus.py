#!/usr/bin/python3
"""Generate the malformed-model corpus into tests/malformed/files/.

Run with Debian's interpreter (python3-onnx 1.12, python3-numpy):

    /usr/bin/python3 tests/malformed/make_corpus.py

Deterministic (fixed seeds); every file is small (the whole folder is well under
100 KB) and committed.  Cases that need a file-system layout (external data
escaping through ../ or a symlink, a missing data file) or that are big
(memory amplification, a 3 GB sparse file) are built by run.sh at run time;
this script only writes the models they point at.

Wire-level cases (truncations, bad lengths, deep nesting, a 1 TB length
prefix) are written byte by byte with the small encoder below, since
onnx/protobuf would refuse to produce them.  What each file should make
bnfold do is in cases.tsv, not here.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "files")

written = []


def save(name, data):
    if isinstance(data, onnx.ModelProto):
        data = data.SerializeToString()
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    written.append((name, len(data)))


# --------------------------------------------------------------------------
# a raw protobuf encoder, for what onnx would not write
# --------------------------------------------------------------------------

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def ld(field, payload):
    """A length-delimited field."""
    return key(field, 2) + varint(len(payload)) + payload


def vi(field, v):
    return key(field, 0) + varint(v)


# --------------------------------------------------------------------------
# the base model: X[1,3,4,4] -> Conv(W, B) -> BN -> Y, IR 8, opset 13
# --------------------------------------------------------------------------

RNG = np.random.default_rng(20240611)
W = RNG.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
CB = RNG.uniform(-0.5, 0.5, 4).astype(np.float32)
SCALE = RNG.uniform(0.5, 1.5, 4).astype(np.float32)
BIAS = RNG.uniform(-0.5, 0.5, 4).astype(np.float32)
MEAN = RNG.uniform(-0.5, 0.5, 4).astype(np.float32)
VAR = RNG.uniform(0.1, 2.0, 4).astype(np.float32)


def inits():
    return [numpy_helper.from_array(W, "W"), numpy_helper.from_array(CB, "conv_B"),
            numpy_helper.from_array(SCALE, "scale"), numpy_helper.from_array(BIAS, "bias"),
            numpy_helper.from_array(MEAN, "mean"), numpy_helper.from_array(VAR, "var")]


def nodes():
    return [helper.make_node("Conv", ["X", "W", "conv_B"], ["conv_out"], "conv",
                             kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["conv_out", "scale", "bias", "mean", "var"],
                             ["Y"], "bn", epsilon=1e-5)]


def model(graph_nodes=None, initializers=None, ir=8, opset=13, inputs=None, outputs=None):
    g = helper.make_graph(
        nodes() if graph_nodes is None else graph_nodes, "g",
        inputs if inputs is not None else
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4])],
        outputs if outputs is not None else
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4, 4, 4])],
        inits() if initializers is None else initializers)
    m = helper.make_model(g, producer_name="make_corpus",
                          opset_imports=[helper.make_opsetid("", opset)] if opset else [])
    m.ir_version = ir
    return m


def with_init(name, edit):
    """The base model with initializer `name` edited in place by edit(t)."""
    ts = inits()
    for t in ts:
        if t.name == name:
            edit(t)
    return model(initializers=ts)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.unlink(os.path.join(OUT, f))

    base = model()
    onnx.checker.check_model(base)
    good = base.SerializeToString()
    save("valid.onnx", good)

    # ---- not a model at all ------------------------------------------------
    save("empty.onnx", b"")
    save("random.onnx", np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    save("text.onnx", b"This is not an ONNX model.\nJust some text, as a README would be.\n")
    save("json.onnx", b'{"ir_version": 8, "graph": {"node": []}}\n')
    save("zeros.onnx", bytes(1024))
    # valid protobufs that are not a ModelProto
    save("tensorproto.onnx", numpy_helper.from_array(W, "W").SerializeToString())
    save("graphproto.onnx", base.graph.SerializeToString())
    save("nodeproto.onnx", base.graph.node[0].SerializeToString())
    # only unknown fields: parses, but there is no graph
    save("unknown_fields_only.onnx", ld(1000, b"hello") + vi(1001, 5))
    save("no_graph.onnx", vi(1, 8) + ld(8, ld(1, b"") + vi(2, 13)))
    # ir_version sent as a length-delimited field: protobuf-c refuses it
    save("wrong_wire_type.onnx", ld(1, b"\x08") + good)

    # ---- truncations of the valid model ------------------------------------
    for cut in (1, 2, 7, 50, len(good) // 2, len(good) - 1):
        save("trunc_%d.onnx" % cut, good[:cut])

    # ---- wire-level damage ---------------------------------------------------
    save("len_1tb.onnx", vi(1, 8) + key(7, 2) + varint(1 << 40) + b"\x0a\x00" * 8)
    save("len_2gb.onnx", vi(1, 8) + key(7, 2) + varint((1 << 31) + 1) + b"\x0a\x00" * 8)
    save("len_past_parent.onnx", vi(1, 8) + ld(7, key(1, 2) + varint(1000) + b"\x00" * 10))
    save("varint_overlong.onnx", vi(1, 8) + b"\xff" * 11 + b"\x01")
    save("field_zero.onnx", b"\x00\x01" + good)
    save("wire_type_group.onnx", vi(1, 8) + key(9, 3) + key(9, 4) + good)
    save("nul_in_name.onnx", good.replace(b"conv_out", b"conv\x00out"))

    # deep nesting: graph input X whose type is a sequence of a sequence of ...
    # (TypeProto.sequence_type = 4, TypeProto.Sequence.elem_type = 1), as deep as
    # it takes to make a 74 KB file; protobuf-c alone overflows its stack here.
    inner = ld(1, vi(1, 1))  # TypeProto{tensor_type{elem_type FLOAT}}
    depth = 0
    while len(inner) < 74 * 1024:
        inner = ld(4, ld(1, inner))
        depth += 1
    vinfo = ld(1, b"S") + ld(2, inner)
    graph = ld(2, b"g") + ld(11, vinfo) + ld(12, ld(1, b"S"))
    save("deep_typeproto.onnx", vi(1, 8) + ld(7, graph) + ld(8, vi(2, 13)))
    print("deep_typeproto: %d levels" % depth, file=sys.stderr)

    # deep subgraphs: If -> then_branch -> If -> ... 40 levels (3 messages each)
    g_inner = ld(2, b"leaf")
    for _ in range(40):
        attr = ld(1, b"then_branch") + key(6, 2) + varint(len(g_inner)) + g_inner + vi(20, 5)
        node = ld(1, b"cond") + ld(2, b"out") + ld(4, b"If") + ld(5, attr)
        g_inner = ld(1, node) + ld(2, b"sub")
    save("deep_subgraphs.onnx", vi(1, 8) + ld(7, g_inner + ld(11, ld(1, b"cond"))) +
         ld(8, vi(2, 13)))

    # ---- tensors ------------------------------------------------------------
    def short_raw(t):
        t.raw_data = t.raw_data[:-4]
    save("raw_data_short.onnx", with_init("W", short_raw))

    def long_raw(t):
        t.raw_data = t.raw_data + b"\0\0\0\0"
    save("raw_data_long.onnx", with_init("var", long_raw))

    def float_data_count(t):
        vals = numpy_helper.to_array(t).ravel().tolist()
        t.ClearField("raw_data")
        t.float_data.extend(vals[:-1])
    save("float_data_count.onnx", with_init("scale", float_data_count))

    def neg_dim(t):
        t.dims[0] = -4
    save("negative_dim.onnx", with_init("mean", neg_dim))

    def overflow_dims(t):
        del t.dims[:]
        t.dims.extend([1 << 31, 1 << 31, 1 << 31, 4])
    save("dims_overflow.onnx", with_init("W", overflow_dims))

    def huge_dims(t):
        del t.dims[:]
        t.dims.extend([1 << 62, 4])
    save("dims_huge.onnx", with_init("bias", huge_dims))

    def no_dtype(t):
        t.data_type = 0
    save("dtype_undefined.onnx", with_init("conv_B", no_dtype))

    # unknown data types: the tensor is left alone; a fold needing it is skipped
    def unknown_dtype(t):
        t.data_type = 99
    save("dtype_unknown_bn_param.onnx", with_init("var", unknown_dtype))
    save("dtype_unknown_weight.onnx", with_init("W", unknown_dtype))
    unused = TensorProto(name="unused", data_type=99, dims=[3], raw_data=b"abcdefgh")
    ts = inits() + [unused]
    save("dtype_unknown_unused.onnx", model(initializers=ts))

    def string_dtype(t):
        t.data_type = TensorProto.STRING
        t.ClearField("raw_data")
        t.string_data.extend([b"a", b"b", b"c", b"d"])
    save("dtype_string_bn_param.onnx", with_init("mean", string_dtype))

    def external_no_location(t):
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("raw_data")
        e = t.external_data.add()
        e.key, e.value = "length", "16"
    save("external_no_location.onnx", with_init("scale", external_no_location))

    # ---- graph structure ------------------------------------------------------
    n = nodes()
    n[1].input[0] = "nothing"
    save("input_undefined.onnx", model(graph_nodes=n))

    save("nodes_out_of_order.onnx", model(graph_nodes=list(reversed(nodes()))))

    n = nodes()
    n[0].input[0] = "Y"  # Conv reads BN's output, BN reads Conv's: a cycle
    save("cycle.onnx", model(graph_nodes=n))

    n = nodes() + [helper.make_node("Relu", ["X"], ["conv_out"], "relu")]
    save("defined_twice.onnx", model(graph_nodes=n))

    n = nodes()
    n[0].output[0] = "W"  # a node output with an initializer's name
    n[1].input[0] = "W"
    save("node_redefines_initializer.onnx", model(graph_nodes=n))

    save("initializer_twice.onnx", model(initializers=inits() + [numpy_helper.from_array(VAR, "var")]))

    save("output_undefined.onnx", model(outputs=[
        helper.make_tensor_value_info("Z", TensorProto.FLOAT, [1, 4, 4, 4])]))

    n = nodes()
    n[0].op_type = ""
    save("no_op_type.onnx", model(graph_nodes=n))

    # a BN with no outputs after a foldable Conv (the graph's output is X): the
    # fold driver read node->output[0] through a NULL array (found by fuzz_fold)
    n = nodes()
    del n[1].output[:]
    save("bn_no_output.onnx", model(graph_nodes=n, outputs=[
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4])]))

    save("input_twice.onnx", model(inputs=[
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4])] * 2))

    # ---- versions ---------------------------------------------------------------
    m = model()
    m.ClearField("ir_version")
    save("ir_missing.onnx", m)
    save("ir_zero.onnx", model(ir=0))
    save("ir_negative.onnx", model(ir=-5))
    save("ir_huge.onnx", model(ir=1 << 40))
    save("opset_missing.onnx", model(opset=0))
    m = model()
    m.opset_import[0].version = 0
    save("opset_zero.onnx", m)
    m = model()
    m.opset_import[0].version = 1 << 40
    save("opset_huge.onnx", m)
    m = model()
    m.opset_import[0].ClearField("version")
    save("opset_no_version.onnx", m)
    m = model()
    m.opset_import[0].domain = "com.example"
    save("opset_other_domain_only.onnx", m)

    # ---- external data (the folder is laid out by run.sh) -------------------------
    def ext(location, offset=None, length=None):
        def edit(t):
            raw = t.raw_data
            t.ClearField("raw_data")
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", offset), ("length", length)):
                if v is not None:
                    e = t.external_data.add()
                    e.key, e.value = k, str(v)
            assert len(raw) == 4 * 4 * 3 * 3 * 3
        return with_init("W", edit)
    save("ext_ok.onnx", ext("w.data"))
    save("ext_dotdot.onnx", ext("../outside.data"))
    save("ext_dotdot_inner.onnx", ext("sub/../../outside.data"))
    save("ext_absolute.onnx", ext("/etc/passwd"))
    save("ext_symlink.onnx", ext("link.data"))
    save("ext_offset_past_end.onnx", ext("w.data", offset=1 << 20, length=432))
    save("ext_offset_huge.onnx", ext("w.data", offset=(1 << 64) - 8, length=432))
    save("ext_length_wrong.onnx", ext("w.data", length=100))
    save("ext_offset_negative.onnx", ext("w.data", offset=-1))
    save("ext_missing.onnx", ext("missing.data"))
    save("ext_directory.onnx", ext("subdir"))
    save("ext_empty_location.onnx", ext(""))
    save("ext_fifo.onnx", ext("fifo.data"))
    save("ext_devzero.onnx", ext("devzero.data"))
    data = W.tobytes()
    assert len(data) == 432
    save("w.data", data)

    # ---- the evaluator (run, and fold's end-to-end check) on shapes that explode --
    def ev(name, op_nodes, extra_inits, out_name="Z"):
        g = helper.make_graph(
            op_nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4])],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
            extra_inits)
        m = helper.make_model(g, producer_name="make_corpus",
                              opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        save(name, m)
    big = np.array([1 << 20, 1 << 20, 1 << 20], np.int64)
    ev("eval_constantofshape_huge.onnx",
       [helper.make_node("ConstantOfShape", ["shape"], ["Z"], "cos")],
       [numpy_helper.from_array(big, "shape")])
    ev("eval_constantofshape_4g.onnx",
       [helper.make_node("ConstantOfShape", ["shape"], ["Z"], "cos")],
       [numpy_helper.from_array(np.array([1 << 16, 1 << 16], np.int64), "shape")])
    ev("eval_expand_huge.onnx",
       [helper.make_node("Expand", ["X", "shape"], ["Z"], "expand")],
       [numpy_helper.from_array(np.array([1 << 40, 3, 4, 4], np.int64), "shape")])
    ev("eval_tile_huge.onnx",
       [helper.make_node("Tile", ["X", "reps"], ["Z"], "tile")],
       [numpy_helper.from_array(np.array([1 << 30, 1 << 30, 1, 1], np.int64), "reps")])
    ev("eval_resize_huge.onnx",
       [helper.make_node("Resize", ["X", "", "scales"], ["Z"], "resize")],
       [numpy_helper.from_array(np.array([1, 1, 1e9, 1e9], np.float32), "scales")])
    ev("eval_pad_huge.onnx",
       [helper.make_node("Pad", ["X", "pads"], ["Z"], "pad")],
       [numpy_helper.from_array(np.array([0, 0, 1 << 31, 1 << 31, 0, 0, 1 << 31, 1 << 31],
                                         np.int64), "pads")])
    ev("eval_conv_pads_huge.onnx",
       [helper.make_node("Conv", ["X", "W"], ["Z"], "conv", pads=[1 << 40, 1 << 40, 1 << 40,
                                                                 1 << 40])],
       [numpy_helper.from_array(W, "W")])
    ev("eval_reshape_bad.onnx",
       [helper.make_node("Reshape", ["X", "shape"], ["Z"], "reshape")],
       [numpy_helper.from_array(np.array([-1, -1, 7], np.int64), "shape")])

    # fold's end-to-end check runs the whole model: a side branch that explodes
    n = nodes() + [helper.make_node("ConstantOfShape", ["shape"], ["Z"], "cos")]
    m = model(graph_nodes=n, initializers=inits() + [
        numpy_helper.from_array(np.array([1 << 16, 1 << 16], np.int64), "shape")],
        outputs=[helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4, 4, 4]),
                 helper.make_tensor_value_info("Z", TensorProto.FLOAT, None)])
    save("eval_fold_side_4g.onnx", m)

    # pads within the evaluator's range check, on an 850-byte model: fold's
    # local check builds a 27 x 100M im2col buffer (found by fuzz_fold)
    m = model()
    for a in m.graph.node[0].attribute:
        if a.name == "pads":
            a.ints[:] = [0, 0, 0, 1 << 24]
    m.graph.output[0].type.tensor_type.ClearField("shape")
    save("eval_fold_conv_pads_16m.onnx", m)

    # Conv attributes the evaluator refuses, which fold's local check turns into
    # its synthetic input shape: a group that divides nothing (an input of 12.6 M
    # channels: found by fuzz_fold as a time-out), and values whose products
    # overflow int64 (verify.c's layer_input_shape)
    # a Conv whose group, weight and input disagree: invalid (validation)
    m = model()
    m.graph.node[0].attribute.append(helper.make_attribute("group", 3))
    save("conv_group_not_dividing.onnx", m)
    m = model(inputs=[helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 6, 4, 4])])
    save("conv_input_channels.onnx", m)
    for name, attr, v in (("fold_conv_group_4m.onnx", "group", 4194303),
                          ("fold_conv_group_huge.onnx", "group", 1 << 62),
                          ("fold_conv_dilations_huge.onnx", "dilations", [1 << 62, 1]),
                          ("fold_conv_strides_huge.onnx", "strides", [1 << 62, 1])):
        m = model()
        m.graph.node[0].attribute.append(helper.make_attribute(attr, v))
        save(name, m)

    for name, size in written:
        print("%7d  %s" % (size, name))


if __name__ == "__main__":
    main()
