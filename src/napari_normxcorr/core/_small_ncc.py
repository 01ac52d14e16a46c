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

import functools
from collections.abc import Sequence

import numpy as np
import scipy.fft

from ._kernel import PreparedTemplate, fft_shape, valid_inverse
from ._parallel import thread_workspace
from ._window_sums import FLAT_TOLERANCE

# Mean squares of centred values beyond which the transforms, squares or
# sums of each precision overflow, or texture underflows once squared:
# such windows and templates are left to the general path.
_SAFE_MEAN_SQUARE = {
    np.dtype(np.float32): (2.0**-100, 2.0**100),
    np.dtype(np.float64): (2.0**-800, 2.0**800),
}


class TemplateBank:
    """The prepared templates of `count` points, kept between calls.

    Row k holds point k's template: the spectrum, at the FFT shape of the
    search windows, of the template centred and scaled to unit energy (no
    product of two energies is formed, so none can overflow), whether it
    is flat or usable at all, and the key it was read for (e.g. its frame
    and pixel), so that a caller re-reads only the templates whose key
    changed.
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
        self.spectra = np.zeros(
            *_spectra_layout(count, search_shape, fft_dtype)
        )
        self.flat = np.zeros(count, dtype=bool)
        self.usable = np.zeros(count, dtype=bool)
        self.keys = np.full((count, key_length), np.iinfo(np.int64).min)

    @staticmethod
    def size(
        count: int,
        search_shape: Sequence[int],
        fft_dtype: type[np.floating],
    ) -> int:
        """Bytes of the spectra of a bank of `count` templates."""
        shape, dtype = _spectra_layout(count, search_shape, fft_dtype)
        return int(np.prod(shape)) * dtype.itemsize

    def stale(self, rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Which of `rows` hold a template read for other `keys`."""
        return ~np.all(self.keys[rows] == keys, axis=1)

    def put(
        self, rows: np.ndarray, keys: np.ndarray, templates: np.ndarray
    ) -> None:
        """Prepare `templates` (k, *template_shape) for `rows`.

        A template with non-finite values, constant, or too large or small
        for the transforms, is kept as not `usable`: the general path, which
        masks and scales, matches it.
        """
        d = len(self.template_shape)
        # Templates out of range overflow here; they are not usable.
        with np.errstate(over="ignore", invalid="ignore"):
            prepared = PreparedTemplate(templates, d, self.fft_dtype)
            energy = prepared.energy.reshape(-1)
            count = np.prod(self.template_shape, dtype=np.float64)
            usable = _safe(energy / count, self.fft_dtype)
            norm = np.sqrt(np.where(usable, energy, 1.0))
            spectra = prepared.spectrum(self.fshape, workers=1)
        self.spectra[rows] = spectra / norm.reshape(-1, *[1] * d)
        self.flat[rows] = prepared.flat.reshape(-1)
        self.usable[rows] = usable
        self.keys[rows] = keys


def small_ncc(
    bank: TemplateBank, rows: np.ndarray, windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """'valid' NCC of the templates of `rows` over `windows`.

    `windows` is (k, *bank.search_shape), window j searched by the
    template of ``rows[j]``. Flat templates and flat positions score 0.
    Returns the (k, *valid) surfaces (float64, in [-1, 1]) and which
    windows could be scored: not those with non-finite values or too
    large or small for the transforms (their surfaces are garbage).
    """
    k, d = len(rows), len(bank.search_shape)
    space = thread_workspace()
    # Values and squares side by side: one product per axis sums both.
    both = space.get("small windows", (2 * k, *bank.search_shape))
    values, squares = both[:k], both[k:]
    np.copyto(values, windows, casting="unsafe")
    axes = tuple(range(1, d + 1))
    spread = (k,) + (1,) * d
    # Windows out of range overflow here; they are not scored.
    with np.errstate(over="ignore", invalid="ignore"):
        values -= values.mean(axis=axes).reshape(spread)
        np.square(values, out=squares)
        total = squares.sum(axis=axes).reshape(spread)
    count = np.prod(bank.search_shape, dtype=np.float64)
    scored = _safe(total.reshape(k) / count, bank.fft_dtype)
    if not scored.all():  # zeros instead: nothing overflows further on
        both[np.tile(~scored, 2)] = 0.0
        total[~scored] = 1.0

    numerator = _numerator(bank, rows, values)
    sums = box_sums(both, bank.template_shape)
    means, energy = sums[:k], sums[k:]
    np.square(means, out=means)
    means /= np.prod(bank.template_shape, dtype=np.float64)
    energy -= means
    # Rounding leaves flat positions with a few eps of the window's energy.
    flat = energy <= FLAT_TOLERANCE * total
    flat |= bank.flat[rows].reshape(spread)
    np.copyto(energy, np.inf, where=flat)  # an infinite norm scores 0
    np.sqrt(energy, out=energy)
    np.divide(numerator, energy, out=numerator)
    return np.clip(numerator, -1.0, 1.0, out=numerator), scored


def _numerator(
    bank: TemplateBank, rows: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """'valid' correlation of the templates of `rows` with the centred
    windows `values` (k, *search_shape), by the kept spectra; float64."""
    d = len(bank.search_shape)
    shape = (len(rows), *bank.fshape)
    padded = thread_workspace().get("small padded", shape, bank.fft_dtype)
    for axis, n in enumerate(bank.search_shape, start=1):
        padded[(slice(None),) * axis + (slice(n, None),)] = 0.0
    inside = tuple(slice(0, n) for n in bank.search_shape)
    padded[(slice(None), *inside)] = values
    axes = tuple(range(1, d + 1))
    spectrum = scipy.fft.rfftn(padded, axes=axes, workers=1)
    spectrum *= bank.spectra[rows]
    keep = tuple(
        slice(m - 1, n) for m, n in zip(bank.template_shape, bank.search_shape)
    )
    valid = valid_inverse(spectrum, bank.fshape, keep, 1)[(Ellipsis, keep[-1])]
    return valid.astype(np.float64)


def box_sums(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Sums of `values` over every box of `shape` inside it ('valid').

    `shape` spans the last len(shape) axes; leading axes are a stack.
    One matrix product per axis with a band of ones, exact to a few eps
    of the largest sum as the running sums of the general path. Each
    product is one small one per array of the stack, the band on the
    left: the same arithmetic whatever the stack (an array's sums do not
    depend on the others, to the bit), and small enough that BLAS runs
    it in the calling thread, where threads of our own already run.
    """
    d = len(shape)
    out = values
    for axis in range(values.ndim - d, values.ndim - 1):
        size, m = out.shape[axis], shape[axis - values.ndim + d]
        lead, trail = out.shape[:axis], out.shape[axis + 1 :]
        flat = out.reshape(*lead, size, -1)
        out = np.matmul(_band(size, m), flat)
        out = out.reshape(*lead, size - m + 1, *trail)
    # The last axis: summed as the rows of each array's transpose (a
    # line as an array of one row).
    rows = out if out.ndim >= 2 else out[np.newaxis]
    band = _band(rows.shape[-1], shape[-1])
    summed = np.matmul(band, rows.swapaxes(-1, -2)).swapaxes(-1, -2)
    return summed if out.ndim >= 2 else summed[0]


def _spectra_layout(
    count: int, search_shape: Sequence[int], fft_dtype: type[np.floating]
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the half spectra of `count` templates at the FFT
    shape of `search_shape`."""
    fshape = fft_shape(search_shape)
    half = (*fshape[:-1], fshape[-1] // 2 + 1)
    return (count, *half), np.result_type(fft_dtype, np.complex64)


@functools.lru_cache(maxsize=16)
def _band(size: int, width: int) -> np.ndarray:
    """(size - width + 1, size) matrix: ones on row k from k to k + width
    (read-only: shared by every call)."""
    index = np.arange(size)
    start = np.arange(size - width + 1)[:, np.newaxis]
    band = ((index >= start) & (index < start + width)).astype(np.float64)
    band.flags.writeable = False
    return band


def _safe(mean_square: np.ndarray, fft_dtype: type[np.floating]) -> np.ndarray:
    """Which centred values of `mean_square` the transforms of `fft_dtype`
    and the sums take without losing digits."""
    low, high = _SAFE_MEAN_SQUARE[np.dtype(fft_dtype)]
    return (mean_square > low) & (mean_square < high)
