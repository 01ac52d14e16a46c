"""Compiled kernels for the engine's hottest loops, when numba is installed.

numba is optional (the ``fast`` extra). Kernels live in modules of their
own that import numba at their top and compile on import. The module that
uses one imports it through `compiled`, on first use, and keeps a numpy
path giving the same values to rounding, taken when `compiled` returns
None: without numba, with NAPARI_NORMXCORR_NUMBA=0 in the environment, or
within `numpy_only`. So numba is never imported with the package.

Compiling takes several seconds, once per machine (numba caches the
machine code beside the module); loading it takes a few tenths of a
second, once per process, holding the GIL only for milliseconds at a
time. A GUI warms the kernels up with `warm_up_in_background`, which
compiles them in another interpreter and loads them in a thread: it
stays live meanwhile.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TypedDict


class JitOptions(TypedDict):
    cache: bool
    nogil: bool
    fastmath: set[str]


# How kernels are compiled (numba.njit's options): cached on disk, free
# of the GIL while they run, and allowed to reassociate sums so that they
# vectorise (NaN and infinity keep their meaning: no 'nnan' or 'ninf').
JIT_OPTIONS: JitOptions = {
    "cache": True,
    "nogil": True,
    "fastmath": {"reassoc", "contract", "nsz", "arcp"},
}
_ENVIRONMENT = "NAPARI_NORMXCORR_NUMBA"
# Compiling every kernel takes seconds; past this, the interpreter doing
# it is given up on.
_COMPILE_SECONDS = 600

_switch = threading.Lock()
_numpy_only = False
_warm_ups: dict[tuple[str, ...], threading.Thread] = {}


def compiled(module: str) -> ModuleType | None:
    """The kernel module `module` (absolute name), imported on first use
    (which compiles or loads its kernels); None when numba is not to be
    used, or while a warm-up (`warm_up_in_background`) has yet to start
    loading it: a run then takes the numpy paths rather than wait."""
    if not enabled() or (module not in sys.modules and _warming(module)):
        return None
    return importlib.import_module(module)


def _warming(module: str) -> bool:
    with _switch:
        return any(
            module in modules and thread.is_alive()
            for modules, thread in _warm_ups.items()
        )


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
    """Load the kernel `modules` in a daemon thread, started and returned
    (it does nothing when numba is not to be used); once per process for
    the same modules.

    The thread first imports them in a separate interpreter, which
    compiles them into the cache if they are not there yet: compiling in
    this process would take the GIL from its GUI for up to a tenth of a
    second at a time, loading takes it for a few milliseconds.
    """

    def warm_up() -> None:
        if not enabled():
            return
        code = "".join(f"import {module}\n" for module in modules)
        try:
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                check=False,
                timeout=_COMPILE_SECONDS,
            )
        except (OSError, subprocess.SubprocessError):
            pass  # then the imports below compile, in this process
        for module in modules:
            importlib.import_module(module)

    with _switch:
        key = tuple(modules)
        if key not in _warm_ups:
            _warm_ups[key] = threading.Thread(
                target=warm_up, name="napari-normxcorr kernels", daemon=True
            )
            _warm_ups[key].start()
        return _warm_ups[key]
