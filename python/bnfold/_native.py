"""libbnfold through ctypes: finding the shared library, the C structs, the prototypes.

Nothing here knows about models: it mirrors src/bnfold.h (the library's public
API) and nothing else.  The structs below must match the header field for field;
tests/test_bnfold.py compiles a C program that prints their sizes and offsets
and compares them with these.

The library is loaded with ctypes.CDLL, so every call releases the GIL while it
runs in C: two Python threads can fold two models at the same time.
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Iterator, Optional

#: The library version this binding was written for (src/bnfold.h's BNF_VERSION):
#: the loaded library must have the same major and minor number.
ABI_VERSION = "0.1.0"

SONAME = "libbnfold.so.0"

# bnf_status
OK, ERR_USAGE, ERR_INVALID, ERR_UNSUPPORTED, ERR_IO, ERR_NOMEM, ERR_CHECK = range(7)

MAX_RANK = 8

c_size = ctypes.c_size_t
c_status = ctypes.c_int
_progress_fn = ctypes.c_void_p  # always NULL: a callback would take the GIL back


class Err(ctypes.Structure):
    """bnf_err"""
    _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 512)]


class Tensor(ctypes.Structure):
    """bnf_tensor"""
    _fields_ = [("dtype", ctypes.c_int32), ("rank", c_size),
                ("dims", ctypes.c_int64 * MAX_RANK), ("n", c_size), ("data", ctypes.c_void_p)]


class Dim(ctypes.Structure):
    """bnf_dim"""
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_int64)]


class NamedTensor(ctypes.Structure):
    """bnf_named_tensor"""
    _fields_ = [("name", ctypes.c_char_p), ("tensor", ctypes.POINTER(Tensor)),
                ("name_is_hint", ctypes.c_int)]


class Tensors(ctypes.Structure):
    """bnf_tensors"""
    _fields_ = [("n", c_size), ("t", ctypes.POINTER(Tensor)),
                ("ptr", ctypes.POINTER(ctypes.POINTER(Tensor)))]


class VerifyOptions(ctypes.Structure):
    """bnf_verify_options"""
    _fields_ = [("random_sets", c_size), ("seed", ctypes.c_uint64), ("rtol", ctypes.c_double),
                ("atol", ctypes.c_double), ("dims", ctypes.POINTER(Dim)), ("n_dims", c_size),
                ("given", ctypes.POINTER(NamedTensor)), ("n_given", c_size),
                ("threads", ctypes.c_int), ("outputs_only", ctypes.c_int),
                ("progress", _progress_fn), ("progress_ctx", ctypes.c_void_p),
                ("values_loosen", ctypes.c_double)]


class VerifyResult(ctypes.Structure):
    """bnf_verify_result"""
    _fields_ = [("ran", ctypes.c_int), ("equivalent", ctypes.c_int), ("sets", c_size),
                ("outputs", c_size), ("values", c_size), ("worst_abs", ctypes.c_double),
                ("worst_rel", ctypes.c_double), ("worst_output", ctypes.c_char * 128),
                ("worst_element", ctypes.c_char * 96), ("reason", ctypes.c_char * 512)]


class FoldOptions(ctypes.Structure):
    """bnf_fold_options"""
    _fields_ = [("verify", ctypes.c_int), ("check", VerifyOptions),
                ("lower_standalone", ctypes.c_int), ("assume_inference", ctypes.c_int),
                ("freeze_inputs", ctypes.c_int), ("break_for_testing", ctypes.c_int),
                ("progress", _progress_fn), ("progress_ctx", ctypes.c_void_p)]


class SessionOptions(ctypes.Structure):
    """bnf_session_options"""
    _fields_ = [("threads", ctypes.c_int)]


class CodeInfo(ctypes.Structure):
    """bnf_code_info"""
    _fields_ = [("code", ctypes.c_char_p), ("kind", ctypes.c_int),
                ("severity", ctypes.c_char_p), ("text", ctypes.c_char_p)]


# Opaque handles: bnf_model *, bnf_report *, bnf_session *.
Model = ctypes.c_void_p
Report = ctypes.c_void_p
Session = ctypes.c_void_p

_P = ctypes.POINTER
_u8p = _P(ctypes.c_uint8)

# name: (restype, argtypes), as declared in src/bnfold.h
_PROTOTYPES = {
    "bnf_version": (ctypes.c_char_p, []),
    "bnf_strerror": (ctypes.c_char_p, [c_status]),
    "bnf_buffer_free": (None, [ctypes.c_void_p]),
    "bnf_model_open": (c_status, [ctypes.c_char_p, ctypes.c_void_p, _P(Model), _P(Err)]),
    "bnf_model_load_buffer": (c_status, [ctypes.c_void_p, c_size, ctypes.c_char_p, _P(Model),
                                         _P(Err)]),
    "bnf_model_free": (None, [Model]),
    "bnf_model_save": (c_status, [Model, ctypes.c_char_p, _P(Err)]),
    "bnf_model_allow_in_place": (None, [Model]),
    "bnf_model_check_output": (c_status, [Model, ctypes.c_char_p, _P(Err)]),
    "bnf_model_serialize": (c_status, [Model, _P(_u8p), _P(c_size), _P(Err)]),
    "bnf_fold_defaults": (None, [_P(FoldOptions)]),
    "bnf_fold": (c_status, [Model, _P(FoldOptions), _P(Report), _P(Err)]),
    "bnf_inspect_with": (c_status, [Model, _P(FoldOptions), _P(Report), _P(Err)]),
    "bnf_check": (c_status, [Report, ctypes.c_char_p, _P(Err)]),
    "bnf_check_parse": (c_status, [ctypes.c_char_p, _P(Err)]),
    "bnf_report_set_output": (c_status, [Report, ctypes.c_char_p, _P(Err)]),
    "bnf_report_to_json": (c_status, [Report, _P(ctypes.c_void_p), _P(c_size), _P(Err)]),
    "bnf_report_free": (None, [Report]),
    "bnf_codes": (_P(CodeInfo), [_P(c_size)]),
    "bnf_verify_defaults": (None, [_P(VerifyOptions)]),
    "bnf_verify_models": (c_status, [Model, Model, _P(VerifyOptions), _P(VerifyResult),
                                     _P(Err)]),
    "bnf_verify_to_json": (c_status, [_P(VerifyResult), ctypes.c_char_p, ctypes.c_char_p,
                                      _P(VerifyOptions), _P(ctypes.c_void_p), _P(c_size),
                                      _P(Err)]),
    "bnf_session_new": (c_status, [Model, _P(SessionOptions), _P(Session), _P(Err)]),
    "bnf_session_free": (None, [Session]),
    "bnf_session_n_inputs": (c_size, [Session]),
    "bnf_session_input_name": (ctypes.c_char_p, [Session, c_size]),
    "bnf_session_n_outputs": (c_size, [Session]),
    "bnf_session_output_name": (ctypes.c_char_p, [Session, c_size]),
    "bnf_session_make_inputs": (c_status, [Session, _P(NamedTensor), c_size, _P(Dim), c_size,
                                           ctypes.c_uint64, _P(Tensors), _P(Err)]),
    "bnf_session_run_tensors": (c_status, [Session, _P(Tensors), _P(Tensors), _P(Err)]),
    "bnf_tensors_release": (None, [_P(Tensors)]),
    "bnf_tensor_release": (None, [_P(Tensor)]),
    "bnf_tensor_load_buffer": (c_status, [ctypes.c_void_p, c_size, _P(Tensor),
                                          _P(ctypes.c_void_p), _P(Err)]),
    "bnf_tensor_serialize": (c_status, [_P(Tensor), ctypes.c_char_p, _P(_u8p), _P(c_size),
                                        _P(Err)]),
}


def _candidates() -> Iterator[str]:
    """Where the library may be, in the order tried (BNFOLD_LIBRARY alone when set)."""
    env = os.environ.get("BNFOLD_LIBRARY")
    if env:
        yield env
        return
    yield os.path.join(os.path.dirname(os.path.abspath(__file__)), SONAME)  # in a wheel
    try:  # the prefix libbnfold was installed into, recorded when the package was built
        from . import _build_config  # type: ignore[attr-defined]
        if getattr(_build_config, "LIBDIR", None):
            yield os.path.join(_build_config.LIBDIR, SONAME)
    except ImportError:
        pass
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix, "/usr/local"]):
        yield os.path.join(prefix, "lib", SONAME)
    yield SONAME  # the dynamic loader's search (LD_LIBRARY_PATH, ld.so.cache)


def _load() -> "tuple[ctypes.CDLL, str]":
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path}: no such file")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
            continue
        return lib, path
    raise ImportError(
        "bnfold: libbnfold not found; install it (`make install` in the bnfold "
        "source tree), use a wheel that bundles it (`make python-wheel`), or set "
        "BNFOLD_LIBRARY to the path of libbnfold.so.0.  Tried:\n  " + "\n  ".join(tried))


def _where(name: str) -> str:
    """The file the dynamic loader mapped for a library loaded by its name."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if "/libbnfold.so" in line:
                    return line.split(None, 5)[-1].strip()
    except OSError:
        pass
    return name


lib, library_path = _load()
library_path = os.path.realpath(library_path) if os.sep in library_path else _where(library_path)

try:
    _fn = lib.bnf_version
except AttributeError:
    raise ImportError(f"bnfold: {library_path} is older than this binding "
                      f"(it has no bnf_version; {ABI_VERSION} wanted)") from None
_fn.restype = ctypes.c_char_p
_fn.argtypes = []
library_version: str = _fn().decode()
if library_version.split(".")[:2] != ABI_VERSION.split(".")[:2]:
    raise ImportError(f"bnfold: {library_path} is libbnfold {library_version}; this binding "
                      f"is for {ABI_VERSION} (the same major and minor version)")

for _name, (_res, _args) in _PROTOTYPES.items():
    try:
        _fn = getattr(lib, _name)
    except AttributeError:
        raise ImportError(f"bnfold: {library_path} lacks {_name}") from None
    _fn.restype = _res
    _fn.argtypes = _args


def take_buffer(ptr: "ctypes.c_void_p | ctypes._Pointer", size: int) -> bytes:
    """Copies a buffer the library handed back into bytes and frees it."""
    try:
        return ctypes.string_at(ptr, size) if size else b""
    finally:
        lib.bnf_buffer_free(ptr)


def decode(b: Optional[bytes]) -> str:
    """A C string from the library as str ("" for NULL)."""
    return b.decode("utf-8", "replace") if b else ""
