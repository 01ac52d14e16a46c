"""Threads and scratch memory: how the core and the engine use all cores.

numpy and scipy.fft release the GIL, so correlations of separate tiles,
bands or batches run side by side in threads. Each thread keeps its own
scratch arrays (a Workspace), because freshly allocated large arrays cost
page faults on every call, about as much as the arithmetic.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

# Tiles (bands of rows) of about this many pixels: larger ones repeat fewer
# overlap pixels, smaller ones fault in less fresh memory.
TILE_PIXELS = 2**21

Item = TypeVar("Item")
Value = TypeVar("Value")


_limit = threading.local()


def cpu_count() -> int:
    """Cores to spread work over: all, or one within `one_core`."""
    return getattr(_limit, "cores", None) or os.cpu_count() or 1


@contextmanager
def one_core() -> Iterator[None]:
    """Within, work started from this thread uses one core.

    For a task on a dask worker: the worker runs one task per core at
    once, so a task spreading itself over every core would only make
    the tasks queue for them.
    """
    before = getattr(_limit, "cores", None)
    _limit.cores = 1
    try:
        yield
    finally:
        _limit.cores = before


class Workspace:
    """Scratch arrays kept for reuse while one thread runs many correlations.

    Reusing arrays across tiles, batches or calls of the same shape avoids
    the page faults of fresh ones. Past `limit` bytes the old arrays are
    dropped, so windows of ever new shapes cannot pile up.
    """

    def __init__(self, limit: int = 2**27):
        self._arrays: dict[tuple, np.ndarray] = {}
        self._bytes = 0
        self._limit = limit

    def get(
        self, name: str, shape: Sequence[int], dtype: npt.DTypeLike = float
    ) -> np.ndarray:
        """An array `name` of `shape` and `dtype`, contents undefined."""
        key = (name, tuple(shape), np.dtype(dtype))
        if key not in self._arrays:
            array = np.empty(shape, dtype)
            if self._bytes + array.nbytes > self._limit:
                self._arrays.clear()
                self._bytes = 0
            self._arrays[key] = array
            self._bytes += array.nbytes
        return self._arrays[key]


_local = threading.local()


def thread_workspace() -> Workspace:
    """This thread's Workspace, kept between calls.

    Live edits match one point per call, often on the same worker thread:
    keeping the scratch arrays halves the time of such a call.
    """
    if not hasattr(_local, "workspace"):
        _local.workspace = Workspace()
    return _local.workspace


_shared_pool: ThreadPoolExecutor | None = None


def shared_pool() -> ThreadPoolExecutor:
    """Threads kept between calls for the strips of one correlation, so
    that their workspaces stay warm too."""
    global _shared_pool
    if _shared_pool is None:
        _shared_pool = ThreadPoolExecutor(max_workers=cpu_count())
    return _shared_pool


def map_on(
    pool: ThreadPoolExecutor | None,
    function: Callable[[Item], Value],
    items: Sequence[Item],
) -> list[Value]:
    """``list(map(function, items))``, on `pool` when given."""
    if pool is None or len(items) < 2:
        return [function(item) for item in items]
    return list(pool.map(function, items))


def map_in_threads(
    function: Callable[[Item], Value], items: Sequence[Item]
) -> list[Value]:
    """``list(map(function, items))`` on a pool of one thread per core.

    The pool's threads, and their workspaces, end with the call: large
    one-off jobs (whole images, variance maps) leave no memory behind.
    """
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=cpu_count()) as pool:
        return list(pool.map(function, items))


def band_count(length: int, per_band: int) -> int:
    """Bands of at most `per_band` rows over `length` rows, as a multiple
    of the number of cores (so that no core idles at the end), at most
    `length`."""
    cpus = cpu_count()
    bands = -(-int(np.ceil(length / max(per_band, 1))) // cpus) * cpus
    return max(1, min(bands, length))


def batches(
    groups: Iterable[Sequence[Item]], size: int
) -> Iterator[Sequence[Item]]:
    """Consecutive runs of at most `size` items of each group."""
    for items in groups:
        for first in range(0, len(items), size):
            yield items[first : first + size]


def in_threads(
    compute: Callable[[Item, int, Workspace], Value],
    items: Iterable[Item],
) -> Iterator[tuple[Item, Value]]:
    """Yield ``(item, compute(item, workers, workspace))`` in order, on all
    cores.

    With several items, each runs on one core of a pool (``workers=1``)
    with that thread's workspace, at most one item per core in flight; a
    single item (live edits, a few points) runs here with every core for
    its transforms, without starting a pool.
    """
    items = iter(items)
    first = next(items, None)
    second = next(items, None)
    if second is None:
        if first is not None:
            yield first, compute(first, cpu_count(), thread_workspace())
        return
    # `first` is an item: it came before `second`, which is one.
    items = itertools.chain(cast("list[Item]", [first, second]), items)
    workers = cpu_count()

    def run(item: Item) -> Value:
        # Items of one shape reuse one thread's scratch arrays.
        return compute(item, 1, thread_workspace())

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(run, item)))
            if len(pending) >= workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
