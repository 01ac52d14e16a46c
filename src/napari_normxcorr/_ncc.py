"""N-D normalized cross-correlation: one real FFT plus running sums."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft

from ._validate import as_real_array, check_template_fits

MODES = ("full", "same", "valid")
FFT_PRECISIONS = ("double", "single")

# Running sums of n terms are exact to about n * eps of their largest prefix:
# local variances below this many eps of the summed energy are rounding noise.
_FLAT_TOLERANCE = 64 * np.finfo(np.float64).eps


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


def output_shape(template_shape, image_shape, mode: str) -> tuple[int, ...]:
    """Shape of the correlation surface for `mode` (as in scipy.signal)."""
    if mode == "full":
        return tuple(i + m - 1 for m, i in zip(template_shape, image_shape))
    if mode == "same":
        return tuple(image_shape)
    return tuple(i - m + 1 for m, i in zip(template_shape, image_shape))


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")


def window_sums(values: np.ndarray, window_shape, mode: str) -> np.ndarray:
    """Sum of `values` over every window of `window_shape` (last axes).

    Outside the array counts as zero ('full' and 'same' modes). Prefix sums
    along one axis at a time keep the cost independent of the window size
    (Lewis 1995).
    """
    ndim = len(window_shape)
    # 'valid' prefix sums have no padding; 'same' is a crop of 'full'.
    start = crop_start(window_shape, "same" if mode == "same" else "full")
    n_out = output_shape(window_shape, values.shape[-ndim:], mode)
    out = values
    for axis, m, first, n in zip(range(-ndim, 0), window_shape, start, n_out):
        prefix = _padded_prefix_sums(out, axis, m, mode)
        upper = [slice(None)] * out.ndim
        lower = [slice(None)] * out.ndim
        upper[axis] = slice(first + m, first + m + n)
        lower[axis] = slice(first, first + n)
        out = np.subtract(prefix[tuple(upper)], prefix[tuple(lower)])
    return out


def _padded_prefix_sums(values, axis: int, m: int, mode: str) -> np.ndarray:
    """Prefix sums along `axis`, with a zero head and a constant tail.

    Element m + i holds values[0] + ... + values[i]; the first m elements
    are 0 and, outside 'valid' mode, the last m - 1 repeat the total, which
    is what zero-padding the values would give.
    """
    length = values.shape[axis]
    head = m if mode != "valid" else 1
    tail = m - 1 if mode != "valid" else 0
    shape = list(values.shape)
    shape[axis] = head + length + tail
    prefix = np.empty(shape, dtype=np.float64)
    moved = np.moveaxis(prefix, axis, 0)
    source = np.moveaxis(values, axis, 0)
    moved[:head] = 0.0
    if axis == -1:
        # Contiguous axis: numpy's accumulate is fastest here.
        np.cumsum(values, axis=-1, out=prefix[..., head : head + length])
    else:
        # numpy accumulates other axes column by column (slow, strided);
        # a loop of whole-row additions is several times faster.
        moved[head] = source[0]
        for i in range(1, length):
            np.add(moved[head + i - 1], source[i], out=moved[head + i])
    moved[head + length :] = moved[head + length - 1]
    return prefix


def correlate(
    template: np.ndarray,
    image: np.ndarray,
    mode: str,
    *,
    fft_dtype=np.float64,
) -> np.ndarray:
    """Plain cross-correlation sum(w * t) over the last template.ndim axes.

    Leading axes of `image` and `template` broadcast, so a stack of
    windows is correlated with a stack of templates in one transform.
    """
    ndim = template.ndim
    axes = tuple(range(-ndim, 0))
    m = template.shape[-ndim:]
    full = output_shape(m, image.shape[-ndim:], "full")
    start = crop_start(m, mode)
    n_out = output_shape(m, image.shape[-ndim:], mode)
    # Circular wrap-around only has to miss the part of 'full' we keep.
    fshape = [
        scipy.fft.next_fast_len(f - s, real=True) for f, s in zip(full, start)
    ]
    flipped = template[(Ellipsis, *[slice(None, None, -1)] * ndim)]
    spectrum = _zero_padded_rfftn(image.astype(fft_dtype, copy=False), fshape)
    spectrum *= _zero_padded_rfftn(
        flipped.astype(fft_dtype, copy=False), fshape
    )
    product = scipy.fft.irfftn(
        spectrum, fshape, axes=axes, workers=-1, overwrite_x=True
    )
    keep = tuple(slice(s, s + n) for s, n in zip(start, n_out))
    return product[(Ellipsis, *keep)]


def _zero_padded_rfftn(values: np.ndarray, fshape) -> np.ndarray:
    """rfftn over the last len(fshape) axes, zero-padded to `fshape`.

    One axis at a time, so the rows that are only padding are never
    transformed: a small template costs about half a full transform.
    """
    spectrum = scipy.fft.rfft(values, n=fshape[-1], axis=-1, workers=-1)
    for axis in range(-2, -len(fshape) - 1, -1):
        spectrum = scipy.fft.fft(
            spectrum, n=fshape[axis], axis=axis, workers=-1, overwrite_x=True
        )
    return spectrum


def ncc_from_centered(
    template: np.ndarray,
    image: np.ndarray,
    mode: str,
    *,
    fft_dtype=np.float64,
) -> np.ndarray:
    """NCC of `template` against an `image` whose mean has been removed.

    `template` is any real array (it is centred here); `image` is float64
    and already centred, so that running sums of its squares do not cancel
    catastrophically. Leading axes broadcast as in :func:`correlate`.
    """
    ndim = template.ndim
    axes = tuple(range(-ndim, 0))
    window_shape = template.shape
    n = np.prod(window_shape, dtype=np.float64)

    template = template.astype(np.float64)
    scale = np.max(np.abs(template), axis=axes, keepdims=True)
    template -= np.mean(template, axis=axes, keepdims=True)
    template_energy = np.sum(np.square(template), axis=axes, keepdims=True)
    flat_template = template_energy <= _FLAT_TOLERANCE * n * scale**2

    numerator = correlate(template, image, mode, fft_dtype=fft_dtype)
    numerator = numerator.astype(np.float64, copy=False)
    squared = np.square(image)
    total = np.sum(squared, axis=axes, keepdims=True)
    energy = window_sums(squared, window_shape, mode)
    del squared
    sums = window_sums(image, window_shape, mode)
    # n * variance of each window, in place: energy - sums**2 / n.
    np.square(sums, out=sums)
    sums /= n
    energy -= sums
    del sums
    # Rounding leaves flat windows with |energy| of a few eps of the total.
    flat = energy <= _FLAT_TOLERANCE * total
    flat |= flat_template
    energy *= template_energy
    np.sqrt(energy, out=energy, where=~flat)
    # Flat windows or templates carry no pattern: their NCC is 0, not noise.
    energy[flat] = np.inf
    out = np.divide(numerator, energy, out=numerator)
    return np.clip(out, -1.0, 1.0, out=out)


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
    image = image.astype(np.float64)
    image -= image.mean()
    fft_dtype = np.float32 if fft_precision == "single" else np.float64
    return ncc_from_centered(template, image, mode, fft_dtype=fft_dtype)


def normalized_cross_correlation_2d(
    template: npt.ArrayLike, image: npt.ArrayLike, mode: str = "full"
) -> np.ndarray:
    """Seed name of :func:`normalized_cross_correlation` (any dimension)."""
    return normalized_cross_correlation(template, image, mode)
