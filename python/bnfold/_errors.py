"""The exceptions of bnfold: one class per bnf_status of the C library.

Every error the library reports is raised as the class of its status with the
library's one-line message (which names the file, node or tensor):

======================  ==================  ===========================================
exception               bnf_status          when
======================  ==================  ===========================================
``UsageError``          BNF_ERR_USAGE       a bad argument (also a ``ValueError``)
``InvalidModel``        BNF_ERR_INVALID     the model is malformed
``Unsupported``         BNF_ERR_UNSUPPORTED valid, but uses something bnfold does not handle
``FileError``           BNF_ERR_IO          reading or writing a file failed (also an ``OSError``)
``OutOfMemory``         BNF_ERR_NOMEM       out of memory (also a ``MemoryError``)
``CheckFailed``         BNF_ERR_CHECK       a check failed: a fold's verification, or
                                            ``verify`` found the models not equivalent
======================  ==================  ===========================================

All derive from ``bnfold.Error``.
"""
from __future__ import annotations

from typing import Any, Optional

from . import _native as N


class Error(Exception):
    """Base class of every error bnfold raises.

    ``status`` is the C library's bnf_status (an int), ``message`` its message.
    """

    status: int = -1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(Error, ValueError):
    """A bad argument (BNF_ERR_USAGE): an unknown ``fail_on`` word, an output that is
    the input, an input name the model does not have, ..."""
    status = N.ERR_USAGE


class InvalidModel(Error):
    """The model is malformed (BNF_ERR_INVALID): not an ONNX model, truncated, a
    graph whose values are not defined before use, ..."""
    status = N.ERR_INVALID


class Unsupported(Error):
    """The model is valid but uses something bnfold does not handle
    (BNF_ERR_UNSUPPORTED): an operator the evaluator lacks, a file over 2 GiB
    without external data, ..."""
    status = N.ERR_UNSUPPORTED


class FileError(Error, OSError):
    """Reading or writing a file failed (BNF_ERR_IO): a missing model, an
    unwritable folder, ..."""
    status = N.ERR_IO


class OutOfMemory(Error, MemoryError):
    """The library ran out of memory (BNF_ERR_NOMEM)."""
    status = N.ERR_NOMEM


class CheckFailed(Error):
    """A check failed (BNF_ERR_CHECK): a fold did not pass its verification
    (nothing is written), or ``bnfold.verify`` found the two models not
    equivalent.  ``report`` holds the ``VerifyReport`` of ``verify`` (None for
    ``fold``, whose message names the fold or value that failed)."""
    status = N.ERR_CHECK

    def __init__(self, message: str, report: Optional[Any] = None) -> None:
        super().__init__(message)
        self.report = report


_BY_STATUS = {c.status: c for c in (UsageError, InvalidModel, Unsupported, FileError,
                                    OutOfMemory, CheckFailed)}


def raise_for(status: int, err: "N.Err") -> None:
    """Raises the exception of a failed call's status (nothing for BNF_OK)."""
    if status == N.OK:
        return
    msg = N.decode(err.msg) or N.decode(N.lib.bnf_strerror(status))
    raise _BY_STATUS.get(status, Error)(msg)
