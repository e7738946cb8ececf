"""Tensors across the boundary: numpy arrays (when numpy is installed) or the
bytes of ONNX TensorProto files, to and from the library's bnf_tensor.

Arrays given to the library are lent, not copied (the library copies what it
keeps); what the library hands back is copied into new arrays or bytes and
freed at once.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native as N
from ._errors import UsageError, raise_for

# ONNX TensorProto.DataType -> numpy type name, for the types the evaluator
# computes in (float16 and bfloat16 are computed, and returned, as float32).
_NP_OF_ONNX = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
               7: "int64", 9: "bool", 11: "float64", 12: "uint32", 13: "uint64"}
_ONNX_OF_NP = {v: k for k, v in _NP_OF_ONNX.items()}


def numpy() -> Any:
    """The numpy module, or None when it cannot be imported."""
    try:
        import numpy as np  # noqa: F401
    except ImportError:
        return None
    return np


class TensorList:
    """Tensors given by the caller, as the library's bnf_named_tensor array.

    ``given`` maps input names to tensors, or lists them in the model's input
    order; each tensor is a numpy array, the bytes of a TensorProto (or .npy)
    file, or an onnx.TensorProto.  Use as a context manager: what the library
    allocated for bytes is released on exit.
    """

    def __init__(self, given: Union[None, Mapping[str, Any], Sequence[Any]]) -> None:
        self._keep: List[Any] = []           # arrays and names the C side borrows
        self._owned: List[N.Tensor] = []     # tensors the library allocated
        items: List[Tuple[Optional[str], Any]]
        if given is None:
            items = []
        elif isinstance(given, Mapping):
            items = [(str(k), v) for k, v in given.items()]
        elif isinstance(given, (list, tuple)):
            items = [(None, v) for v in given]
        else:
            raise TypeError("inputs: a dict of name -> tensor, a list of tensors, or None; "
                            f"not {type(given).__name__}")
        self.array = (N.NamedTensor * max(len(items), 1))()
        self.n = len(items)
        try:
            for k, (name, value) in enumerate(items):
                t, file_name = self._tensor(value)
                nt = self.array[k]
                if name is not None:
                    nt.name = self._c(name)
                elif file_name:  # a TensorProto's own name binds it, if the model has it
                    nt.name = self._c(file_name)
                    nt.name_is_hint = 1
                nt.tensor = ctypes.pointer(t)
                self._keep.append(nt.tensor)
        except BaseException:
            self.release()
            raise

    def _c(self, s: str) -> bytes:
        b = s.encode()
        self._keep.append(b)
        return b

    def _tensor(self, value: Any) -> Tuple[N.Tensor, Optional[str]]:
        onnx = sys.modules.get("onnx")
        if onnx is not None and isinstance(value, onnx.TensorProto):
            value = value.SerializeToString()
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            t = N.Tensor()
            name = ctypes.c_void_p()
            err = N.Err()
            st = N.lib.bnf_tensor_load_buffer(data, len(data), ctypes.byref(t),
                                              ctypes.byref(name), ctypes.byref(err))
            raise_for(st, err)
            self._owned.append(t)
            return t, _string(name)
        np = numpy()
        if np is None or not isinstance(value, (np.ndarray, np.generic)):
            kinds = "a numpy array, " if np is not None else ""
            raise TypeError(f"a tensor is {kinds}the bytes of a TensorProto or .npy file, or an "
                            f"onnx.TensorProto; not {type(value).__name__}")
        a = np.asarray(value)
        if a.dtype == np.float16:
            a = a.astype(np.float32)  # the evaluator computes float16 in float
        dt = _ONNX_OF_NP.get(a.dtype.name)
        if dt is None:
            raise UsageError(f"the evaluator has no {a.dtype} tensors")
        if a.ndim > N.MAX_RANK:
            raise UsageError(f"rank {a.ndim} is over the evaluator's {N.MAX_RANK}")
        a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="), copy=False))
        self._keep.append(a)
        t = N.Tensor(dtype=dt, rank=a.ndim, n=a.size, data=a.ctypes.data)
        for i, d in enumerate(a.shape):
            t.dims[i] = d
        self._keep.append(t)
        return t, None

    def release(self) -> None:
        for t in self._owned:
            N.lib.bnf_tensor_release(ctypes.byref(t))
        self._owned = []
        self._keep = []

    def __enter__(self) -> "TensorList":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _string(p: ctypes.c_void_p) -> Optional[str]:
    """A NUL-terminated string the library allocated, freed."""
    if not p.value:
        return None
    try:
        return N.decode(ctypes.string_at(p))
    finally:
        N.lib.bnf_buffer_free(p)


def from_tensor(t: N.Tensor, name: str) -> Any:
    """A library tensor as a numpy array (copied) when numpy is present, else as
    the bytes of a TensorProto named `name`."""
    np = numpy()
    if np is None:
        data = ctypes.POINTER(ctypes.c_uint8)()
        size = N.c_size()
        err = N.Err()
        st = N.lib.bnf_tensor_serialize(ctypes.byref(t), name.encode(), ctypes.byref(data),
                                        ctypes.byref(size), ctypes.byref(err))
        raise_for(st, err)
        return N.take_buffer(data, size.value)
    dtype = _NP_OF_ONNX.get(t.dtype)
    if dtype is None:
        raise UsageError(f"output '{name}': data type {t.dtype} has no numpy type")
    a = np.empty(tuple(t.dims[:t.rank]), dtype=dtype)
    if a.nbytes:
        ctypes.memmove(a.ctypes.data, t.data, a.nbytes)
    return a


def dims_array(dims: Optional[Mapping[str, int]]) -> Tuple[Any, int, List[bytes]]:
    """Symbolic dimension values as a bnf_dim array (array, count, names kept alive)."""
    items = list((dims or {}).items())
    arr = (N.Dim * max(len(items), 1))()
    keep = []
    for k, (name, value) in enumerate(items):
        b = str(name).encode()
        keep.append(b)
        arr[k].name = b
        arr[k].value = int(value)
    return arr, len(items), keep

