"""The compiled hit path of the round-trip cache: build, load, and drive ``fasthit.c``.

A cache hit in Python still pays for entering the Unicorn callback and for every ctypes
call it makes (about 1.5 µs each here: the PC read, the IRQ line, the result register).
``fasthit.c`` does the hit inside Unicorn's own call instead and enters Python only on a
miss. It is compiled on first use with the system C compiler (``cc``, or ``$CC``) against
the headers the unicorn wheel ships, into ``$XDG_CACHE_HOME/worldswitch`` (default
``~/.cache/worldswitch``), named by a hash of its source, the unicorn version and the
platform. Without a compiler, or with ``WORLDSWITCH_NO_FASTHIT=1``, the Python hit path
runs: the same results, slower. Nothing here decides anything: it replays what Python
recorded (core/memo.py).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("fasthit.c")
DISABLE_ENV = "WORLDSWITCH_NO_FASTHIT"
#: transitions the compiled table holds (beyond it, Python serves the rest)
MAX_TRANSITIONS = 8192  # as many as core/memo.py records

_why_not: list[str] = []  # why the library is unavailable, once known


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "worldswitch"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled hit path, built on first use; None (and :func:`why_not` says why)
    when it cannot be had."""
    if os.environ.get(DISABLE_ENV):
        _why_not.append(f"{DISABLE_ENV} is set")
        return None
    import unicorn

    include = Path(unicorn.__file__).parent / "include"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not (include / "unicorn" / "unicorn.h").exists():
        _why_not.append(f"the unicorn headers are missing ({include})")
        return None
    src = SOURCE.read_bytes()
    tag = hashlib.sha256(src + unicorn.__version__.encode() + platform.machine().encode()
                         + sys.platform.encode()).hexdigest()[:16]
    so = _cache_dir() / f"fasthit-{tag}.so"
    if not so.exists():
        if cc is None:
            _why_not.append("no C compiler (cc) to build it")
            return None
        try:
            so.parent.mkdir(parents=True, exist_ok=True)
            # built beside its final name and renamed: parallel workers never see half a file
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=so.parent)
            os.close(fd)
            done = subprocess.run([cc, "-O2", "-shared", "-fPIC", f"-I{include}", str(SOURCE), "-o", tmp],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode:
                os.unlink(tmp)
                _why_not.append(f"{cc} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else '?'}")
                return None
            os.replace(tmp, so)
        except (OSError, subprocess.SubprocessError) as e:
            _why_not.append(f"cannot build it ({e})")
            return None
    try:
        lib = ctypes.CDLL(str(so))
    except OSError as e:
        _why_not.append(f"cannot load {so} ({e})")
        return None
    _declare(lib)
    return lib


def why_not() -> str:
    return _why_not[-1] if _why_not else ""


def _declare(lib: ctypes.CDLL) -> None:
    P, I64, U64, I32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_int32
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "ws_new": (P, [I64, I64, I64]),
        "ws_free": (None, [P]),
        "ws_setup": (None, [P, P, P, P, P, U64, U64, U64, U64, U64, I64]),
        "ws_psci_takes_args": (None, [P, U64]),
        "ws_site_set": (None, [P, I64, U64, U64, I32, I32, I32, I32]),
        "ws_site_stale": (None, [P, I64]),
        "ws_hook_ud": (P, [P, I64, P, P, I64]),
        "ws_field": (ctypes.POINTER(I64), [P, I32]),
        "ws_add": (I64, [P, I64, U64, U64, U64, U64, U64, U64, I64, U64, I32, I32]),
        "ws_pull": (I64, [P, P, P, P, P]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


def _address(fn: Any) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


class FastHits:
    """One vCPU's compiled table: Python records transitions into it and pulls the
    replays back (:meth:`pull`); the machine registers its hooks (:meth:`hook`)."""

    def __init__(self, lib: ctypes.CDLL, uclib: Any, ram_ptr: int, ram_base: int, ram_size: int, hcr: tuple[int, int],
                 hvc_esr: int, psci_args: tuple[int, ...], nsites: int, check_every: int) -> None:
        self.lib = lib
        self.nhooks, self.max_hooks = 0, nsites + 8
        self.c = lib.ws_new(MAX_TRANSITIONS, nsites, self.max_hooks)
        if not self.c:
            raise MemoryError("fasthit: no memory for the transition table")
        lib.ws_setup(self.c, _address(uclib.uc_reg_read), _address(uclib.uc_reg_write), _address(uclib.uc_mem_write),
                     ram_ptr, ram_base, ram_size, hcr[0], hcr[1], hvc_esr, check_every)
        for x0 in psci_args:
            lib.ws_psci_takes_args(self.c, x0)
        # the table's own fields, read and written in place: cur, moved (a hit since the last
        # pull), the IRQ line, probing
        self.cur, self.moved, self.vi, self.probing = (lib.ws_field(self.c, i).contents for i in range(4))
        self._cur, self._stale = ctypes.c_int64(), ctypes.c_int64()
        self._room(64)  # what ws_pull writes into: as many as the table holds, grown with it

    def _room(self, n: int) -> None:
        self.idx = (ctypes.c_int64 * n)()
        self.hits = (ctypes.c_uint64 * n)()
        self.args = [ctypes.byref(x) for x in (self.idx, self.hits, self._cur, self._stale)]

    def __del__(self) -> None:
        if getattr(self, "c", None):
            self.lib.ws_free(self.c)
            self.c = None

    def hook(self, name: str, fallback: Any, fallback_ud: int = 0, site: int = 0) -> tuple[Any, int]:
        """The C function standing in for ``fallback`` and the user data to register it
        with; the ctypes callback ``fallback`` must stay alive as long as the hook."""
        if self.nhooks >= self.max_hooks:
            raise RuntimeError("fasthit: more hooks than the table was made for")
        ud = self.lib.ws_hook_ud(self.c, self.nhooks, _address(fallback), fallback_ud or None, site)
        self.nhooks += 1
        return getattr(self.lib, name), ud

    def site(self, i: int, addr: int, esr: int, is_read: bool, rt: int, needs_pc: bool, cached: bool) -> None:
        self.lib.ws_site_set(self.c, i, addr, esr, is_read, rt, needs_pc, cached)

    def site_stale(self, i: int) -> None:
        self.lib.ws_site_stale(self.c, i)

    def add(self, state: int, key: tuple[int, ...], to: int, out: Any, vi: bool) -> int:
        """Record a transition (its key padded to six words); its index, -1 if not taken."""
        k = (*key, 0, 0, 0, 0, 0, 0)[:6]
        has = isinstance(out, int)
        idx = self.lib.ws_add(self.c, state, *k, to, out if has else 0, has, int(vi))
        if idx >= len(self.idx):  # ws_pull may now report up to idx + 1 transitions
            self._room(2 * len(self.idx))
        return idx

    def pull(self) -> tuple[list[tuple[int, int]], int, bool]:
        """The replays since the last pull as (index, hits), the current state, and
        whether any hit moved it."""
        n = self.lib.ws_pull(self.c, *self.args)
        return [(self.idx[i], self.hits[i]) for i in range(n)], self._cur.value, bool(self._stale.value)
