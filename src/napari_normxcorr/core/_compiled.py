"""Compiled kernels for the engine's hottest loops, when numba is installed.

numba is optional (the ``fast`` extra). Kernels live in modules of their
own that import numba at their top and compile on import. The module that
uses one imports it through `compiled`, on first use, and keeps a numpy
path giving the same values to rounding, taken when `compiled` returns
None: without numba, with NAPARI_NORMXCORR_NUMBA=0 in the environment, or
within `numpy_only`. So numba is never imported with the package.

Compiling takes a second or two, once per machine (numba caches the
machine code beside the module); loading it takes a few tenths of a
second, once per process. Both hold the GIL only in short pieces: a GUI
that warms the kernels up in a thread (`warm_up_in_background`) stays
live meanwhile.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TypedDict


# How kernels are compiled (numba.njit's options): cached on disk, free
# of the GIL while they run, and allowed to reassociate sums so that they
# vectorise (NaN and infinity keep their meaning: no 'nnan' or 'ninf').
class JitOptions(TypedDict):
    cache: bool
    nogil: bool
    fastmath: set[str]


JIT_OPTIONS: JitOptions = {
    "cache": True,
    "nogil": True,
    "fastmath": {"reassoc", "contract", "nsz", "arcp"},
}
_ENVIRONMENT = "NAPARI_NORMXCORR_NUMBA"

_switch = threading.Lock()
_numpy_only = False


def compiled(module: str) -> ModuleType | None:
    """The kernel module `module` (absolute name), imported on first use
    (which compiles or loads its kernels); None when numba is not to be
    used."""
    if not enabled():
        return None
    return importlib.import_module(module)


def enabled() -> bool:
    """Whether kernels are used: numba is installed, and neither the
    environment nor `numpy_only` turns them off."""
    if _numpy_only or os.environ.get(_ENVIRONMENT, "1") == "0":
        return False
    return _numba_installed()


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


@contextmanager
def numpy_only() -> Iterator[None]:
    """Within, every thread takes the numpy paths (for tests and
    benchmarks that compare the two)."""
    global _numpy_only
    with _switch:
        before, _numpy_only = _numpy_only, True
    try:
        yield
    finally:
        with _switch:
            _numpy_only = before


def warm_up_in_background(modules: Sequence[str]) -> threading.Thread:
    """Compile or load the kernel `modules` in a daemon thread, started
    and returned (it does nothing when numba is not to be used)."""

    def warm_up() -> None:
        for module in modules:
            compiled(module)

    thread = threading.Thread(
        target=warm_up, name="napari-normxcorr kernels", daemon=True
    )
    thread.start()
    return thread
