"""NCC of many small windows of one shape at once, templates kept as spectra.

The tracker matches each point's template into a small search window of
every frame, and a template changes only when its reference does. A
:class:`TemplateBank` keeps each template's spectrum between calls, so a
window costs one forward and one (pruned) inverse transform. The windows'
sums over every template position are products with banded matrices of
ones: BLAS does them in float64, where prefix sums in numpy would take
several passes per axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft

from ._kernel import PreparedTemplate, fft_shape, valid_inverse
from ._window_sums import FLAT_TOLERANCE

# Centred windows whose summed squares leave this range lose digits
# (overflow, or texture underflowing once squared): such windows are left
# to the general path, which scales them.
_SAFE_ENERGY = (2.0**-800, 2.0**800)


class TemplateBank:
    """The prepared templates of `count` points, kept between calls.

    Row k holds point k's template: its spectrum at the FFT shape of the
    search windows, its centred energy, whether it is flat, and the key it
    was read for (e.g. its frame and pixel), so that a caller re-reads
    only the templates whose key changed.
    """

    def __init__(
        self,
        count: int,
        template_shape: Sequence[int],
        search_shape: Sequence[int],
        fft_dtype: type[np.floating],
        key_length: int,
    ):
        self.template_shape = tuple(template_shape)
        self.search_shape = tuple(search_shape)
        self.fshape = fft_shape(search_shape)
        self.fft_dtype = fft_dtype
        half = (*self.fshape[:-1], self.fshape[-1] // 2 + 1)
        complex_dtype = np.result_type(fft_dtype, np.complex64)
        self.spectra = np.zeros((count, *half), complex_dtype)
        self.energy = np.zeros(count)
        self.flat = np.zeros(count, dtype=bool)
        self.usable = np.zeros(count, dtype=bool)
        self.keys = np.full((count, key_length), np.iinfo(np.int64).min)

    def stale(self, rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Which of `rows` hold a template read for other `keys`."""
        return ~np.all(self.keys[rows] == keys, axis=1)

    def put(
        self, rows: np.ndarray, keys: np.ndarray, templates: np.ndarray
    ) -> None:
        """Prepare `templates` (k, *template_shape) for `rows`.

        A template with non-finite values, constant, or too large or small
        to square safely, is kept as not `usable`: the general path, which
        masks and scales, matches it.
        """
        d = len(self.template_shape)
        values = templates.astype(np.float64)
        prepared = PreparedTemplate(values, d, self.fft_dtype)
        energy = prepared.energy.reshape(-1)
        self.spectra[rows] = prepared.spectrum(self.fshape, workers=1)
        self.energy[rows] = energy
        self.flat[rows] = prepared.flat.reshape(-1)
        self.usable[rows] = _safe(energy)
        self.keys[rows] = keys


def small_ncc(
    bank: TemplateBank, rows: np.ndarray, windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """'valid' NCC of the templates of `rows` over `windows`.

    `windows` is (k, *bank.search_shape), window j searched by the
    template of ``rows[j]``. Flat templates and flat positions score 0.
    Returns the (k, *valid) surfaces (float64, in [-1, 1]) and which
    windows could be scored: not those with non-finite values or too
    large or small to square safely (their surfaces are garbage).
    """
    k = len(rows)
    d = len(bank.search_shape)
    axes = tuple(range(1, d + 1))
    # Values and squares side by side: one product per axis sums both.
    both = np.empty((2 * k, *bank.search_shape))
    values, squares = both[:k], both[k:]
    np.copyto(values, windows, casting="unsafe")
    values -= values.mean(axis=axes, keepdims=True)
    np.square(values, out=squares)
    total = squares.sum(axis=axes)
    scored = _safe(total)

    spectrum = scipy.fft.rfftn(
        values.astype(bank.fft_dtype), bank.fshape, axes=axes, workers=1
    )
    spectrum *= bank.spectra[rows]
    keep = tuple(
        slice(m - 1, n) for m, n in zip(bank.template_shape, bank.search_shape)
    )
    numerator = valid_inverse(spectrum, bank.fshape, keep, 1)[
        (Ellipsis, keep[-1])
    ]

    sums = box_sums(both, bank.template_shape)
    energy = sums[k:]
    means = sums[:k]
    np.square(means, out=means)
    means /= np.prod(bank.template_shape, dtype=np.float64)
    energy -= means
    # Rounding leaves flat positions with a few eps of the window's energy.
    shape = (k,) + (1,) * d
    flat = energy <= FLAT_TOLERANCE * total.reshape(shape)
    flat |= bank.flat[rows].reshape(shape)
    energy *= bank.energy[rows].reshape(shape)
    energy[flat] = np.inf  # an infinite norm scores exactly 0
    np.sqrt(energy, out=energy)
    np.divide(numerator, energy, out=energy)
    return np.clip(energy, -1.0, 1.0, out=energy), scored


def box_sums(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Sums of `values` over every box of `shape` inside it ('valid').

    `shape` spans the last len(shape) axes; leading axes are a stack.
    One matrix product per axis with a band of ones: exact to a few eps
    of the largest sum, as the running sums of the general path.
    """
    d = len(shape)
    out = values
    for axis in range(values.ndim - d, values.ndim):
        size, m = out.shape[axis], shape[axis - values.ndim + d]
        band = _band(size, m)
        lead, trail = out.shape[:axis], out.shape[axis + 1 :]
        if not trail:
            out = out @ band.T
        else:
            flat = out.reshape(*lead, size, -1)
            out = np.matmul(band, flat).reshape(*lead, size - m + 1, *trail)
    return out


def _band(size: int, width: int) -> np.ndarray:
    """(size - width + 1, size) matrix: ones on row k from k to k + width."""
    index = np.arange(size)
    start = np.arange(size - width + 1)[:, np.newaxis]
    return ((index >= start) & (index < start + width)).astype(np.float64)


def _safe(energy: np.ndarray) -> np.ndarray:
    """Energies of centred values whose squares and sums lost nothing."""
    low, high = _SAFE_ENERGY
    return (energy > low) & (energy < high)
