"""Tests of the bnfold Python package (run by `make python-test`, part of `make test`).

Run against an installed package: `python -m unittest discover -s python/tests`
from any folder but python/ (so that `import bnfold` finds the installed one).
With BNFOLD_TEST_REQUIRE_ALL=1 (the Makefile sets it) a missing optional
dependency (onnx, numpy, torch, jsonschema, a C compiler) is a failure, not a skip.

What they prove:
- the real workflow: a torchvision model exported by torch with its BNs kept,
  folded in memory, is valid ONNX with no BN left, verified, and computes torch's
  outputs;
- every form of model (path, bytes, ModelProto) and of tensor (numpy, TensorProto
  bytes, onnx.TensorProto; bytes when numpy is missing);
- every exception class, each raised by a real bad input;
- reports carry the documented fields and validate against the schema;
- the ctypes structs match the C header (sizes and offsets, compiled);
- no leak: 2,000 folds of the demo model leave RSS flat;
- two threads fold two models at once, with the same results as one after the
  other (their wall times are printed, not asserted).
"""
from __future__ import annotations

import ctypes
import functools
import inspect as pyinspect
import json
import os
import pydoc
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import bnfold

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "testdata" / "demo" / "mobilenet_v2_tiny.onnx"
MODELS = ROOT / "testdata" / "models"
HEALTH = ROOT / "testdata" / "health"
REQUIRE_ALL = os.environ.get("BNFOLD_TEST_REQUIRE_ALL") == "1"


def _optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


np = _optional("numpy")
onnx = _optional("onnx")


def needs(*mods):
    """Skip (or, with BNFOLD_TEST_REQUIRE_ALL=1, fail) without these modules."""
    missing = [m for m in mods if _optional(m) is None]

    def wrap(f):
        @functools.wraps(f)
        def run(self, *a, **k):
            if missing:
                if REQUIRE_ALL:
                    self.fail(f"needs {', '.join(missing)} (BNFOLD_TEST_REQUIRE_ALL=1)")
                self.skipTest(f"needs {', '.join(missing)}")
            return f(self, *a, **k)
        return run
    return wrap


def note(msg):
    """A measured number, shown in the test log."""
    print(f"\n    {msg}", file=sys.stderr, flush=True)


# ---- a torchvision model, exported as a user's script would --------------------------

@functools.lru_cache(maxsize=None)
def exported_resnet18():
    """(ModelProto, input, torch's eager output) of a torchvision resnet18 with random
    BN statistics, exported by torch with its BatchNormalization nodes kept."""
    import torch
    import torchvision

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    with torch.no_grad():  # as tests/interop/export_models.py: so that the fold matters
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                mod.running_var.copy_(torch.exp(torch.rand(c, generator=gen) * 4 - 3))
                mod.weight.copy_(torch.randn(c, generator=gen) * 0.5)
                mod.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    model.eval()
    x = torch.randn(1, 3, 64, 64, generator=gen)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "resnet18.onnx")
        torch.onnx.export(model, x, path, opset_version=13, input_names=["image"],
                          output_names=["logits"], do_constant_folding=False,
                          training=torch.onnx.TrainingMode.PRESERVE)
        proto = onnx.load(path)
    with torch.no_grad():
        y = model(x).numpy()
    return proto, x.numpy(), y


class TorchWorkflow(unittest.TestCase):
    """The issue's scenario: torch.onnx.export, then bnfold.fold in the same script."""

    @needs("torch", "torchvision", "onnx", "numpy")
    def test_export_fold_verify_run(self):
        proto, x, y = exported_resnet18()
        n_bn = sum(n.op_type == "BatchNormalization" for n in proto.graph.node)
        self.assertEqual(n_bn, 20)
        folded, report = bnfold.fold(proto)
        self.assertIsInstance(folded, onnx.ModelProto)
        self.assertEqual(sum(n.op_type == "BatchNormalization" for n in folded.graph.node), 0)
        onnx.checker.check_model(folded)
        self.assertEqual((report.summary.batchnorms, report.summary.folded,
                          report.summary.batchnorms_after), (20, 20, 0))
        self.assertTrue(all(b.decision == "fold" and b.layer_op == "Conv"
                            for b in report.batchnorms))
        self.assertTrue(report.verification.local.passed)
        self.assertTrue(report.verification.end_to_end.passed)
        v = bnfold.verify(proto, folded)
        self.assertTrue(v.equivalent)
        got = bnfold.run(folded, {"image": x})["logits"]
        scale = float(np.abs(y).max())
        err = float(np.abs(got - y).max())
        note(f"resnet18: 20 BN folded; |bnfold.run(folded) - torch| = {err:.3g}, "
             f"max|torch| = {scale:.3g} ({err / scale:.2g} of it)")
        self.assertLessEqual(err, 1e-4 * scale)
        # and the original, unfolded, computes the same in bnfold's evaluator
        self.assertLessEqual(float(np.abs(bnfold.run(proto, [x])["logits"] - y).max()),
                             1e-4 * scale)


# ---- models in every form -------------------------------------------------------------

class Forms(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bnfold-py-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_path_in_path_out(self):
        out = os.path.join(self.tmp, "out.onnx")
        folded, report = bnfold.fold(DEMO, out=Path(out))
        self.assertEqual(folded, out)
        self.assertEqual(report.input, str(DEMO))
        self.assertEqual(report.output, out)
        self.assertEqual(report.command, "fold")
        self.assertEqual(os.listdir(self.tmp), ["out.onnx"])  # no temporary left
        again, _ = bnfold.fold(out, out=os.path.join(self.tmp, "again.onnx"))
        with open(out, "rb") as a, open(again, "rb") as b:
            self.assertEqual(a.read(), b.read())  # nothing to fold: written as read

    def test_path_needs_out_and_in_place(self):
        with self.assertRaises(bnfold.UsageError):
            bnfold.fold(DEMO)
        with self.assertRaisesRegex(bnfold.UsageError, "input"):
            bnfold.fold(DEMO, out=DEMO)
        copy = os.path.join(self.tmp, "m.onnx")
        shutil.copy(DEMO, copy)
        folded, report = bnfold.fold(copy, in_place=True)
        self.assertEqual(folded, copy)
        self.assertEqual(bnfold.inspect(copy).summary.batchnorms, 0)

    def test_bytes_in_bytes_out(self):
        data = DEMO.read_bytes()
        folded, report = bnfold.fold(data)
        self.assertIsInstance(folded, bytes)
        self.assertIsNone(report.input)
        self.assertIsNone(report.output)
        self.assertEqual(bnfold.inspect(folded).summary.batchnorms, 0)
        out = os.path.join(self.tmp, "also.onnx")
        folded2, _ = bnfold.fold(bytearray(data), out=out)  # out= also writes it
        self.assertEqual(folded2, folded)
        self.assertEqual(Path(out).read_bytes(), folded)

    @needs("onnx")
    def test_proto_in_proto_out(self):
        proto = onnx.load(str(DEMO))
        folded, report = bnfold.fold(proto, verify=False)
        self.assertIsInstance(folded, onnx.ModelProto)
        self.assertIsNone(report.verification.local)
        self.assertIsNone(report.verification.end_to_end)
        self.assertEqual(report.summary.folded, 52)
        self.assertEqual(len(proto.graph.node), 223)  # the input is not touched

    @needs("onnx")
    def test_external_data(self):
        src = MODELS / "conv2d_external.onnx"
        out = os.path.join(self.tmp, "ext.onnx")
        bnfold.fold(src, out=out)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["ext.onnx", "ext.onnx.data"])
        m = onnx.load(out)  # reads ext.onnx.data
        onnx.checker.check_model(m)
        bnfold.verify(src, out)
        # in memory, the weights must be inline: onnx.load reads them in
        folded, _ = bnfold.fold(onnx.load(str(src)))
        self.assertFalse(any(t.data_location for t in folded.graph.initializer))
        with self.assertRaisesRegex(bnfold.InvalidModel, "external data"):
            bnfold.fold(src.read_bytes())

    def test_wrong_type(self):
        with self.assertRaises(TypeError):
            bnfold.inspect(42)
        with self.assertRaises(TypeError):
            bnfold.run(DEMO, inputs=object())


# ---- reports ------------------------------------------------------------------------

class Reports(unittest.TestCase):
    def test_inspect_reasons_and_findings(self):
        r = bnfold.inspect(MODELS / "skip_multi_consumer.onnx")
        self.assertEqual(r.command, "inspect")
        (bn,) = r.batchnorms
        self.assertEqual((bn.decision, bn.reason_code, bn.folded), ("skip", "LAYER_MULTI_CONSUMER",
                                                                    False))
        self.assertIn("consumers", bn.reason)
        r = bnfold.inspect(HEALTH / "multi_bn.onnx")
        by_name = {b.name: b for b in r.batchnorms}
        self.assertEqual([f.code for f in by_name["bn2"].findings], ["BN_TINY_VAR",
                                                                    "BN_DEAD_CHANNEL"])
        self.assertEqual(by_name["bn2"].findings[1].channels, (0, 2))
        self.assertEqual([f.code for f in by_name["bn3"].findings], ["BN_NEG_VAR"])
        self.assertEqual(by_name["bn3"].reason_code, "NON_FINITE")
        self.assertEqual(by_name["bn1"].findings, ())
        self.assertEqual(r.summary.findings, {"error": 1, "warning": 1, "info": 1})
        self.assertIsNone(r.passed)
        self.assertEqual(r.model.opsets[""], r.json["model"]["opsets"][0]["version"])

    def test_fold_report_fields(self):
        with tempfile.TemporaryDirectory() as d:
            _, r = bnfold.fold(DEMO, out=os.path.join(d, "o.onnx"), lower_standalone=True)
        self.assertEqual(r.model.producer, "pytorch 1.13.0")
        self.assertEqual(r.model.op_counts["BatchNormalization"], 52)
        self.assertEqual(len(r.actions), 52)
        a = r.actions[0]
        self.assertEqual((a.op, a.layer_op, a.position), ("BatchNormalization", "Conv", "after"))
        self.assertTrue(a.weight)
        self.assertLess(r.verification.local.worst_rel_err, 1e-4)
        e2e = r.verification.end_to_end
        self.assertEqual((e2e.ran, e2e.passed, e2e.input_sets, e2e.outputs), (True, True, 3, 1))
        self.assertGreater(e2e.values, 100)
        self.assertEqual(json.loads(r.to_json()), r.json)
        self.assertIn("timings_ms", r.json)  # the rest of the document
        self.assertIn("52 folded", repr(r))

    def test_check_gate(self):
        r = bnfold.check(HEALTH / "multi_bn.onnx", fail_on="warning")
        self.assertEqual(r.command, "check")
        self.assertFalse(r.passed)
        self.assertEqual(r.gate.problems, (("BN_TINY_VAR", "bn2"), ("BN_NEG_VAR", "bn3")))
        self.assertTrue(bnfold.check(HEALTH / "healthy.onnx").passed)
        self.assertFalse(bnfold.check(HEALTH / "healthy.onnx", ["error", "unfolded"]).passed)
        self.assertTrue(bnfold.check(HEALTH / "multi_bn.onnx", "BN_ZERO_VAR").passed)

    def test_codes_are_the_schema_codes(self):
        schema = json.loads((ROOT / "docs" / "report.schema.json").read_text())
        codes = bnfold.codes()
        self.assertEqual({c for c, i in codes.items() if i.kind == "skip"},
                         set(schema["$defs"]["reason_code"]["enum"]))
        self.assertEqual({c for c, i in codes.items() if i.kind == "finding"},
                         set(schema["$defs"]["finding_code"]["enum"]))
        self.assertEqual({c for c, i in codes.items() if i.kind == "gate"},
                         set(schema["$defs"]["gate_code"]["enum"]))
        self.assertEqual(codes["BN_NEG_VAR"].severity, "error")

    @needs("jsonschema", "onnx")
    def test_documents_validate_against_the_schema(self):
        import jsonschema
        schema = json.loads((ROOT / "docs" / "report.schema.json").read_text())
        with tempfile.TemporaryDirectory() as d:
            docs = [bnfold.fold(DEMO, out=os.path.join(d, "o.onnx"))[1],
                    bnfold.inspect(HEALTH / "multi_bn.onnx"),
                    bnfold.check(HEALTH / "multi_bn.onnx", "warning"),
                    bnfold.verify(DEMO, os.path.join(d, "o.onnx"))]
        try:
            bnfold.verify(DEMO, MODELS / "conv2d.onnx")
        except bnfold.CheckFailed as e:
            docs.append(e.report)
        for doc in docs:
            jsonschema.validate(doc.json, schema)


# ---- tensors ----------------------------------------------------------------------

class Run(unittest.TestCase):
    @needs("onnx", "numpy")
    def test_inputs_in_every_form(self):
        from onnx import numpy_helper
        x_pb = (ROOT / "testdata" / "demo" / "input_0.pb").read_bytes()
        want = numpy_helper.to_array(onnx.load_tensor(str(ROOT / "testdata/demo/output_0.pb")))
        x = numpy_helper.to_array(onnx.TensorProto.FromString(x_pb))
        for given in ({"image": x}, [x], [x_pb], {"image": onnx.TensorProto.FromString(x_pb)},
                      [np.asfortranarray(x)], [x.astype(np.float16)]):
            out = bnfold.run(DEMO, given)
            self.assertEqual(list(out), ["logits"])
            self.assertEqual(out["logits"].dtype, np.float32)
            self.assertEqual(out["logits"].shape, (1, 100))
            tol = 1e-2 if isinstance(given, list) and getattr(given[0], "dtype", None) in (
                np.float16,) else 1e-6  # float16 rounds the input
            self.assertLess(float(np.abs(out["logits"] - want).max()), tol)
        # random inputs, seeded: the same seed the same outputs
        a = bnfold.run(DEMO, seed=5)["logits"]
        self.assertTrue(np.array_equal(a, bnfold.run(DEMO, seed=5, threads=1)["logits"]))
        self.assertFalse(np.array_equal(a, bnfold.run(DEMO, seed=6)["logits"]))
        with self.assertRaisesRegex(bnfold.UsageError, "no input named 'nope'"):
            bnfold.run(DEMO, {"nope": x})
        with self.assertRaises(bnfold.UsageError):
            bnfold.run(DEMO, [np.zeros(2, dtype=np.complex64)])
        with self.assertRaisesRegex(bnfold.Unsupported, "X is double"):  # types are not cast
            bnfold.run(DEMO, [x.astype(np.float64)])

    @needs("onnx", "numpy")
    def test_without_numpy_tensors_are_tensorproto_bytes(self):
        from onnx import numpy_helper
        code = ("import sys; sys.modules['numpy'] = None\n"
                "import bnfold\n"
                f"x = open({str(ROOT / 'testdata/demo/input_0.pb')!r}, 'rb').read()\n"
                f"out = bnfold.run({str(DEMO)!r}, [x])\n"
                "assert isinstance(out['logits'], bytes)\n"
                "sys.stdout.buffer.write(out['logits'])\n")
        got = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                             cwd=tempfile.gettempdir()).stdout
        t = onnx.TensorProto.FromString(got)
        self.assertEqual(t.name, "logits")
        want = numpy_helper.to_array(onnx.load_tensor(str(ROOT / "testdata/demo/output_0.pb")))
        self.assertLess(float(np.abs(numpy_helper.to_array(t) - want).max()), 1e-6)


# ---- errors: every class from a real bad input --------------------------------------

def _unsupported_model():
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Einsum", ["X"], ["Y"], equation="ij->ji")], "g",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


class Errors(unittest.TestCase):
    def test_hierarchy(self):
        classes = [bnfold.UsageError, bnfold.InvalidModel, bnfold.Unsupported,
                   bnfold.FileError, bnfold.OutOfMemory, bnfold.CheckFailed]
        self.assertEqual(sorted(c.status for c in classes), [1, 2, 3, 4, 5, 6])
        for c in classes:
            self.assertTrue(issubclass(c, bnfold.Error))
        self.assertTrue(issubclass(bnfold.UsageError, ValueError))
        self.assertTrue(issubclass(bnfold.FileError, OSError))
        self.assertTrue(issubclass(bnfold.OutOfMemory, MemoryError))

    def test_invalid_model(self):
        with tempfile.TemporaryDirectory() as d:
            cut = os.path.join(d, "cut.onnx")
            with open(cut, "wb") as f:
                f.write(DEMO.read_bytes()[:5000])  # truncated
            with self.assertRaisesRegex(bnfold.InvalidModel, "cut.onnx") as cm:
                bnfold.fold(cut, out=os.path.join(d, "o.onnx"))
            self.assertEqual(os.listdir(d), ["cut.onnx"])
        self.assertEqual(cm.exception.status, 2)
        with self.assertRaisesRegex(bnfold.InvalidModel, "wire type"):
            bnfold.inspect(b"this is not an ONNX model")
        with self.assertRaisesRegex(bnfold.InvalidModel, "empty"):
            bnfold.check(b"")

    def test_file_error(self):
        with self.assertRaisesRegex(bnfold.FileError, "No such file") as cm:
            bnfold.inspect("/nonexistent/model.onnx")
        self.assertIn("/nonexistent/model.onnx", str(cm.exception))
        with self.assertRaises(OSError):
            bnfold.fold(DEMO, out="/nonexistent/folder/out.onnx")

    @needs("onnx")
    def test_unsupported(self):
        m = _unsupported_model()
        self.assertEqual(bnfold.inspect(m).summary.batchnorms, 0)  # inspect needs no evaluator
        with self.assertRaisesRegex(bnfold.Unsupported, "does not implement Einsum"):
            bnfold.run(m)
        with self.assertRaisesRegex(bnfold.Unsupported, "Einsum"):
            bnfold.verify(m, m)

    def test_usage_error(self):
        with self.assertRaisesRegex(bnfold.UsageError, "errror"):
            bnfold.check(DEMO, fail_on="errror")
        with self.assertRaises(ValueError):
            bnfold.fold(DEMO.read_bytes(), rtol=-1)
        with self.assertRaises(bnfold.UsageError):
            bnfold.fold(DEMO.read_bytes(), in_place=True)

    @needs("onnx", "numpy")
    def test_check_failed(self):
        # verify of two models that differ: CheckFailed, carrying the report
        from onnx import numpy_helper
        proto = onnx.load(str(DEMO))
        w = next(t for t in proto.graph.initializer if t.name == "classifier.1.weight")
        a = numpy_helper.to_array(w).copy()
        a[7] *= 1.01
        w.CopyFrom(numpy_helper.from_array(a, w.name))
        with self.assertRaises(bnfold.CheckFailed) as cm:
            bnfold.verify(DEMO, proto)
        r = cm.exception.report
        self.assertIsInstance(r, bnfold.VerifyReport)
        self.assertFalse(r.equivalent)
        self.assertIn("logits", r.message)
        self.assertIn(r.message, str(cm.exception))
        self.assertEqual(r.models, (str(DEMO), "<memory>"))
        # a fold that fails its own check (bnfold(1)'s test hook corrupts every fold)
        code = ("import os, sys, bnfold\n"
                "os.environ['BNFOLD_TEST_BREAK_FOLD'] = '1'\n"
                "try:\n"
                f"    bnfold.fold(open({str(DEMO)!r}, 'rb').read())\n"
                "except bnfold.CheckFailed as e:\n"
                "    print('CheckFailed', e.report, e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=tempfile.gettempdir()).stdout
        self.assertTrue(out.startswith("CheckFailed None "), out)

    def test_out_of_memory(self):
        # a 300 MiB model with 100 MiB of address space left: the library's copy fails
        code = ("import resource, bnfold\n"
                f"data = open({str(DEMO)!r}, 'rb').read() + bytes(300 << 20)\n"
                "size = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status')\n"
                "            if l.startswith('VmSize'))\n"
                "limit = size + (100 << 20)\n"
                "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
                "try:\n"
                "    bnfold.inspect(data)\n"
                "except bnfold.OutOfMemory as e:\n"
                "    print('OutOfMemory', isinstance(e, MemoryError), e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=tempfile.gettempdir()).stdout
        self.assertEqual(out.strip(), "OutOfMemory True out of memory")


# ---- the binding itself -----------------------------------------------------------------

class Binding(unittest.TestCase):
    def test_library_found_and_versions_agree(self):
        self.assertTrue(os.path.exists(bnfold.library_path), bnfold.library_path)
        self.assertEqual(bnfold.library_version, bnfold.__version__)
        h = (ROOT / "src" / "bnfold.h").read_text()
        self.assertIn(f'#define BNF_VERSION "{bnfold.__version__}"', h)
        # one version everywhere: the Makefile's, the package's metadata, the binding's
        from bnfold import _native as N
        self.assertEqual(N.ABI_VERSION, bnfold.__version__)
        mk = (ROOT / "Makefile").read_text()
        self.assertRegex(mk, rf"\nVERSION\s*:= {re.escape(bnfold.__version__)}\n")
        pp = (ROOT / "python" / "pyproject.toml").read_text()
        self.assertRegex(pp, rf'\nversion = "{re.escape(bnfold.__version__)}"\n')
        if os.environ.get("BNFOLD_TEST_INSTALLED") == "1":  # make python-test: not the source
            self.assertNotEqual(Path(bnfold.__file__).resolve().parent.parent, ROOT / "python")

    def test_structs_match_the_header(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            if REQUIRE_ALL:
                self.fail("needs a C compiler")
            self.skipTest("needs a C compiler")
        from bnfold import _native as N
        structs = {"bnf_err": N.Err, "bnf_tensor": N.Tensor, "bnf_dim": N.Dim,
                   "bnf_named_tensor": N.NamedTensor, "bnf_tensors": N.Tensors,
                   "bnf_verify_options": N.VerifyOptions, "bnf_verify_result": N.VerifyResult,
                   "bnf_fold_options": N.FoldOptions, "bnf_session_options": N.SessionOptions,
                   "bnf_code_info": N.CodeInfo}
        lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "bnfold.h"',
                 "int main(void) {"]
        for cname, py in structs.items():
            lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
            for f in py._fields_:
                lines.append(f'printf("{cname}.{f[0]} %zu\\n", offsetof({cname}, {f[0]}));')
        lines.append("return 0; }")
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "abi.c")
            with open(src, "w") as f:
                f.write("\n".join(lines))
            subprocess.run([cc, "-std=c11", "-I", str(ROOT / "src"), src, "-o",
                            os.path.join(d, "abi")], check=True)
            got = subprocess.run([os.path.join(d, "abi")], capture_output=True, text=True,
                                 check=True).stdout.split("\n")
        want = []
        for cname, py in structs.items():
            want.append(f"{cname} {ctypes.sizeof(py)}")
            want += [f"{cname}.{f[0]} {getattr(py, f[0]).offset}" for f in py._fields_]
        self.assertEqual([g for g in got if g], want)

    def test_help_explains_every_option(self):
        text = pydoc.render_doc(bnfold.fold, renderer=pydoc.plaintext)
        for name in pyinspect.signature(bnfold.fold).parameters:
            self.assertRegex(text, rf"\n\s+{name}\n", f"fold's help does not explain {name}")
        # the man page's options of fold, each with its keyword
        man = (ROOT / "docs" / "bnfold.1").read_text()
        for opt, kw in [("lower\\-standalone", "lower_standalone"),
                        ("assume\\-inference", "assume_inference"),
                        ("freeze\\-inputs", "freeze_inputs"), ("no\\-verify", "verify"),
                        ("inputs", "inputs"), ("seed", "seed"), ("rtol", "rtol"),
                        ("atol", "atol"), ("outputs\\-only", "outputs_only"), ("dim", "dims"),
                        ("threads", "threads"), ("input", "feeds"), ("in\\-place", "in_place"),
                        ("output", "out")]:
            self.assertIn(f"\\-\\-{opt}", man)
            self.assertIn(kw, pyinspect.signature(bnfold.fold).parameters)
        for f in (bnfold.inspect, bnfold.check, bnfold.verify, bnfold.run):
            doc = pyinspect.getdoc(f)
            for name in pyinspect.signature(f).parameters:
                self.assertIn(name, doc, f"{f.__name__}'s help does not explain {name}")


# ---- no leak ----------------------------------------------------------------------------

class Leak(unittest.TestCase):
    ITERATIONS = 2000
    WARMUP = 200

    # In a process of its own that imports bnfold only: RSS is then mostly the
    # library's and the folds', so 5% of it is small (about 1 MiB, 600 bytes a fold).
    CHILD = """if True:
        import gc, json, sys, time
        import bnfold
        def rss():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        data = open(sys.argv[1], "rb").read()
        n, warmup = int(sys.argv[2]), int(sys.argv[3])
        t0 = time.monotonic()
        for i in range(n):
            if i == warmup:
                gc.collect()
                base = rss()
            # fold as a user calls it: verified each 10th time (sessions, tensors,
            # both checks), on one thread but each 100th (the thread pool)
            folded, report = bnfold.fold(data, threads=0 if i % 100 == 0 else 1,
                                         verify=i % 10 == 0)
            assert report.summary.folded == 52 and len(report.batchnorms) == 52
            assert i % 10 or report.verification.end_to_end.passed
            if i % 100 == 0:
                bnfold.run(folded, threads=1)
                bnfold.verify(data, folded, threads=1, inputs=1)
                bnfold.check(data)
                bnfold.inspect(folded)
            del folded, report
        gc.collect()
        print(json.dumps({"base": base, "end": rss(), "seconds": time.monotonic() - t0}))
    """

    def test_2000_folds_leave_rss_flat(self):
        """Every object that crosses the boundary (model, report, JSON, folded bytes,
        sessions and tensors) is freed: RSS after 2,000 folds of the demo model is
        within 5% of RSS after the first 200.  Each 10th fold is verified (each fold on
        its own, and the whole model end to end: sessions and tensors; all 2,000
        verified took two minutes of the suite, and ASan's leak check and test_alloc
        cover the C side), on one
        evaluator thread except each 100th (all cores: the thread pool); every 100th
        the loop also runs, verifies, checks and inspects."""
        out = subprocess.run([sys.executable, "-c", self.CHILD, str(DEMO), str(self.ITERATIONS),
                              str(self.WARMUP)], capture_output=True, text=True, check=True,
                             cwd=tempfile.gettempdir()).stdout
        r = json.loads(out)
        base, end = r["base"], r["end"]
        note(f"{self.ITERATIONS} folds of {DEMO.name} in {r['seconds']:.0f} s: RSS "
             f"{base / 2**20:.1f} MiB after {self.WARMUP}, {end / 2**20:.1f} MiB after "
             f"{self.ITERATIONS} ({(end - base) / base:+.1%})")
        self.assertLessEqual(end, base * 1.05)


# ---- threads ---------------------------------------------------------------------------

def _strip_timings(report):
    d = dict(report.json)
    d.pop("timings_ms", None)
    return d


class Threads(unittest.TestCase):
    @needs("torch", "torchvision", "onnx", "numpy")
    def test_two_models_at_once(self):
        """Two threads fold two different models at once (the library does not hold
        the GIL): the same folded models and reports as one after the other.  Each
        fold's evaluator runs on one thread (threads=1), so the two folds can use two
        cores; the wall times of both ways (five times in alternation) are printed,
        not asserted: speed is for benchmarks, a shared CI machine decides it here."""
        models = {"mobilenet_v2_tiny": DEMO.read_bytes(),
                  "resnet18": exported_resnet18()[0].SerializeToString()}
        once = {}
        for name, data in models.items():
            t = time.monotonic()
            bnfold.fold(data, threads=1)
            once[name] = time.monotonic() - t
        target = max([1.0] + list(once.values()))  # as long a job for each thread
        reps = {name: max(1, round(target / t)) for name, t in once.items()}

        def job(name, results):
            results[name] = [bnfold.fold(models[name], threads=1) for _ in range(reps[name])]

        def sequential():
            results = {}
            for name in models:
                job(name, results)
            return results

        def concurrent():
            results = {}
            ts = [threading.Thread(target=job, args=(name, results)) for name in models]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return results

        times = {"sequential": [], "concurrent": []}
        outcome = {}
        for _ in range(5):
            for way, fn in (("sequential", sequential), ("concurrent", concurrent)):
                t = time.monotonic()
                outcome[way] = fn()
                times[way].append(time.monotonic() - t)
                for name in models:  # same results either way, every time
                    ref = outcome["sequential"][name][0]
                    for folded, report in outcome[way][name]:
                        self.assertEqual(folded, ref[0])
                        self.assertEqual(_strip_timings(report), _strip_timings(ref[1]))
        seq, con = min(times["sequential"]), min(times["concurrent"])
        note(f"folds of {', '.join(f'{n} x{r}' for n, r in reps.items())}: one after the "
             f"other {', '.join(f'{t:.2f}' for t in times['sequential'])} s, in two threads "
             f"{', '.join(f'{t:.2f}' for t in times['concurrent'])} s (best {seq:.2f} / "
             f"{con:.2f} s: x{seq / con:.2f}; medians "
             f"{statistics.median(times['sequential']):.2f} / "
             f"{statistics.median(times['concurrent']):.2f} s)")

    def test_gil_is_released(self):
        """While a fold runs in C, another Python thread keeps running."""
        data = DEMO.read_bytes()
        ticks = []
        done = threading.Event()

        def spin():
            while not done.is_set():
                ticks.append(time.monotonic())
                time.sleep(0.001)
        t = threading.Thread(target=spin)
        t.start()
        try:
            start = time.monotonic()
            for _ in range(3):
                bnfold.fold(data, threads=1)
            end = time.monotonic()
        finally:
            done.set()
            t.join()
        during = [x for x in ticks if start <= x <= end]
        self.assertGreater(len(during), 20)


if __name__ == "__main__":
    unittest.main()
