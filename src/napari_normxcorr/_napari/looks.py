"""How the outputs look: status and magnitude colours, the NCC colormap,
and sizes and units that follow the input layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..matching._result import MatchResult, Status
from .legend import FAILED_COLOR, STATUS_COLORS

if TYPE_CHECKING:
    import napari

__all__ = ["STATUS_COLORS"]

_FAILED_COLOR = FAILED_COLOR
NCC_COLORMAP = {
    "colors": [[0.1, 0.2, 0.9, 1.0], [1.0, 1.0, 1.0, 1.0], [0.9, 0.1, 0.1, 1]],
    "name": "ncc (blue -1, white 0, red +1)",
}
# How the displacement vectors are coloured; plain is one colour.
VECTOR_COLORINGS = ("magnitude", "status", "plain")
PLAIN_VECTOR_COLOR = "yellow"
MAGNITUDE_COLORMAP = "turbo"


def features_of(result: MatchResult) -> dict[str, np.ndarray]:
    """Per-point columns for the matched layer's ``features``."""
    table = result.to_table()
    keep = [
        name for name in table if not name.startswith(("point-", "matched-"))
    ]
    return {name: table[name] for name in keep}


def status_colors(result: MatchResult) -> np.ndarray:
    """One RGBA colour per row, by status."""
    return np.array(
        [STATUS_COLORS.get(s, _FAILED_COLOR) for s in result.status]
    )


def magnitudes(result: MatchResult) -> np.ndarray:
    """Length of each row's displacement in pixels (NaN: no match)."""
    return np.sqrt(np.sum(np.asarray(result.offset, float) ** 2, axis=1))


def magnitude_limits(result: MatchResult) -> tuple[float, float]:
    """The range of the ok matches' magnitudes (px), for the colormap.

    Other rows are left out, so that one wild match does not squeeze the
    colours of all the others; they get the colour of the nearest end.
    """
    lengths = magnitudes(result)
    ok = np.asarray(result.status) == Status.OK
    finite = lengths[np.isfinite(lengths)]
    usable = lengths[ok & np.isfinite(lengths)]
    values = usable if usable.size else finite
    if values.size == 0:
        return 0.0, 1.0
    return float(values.min()), float(values.max())


def vector_colors(result: MatchResult, coloring: str) -> Any:
    """The displacement vectors' ``edge_color`` for `coloring` (one of
    VECTOR_COLORINGS): a colour name, or one RGBA row per vector."""
    if coloring == "status":
        return status_colors(result)
    if coloring != "magnitude":
        return PLAIN_VECTOR_COLOR
    from napari.utils.colormaps import ensure_colormap

    low, high = magnitude_limits(result)
    lengths = magnitudes(result)
    # A guard against a zero range (all vectors alike).
    scaled = np.clip((lengths - low) / max(high - low, 1e-12), 0.0, 1.0)
    colors = ensure_colormap(MAGNITUDE_COLORMAP).map(np.nan_to_num(scaled))
    colors[~np.isfinite(lengths)] = _FAILED_COLOR
    return colors


def surface_style() -> dict[str, Any]:
    """How an NCC surface layer looks: the NCC colormap over [-1, 1],
    see-through over the image under it."""
    import napari

    return {
        "colormap": napari.utils.Colormap(**NCC_COLORMAP),
        "contrast_limits": (-1.0, 1.0),
        "opacity": 0.6,
    }


def pixel_size(layer: napari.layers.Layer) -> float:
    """A pixel of `layer` in world units (the mean of its last two
    scales)."""
    return float(np.mean(np.abs(np.asarray(layer.scale)[-2:])))


def world_size(points_layer: napari.layers.Points) -> np.ndarray:
    """The sizes of a Points layer's points in world units: what they
    look like, drawn in a layer without scale."""
    return np.asarray(points_layer.size, dtype=float) * pixel_size(
        points_layer
    )


def units_for(layer: napari.layers.Layer, ndim: int) -> tuple[Any, ...]:
    """`ndim` units in the physical units of `layer`'s last axes (output
    layers live in its world: napari warns about mixed units)."""
    units = tuple(layer.units)
    if len(units) >= ndim:
        return units[-ndim:]
    return (units[-1],) * (ndim - len(units)) + units


def layer_ndim(kind: str, data: Any) -> int:
    """The dimensionality of a layer of `kind` holding `data`."""
    if kind == "image":
        return int(np.ndim(data))
    if kind == "surface":
        return int(np.shape(data[0])[1])
    # Points (N, D) and vectors (N, 2, D): D.
    return int(np.shape(data)[-1])
