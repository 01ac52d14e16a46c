"""Masked NCC: only the pixels valid in both the template and the window.

Padfield's method [1]_: with the invalid pixels of both inputs set to 0
and their validity as 0/1 masks, six FFT correlations (of masks, masked
values and masked squares) give, for every shift, the number of pixels
valid in both, their sums, sums of squares and sum of products; the
means, variances and covariance over the overlap follow.

References
----------
.. [1] D. Padfield, "Masked object registration in the Fourier domain",
   IEEE Transactions on Image Processing 21(5), 2706-2718, 2012.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from ._arrays import scaled
from ._validate import check_real, check_template_fits, number

# Default least share of the template's pixels that must be valid in both
# the template and the window for a position to be scored.
MIN_OVERLAP = 0.5
# FFT correlations are exact to about log2(n) eps of the product of their
# inputs' norms: variances below this many eps of it are rounding noise.
_FFT_TOLERANCE = 1024 * np.finfo(np.float64).eps


def mask_shape_check(
    name: str, mask_shape: Sequence[int], shape: Sequence[int]
) -> None:
    """Raise unless a mask named `name` has the `shape` of its image."""
    if tuple(mask_shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(mask_shape)} but its image has shape "
            f"{tuple(shape)}; a mask needs one entry per pixel."
        )


def check_mask(name: str, mask: Any, shape: Sequence[int]) -> None:
    """Raise unless `mask` holds booleans or numbers (as match_points
    asks: the string 'False' would mask its pixel) in the `shape` of its
    image."""
    dtype = getattr(mask, "dtype", None)
    if dtype is None:
        dtype = np.asarray(mask).dtype
    check_real(name, dtype, tuple(np.shape(mask)))
    mask_shape_check(name, np.shape(mask), shape)


def valid_pixels(
    name: str, values: np.ndarray, mask: npt.ArrayLike | None
) -> np.ndarray:
    """True where `values` is finite and `mask` (True = ignore) is False."""
    valid = np.isfinite(values)
    if mask is not None:
        mask = np.asarray(mask)
        check_mask(name, mask, values.shape)
        valid &= ~mask.astype(bool)
    return valid


def _centred(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """`values` minus the mean of its valid pixels, 0 where invalid.

    Centring keeps the sums of squares far from cancelling (uint16 data
    with large offsets); the zeros drop the invalid pixels from every sum.
    """
    values = np.asarray(values, dtype=np.float64)
    count = np.count_nonzero(valid)
    mean = values[valid].sum() / count if count else 0.0
    return np.where(valid, values - mean, 0.0)


def masked_ncc_valid(
    template: np.ndarray,
    template_valid: np.ndarray,
    image: np.ndarray,
    image_valid: np.ndarray,
    min_overlap: float = MIN_OVERLAP,
    workers: int = -1,
) -> np.ndarray:
    """'valid' masked NCC of `template` against every window of `image`.

    Parameters
    ----------
    template, template_valid : (m0, m1[, ...]) ndarray
        The template and where it holds data (True = use).
    image, image_valid : (M0, M1[, ...]) ndarray
        The image (at least as large along every axis) and where it holds
        data. Invalid pixels may hold anything, NaN included.
    min_overlap : float, optional
        Positions where fewer than ``min_overlap * template.size`` pixels
        are valid in both inputs score NaN.
    workers : int, optional
        Threads of each FFT.

    Returns
    -------
    ncc : (M0 - m0 + 1, ...) ndarray of float64
        Correlation coefficient over the pixels valid in both, in [-1, 1];
        0 where either side is flat over that overlap, NaN where the
        overlap is too small.

    Notes
    -----
    For a shift k, with sums over the pixels j valid in the template and
    at ``k + j`` in the image (n of them)::

        ncc = (sum f t - sum f sum t / n)
              / sqrt((sum f**2 - (sum f)**2 / n) (sum t**2 - (sum t)**2 / n))

    Each sum is a correlation of a masked (zeroed) array with a mask or
    with another masked array, computed by FFT [1]_ in double precision.
    """
    axes = tuple(range(-template.ndim, 0))
    fshape = [scipy.fft.next_fast_len(int(n), real=True) for n in image.shape]
    t = _centred(template, template_valid)
    f = _centred(image, image_valid)

    def spectra(*arrays: np.ndarray) -> np.ndarray:
        return scipy.fft.rfftn(
            np.stack(arrays), fshape, axes=axes, workers=workers
        )

    # Circular correlation by conj: wrap-around only reaches the positions
    # past the 'valid' ones, so the image's own size suffices.
    mf, sf, sff = spectra(image_valid.astype(np.float64), f, f * f)
    mt, st, stt = np.conj(spectra(template_valid.astype(np.float64), t, t * t))
    sums = scipy.fft.irfftn(
        np.stack([mf * mt, sf * mt, sff * mt, mf * st, mf * stt, sf * st]),
        fshape,
        axes=axes,
        workers=workers,
    )
    keep = (slice(None),) + tuple(
        slice(0, n - m + 1) for n, m in zip(image.shape, template.shape)
    )
    count, f_sum, f_squares, t_sum, t_squares, products = sums[keep]
    count = np.rint(count)  # a number of pixels, up to FFT rounding
    noise_f = _FFT_TOLERANCE * np.sqrt(
        np.sum(f**4) * np.count_nonzero(template_valid)
    )
    noise_t = _FFT_TOLERANCE * np.sqrt(
        np.sum(t**4) * np.count_nonzero(image_valid)
    )
    return _coefficients(
        count,
        (f_sum, f_squares, noise_f),
        (t_sum, t_squares, noise_t),
        products,
        min_overlap * template.size,
    )


def unscored_at_floor(surface: np.ndarray) -> np.ndarray:
    """`surface` with its unscored (NaN) positions at -1, the lowest NCC,
    so that peak searches pass over them."""
    return np.nan_to_num(surface, nan=-1.0)


def _coefficients(
    count: np.ndarray,
    image_sums: tuple[np.ndarray, np.ndarray, float],
    template_sums: tuple[np.ndarray, np.ndarray, float],
    products: np.ndarray,
    least: float,
) -> np.ndarray:
    """NCC from the overlap's sums: `count` pixels, (sum, sum of squares,
    rounding noise) of each side and the sum of products."""
    scored = (count >= least) & (count > 0)
    n = np.where(scored, count, 1.0)
    energies = []
    for total, squares, noise in (image_sums, template_sums):
        energy = squares - total * total / n
        # Flat over the overlap (up to rounding): no pattern, an NCC of 0.
        energies.append(np.where(energy > noise, energy, np.inf))
    f_sum, t_sum = image_sums[0], template_sums[0]
    covariance = products - f_sum * t_sum / n
    ncc = covariance / np.sqrt(energies[0] * energies[1])
    np.clip(ncc, -1.0, 1.0, out=ncc)
    ncc[~scored] = np.nan
    return ncc


def masked_normalized_cross_correlation(
    template: npt.ArrayLike,
    template_mask: npt.ArrayLike | None,
    image: npt.ArrayLike,
    image_mask: npt.ArrayLike | None,
    padding: Sequence[tuple[int, int]],
    min_overlap: float = MIN_OVERLAP,
) -> np.ndarray:
    """Masked NCC of a whole image, padded by `padding` with masked pixels.

    Masks are True where a pixel is to be ignored; NaN and infinite pixels
    are ignored too. The padding is invalid, so that a position partly
    outside the image is scored on its pixels inside. NaN passes the
    checks here: it is masked.
    """
    template, image = np.asarray(template), np.asarray(image)
    for name, array in (("template", template), ("image", image)):
        check_real(name, array.dtype, array.shape)
    check_template_fits(template, image)
    if not 0 <= number("min_overlap", min_overlap) <= 1:
        raise ValueError(f"min_overlap must lie in [0, 1], got {min_overlap}.")
    template_valid = valid_pixels("template_mask", template, template_mask)
    image_valid = valid_pixels("image_mask", image, image_mask)
    template, image = scaled(template), scaled(image)
    if any(before or after for before, after in padding):
        image = np.pad(np.asarray(image, dtype=np.float64), padding)
        image_valid = np.pad(image_valid, padding)
    return masked_ncc_valid(
        template, template_valid, image, image_valid, min_overlap
    )
