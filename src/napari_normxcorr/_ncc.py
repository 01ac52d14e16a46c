"""N-D normalized cross-correlation: one real FFT plus running sums."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ._arrays import scaled
from ._kernel import PreparedTemplate, fft_shape, ncc_valid
from ._masked import MIN_OVERLAP, masked_normalized_cross_correlation
from ._parallel import (
    TILE_PIXELS,
    band_count,
    map_in_threads,
    thread_workspace,
)
from ._validate import (
    as_real_array,
    check_mode,
    check_template_fits,
    fft_dtype,
)


def crop_start(template_shape: Sequence[int], mode: str) -> tuple[int, ...]:
    """Index in the 'full' output of element 0 of the `mode` output, per axis.

    A 'full' index k puts the template's first element at image index
    k - (m - 1), so an output index p of any mode puts it at
    p + crop_start - (m - 1).
    """
    if mode == "full":
        return tuple(0 for _ in template_shape)
    if mode == "same":
        return tuple((m - 1) // 2 for m in template_shape)
    return tuple(m - 1 for m in template_shape)


def _padding(
    template_shape: Sequence[int], mode: str
) -> list[tuple[int, int]]:
    """Zero padding that turns a 'full' or 'same' NCC into a 'valid' one."""
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


def _tiled_ncc_valid(
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


def normalized_cross_correlation(
    template: npt.ArrayLike,
    image: npt.ArrayLike,
    mode: str = "full",
    *,
    fft_precision: str = "double",
    template_mask: npt.ArrayLike | None = None,
    image_mask: npt.ArrayLike | None = None,
    min_overlap: float = MIN_OVERLAP,
) -> np.ndarray:
    """Normalized cross-correlation of `template` with every window of `image`.

    Parameters
    ----------
    template : (m0, m1[, ...]) array_like
        Pattern to look for; real numbers, same number of axes as `image`
        and no longer than it along any axis.
    image : (M0, M1[, ...]) array_like
        Array to search; real numbers (integers keep full precision).
    mode : {'full', 'same', 'valid'}, optional
        Which positions to return, with the meanings of
        :func:`scipy.signal.correlate`: 'full' (default) every overlap,
        shape M + m - 1; 'same' centred, shape M; 'valid' only windows
        fully inside `image`, shape M - m + 1.
    fft_precision : {'double', 'single'}, optional
        Precision of the Fourier transform of the numerator. 'single' is
        about twice as fast; its values are within about 1e-5 of 'double'
        on textured data (local variances stay in double precision).
        Masked correlations always run in double precision.
    template_mask, image_mask : array_like of bool, optional
        True where a pixel of `template` (resp. `image`) is to be ignored;
        the shape of its array. Given either (even all False), the masked
        NCC is computed, and NaN and infinite pixels count as masked;
        without masks they raise a ValueError.
    min_overlap : float, optional
        Masked NCC only: positions where fewer than ``min_overlap`` times
        the template's pixel count are valid in both inputs score NaN, so
        that a sliver of overlap cannot win.

    Returns
    -------
    ncc : ndarray of float64
        Correlation coefficient in [-1, 1] for every template position
        (NaN where a masked overlap is too small). Element k (in 'full'
        mode) puts the template's first element at image index k - (m - 1).

    Notes
    -----
    This is ``normxcorr2`` (MATLAB/Octave) in N dimensions. For every window
    ``w`` of the image, with ``w`` and the template each minus its own mean::

        ncc = sum(w * t) / sqrt(sum(w ** 2) * sum(t ** 2))

    Before sliding, both inputs lose their global mean and the image is
    zero-padded, so in 'full' and 'same' modes the part of a window that
    lies outside the image counts as the image's mean value. A window or
    template whose variance is zero up to rounding gives exactly 0.

    The numerator is one real FFT correlation; local variances come from
    running sums (integral images) [1]_ computed in float64 after the global
    mean is removed, which keeps uint16 data with large offsets and float32
    data exact to about 1e-12.

    With masks, each position is scored on the pixels valid in both the
    template and the shifted window alone: their means, variances and sum
    of products, from six FFT correlations of masks, masked values and
    masked squares [2]_. The padding of 'full' and 'same' modes is then
    masked too (not the image's mean), and a position flat over its
    overlap scores 0.

    References
    ----------
    .. [1] J. P. Lewis, "Fast Normalized Cross-Correlation", Industrial
       Light and Magic, 1995.
    .. [2] D. Padfield, "Masked object registration in the Fourier domain",
       IEEE Transactions on Image Processing 21(5), 2706-2718, 2012.
    """
    check_mode(mode)
    dtype = fft_dtype(fft_precision)
    if template_mask is not None or image_mask is not None:
        shape = np.shape(template)
        return masked_normalized_cross_correlation(
            template,
            template_mask,
            image,
            image_mask,
            [(0, 0)] * len(shape)
            if mode == "valid"
            else _padding(shape, mode),
            min_overlap,
        )
    template = scaled(as_real_array("template", template))
    image = scaled(as_real_array("image", image))
    check_template_fits(template, image)
    prepared = PreparedTemplate(template, template.ndim, dtype)
    padding = (
        [(0, 0)] * image.ndim
        if mode == "valid"
        else _padding(template.shape, mode)
    )
    # Zero padding of the centred image = padding with the image's mean.
    return _tiled_ncc_valid(
        prepared, image, image.mean(dtype=np.float64), padding
    )


def normalized_cross_correlation_2d(
    template: npt.ArrayLike, image: npt.ArrayLike, mode: str = "full"
) -> np.ndarray:
    """:func:`normalized_cross_correlation` under its normxcorr2-style name
    (any dimension)."""
    return normalized_cross_correlation(template, image, mode)
