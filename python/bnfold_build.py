"""bnfold_build: the PEP 517 build backend of the bnfold Python package.

Standard library only, and in the source tree (pyproject.toml: backend-path), so
that `pip install ./python` needs nothing from a package index: it works offline
with Debian's pip.  It builds a wheel of the bnfold package with:

- ``bnfold/_build_config.py``: LIBDIR, the folder of an installed libbnfold, found
  when the wheel is built: ``BNFOLD_LIBDIR`` if set, else pkg-config's answer for
  bnfold (``make install`` installs bnfold.pc), else none (the package then looks
  in sys.prefix/lib, /usr/local/lib and the dynamic loader's path).
- with ``BNFOLD_BUNDLE_LIBRARY=path/to/libbnfold.so.X`` (or the config setting
  ``bundle``), that library as ``bnfold/libbnfold.so.0``: a self-contained wheel,
  tagged for this platform (``make python-wheel``).  It still needs the shared
  libraries libbnfold links (protobuf-c, OpenBLAS: Debian's libprotobuf-c1 and
  libopenblas0).

Metadata comes from pyproject.toml's [project] table.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import subprocess
import sysconfig
import tarfile
import time
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "bnfold"


# ---- metadata ---------------------------------------------------------------------

def _project() -> Dict[str, Any]:
    """pyproject.toml's [project] table."""
    path = os.path.join(HERE, "pyproject.toml")
    try:
        import tomllib  # Python 3.11
        with open(path, "rb") as f:
            return tomllib.load(f)["project"]
    except ImportError:
        pass
    # older Pythons: the plain `key = "string"` and `key = ["a", "b"]` lines of [project]
    out: Dict[str, Any] = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]").strip()
                continue
            m = re.match(r'^([A-Za-z_-]+)\s*=\s*(.+)$', line)
            if not m:
                continue
            key, value = m.groups()
            if section == "project":
                if value.startswith('"'):
                    out[key] = value.strip('"')
                elif value.startswith("["):
                    out[key] = re.findall(r'"([^"]*)"', value)
            elif section == "project.urls":
                out.setdefault("urls", {})[key] = value.strip('"')
    return out


def _metadata() -> str:
    p = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}",
             f"Summary: {p.get('description', '')}"]
    if "requires-python" in p:
        lines.append(f"Requires-Python: {p['requires-python']}")
    lic = p.get("license")
    if isinstance(lic, dict) and "text" in lic:
        lines.append(f"License: {lic['text']}")
    for c in p.get("classifiers", []):
        lines.append(f"Classifier: {c}")
    for name, url in p.get("urls", {}).items():
        lines.append(f"Project-URL: {name}, {url}")
    for extra, reqs in p.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for r in reqs:
            lines.append(f'Requires-Dist: {r}; extra == "{extra}"')
    readme = os.path.join(HERE, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _name_version() -> Tuple[str, str]:
    p = _project()
    return re.sub(r"[-_.]+", "_", p["name"]), p["version"]


# ---- what goes in -----------------------------------------------------------------

def _bundle(config_settings: Optional[Mapping[str, Any]]) -> Optional[str]:
    path = (config_settings or {}).get("bundle") or os.environ.get("BNFOLD_BUNDLE_LIBRARY")
    if not path:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"bnfold_build: the library to bundle, {path}, does not exist")
    return os.path.realpath(path)


def _installed_libdir() -> Optional[str]:
    """The folder of an installed libbnfold.so.0, or None."""
    env = os.environ.get("BNFOLD_LIBDIR")
    if env:
        return os.path.abspath(env)
    places: List[str] = []
    for var in ("libdir", "pcfiledir"):
        try:
            r = subprocess.run(["pkg-config", f"--variable={var}", "bnfold"],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        if r.returncode == 0 and r.stdout.strip():
            d = r.stdout.strip()
            # bnfold.pc lives in LIBDIR/pkgconfig: its folder's parent is where the
            # library is also when installed with DESTDIR (libdir names the final place)
            places.append(os.path.dirname(d) if var == "pcfiledir" else d)
    for d in places:
        if os.path.exists(os.path.join(d, "libbnfold.so.0")):
            return os.path.realpath(d)
    return None


def _files(bundle: Optional[str]) -> List[Tuple[str, bytes]]:
    """(archive name, content) of every file of the package."""
    out = []
    src = os.path.join(HERE, PACKAGE)
    for name in sorted(os.listdir(src)):
        if name.endswith(".py") and name != "_build_config.py" or name == "py.typed":
            with open(os.path.join(src, name), "rb") as f:
                out.append((f"{PACKAGE}/{name}", f.read()))
    libdir = None if bundle else _installed_libdir()
    config = ('"""Written by bnfold_build when the package was built."""\n'
              f"#: the folder of the installed libbnfold (None: not known)\nLIBDIR = {libdir!r}\n")
    out.append((f"{PACKAGE}/_build_config.py", config.encode()))
    if bundle:
        with open(bundle, "rb") as f:
            out.append((f"{PACKAGE}/libbnfold.so.0", f.read()))
    return out


# ---- the wheel --------------------------------------------------------------------

def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _date_time() -> Tuple[int, int, int, int, int, int]:
    t = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01: reproducible
    return time.gmtime(max(t, 315532800))[:6]


def _write_wheel(directory: str, files: List[Tuple[str, bytes]], tag: str) -> str:
    name, version = _name_version()
    dist_info = f"{name}-{version}.dist-info"
    purelib = tag.endswith("-any")
    wheel_meta = ("Wheel-Version: 1.0\nGenerator: bnfold_build\n"
                  f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n")
    files = files + [(f"{dist_info}/METADATA", _metadata().encode()),
                     (f"{dist_info}/WHEEL", wheel_meta.encode()),
                     (f"{dist_info}/top_level.txt", f"{PACKAGE}\n".encode())]
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    filename = f"{name}-{version}-{tag}.whl"
    os.makedirs(directory, exist_ok=True)
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files:
            info = zipfile.ZipInfo(n, date_time=_date_time())
            info.external_attr = (0o755 if n.endswith(".so.0") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    return filename


def _platform_tag() -> str:
    return "py3-none-" + re.sub(r"[-.]", "_", sysconfig.get_platform())


# ---- PEP 517 / PEP 660 hooks ------------------------------------------------------

def get_requires_for_build_wheel(config_settings: Optional[Mapping[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Mapping[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[Mapping[str, Any]] = None
                                    ) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: Optional[Mapping[str, Any]] = None) -> str:
    name, version = _name_version()
    dist_info = f"{name}-{version}.dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w",
              encoding="utf-8") as f:
        f.write(_metadata())
    return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory: str, config_settings: Optional[Mapping[str, Any]] = None,
                metadata_directory: Optional[str] = None) -> str:
    bundle = _bundle(config_settings)
    return _write_wheel(wheel_directory, _files(bundle),
                        _platform_tag() if bundle else "py3-none-any")


def build_editable(wheel_directory: str, config_settings: Optional[Mapping[str, Any]] = None,
                   metadata_directory: Optional[str] = None) -> str:
    """A wheel whose .pth file puts this source tree on sys.path (`pip install -e`)."""
    config = os.path.join(HERE, PACKAGE, "_build_config.py")
    with open(config, "w", encoding="utf-8") as f:
        f.write(dict(_files(None))[f"{PACKAGE}/_build_config.py"].decode())
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth",
                                           (HERE + "\n").encode())], "py3-none-any")


def build_sdist(sdist_directory: str, config_settings: Optional[Mapping[str, Any]] = None) -> str:
    name, version = _name_version()
    base = f"{name}-{version}"
    os.makedirs(sdist_directory, exist_ok=True)
    path = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for rel in ["pyproject.toml", "bnfold_build.py", "README.md"] + sorted(
                f"{PACKAGE}/{n}" for n in os.listdir(os.path.join(HERE, PACKAGE))
                if (n.endswith(".py") and n != "_build_config.py") or n == "py.typed"):
            if os.path.exists(os.path.join(HERE, rel)):
                tar.add(os.path.join(HERE, rel), arcname=f"{base}/{rel}")
        pkg_info = _metadata().encode()
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(pkg_info)
        info.mtime = int(time.mktime(_date_time() + (0, 0, -1)))
        tar.addfile(info, io.BytesIO(pkg_info))
    return os.path.basename(path)


__all__ = ["build_wheel", "build_sdist", "build_editable", "get_requires_for_build_wheel",
           "get_requires_for_build_sdist", "get_requires_for_build_editable",
           "prepare_metadata_for_build_wheel", "prepare_metadata_for_build_editable"]
