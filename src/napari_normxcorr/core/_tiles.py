"""A whole image's 'valid' NCC in tiles, each carrying the m - 1 extra
pixels its windows need, side by side on all cores.

Zero padding of the centred image turns 'full' and 'same' into 'valid':
the in-memory path runs one image through here, the lazy path one dask
block at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ._kernel import PreparedTemplate, fft_shape, ncc_valid
from ._parallel import (
    TILE_PIXELS,
    band_count,
    map_in_threads,
    thread_workspace,
)


def mode_padding(
    template_shape: Sequence[int], mode: str
) -> list[tuple[int, int]]:
    """Zero padding, (before, after) per axis, that turns a `mode` NCC
    into a 'valid' one."""
    if mode == "valid":
        return [(0, 0) for _ in template_shape]
    if mode == "full":
        return [(m - 1, m - 1) for m in template_shape]
    return [(m - 1 - (m - 1) // 2, (m - 1) // 2) for m in template_shape]


def _fill_centred(
    buffer: np.ndarray,
    image: np.ndarray,
    mean: float,
    start: Sequence[int],
    size: Sequence[int],
) -> None:
    """Write image[start:start + size] - mean into the corner of `buffer`.

    `start` may reach outside `image` (padding in 'full' and 'same' modes):
    what lies outside, and the rest of `buffer`, become 0, the centred
    image's mean.
    """
    source: list[slice] = []
    target: list[slice] = []
    for a, n, length in zip(start, size, image.shape):
        lo, hi = max(a, 0), min(a + n, length)
        source.append(slice(lo, max(hi, lo)))
        target.append(slice(lo - a, lo - a + max(hi - lo, 0)))
    np.subtract(image[tuple(source)], mean, out=buffer[tuple(target)])
    # Zero what the image did not fill, one slab per axis side.
    for axis, t in enumerate(target):
        before = (slice(None),) * axis + (slice(0, t.start),)
        after = (slice(None),) * axis + (slice(t.stop, None),)
        buffer[before] = 0.0
        buffer[after] = 0.0


def _tile_counts(out_shape: Sequence[int], m: Sequence[int]) -> list[int]:
    """How many tiles along each axis, for the outputs `out_shape`.

    Bands across the whole width are best where one of at least m rows
    fits in TILE_PIXELS: fewer overlap pixels than square tiles.
    """
    cross = int(np.prod([o + k - 1 for o, k in zip(out_shape[1:], m[1:])]))
    rows = TILE_PIXELS // cross - m[0] + 1
    if rows >= m[0]:
        return [band_count(out_shape[0], rows)] + [1] * (len(m) - 1)
    side = round(TILE_PIXELS ** (1 / len(m)))
    return [
        max(1, int(np.ceil(o / max(side - k + 1, k))))
        for o, k in zip(out_shape, m)
    ]


def tiled_ncc_valid(
    template: PreparedTemplate,
    image: np.ndarray,
    mean: float,
    padding: Sequence[tuple[int, int]],
) -> np.ndarray:
    """'valid' NCC of `image` - `mean`, zero-padded by `padding`.

    Tiles run side by side on all cores (numpy and scipy.fft release the
    GIL); every tile carries the m - 1 extra pixels its windows need, and
    is centred and padded on its way into the buffer of its transform.
    """
    m = template.shape
    padded = [n + a + b for n, (a, b) in zip(image.shape, padding)]
    out_shape = [i - k + 1 for i, k in zip(padded, m)]
    counts = _tile_counts(out_shape, m)
    edges = [
        np.linspace(0, o, c + 1).astype(int) for o, c in zip(out_shape, counts)
    ]
    tiles = list(
        itertools.product(*[list(itertools.pairwise(e)) for e in edges])
    )
    out = np.empty(out_shape)
    workers = 1 if len(tiles) > 1 else -1

    def run(tile):
        start = [a - before for (a, _), (before, _) in zip(tile, padding)]
        size = [b - a + k - 1 for (a, b), k in zip(tile, m)]
        workspace = thread_workspace()
        buffer = workspace.get("tile", fft_shape(size))
        _fill_centred(buffer, image, mean, start, size)
        target = tuple(slice(a, b) for a, b in tile)
        ncc_valid(
            template, buffer, workers, workspace, out[target], shape=size
        )

    # The template spectra are filled in before threads share the cache.
    for tile in {
        tuple(b - a + k - 1 for (a, b), k in zip(t, m)) for t in tiles
    }:
        template.spectrum(fft_shape(tile), workers=-1)
    map_in_threads(run, tiles)
    return out
