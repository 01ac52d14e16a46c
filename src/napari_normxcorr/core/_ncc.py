"""N-D normalized cross-correlation: one real FFT plus running sums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

from ._arrays import scaled
from ._kernel import PreparedTemplate
from ._lazy_ncc import is_lazy, lazy_normalized_cross_correlation
from ._masked import MIN_OVERLAP, masked_normalized_cross_correlation
from ._tiles import mode_padding, tiled_ncc_valid
from ._validate import (
    as_real_array,
    check_mode,
    check_template_fits,
    fft_dtype,
)

if TYPE_CHECKING:
    import dask.array as da
    import zarr


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


@overload
def normalized_cross_correlation(
    template: npt.ArrayLike,
    image: da.Array | zarr.Array,
    mode: str = ...,
    *,
    fft_precision: str = ...,
    template_mask: npt.ArrayLike | None = ...,
    image_mask: Any = ...,
    min_overlap: float = ...,
) -> da.Array: ...


@overload
def normalized_cross_correlation(
    template: npt.ArrayLike,
    image: npt.ArrayLike,
    mode: str = ...,
    *,
    fft_precision: str = ...,
    template_mask: npt.ArrayLike | None = ...,
    image_mask: npt.ArrayLike | None = ...,
    min_overlap: float = ...,
) -> np.ndarray: ...


def normalized_cross_correlation(
    template: npt.ArrayLike,
    image: Any,
    mode: str = "full",
    *,
    fft_precision: str = "double",
    template_mask: npt.ArrayLike | None = None,
    image_mask: Any = None,
    min_overlap: float = MIN_OVERLAP,
) -> np.ndarray | da.Array:
    """Normalized cross-correlation of `template` with every window of `image`.

    Parameters
    ----------
    template : (m0, m1[, ...]) array_like
        Pattern to look for; real numbers, same number of axes as `image`
        and no longer than it along any axis.
    image : (M0, M1[, ...]) array_like
        Array to search; real numbers (integers keep full precision). A
        dask or zarr array gives a lazy result, one task per chunk, each
        with a halo of m - 1 pixels from its neighbours: every chunk must
        be at least as long as the template along each axis (a
        ValueError suggests a rechunk), and chunks several times its
        size repeat little. Without masks the image is read once up
        front for its mean; masks may be dask, zarr or numpy arrays.
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
    ncc : ndarray of float64 (dask array for a dask or zarr `image`)
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
    if is_lazy(image):
        return lazy_normalized_cross_correlation(
            template,
            image,
            mode,
            fft_precision=fft_precision,
            template_mask=template_mask,
            image_mask=image_mask,
            min_overlap=min_overlap,
        )
    check_mode(mode)
    dtype = fft_dtype(fft_precision)
    if template_mask is not None or image_mask is not None:
        return masked_normalized_cross_correlation(
            template,
            template_mask,
            image,
            image_mask,
            mode_padding(np.shape(template), mode),
            min_overlap,
        )
    template = scaled(as_real_array("template", template))
    image = scaled(as_real_array("image", image))
    check_template_fits(template, image)
    prepared = PreparedTemplate(template, template.ndim, dtype)
    padding = mode_padding(template.shape, mode)
    # Zero padding of the centred image = padding with the image's mean.
    return tiled_ncc_valid(
        prepared, image, image.mean(dtype=np.float64), padding
    )


def normalized_cross_correlation_2d(
    template: npt.ArrayLike, image: npt.ArrayLike, mode: str = "full"
) -> np.ndarray:
    """:func:`normalized_cross_correlation` under its normxcorr2-style name
    (any dimension)."""
    return normalized_cross_correlation(template, image, mode)
