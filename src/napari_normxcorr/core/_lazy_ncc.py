"""Whole-image NCC of a dask or zarr image, lazily: one task per chunk.

Output chunk ``[a, b)`` of an axis needs the image from ``a - before`` to
``b + after``, where ``before + after = m - 1`` and ``before`` is the
mode's padding in front ('full': m - 1, 'same': m - 1 - (m - 1) // 2,
'valid': 0). :func:`dask.array.map_overlap` ghosts that halo from the
neighbouring chunks into each block; blocks on the image's border are
padded exactly as the in-memory image is (the centred image's zeros,
i.e. its global mean; masked pixels in the masked NCC). Each block then
runs the in-memory 'valid' NCC, so every output pixel sees the same
pixels as in memory.

dask is imported only when a lazy image comes in: ``import
napari_normxcorr`` keeps working without it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ._arrays import safe_scale, scaled
from ._kernel import PreparedTemplate
from ._masked import (
    MIN_OVERLAP,
    check_mask,
    masked_normalized_cross_correlation,
    valid_pixels,
)
from ._tiles import mode_padding, tiled_ncc_valid
from ._validate import (
    as_real_array,
    check_mode,
    check_real,
    check_template_fits,
    fft_dtype,
    number,
)

if TYPE_CHECKING:
    import dask.array as da

Padding = Sequence[tuple[int, int]]


def _is_zarr(array: object) -> bool:
    """Whether `array` is a zarr array (without importing zarr)."""
    zarr = sys.modules.get("zarr")
    return zarr is not None and isinstance(array, zarr.Array)


def is_lazy(array: object) -> bool:
    """Whether `array` is a dask or zarr array, to be correlated lazily.

    Neither library is imported here: an array of one implies that its
    library has been imported already.
    """
    dask_array = sys.modules.get("dask.array")
    is_dask = dask_array is not None and isinstance(array, dask_array.Array)
    return is_dask or _is_zarr(array)


def _as_dask(array: Any, chunks: Any = "auto") -> da.Array:
    """`array` (dask, zarr or in memory) as a dask array.

    A dask array keeps its chunks unless `chunks` are given; zarr and
    in-memory arrays are read in `chunks` (zarr's own by default).
    """
    try:
        import dask.array as da
    except ImportError:
        raise ImportError(
            "a zarr image is correlated lazily with dask: pip install "
            "'napari-normxcorr[distributed]'."
        ) from None

    if isinstance(array, da.Array):
        return array if chunks == "auto" else array.rechunk(chunks)
    if _is_zarr(array):
        return da.from_zarr(array, chunks=None if chunks == "auto" else chunks)
    return da.from_array(np.asarray(array), chunks=chunks)


def _suggested_chunk(length: int, chunk: int, m: int) -> int:
    """A chunk size of at least `m` and `chunk` whose last chunk over
    `length` pixels is not shorter than `m` either."""
    size = max(m, chunk)
    while 0 < length % size < m:
        size += 1
    return size


def _check_chunks(
    chunks: Sequence[Sequence[int]], shape: Sequence[int]
) -> None:
    """Raise unless every chunk is at least as long as the template.

    A block borrows up to m - 1 pixels from each neighbour, which must
    hold them, and a 'valid' last block loses m - 1 outputs.
    """
    for axis, (sizes, m) in enumerate(zip(chunks, shape)):
        if min(sizes) < m:
            suggestion = _suggested_chunk(sum(sizes), max(sizes), m)
            raise ValueError(
                f"image has a chunk of {min(sizes)} pixels along axis "
                f"{axis}, fewer than the template's {m}: every chunk must "
                f"hold at least {m} pixels (the halo of a block is "
                f"{m - 1}). Rechunk it, e.g. "
                f"image.rechunk({{{axis}: {suggestion}}}) (a zarr array: "
                "dask.array.from_zarr(image).rechunk(...))."
            )


def _halo(template_shape: Sequence[int], padding: Padding) -> dict:
    """Pixels each block borrows from its neighbours, (before, after) per
    axis: the output at p sees the image from p - before to
    p - before + m - 1."""
    return {
        axis: (before, m - 1 - before)
        for axis, (m, (before, _)) in enumerate(zip(template_shape, padding))
    }


def _output_chunks(
    chunks: Sequence[Sequence[int]],
    template_shape: Sequence[int],
    padding: Padding,
) -> tuple[tuple[int, ...], ...]:
    """One output chunk per image chunk; the last one along each axis
    takes what the mode adds ('full': m - 1) or removes ('valid')."""
    out = []
    for sizes, m, (before, after) in zip(chunks, template_shape, padding):
        extra = before + after - (m - 1)
        out.append((*sizes[:-1], sizes[-1] + extra))
    return tuple(out)


def _regular(chunks: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """`chunks` with a last chunk longer than all the others (of one size)
    cut into pieces no longer than them: splits only, so that no task
    holds more than before."""
    out = []
    for sizes in chunks:
        first, last = sizes[0], sizes[-1]
        if last > first and len(set(sizes[:-1])) == 1:
            rest = [last % first] if last % first else []
            sizes = (*sizes[:-1], *[first] * (last // first), *rest)
        out.append(tuple(sizes))
    return tuple(out)


def _block_padding(
    block_id: Sequence[int], numblocks: Sequence[int], padding: Padding
) -> list[tuple[int, int]]:
    """The mode's padding on the sides of a block that lie on the image's
    border; inside, the halo comes from the neighbours."""
    return [
        (before if k == 0 else 0, after if k == n - 1 else 0)
        for k, n, (before, after) in zip(block_id, numblocks, padding)
    ]


def _centring(image: da.Array) -> tuple[np.float64, float]:
    """The image's global mean and the in-memory path's power-of-two scale,
    from one pass over it; raise if it holds NaN or infinity."""
    import dask
    import dask.array as da

    # np.float64, not float: a Python float would let float32 blocks be
    # centred in float32 (NEP 50).
    if image.dtype.kind != "f":
        (mean,) = dask.compute(image.mean(dtype=np.float64))
        return np.float64(mean), 1.0
    bad, high, low, mean = dask.compute(
        da.count_nonzero(~da.isfinite(image)),
        image.max(),
        image.min(),
        image.mean(dtype=np.float64),
    )
    if bad:
        raise ValueError(
            f"image holds {bad} non-finite value(s) (NaN or inf); give an "
            "image_mask (NaN then counts as masked) or fill them."
        )
    scale = safe_scale(np.array([high, low], dtype=image.dtype))
    if scale != 1.0:
        # The unscaled sum may have overflowed.
        mean = (image * scale).mean(dtype=np.float64).compute()
    return np.float64(mean), scale


def _ncc_block(
    block: np.ndarray,
    *,
    template: np.ndarray,
    fft_precision: str,
    mean: np.float64,
    scale: float,
    padding: Padding,
    blocks: Sequence[int],
    block_id: Sequence[int],
) -> np.ndarray:
    """The in-memory 'valid' NCC of one block and its halo, centred on the
    image's mean and padded where the block meets the image's border."""
    values = block if scale == 1.0 else block * scale
    # Prepared per task: its spectra, one per tile shape, die with it.
    prepared = PreparedTemplate(
        template, template.ndim, fft_dtype(fft_precision)
    )
    pad = _block_padding(block_id, blocks, padding)
    return tiled_ncc_valid(prepared, values, mean, pad)


def _masked_block(
    block: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    template: np.ndarray,
    template_mask: np.ndarray | None,
    min_overlap: float,
    padding: Padding,
    blocks: Sequence[int],
    block_id: Sequence[int],
) -> np.ndarray:
    """The in-memory masked 'valid' NCC of one block and its halo, padded
    with masked pixels where the block meets the image's border."""
    pad = _block_padding(block_id, blocks, padding)
    return masked_normalized_cross_correlation(
        template, template_mask, block, mask, pad, min_overlap
    )


def lazy_normalized_cross_correlation(
    template: npt.ArrayLike,
    image: Any,
    mode: str = "full",
    *,
    fft_precision: str = "double",
    template_mask: npt.ArrayLike | None = None,
    image_mask: Any = None,
    min_overlap: float = MIN_OVERLAP,
) -> da.Array:
    """:func:`normalized_cross_correlation` of an image larger than memory.

    Parameters
    ----------
    template : (m0, m1[, ...]) array_like
        Pattern to look for, held in memory.
    image : (M0, M1[, ...]) dask.array.Array or zarr.Array
        Array to search. A zarr array is read in its own chunks. Every
        chunk must be at least as long as the template along each axis
        (see Notes); otherwise a ValueError suggests a rechunk.
    mode, fft_precision, min_overlap
        As for :func:`normalized_cross_correlation`.
    template_mask : array_like of bool, optional
        True where a pixel of `template` is to be ignored (in memory).
    image_mask : dask, zarr or in-memory array of bool, optional
        True where a pixel of `image` is to be ignored; the image's shape.
        It is read in the image's chunks.

    Returns
    -------
    ncc : dask.array.Array of float64
        The correlation surface of the in-memory function, lazily, with
        the image's chunks in 'same' mode; 'valid' mode removes m - 1
        pixels from the last chunk along each axis and 'full' mode adds
        m - 1 (in a chunk of their own where the image's chunks are of
        one size, as zarr needs). Write it with ``ncc.to_zarr(...)``, or
        compute only a region of it: that reads only the image chunks
        under the region and their neighbours.

    Notes
    -----
    Each output chunk is computed from its image chunk plus a halo of
    m - 1 pixels per axis borrowed from the neighbouring chunks, split
    between the two sides as the mode pads (all in front in 'full', all
    behind in 'valid', about half each in 'same'). The halo must come
    from the adjacent chunk alone, hence the rule: every chunk at least
    m pixels long (m - 1 would do for the halo; 'valid' removes m - 1
    outputs from the last chunk). Larger chunks repeat fewer halo pixels:
    a chunk of c pixels per axis is correlated as a block of c + m - 1,
    ``(1 + (m - 1) / c) ** ndim`` times the work of its outputs, so
    chunks several times the template's size are efficient (2048² for
    a 101² template: 10 % more).

    Without masks, the image is read once when this is called, for its
    global mean (the value of the padding in 'full' and 'same' modes and
    the centre of every block, as in memory), its range and its
    finiteness; NaN or infinite pixels raise here. A task then holds the
    chunks its block and halo come from (read whole, in the image's
    dtype), the block, the scratch arrays of the in-memory tiles (about
    two million pixels each at most) and its float64 output: about ten
    times the float64 size of a chunk of 2048² (more, relatively, for
    small chunks), whatever the image's size.

    With a mask (either), nothing is read up front: each block runs the
    in-memory masked NCC (Padfield's), whose six double-precision FFTs
    of the whole block take about thirty times the float64 size of a
    chunk; choose smaller chunks there. Its positions near flatness are
    judged against the rounding level of their own block, not of the
    whole image, so a window on the edge of flat may score 0 in one and
    not the other.
    """
    check_mode(mode)
    fft_dtype(fft_precision)
    lazy = _as_dask(image)
    check_real("image", lazy.dtype, lazy.shape)
    masked = template_mask is not None or image_mask is not None
    # NaN in a masked NCC counts as masked; without masks it is an error.
    values = (
        np.asarray(template) if masked else as_real_array("template", template)
    )
    check_real("template", values.dtype, values.shape)
    # A view with the image's shape and no data stands in for the image.
    check_template_fits(values, np.broadcast_to(0, lazy.shape))
    _check_chunks(lazy.chunks, values.shape)
    padding = mode_padding(values.shape, mode)
    if masked:
        ncc = _lazy_masked(
            lazy, values, template_mask, image_mask, min_overlap, padding
        )
    else:
        ncc = _lazy_unmasked(lazy, values, fft_precision, padding)
    # zarr wants chunks of one size but the last; 'full' makes it longer.
    return ncc.rechunk(_regular(ncc.chunks))


def _map_blocks(
    function: Any,
    arrays: Sequence[da.Array],
    template_shape: Sequence[int],
    padding: Padding,
    **keywords: Any,
) -> da.Array:
    """`function` on every block of `arrays` with its halo, as a float64
    array of one chunk per block."""
    import dask.array as da

    image = arrays[0]
    return da.map_overlap(
        function,
        *arrays,
        depth=_halo(template_shape, padding),
        boundary="none",
        trim=False,
        allow_rechunk=False,
        chunks=_output_chunks(image.chunks, template_shape, padding),
        dtype=np.float64,
        meta=np.empty((0,) * image.ndim),
        padding=padding,
        blocks=image.numblocks,
        **keywords,
    )


def _lazy_unmasked(
    image: da.Array,
    template: np.ndarray,
    fft_precision: str,
    padding: Padding,
) -> da.Array:
    """The plain NCC, centred on the image's mean as in memory."""
    mean, scale = _centring(image)
    return _map_blocks(
        _ncc_block,
        [image],
        template.shape,
        padding,
        template=scaled(template),
        fft_precision=fft_precision,
        mean=mean,
        scale=scale,
    )


def _lazy_masked(
    image: da.Array,
    template: np.ndarray,
    template_mask: npt.ArrayLike | None,
    image_mask: Any,
    min_overlap: float,
    padding: Padding,
) -> da.Array:
    """The masked NCC, its arguments checked here rather than in the
    first task to run."""
    if not 0 <= number("min_overlap", min_overlap) <= 1:
        raise ValueError(f"min_overlap must lie in [0, 1], got {min_overlap}.")
    if template_mask is not None:
        template_mask = np.asarray(template_mask)
    valid_pixels("template_mask", template, template_mask)
    arrays = [image]
    if image_mask is not None:
        check_mask("image_mask", image_mask, image.shape)
        arrays.append(_as_dask(image_mask, image.chunks).astype(bool))
    return _map_blocks(
        _masked_block,
        arrays,
        template.shape,
        padding,
        template=template,
        template_mask=template_mask,
        min_overlap=min_overlap,
    )
