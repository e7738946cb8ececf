"""The functions of bnfold: fold, inspect, check, verify, run.

Each loads its model(s) into libbnfold, makes one or two library calls, turns
what comes back into Python objects and frees everything before it returns.
The work is the library's; nothing here looks inside a model.
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, NamedTuple, Optional, Sequence, \
    Tuple, Union

from . import _native as N
from ._errors import CheckFailed, UsageError, raise_for
from ._reports import Report, VerifyReport
from ._tensors import TensorList, dims_array, from_tensor

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    ModelLike = Union[str, "os.PathLike[str]", bytes, onnx.ModelProto]
else:
    ModelLike = Union[str, "os.PathLike[str]", bytes, Any]

#: Input tensors: a dict of input name -> tensor, or a list in the model's input
#: order.  A tensor is a numpy array, the bytes of an ONNX TensorProto (or .npy)
#: file, or an onnx.TensorProto.
Inputs = Union[Mapping[str, Any], Sequence[Any]]

_MEMORY = "<memory>"  # how a model given in memory is named in reports


class _Model:
    """A model loaded into the library for the length of a `with` block.

    kind is "path" (a file: str or os.PathLike), "bytes" (the file's content) or
    "proto" (an onnx.ModelProto)."""

    def __init__(self, model: ModelLike) -> None:
        self.kind, self.source = _kind(model)
        self.handle = N.Model()

    @property
    def name(self) -> str:
        return self.source if self.kind == "path" else _MEMORY

    def __enter__(self) -> "_Model":
        err = N.Err()
        if self.kind == "path":
            st = N.lib.bnf_model_open(os.fsencode(self.source), None, ctypes.byref(self.handle),
                                      ctypes.byref(err))
        else:
            data = self.source if self.kind == "bytes" else self.source.SerializeToString()
            st = N.lib.bnf_model_load_buffer(data, len(data), None, ctypes.byref(self.handle),
                                             ctypes.byref(err))
        raise_for(st, err)
        return self

    def __exit__(self, *exc: Any) -> None:
        N.lib.bnf_model_free(self.handle)
        self.handle = N.Model()

    def serialize(self) -> bytes:
        data = ctypes.POINTER(ctypes.c_uint8)()
        size = N.c_size()
        err = N.Err()
        st = N.lib.bnf_model_serialize(self.handle, ctypes.byref(data), ctypes.byref(size),
                                       ctypes.byref(err))
        raise_for(st, err)
        return N.take_buffer(data, size.value)


def _kind(model: ModelLike) -> Tuple[str, Any]:
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return "path", path
    if isinstance(model, (bytes, bytearray, memoryview)):
        return "bytes", bytes(model)
    onnx = sys.modules.get("onnx")
    if onnx is not None and isinstance(model, onnx.ModelProto):
        return "proto", model
    raise TypeError("a model is a path (str or os.PathLike), the bytes of an ONNX file, or an "
                    f"onnx.ModelProto; not {type(model).__name__}")


def _report(handle: N.Report) -> Report:
    text = ctypes.c_void_p()
    size = N.c_size()
    err = N.Err()
    st = N.lib.bnf_report_to_json(handle, ctypes.byref(text), ctypes.byref(size),
                                  ctypes.byref(err))
    raise_for(st, err)
    return Report(N.take_buffer(text, size.value).decode())


def _count(name: str, value: Any, lo: float = 0) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= lo:
        raise UsageError(f"{name} must be a number >= {lo:g}, not {value!r}")
    return value


def _verify_options(v: N.VerifyOptions, inputs: int, seed: int, rtol: float, atol: float,
                    outputs_only: bool, dims: Optional[Mapping[str, int]],
                    feeds: Optional[TensorList], threads: int) -> Tuple[Any, ...]:
    """Fills v (from bnf_verify_defaults); returns what it borrows."""
    if isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 0:
        raise UsageError(f"inputs is the number of random input sets (>= 0), not {inputs!r}")
    v.random_sets = inputs
    v.seed = int(_count("seed", seed))
    v.rtol = float(_count("rtol", rtol))
    v.atol = float(_count("atol", atol))
    v.threads = int(_count("threads", threads))
    v.outputs_only = int(bool(outputs_only))
    arr, n, names = dims_array(dims)
    v.dims = arr
    v.n_dims = n
    if feeds is not None and feeds.n:
        v.given = feeds.array
        v.n_given = feeds.n
    return (arr, names, feeds)


def fold(model: ModelLike, *, verify: bool = True, lower_standalone: bool = False,
         assume_inference: bool = False, freeze_inputs: bool = False, inputs: int = 3,
         seed: int = 1, rtol: float = 1e-4, atol: float = 1e-4, outputs_only: bool = False,
         dims: Optional[Mapping[str, int]] = None, feeds: Optional[Inputs] = None,
         threads: int = 0, out: Union[None, str, "os.PathLike[str]"] = None,
         in_place: bool = False) -> Tuple[ModelLike, Report]:
    """Fold every BatchNormalization that can be folded, check the result, and
    return ``(folded, report)``.

    Every BatchNormalization (BN) that follows a Conv, ConvTranspose, Gemm or
    MatMul (or precedes an unpadded Conv, a Gemm or a MatMul) is folded into that
    layer's weights and bias, to a fixed point (chains, If / Loop / Scan bodies and
    model-local functions included); a Mul or Add by per-channel constants after a
    layer folds the same way.  Each fold is checked on its own (layer + BN against
    the folded layer, on random input), and the whole folded model against the
    original on seeded random inputs when the evaluator has every operator it uses.
    A failed check raises ``CheckFailed`` and writes nothing.  The input is never
    modified.

    model
        A path (str or os.PathLike: the folded model is written to ``out``), the
        bytes of an ONNX file (bytes come back), or an ``onnx.ModelProto`` (a new
        ModelProto comes back).  A model in memory must hold its weights (onnx.load
        loads external data by default).
    verify
        Check each fold on its own and the whole model end to end (default True);
        False skips both checks (the command line's ``--no-verify``).
    lower_standalone
        Rewrite a BN no layer can take as Mul + Add by ``[C,1,...,1]`` constants.
    assume_inference
        Treat training-mode BNs as inference ones (their running statistics must be
        constant and extra outputs unused); the checks compare against the
        converted model.
    freeze_inputs
        Initializers also listed as graph inputs (IR >= 4), which a user may
        override, become constants and stop being inputs.
    inputs
        Random input sets of the whole-model check (default 3): standard normal
        floats, integers uniform in [0, 10), seeded.
    seed
        First seed of those sets (default 1).
    rtol
        Relative tolerance (default 1e-4).
    atol
        Absolute tolerance in units of the value's largest ``|value|`` (default
        1e-4).  An element passes when ``|b - a| <= atol * max|a| + rtol * |a|``
        (both x50 for float16 weights, x400 for bfloat16); NaN at the same place in
        both is equal.
    outputs_only
        Compare graph outputs only, not also the intermediate values both models
        compute under the same name (a fold keeps the BN's output name, so by
        default a wrong layer is caught where it happens).
    dims
        Values of symbolic dimensions, ``{"N": 4}`` (default 1).
    feeds
        One more input set for the check, given: a dict of input name -> tensor or
        a list in input order (numpy arrays, TensorProto bytes, onnx.TensorProto).
    threads
        Threads of the evaluator (default 0: all cores).
    out
        Where to write the folded model (required for a path; optional otherwise,
        and the folded model still comes back in the model's form).  Written
        atomically: a temporary file in the destination folder, fsync, rename; on
        any error nothing is written.  A model with external data is written as
        ``out`` plus its own data file ``out.data``.  ``out`` may not be the input.
    in_place
        For a path: replace the model file itself (atomically too) instead of
        writing ``out``.

    Returns ``(folded, report)``: ``folded`` is ``out`` (as a str) for a path,
    bytes for bytes, an ``onnx.ModelProto`` for a ModelProto; ``report`` a
    ``bnfold.Report``: every BN with its decision (``"fold"``, ``"lower"``,
    ``"skip"``), reason code and findings, the folds done (``actions``) and how they
    were checked (``verification``).

    Raises ``InvalidModel``, ``Unsupported``, ``FileError``, ``OutOfMemory``,
    ``UsageError`` (bad options, ``out`` is the input) or ``CheckFailed`` (a fold
    failed its check), all ``bnfold.Error``.  The call does not hold the GIL: other
    Python threads run meanwhile, and two threads can fold two models at once.
    """
    m = _Model(model)
    if in_place:
        if m.kind != "path" or out is not None:
            raise UsageError("in_place=True replaces a model file: give a path and no out=")
        out = m.source
    if m.kind == "path" and out is None:
        raise UsageError("fold(path) writes the folded model to out= (or in_place=True): "
                         "give it")
    out_path = None if out is None else os.fsdecode(os.fspath(out))
    opts = N.FoldOptions()
    N.lib.bnf_fold_defaults(ctypes.byref(opts))
    opts.verify = int(bool(verify))
    opts.lower_standalone = int(bool(lower_standalone))
    opts.assume_inference = int(bool(assume_inference))
    opts.freeze_inputs = int(bool(freeze_inputs))
    opts.break_for_testing = int("BNFOLD_TEST_BREAK_FOLD" in os.environ)  # bnfold(1)'s test hook
    handle = N.Report()
    err = N.Err()
    with TensorList(feeds) as given, m:
        keep = _verify_options(opts.check, inputs, seed, rtol, atol, outputs_only, dims, given,
                               threads)
        if in_place:
            N.lib.bnf_model_allow_in_place(m.handle)
        if out_path is not None:
            raise_for(N.lib.bnf_model_check_output(m.handle, os.fsencode(out_path),
                                                   ctypes.byref(err)), err)
        st = N.lib.bnf_fold(m.handle, ctypes.byref(opts), ctypes.byref(handle),
                            ctypes.byref(err))
        del keep
        try:
            raise_for(st, err)
            if out_path is not None:
                raise_for(N.lib.bnf_report_set_output(handle, os.fsencode(out_path),
                                                      ctypes.byref(err)), err)
                raise_for(N.lib.bnf_model_save(m.handle, os.fsencode(out_path),
                                               ctypes.byref(err)), err)
            report = _report(handle)
        finally:
            N.lib.bnf_report_free(handle)
        if m.kind == "path":
            return out_path, report  # type: ignore[return-value]
        data = m.serialize()
    if m.kind == "bytes":
        return data, report
    folded = type(model)()
    folded.ParseFromString(data)
    return folded, report


def _inspect(model: ModelLike, lower_standalone: bool, assume_inference: bool,
             freeze_inputs: bool, fail_on: Optional[str]) -> Report:
    opts = N.FoldOptions()
    N.lib.bnf_fold_defaults(ctypes.byref(opts))
    opts.lower_standalone = int(bool(lower_standalone))
    opts.assume_inference = int(bool(assume_inference))
    opts.freeze_inputs = int(bool(freeze_inputs))
    handle = N.Report()
    err = N.Err()
    with _Model(model) as m:
        st = N.lib.bnf_inspect_with(m.handle, ctypes.byref(opts), ctypes.byref(handle),
                                    ctypes.byref(err))
    try:
        raise_for(st, err)
        if fail_on is not None:
            raise_for(N.lib.bnf_check(handle, fail_on.encode(), ctypes.byref(err)), err)
        return _report(handle)
    finally:
        N.lib.bnf_report_free(handle)


def inspect(model: ModelLike, *, lower_standalone: bool = False, assume_inference: bool = False,
            freeze_inputs: bool = False) -> Report:
    """Describe the model and every BatchNormalization in it, without changing it.

    For each BN: the layer it follows, whether ``fold`` would fold it and, if not,
    why (a stable reason code: ``NO_LAYER``, ``LAYER_MULTI_CONSUMER``, ``PADDING``,
    ...; docs/contract.md), its channels, epsilon, smallest running variance and
    largest per-channel scale ``|gamma/sqrt(var+eps)|``, and its health findings
    (``BN_NEG_VAR``, ``BN_TINY_VAR``, ...).  It folds a private copy to the fixed
    point, so it reports exactly what ``fold`` would do.

    model
        A path, the bytes of an ONNX file, or an ``onnx.ModelProto``.
    lower_standalone, assume_inference, freeze_inputs
        The fold options of ``fold``: they change what a fold would do, and so what
        is reported.

    Returns a ``bnfold.Report`` (``command`` ``"inspect"``).  Raises ``InvalidModel``,
    ``Unsupported``, ``FileError``, ``OutOfMemory`` (all ``bnfold.Error``).
    """
    return _inspect(model, lower_standalone, assume_inference, freeze_inputs, None)


def check(model: ModelLike, fail_on: Union[str, Iterable[str]] = "error", *,
          lower_standalone: bool = False, assume_inference: bool = False,
          freeze_inputs: bool = False) -> Report:
    """A CI gate: inspect the model and say whether anything in ``fail_on`` is found.

    fail_on
        Comma-separated (or a list): finding codes (``BN_NEG_VAR``, ``BN_TINY_VAR``,
        ...), ``"error"`` (findings of severity error: the default), ``"warning"``
        (warning or error), ``"info"`` (any finding), ``"unfolded"`` (a BN that
        ``fold`` would fold is present).  An unknown word raises ``UsageError``, so a
        typo cannot pass a gate.
    lower_standalone, assume_inference, freeze_inputs
        As for ``fold``.

    Returns a ``bnfold.Report`` (``command`` ``"check"``) whose ``passed`` says whether
    the gate passed and whose ``gate.problems`` lists every (code, node) that
    tripped it; a tripped gate is not an exception.
    """
    words = fail_on if isinstance(fail_on, str) else ",".join(fail_on)
    err = N.Err()
    raise_for(N.lib.bnf_check_parse(words.encode(), ctypes.byref(err)), err)
    return _inspect(model, lower_standalone, assume_inference, freeze_inputs, words)


def verify(a: ModelLike, b: ModelLike, *, inputs: int = 3, seed: int = 1, rtol: float = 1e-4,
           atol: float = 1e-4, outputs_only: bool = False,
           dims: Optional[Mapping[str, int]] = None, feeds: Optional[Inputs] = None,
           threads: int = 0) -> VerifyReport:
    """Check that two models compute the same function; raise ``CheckFailed`` if not.

    Both models run on the same inputs; every output of ``b`` is compared with
    ``a``'s, and so is every intermediate value both compute under the same name
    (each such value of ``b`` computed from ``a``'s values of its inputs, so rounding
    does not pile up layer after layer).  An element passes when
    ``|b - a| <= atol * max|a| + rtol * |a|``; NaN in both at the same place is equal.

    a, b
        Paths, bytes of ONNX files, or ``onnx.ModelProto`` objects.
    inputs, seed, rtol, atol, outputs_only, dims, feeds, threads
        As for ``fold``'s whole-model check: random input sets (3), first seed (1),
        tolerances (1e-4, 1e-4), outputs only (False), symbolic dimension values,
        one more input set given, evaluator threads (0: all cores).

    Returns a ``bnfold.VerifyReport`` when the models are equivalent.  When they
    are not, raises ``CheckFailed`` whose ``report`` is the VerifyReport
    (``equivalent`` False, ``message`` naming the value and element that differ).
    A model the evaluator cannot run raises ``Unsupported``.
    """
    opts = N.VerifyOptions()
    N.lib.bnf_verify_defaults(ctypes.byref(opts))
    result = N.VerifyResult()
    err = N.Err()
    with TensorList(feeds) as given, _Model(a) as ma, _Model(b) as mb:
        keep = _verify_options(opts, inputs, seed, rtol, atol, outputs_only, dims, given,
                               threads)
        st = N.lib.bnf_verify_models(ma.handle, mb.handle, ctypes.byref(opts),
                                     ctypes.byref(result), ctypes.byref(err))
        raise_for(st, err)
        text = ctypes.c_void_p()
        size = N.c_size()
        st = N.lib.bnf_verify_to_json(ctypes.byref(result), ma.name.encode(), mb.name.encode(),
                                      ctypes.byref(opts), ctypes.byref(text),
                                      ctypes.byref(size), ctypes.byref(err))
        raise_for(st, err)
        del keep
    report = VerifyReport(N.take_buffer(text, size.value).decode())
    if not report.equivalent:
        raise CheckFailed(f"not equivalent: {report.message}", report)
    return report


def run(model: ModelLike, inputs: Optional[Inputs] = None, *, seed: int = 1,
        dims: Optional[Mapping[str, int]] = None, threads: int = 0) -> Dict[str, Any]:
    """Run the model with bnfold's evaluator; return its outputs by name.

    model
        A path, the bytes of an ONNX file, or an ``onnx.ModelProto``.
    inputs
        A dict of input name -> tensor, or a list of tensors in the model's input
        order.  A tensor is a numpy array, the bytes of an ONNX TensorProto (or
        .npy) file, or an ``onnx.TensorProto``; float16 arrays are computed in
        float32.  Inputs not given are random (standard normal floats, integers
        uniform in [0, 10)), seeded by ``seed`` (default 1).
    dims
        Values of symbolic dimensions for random inputs, ``{"N": 4}`` (default 1).
    threads
        Threads (default 0: all cores).

    Returns a dict of output name -> numpy array when numpy is installed, else ->
    the bytes of a TensorProto (``onnx.TensorProto.FromString`` reads them), in the
    model's output order.  Float16 and bfloat16 outputs come back as float32.
    Raises ``Unsupported`` for an operator the evaluator lacks, ``UsageError`` for
    an input the model does not have.
    """
    so = N.SessionOptions(threads=int(_count("threads", threads)))
    session = N.Session()
    ins = N.Tensors()
    outs = N.Tensors()
    err = N.Err()
    arr, n_dims, names = dims_array(dims)
    with TensorList(inputs) as given, _Model(model) as m:
        try:
            raise_for(N.lib.bnf_session_new(m.handle, ctypes.byref(so), ctypes.byref(session),
                                            ctypes.byref(err)), err)
            raise_for(N.lib.bnf_session_make_inputs(
                session, given.array if given.n else None, given.n, arr, n_dims,
                int(_count("seed", seed)), ctypes.byref(ins), ctypes.byref(err)), err)
            raise_for(N.lib.bnf_session_run_tensors(session, ctypes.byref(ins),
                                                    ctypes.byref(outs), ctypes.byref(err)), err)
            return {N.decode(N.lib.bnf_session_output_name(session, k)):
                    from_tensor(outs.t[k], N.decode(N.lib.bnf_session_output_name(session, k)))
                    for k in range(outs.n)}
        finally:
            N.lib.bnf_tensors_release(ctypes.byref(outs))
            N.lib.bnf_tensors_release(ctypes.byref(ins))
            N.lib.bnf_session_free(session)
            del names  # the dimension names lived until here


class CodeInfo(NamedTuple):
    """What a stable code of the reports means."""
    kind: str
    """``"skip"`` (why a BN is not folded: BatchNorm.reason_code), ``"finding"`` (a
    health finding) or ``"gate"`` (what else ``check`` trips on: BN_UNFOLDED)"""
    severity: Optional[str]
    """findings: the default severity"""
    text: str


def codes() -> Dict[str, CodeInfo]:
    """Every stable code of the reports (skip reasons, health findings and the gate's
    own codes) and what it means, from the library's own table."""
    kinds = {1: "skip", 2: "finding", 3: "gate"}  # bnf_code_kind
    n = N.c_size()
    table = N.lib.bnf_codes(ctypes.byref(n))
    return {N.decode(table[i].code):
            CodeInfo(kinds.get(table[i].kind, "other"),
                     N.decode(table[i].severity) or None, N.decode(table[i].text))
            for i in range(n.value)}
