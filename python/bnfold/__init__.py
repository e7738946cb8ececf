"""bnfold: find, explain, fold and verify the BatchNormalization nodes of an ONNX model.

A thin binding of libbnfold, the C library of the ``bnfold`` command line: the work
(parsing, folding, the evaluator that checks every fold) is done in C, through
ctypes, without holding the GIL.  Standard library only; numpy and onnx are used
when installed (numpy arrays for tensors, onnx.ModelProto for models).

    import bnfold, onnx
    folded, report = bnfold.fold(onnx.load("model.onnx"))   # folds, checks, or raises
    print(report.summary.folded, "folded;", report.summary.batchnorms_after, "left")
    for bn in report.batchnorms:
        print(bn.name, bn.decision, bn.reason_code, [f.code for f in bn.findings])
    onnx.save(folded, "model.folded.onnx")

Functions: ``fold``, ``inspect``, ``check``, ``verify``, ``run``, ``codes``.
Exceptions: ``Error`` and its subclasses ``UsageError``, ``InvalidModel``,
``Unsupported``, ``FileError``, ``OutOfMemory``, ``CheckFailed`` (one per status of
the C library).  ``library_path`` and ``library_version`` say which libbnfold was
loaded (``BNFOLD_LIBRARY`` chooses one).
"""
from __future__ import annotations

from ._native import library_path, library_version
from ._errors import (CheckFailed, Error, FileError, InvalidModel, OutOfMemory, Unsupported,
                      UsageError)
from ._reports import (Action, BatchNorm, EndToEnd, Finding, Gate, LocalCheck, ModelInfo, Report,
                       Summary, Verification, VerifyReport)
from ._api import CodeInfo, check, codes, fold, inspect, run, verify

__version__ = "0.1.0"

__all__ = [
    "fold", "inspect", "check", "verify", "run", "codes",
    "Error", "UsageError", "InvalidModel", "Unsupported", "FileError", "OutOfMemory",
    "CheckFailed",
    "Report", "VerifyReport", "BatchNorm", "Finding", "Action", "ModelInfo", "Summary",
    "Verification", "LocalCheck", "EndToEnd", "Gate", "CodeInfo",
    "library_path", "library_version", "__version__",
]
