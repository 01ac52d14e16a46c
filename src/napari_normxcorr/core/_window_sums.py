"""Sums over every window of an image: the local variances behind NCC.

Sums over all axes of the window but the last come from prefix sums
(summed-area tables) built once over the image; the rest works strip by
strip on a few rows at a time that stay in cache: the box sums from the
tables' corners, running means along the last axis (in C,
scipy.ndimage.uniform_filter1d) and the local variance.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from types import EllipsisType, ModuleType

import numpy as np
import scipy.ndimage

from ._compiled import compiled
from ._parallel import (
    TILE_PIXELS,
    Workspace,
    band_count,
    map_in_threads,
    map_on,
    thread_workspace,
)

# Running sums of n terms are exact to about n * eps of their largest prefix:
# local variances below this many eps of the summed energy are rounding noise.
FLAT_TOLERANCE = 64 * np.finfo(np.float64).eps


def is_flat(
    energy: np.ndarray | float,
    count: np.ndarray | float,
    scale: np.ndarray | float,
) -> np.ndarray:
    """Whether `count` values of largest magnitude `scale` whose centred
    sum of squares is `energy` are constant up to rounding.

    Centring leaves each value wrong by a few eps of `scale`, however
    large the offset it removed: the energy of that rounding is the
    floor, not eps times the energy of the offset.
    """
    return np.asarray(energy <= count * np.square(FLAT_TOLERANCE * scale))


# Strips of about this many pixels keep their sums in cache.
_STRIP_PIXELS = 2**16


class WindowSums:
    """Sums of a centred image's values and squares over every window.

    Leading axes of `image` beyond `shape`'s are a stack of images; the
    tables live in `workspace`, and `pool` builds the two side by side.
    """

    def __init__(
        self,
        image: np.ndarray,
        shape: tuple[int, ...],
        workspace: Workspace,
        pool: ThreadPoolExecutor | None = None,
    ):
        d = len(shape)
        self.shape = shape
        self.width = shape[-1]
        prefix_shape = list(image.shape)
        for axis in range(-d, -1):
            prefix_shape[axis] += 1
        self.values = workspace.get("prefix values", prefix_shape)
        self.squares = workspace.get("prefix squares", prefix_shape)
        squares = np.square(image, out=_inner(self.squares, d))
        map_on(
            pool,
            lambda pair: _prefix_sums(*pair, d),
            [(image, self.values), (squares, self.squares)],
        )
        last: tuple[EllipsisType | slice, ...] = (
            Ellipsis,
            *[slice(-1, None)] * (d - 1),
            slice(None),
        )
        self.total = self.squares[last].sum(
            axis=tuple(range(-d, 0)), keepdims=True
        )

    def strips(self, out: np.ndarray) -> list[tuple]:
        """Strips of rows of the windows behind `out`, each a cache's worth."""
        d = len(self.shape)
        height = out.shape[-d]
        step = max(1, _STRIP_PIXELS * height // max(out.size, 1))
        return [
            _rows(start, min(start + step, height), d)
            for start in range(0, height, step)
        ]

    def energy(self, strip: tuple, workspace: Workspace) -> np.ndarray:
        """n * variance / width of the windows starting in rows `strip`.

        Valid along the middle axes; whole rows along the last, garbage
        outside the valid windows included (contiguous arrays are several
        times faster than strided views): valid are its last n - m + 1.
        A workspace array.
        """
        means = _strip_means(self.values, strip, self.shape, workspace, "v")
        energy = _strip_means(self.squares, strip, self.shape, workspace, "e")
        # Both are sums over all axes but the last, means along it, so
        # energy - width * means**2 / n = n * variance / width:
        np.square(means, out=means)
        means *= self.width / np.prod(self.shape)
        energy -= means
        return energy


def window_energies(
    image: np.ndarray, shape: tuple[int, ...], mean: float = 0.0
) -> tuple[np.ndarray, float]:
    """n * variance of every 'valid' window of `shape` in `image` - `mean`.

    Bands of rows run side by side on all cores, each centred on its way
    into its thread's workspace. Also returns the summed energy of the
    bands (about that of the whole image), which bounds the rounding of
    every window's sums.
    """
    out = np.empty([n - m + 1 for n, m in zip(image.shape, shape)])
    kernels = compiled(f"{__package__}._window_kernels")
    if kernels is not None and image.ndim == len(shape) == 2:
        return out, _compiled_energies(kernels, image, shape, mean, out)
    result = out
    if len(shape) == 1:
        image, out, shape = image[np.newaxis], out[np.newaxis], (1, *shape)
    m0 = shape[0]
    height = max(1, TILE_PIXELS // max(image[0].size, 1) - m0 + 1)
    count = band_count(len(out), height)
    edges = np.linspace(0, len(out), count + 1).astype(int)
    # The valid windows along the last axis (the strips hold whole rows).
    valid = (Ellipsis, slice(shape[-1] - 1, image.shape[-1]))

    def run(band):
        first, stop = band
        workspace = thread_workspace()
        rows = image[first : stop + m0 - 1]
        centred = workspace.get("band", rows.shape)
        np.subtract(rows, mean, out=centred)
        sums = WindowSums(centred, shape, workspace)
        part = out[first:stop]
        for strip in sums.strips(part):
            energy = sums.energy(strip, workspace)
            energy *= sums.width
            np.copyto(part[strip], energy[valid])
        return float(sums.total.sum())

    total = sum(map_in_threads(run, list(itertools.pairwise(edges))))
    return result, total


def _compiled_energies(
    kernels: ModuleType,
    image: np.ndarray,
    shape: tuple[int, ...],
    mean: float,
    out: np.ndarray,
) -> float:
    """`window_energies` of a 2-D image by the compiled kernels, into
    `out`; returns the summed energy of the bands."""
    m0, m1 = shape
    height = max(1, TILE_PIXELS // max(image.shape[1], 1) - m0 + 1)
    edges = np.linspace(0, len(out), band_count(len(out), height) + 1)

    def run(band):
        first, stop = band
        rows = image[first : stop + m0 - 1]
        if rows.dtype not in (np.float32, np.float64):
            rows = rows.astype(np.float64)  # a band at a time
        workspace = thread_workspace()
        tables = [
            workspace.get(f"band {name}", (len(rows) + 1, rows.shape[1]))
            for name in ("values", "squares")
        ]
        total = kernels.column_sums(rows, float(mean), *tables)
        kernels.window_energies(
            *tables, 0, stop - first, m0, m1, out[first:stop]
        )
        return total

    bands = list(itertools.pairwise(edges.astype(int).tolist()))
    return float(sum(map_in_threads(run, bands)))


def _rows(start, stop, d):
    """Index of rows start:stop along the first of the last `d` axes."""
    return (Ellipsis, slice(start, stop)) + (slice(None),) * (d - 1)


def _inner(prefix, d):
    """The part of a prefix-sum table after its leading zeros."""
    return prefix[(Ellipsis, *[slice(1, None)] * (d - 1), slice(None))]


def _prefix_sums(values, prefix, d):
    """Prefix sums of `values` over the last `d` axes but the last, into
    `prefix` (one longer along each of them, starting with zeros).

    `values` may be the part of `prefix` after the zeros (in place).
    """
    for axis in range(-d, -1):
        prefix[(Ellipsis, slice(0, 1)) + (slice(None),) * (-axis - 1)] = 0.0
    inner = _inner(prefix, d)
    _scan(values, inner, -d)
    for axis in range(-d + 1, -1):
        _scan(inner, inner, axis)


def _scan(values, out, axis):
    """Cumulative sums of `values` along `axis` into `out` (may be `values`).

    Whole-row additions (numpy's accumulate along a strided axis is
    several times slower), in blocks of about sqrt(n) rows: a scan inside
    every block at once, then each block carried over from the one before.
    About 2 sqrt(n) numpy calls instead of n, so that threads do not queue
    for the GIL between tiny calls.
    """
    rows = np.moveaxis(values, axis, 0)
    scan = np.moveaxis(out, axis, 0)
    n = len(rows)
    block = max(1, int(np.sqrt(n)))
    scan[::block] = rows[::block]
    for k in range(1, block):
        count = len(range(k, n, block))
        np.add(
            scan[k - 1 :: block][:count], rows[k::block], out=scan[k::block]
        )
    for first in range(block, n, block):
        scan[first : first + block] += scan[first - 1]


def _strip_means(prefix, rows, shape, workspace, name):
    """Means over windows of `shape`, for the windows starting in `rows`.

    The sums over all axes but the last come from the corners of the
    prefix-sum table; means along the last axis from running means.
    Returns a workspace array of the valid windows along the middle axes,
    as wide as `prefix` along the last, where the valid windows are the
    last n - m + 1.
    """
    d = len(shape)
    first = rows[1]
    ranges = [(first.start, first.stop)] + [
        (0, n - m) for n, m in zip(prefix.shape[-d + 1 : -1], shape[1:-1])
    ]
    strip = [b - a for a, b in ranges] + [prefix.shape[-1]]
    means = workspace.get(f"strip {name}", (*prefix.shape[:-d], *strip))
    # Inclusion-exclusion over the corners of each box: the upper corner
    # minus those with an odd number of lower coordinates, plus the rest.
    signs, corners = [], []
    for lower in itertools.product((False, True), repeat=d - 1):
        signs.append(-1 if sum(lower) % 2 else 1)
        corners.append(
            (Ellipsis,)
            + tuple(
                slice(a, b) if low else slice(a + m, b + m)
                for (a, b), m, low in zip(ranges, shape, lower)
            )
            + (slice(None),)
        )
    np.subtract(prefix[corners[0]], prefix[corners[1]], out=means)
    for sign, corner in zip(signs[2:], corners[2:]):
        (np.add if sign > 0 else np.subtract)(means, prefix[corner], out=means)
    # The window ending at k lands at k, as in the numerator's rows.
    m = shape[-1]
    scipy.ndimage.uniform_filter1d(
        means, m, axis=-1, output=means, origin=(m - 1) // 2
    )
    return means
