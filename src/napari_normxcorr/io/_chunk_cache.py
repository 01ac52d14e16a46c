"""Windows of chunked storage (zarr), each chunk decoded once.

Reading a window of a zarr array decodes every chunk it touches, whole: a
window of 81² pixels from chunks of 1024² costs the decoding of a million
pixels or four. Windows of neighbouring points share chunks, and the
engine reads them in position order, so a cache of the chunks read last
makes each chunk cost its decoding once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from itertools import product
from typing import Any

import numpy as np

from ..core._arrays import LazyArray

# Decoded chunks kept per image, at most: a band of chunks across a large
# image, so that a pass along the band decodes each chunk once.
CACHE_BYTES = 2**28


def cached(image: LazyArray, limit: int | None = None) -> LazyArray:
    """`image` behind a ChunkCache when it is chunked storage, computed
    when it is a dask array that fits in `limit`, else itself.

    numpy arrays (and memmaps) are read directly; so are arrays whose
    chunks are unknown, or so large that a few would fill the cache. A
    dask array costs a task graph per window read (milliseconds a point):
    one that fits in the cache is computed once instead.
    """
    if isinstance(image, (np.ndarray, ChunkCache)):
        return image
    limit = CACHE_BYTES if limit is None else limit
    if _is_dask(image):
        size = np.prod(image.shape, dtype=np.float64) * image.dtype.itemsize
        return np.asarray(image[...]) if size <= limit else image
    edges = chunk_edges(image)
    if edges is None:
        return image
    largest = np.prod([np.diff(e).max(initial=1) for e in edges])
    if largest * np.dtype(image.dtype).itemsize > limit // 4:
        return image
    return ChunkCache(image, limit)


def _is_dask(image: Any) -> bool:
    """Whether `image` is a dask array (without importing dask)."""
    return type(image).__module__.startswith("dask.") and hasattr(
        image, "compute"
    )


def chunk_edges(image: Any) -> list[np.ndarray] | None:
    """Where the chunks of `image` start and stop along each axis, for
    storage of one chunk shape (zarr's); None for anything else.

    dask arrays are left out: a window of one computes only what it
    needs (a slice of its source, for `dask.array.from_array`), which
    for sparse points is far less than their whole chunks.
    """
    chunks = getattr(image, "chunks", None)
    shape = tuple(getattr(image, "shape", ()))
    if (
        not isinstance(chunks, tuple)
        or len(chunks) != len(shape)
        or not all(isinstance(c, int | np.integer) and c > 0 for c in chunks)
    ):
        return None
    return [
        np.append(np.arange(0, n, int(c)), n).astype(np.int64)
        for c, n in zip(chunks, shape)
    ]


class ChunkCache:
    """A chunked array read window by window, each chunk decoded once.

    The chunks read last are kept (the least recently used go beyond
    `limit` bytes). Windows come back as fresh C-ordered arrays, as zarr
    gives them; the engine reads from threads, hence the lock.
    """

    def __init__(self, array: LazyArray, limit: int = CACHE_BYTES):
        edges = chunk_edges(array)
        self.array = array
        self.shape, self.dtype = tuple(array.shape), np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.edges = edges or [np.array([0, n]) for n in self.shape]
        self.limit = limit
        self._blocks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __getitem__(self, index: Any) -> np.ndarray:
        box = _box(index, self.shape)
        if box is None:  # fancy indexing: straight from the array
            return np.asarray(self.array[index])
        starts, stops, kept = box
        out = np.empty([b - a for a, b in zip(starts, stops)], self.dtype)
        spans = [
            range(
                int(np.searchsorted(e, a, side="right")) - 1,
                int(np.searchsorted(e, b, side="left")),
            )
            if b > a
            else range(0)
            for a, b, e in zip(starts, stops, self.edges)
        ]
        for block in product(*spans):
            self._copy(block, starts, stops, out)
        return out.reshape([n for n, k in zip(out.shape, kept) if k])

    def _copy(
        self,
        block: tuple[int, ...],
        starts: list[int],
        stops: list[int],
        out: np.ndarray,
    ) -> None:
        """Copy the part of chunk `block` inside the box into `out`."""
        values = self._chunk(block)
        source, target = [], []
        for i, a, b, e in zip(block, starts, stops, self.edges):
            low, high = max(a, e[i]), min(b, e[i + 1])
            source.append(slice(low - e[i], high - e[i]))
            target.append(slice(low - a, high - a))
        out[tuple(target)] = values[tuple(source)]

    def _chunk(self, block: tuple[int, ...]) -> np.ndarray:
        with self._lock:
            if block in self._blocks:
                self._blocks.move_to_end(block)
                return self._blocks[block]
        region = tuple(
            slice(int(e[i]), int(e[i + 1])) for i, e in zip(block, self.edges)
        )
        values = np.asarray(self.array[region])
        with self._lock:
            # Another thread may have read the same chunk meanwhile.
            if block in self._blocks:
                return self._blocks[block]
            self._blocks[block] = values
            self._bytes += values.nbytes
            while self._bytes > self.limit and len(self._blocks) > 1:
                _, dropped = self._blocks.popitem(last=False)
                self._bytes -= dropped.nbytes
        return values


def _box(
    index: Any, shape: tuple[int, ...]
) -> tuple[list[int], list[int], list[bool]] | None:
    """Start, stop and whether each axis is kept, for an index of ints
    and unit-step slices; None for anything else."""
    index = index if isinstance(index, tuple) else (index,)
    if len(index) > len(shape):
        return None
    index = index + (slice(None),) * (len(shape) - len(index))
    starts, stops, kept = [], [], []
    for item, n in zip(index, shape):
        if isinstance(item, (int, np.integer)):
            i = int(item) + n if item < 0 else int(item)
            if not 0 <= i < n:
                return None
            start, stop, keep = i, i + 1, False
        elif isinstance(item, slice) and item.step in (None, 1):
            start, stop, _ = item.indices(n)
            stop, keep = max(start, stop), True
        else:
            return None
        starts.append(start)
        stops.append(stop)
        kept.append(keep)
    return starts, stops, kept
