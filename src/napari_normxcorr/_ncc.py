"""N-D normalized cross-correlation: one real FFT plus running sums."""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import scipy.fft

from ._validate import as_real_array, check_template_fits

MODES = ("full", "same", "valid")
FFT_PRECISIONS = ("double", "single")

# Running sums of n terms are exact to about n * eps of their largest prefix:
# local variances below this many eps of the summed energy are rounding noise.
_FLAT_TOLERANCE = 64 * np.finfo(np.float64).eps
# Tiles of about this many pixels keep a correlation's arrays in cache.
_TILE_PIXELS = 2**20


def crop_start(template_shape, mode: str) -> tuple[int, ...]:
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


def _padding(template_shape, mode: str) -> list[tuple[int, int]]:
    """Zero padding that turns a 'full' or 'same' NCC into a 'valid' one."""
    if mode == "full":
        return [(m - 1, m - 1) for m in template_shape]
    return [(m - 1 - (m - 1) // 2, (m - 1) // 2) for m in template_shape]


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")


class Workspace:
    """Scratch arrays kept for reuse while one thread runs many correlations.

    Freshly allocated large arrays cost page faults on every call (about as
    much as the arithmetic here); reusing them across tiles, batches or
    calls of the same shape avoids that. Past `limit` bytes the old arrays
    are dropped, so windows of ever new shapes cannot pile up.
    """

    def __init__(self, limit: int = 2**26):
        self._arrays = {}
        self._bytes = 0
        self._limit = limit

    def get(self, name: str, shape, dtype=np.float64) -> np.ndarray:
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


def window_sums(
    values: np.ndarray, window_shape, workspace: Workspace, name: str
) -> np.ndarray:
    """Sum of `values` over every window of `window_shape` ('valid' mode).

    Works on the last len(window_shape) axes. Prefix sums along one axis at
    a time keep the cost independent of the window size (Lewis 1995). The
    result is the workspace array `name`.
    """
    out = values
    for axis, m in zip(range(-len(window_shape), 0), window_shape):
        prefix = _prefix_sums(out, axis, workspace)
        n = out.shape[axis] - m + 1
        upper = [slice(None)] * out.ndim
        lower = [slice(None)] * out.ndim
        upper[axis] = slice(m, m + n)
        lower[axis] = slice(0, n)
        shape = list(out.shape)
        shape[axis] = n
        out = np.subtract(
            prefix[tuple(upper)],
            prefix[tuple(lower)],
            out=workspace.get(f"{name} {axis}", shape),
        )
    return out


def _prefix_sums(values: np.ndarray, axis: int, workspace: Workspace):
    """Prefix sums along `axis` with a leading 0: element i sums values[:i]."""
    length = values.shape[axis]
    shape = list(values.shape)
    shape[axis] = length + 1
    prefix = workspace.get("prefix", shape)
    moved = np.moveaxis(prefix, axis, 0)
    moved[0] = 0.0
    if axis == -1:
        # Contiguous axis: numpy's accumulate is fastest here.
        np.cumsum(values, axis=-1, out=prefix[..., 1:])
        return prefix
    # numpy accumulates other axes column by column (slow, strided);
    # a loop of whole-row additions is several times faster.
    source = np.moveaxis(values, axis, 0)
    moved[1] = source[0]
    for i in range(1, length):
        np.add(moved[i], source[i], out=moved[i + 1])
    return prefix


def _zero_padded_rfftn(values: np.ndarray, fshape, workers: int):
    """rfftn over the last len(fshape) axes, zero-padded to `fshape`.

    One axis at a time, so the rows that are only padding are never
    transformed: a small template costs about half a full transform.
    """
    spectrum = scipy.fft.rfft(values, n=fshape[-1], axis=-1, workers=workers)
    for axis in range(-2, -len(fshape) - 1, -1):
        spectrum = scipy.fft.fft(
            spectrum,
            n=fshape[axis],
            axis=axis,
            workers=workers,
            overwrite_x=True,
        )
    return spectrum


class PreparedTemplate:
    """A template made ready for many correlations: centred, its energy,
    and its spectrum for each FFT shape asked for.

    Leading axes of `template` beyond `ndim` are a stack of templates.
    """

    def __init__(self, template: np.ndarray, ndim: int, fft_dtype):
        self.axes = tuple(range(-ndim, 0))
        self.shape = template.shape[-ndim:]
        self.fft_dtype = fft_dtype
        centred = template.astype(np.float64)
        scale = np.max(np.abs(centred), axis=self.axes, keepdims=True)
        centred -= np.mean(centred, axis=self.axes, keepdims=True)
        self.energy = np.sum(np.square(centred), axis=self.axes, keepdims=True)
        n = np.prod(self.shape, dtype=np.float64)
        # A template that is constant up to rounding carries no pattern.
        self.flat = self.energy <= _FLAT_TOLERANCE * n * scale**2
        self._flipped = centred[(Ellipsis, *[slice(None, None, -1)] * ndim)]
        self._spectra = {}

    def spectrum(self, fshape, workers: int = -1) -> np.ndarray:
        key = tuple(fshape)
        if key not in self._spectra:
            flipped = self._flipped.astype(self.fft_dtype, copy=False)
            self._spectra[key] = _zero_padded_rfftn(flipped, key, workers)
        return self._spectra[key]


def fft_shape(image_shape) -> list[int]:
    """FFT size per axis for a 'valid' correlation over `image_shape`.

    Circular wrap-around only touches the first m - 1 outputs, which
    'valid' mode discards, so the image's own size suffices.
    """
    return [scipy.fft.next_fast_len(int(n), real=True) for n in image_shape]


def ncc_valid(
    template: PreparedTemplate,
    image: np.ndarray,
    workers: int = -1,
    workspace: Workspace | None = None,
    out: np.ndarray | None = None,
    variance: tuple[np.ndarray, float] | None = None,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """'valid' NCC of a prepared template against a centred `image`.

    `image` has had a constant (its mean) removed, so that running sums of
    its squares do not cancel catastrophically. Leading axes broadcast
    against the template's (a stack of windows and a stack of templates).
    `variance`, when given, is ``(n * variance of each window, noise)``
    from elsewhere (it is overwritten), and windows whose n * variance is
    at most `noise` count as flat; then `image` may also come zero-padded
    to its FFT shape, its own being `shape`. The result goes to `out` when
    given.
    """
    workspace = workspace or Workspace()
    axes = template.axes
    if shape is None:
        shape = image.shape[-len(axes) :]
    fshape = fft_shape(shape)
    # The image fills its FFT shape: one multi-axis transform is fastest.
    spectrum = scipy.fft.rfftn(
        image.astype(template.fft_dtype, copy=False),
        fshape,
        axes=axes,
        workers=workers,
    )
    spectrum *= template.spectrum(fshape, workers)
    keep = tuple(slice(m - 1, n) for m, n in zip(template.shape, shape))
    numerator = _valid_inverse(spectrum, fshape, keep, workers)
    del spectrum

    if variance is None:
        variance = window_variance(image, template.shape, workspace)
    energy, noise = variance
    # Flat windows or templates carry no pattern: their NCC is 0, not noise
    # (an infinite denominator gives exactly 0).
    flat = np.less_equal(
        energy, noise, out=workspace.get("flat", energy.shape, bool)
    )
    energy *= template.energy
    np.copyto(energy, np.inf, where=flat)
    np.copyto(energy, np.inf, where=template.flat)
    np.sqrt(energy, out=energy)
    if out is None:
        out = np.empty(energy.shape)
    np.divide(numerator, energy, out=out)
    return np.clip(out, -1.0, 1.0, out=out)


def _valid_inverse(spectrum, fshape, keep, workers: int) -> np.ndarray:
    """irfftn over the last len(fshape) axes, cropped to `keep`.

    One axis at a time, dropping the rows outside `keep` as soon as they
    are transformed: the last, real transform then runs on the 'valid'
    rows only (40 % less work for a template a quarter of the window).
    """
    d = len(fshape)
    out = spectrum
    for axis in range(-d, -1):
        out = scipy.fft.ifft(
            out, axis=axis, workers=workers, overwrite_x=out is spectrum
        )
        out = out[(Ellipsis, keep[axis]) + (slice(None),) * (-axis - 1)]
    out = scipy.fft.irfft(out, n=fshape[-1], axis=-1, workers=workers)
    return out[..., keep[-1]]


def window_variance(image: np.ndarray, shape, workspace: Workspace):
    """n * variance of every window of `shape` in a centred float64 `image`,
    and the rounding noise below which it counts as zero."""
    n = np.prod(shape, dtype=np.float64)
    axes = tuple(range(-len(shape), 0))
    squared = np.square(image, out=workspace.get("squared", image.shape))
    total = np.sum(squared, axis=axes, keepdims=True)
    energy = window_sums(squared, shape, workspace, "energy")
    sums = window_sums(image, shape, workspace, "sums")
    # n * variance of each window, in place: energy - sums**2 / n.
    np.square(sums, out=sums)
    sums /= n
    energy -= sums
    # Rounding leaves flat windows with |energy| of a few eps of the total.
    return energy, _FLAT_TOLERANCE * total


def _tiled_ncc_valid(template: PreparedTemplate, image: np.ndarray):
    """'valid' NCC of a large image, tile by tile on all cores.

    Tiles of about a million pixels stay in cache, and numpy and scipy.fft
    release the GIL, so threads run the tiles side by side. Every tile
    carries the m - 1 extra pixels its windows need.
    """
    m = template.shape
    out_shape = [i - k + 1 for i, k in zip(image.shape, m)]
    side = round(_TILE_PIXELS ** (1 / image.ndim))
    counts = [
        max(1, int(np.ceil(o / max(side - k + 1, k))))
        for o, k in zip(out_shape, m)
    ]
    edges = [
        np.linspace(0, o, c + 1).astype(int) for o, c in zip(out_shape, counts)
    ]
    tiles = list(
        itertools.product(*[list(itertools.pairwise(e)) for e in edges])
    )
    if len(tiles) == 1:
        return ncc_valid(template, image)
    out = np.empty(out_shape)

    def run(tile):
        inside = tuple(slice(a, b + k - 1) for (a, b), k in zip(tile, m))
        target = tuple(slice(a, b) for a, b in tile)
        workspace = thread_workspace()
        ncc_valid(template, image[inside], 1, workspace, out=out[target])

    # The template spectra are filled in before threads share the cache.
    for tile in {
        tuple(b - a + k - 1 for (a, b), k in zip(t, m)) for t in tiles
    }:
        template.spectrum(fft_shape(tile), workers=-1)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(run, tiles))
    return out


def normalized_cross_correlation(
    template: npt.ArrayLike,
    image: npt.ArrayLike,
    mode: str = "full",
    *,
    fft_precision: str = "double",
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

    Returns
    -------
    ncc : ndarray of float64
        Correlation coefficient in [-1, 1] for every template position.
        Element k (in 'full' mode) puts the template's first element at
        image index k - (m - 1).

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

    References
    ----------
    .. [1] J. P. Lewis, "Fast Normalized Cross-Correlation", Industrial
       Light and Magic, 1995.
    """
    check_mode(mode)
    if fft_precision not in FFT_PRECISIONS:
        raise ValueError(
            f"fft_precision must be one of {FFT_PRECISIONS}, got "
            f"{fft_precision!r}."
        )
    template = as_real_array("template", template)
    image = as_real_array("image", image)
    check_template_fits(template, image)
    fft_dtype = np.float32 if fft_precision == "single" else np.float64
    prepared = PreparedTemplate(template, template.ndim, fft_dtype)
    centred = image.astype(np.float64)
    centred -= centred.mean()
    if mode != "valid":
        # Zero padding of the centred image = padding with the image's mean.
        centred = np.pad(centred, _padding(template.shape, mode))
    return _tiled_ncc_valid(prepared, centred)


def normalized_cross_correlation_2d(
    template: npt.ArrayLike, image: npt.ArrayLike, mode: str = "full"
) -> np.ndarray:
    """Seed name of :func:`normalized_cross_correlation` (any dimension)."""
    return normalized_cross_correlation(template, image, mode)
