"""Laying the target over the template: the layer affine, the warped
target, and the fit as a JSON record.

The fit maps template pixels to target pixels (``TransformFit.matrix``);
the target layer overlays the template when its data-to-world map becomes
the template's composed with the inverse fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core._arrays import LazyArray
from ..matching._result import MatchResult
from ..registration._transform import TransformFit
from ..registration._warp import warp
from .layers import Affine, data_to_world
from .session import RunInputs

if TYPE_CHECKING:
    import napari


def homogeneous(affine: Affine) -> np.ndarray:
    """The (D+1, D+1) matrix of an affine (matrix, offset)."""
    matrix, offset = affine
    full = np.eye(len(offset) + 1)
    full[:-1, :-1] = matrix
    full[:-1, -1] = offset
    return full


def overlay_affine(
    template_layer: napari.layers.Image,
    target_layer: napari.layers.Image,
    fit: TransformFit,
) -> np.ndarray:
    """The target layer's ``affine`` that lays it over the template.

    The target's data-to-world map must become ``W_t ∘ M⁻¹`` (``W_t``:
    the template's data-to-world map, ``M``: the fit, template pixels to
    target pixels). napari composes ``affine ∘ inner``, where ``inner``
    holds the target's own scale, translate, rotate and shear; they are
    kept, so the affine is ``W_t ∘ M⁻¹ ∘ inner⁻¹``.

    Returns
    -------
    (D+1, D+1) ndarray
        The new affine matrix, in world units.
    """
    template_world = homogeneous(data_to_world(template_layer))
    target_world = homogeneous(data_to_world(target_layer))
    old = np.asarray(target_layer.affine.affine_matrix, dtype=float)
    inner = np.linalg.solve(old, target_world)
    return template_world @ fit.inverse @ np.linalg.inv(inner)


def fit_record(
    fit: TransformFit, result: MatchResult, inputs: RunInputs
) -> dict[str, Any]:
    """The fit, its points (template pixels) and their matches (target
    pixels) as plain JSON values; NaN becomes None. A fit not made from
    `result` (loaded, or from pairs) goes without them."""
    names = {
        "template": inputs.template_layer.name,
        "target": inputs.image_layer.name,
    }
    if len(fit.inliers) != len(result):
        return {**fit.to_dict(), **names}
    return {
        **fit.to_dict(),
        **names,
        "points": _json_rows(result.points),
        "matched": _json_rows(result.matched),
        "status": [str(s) for s in result.status],
    }


def _json_rows(values: np.ndarray) -> list[list[float | None]]:
    return [
        [float(v) if np.isfinite(v) else None for v in row] for row in values
    ]


def check_overlay(fit: TransformFit, inputs: RunInputs) -> None:
    """Raise ValueError when a layer affine cannot express the overlay."""
    if inputs.template_layer == inputs.image_layer:
        raise ValueError("The template and the target are one layer.")
    ndim = len(fit.matrix) - 1
    layer_dims = {inputs.template_layer.ndim, inputs.image_layer.ndim}
    if layer_dims != {ndim}:
        raise ValueError(
            f"The overlay needs {ndim}-D template and target layers, like "
            "the fit."
        )
    if fit.model == "projective":
        raise ValueError(
            "A projective fit is no layer affine: add the warped target "
            "instead."
        )


def warped_pixels(
    image_layer: napari.layers.Image,
    target: LazyArray,
    fit: TransformFit,
    shape: tuple[int, ...],
) -> Any:
    """The target's pixels resampled into the template's grid of `shape`:
    grey as matched (`target`), or each colour of an RGB layer; lazy for
    dask data."""
    if not image_layer.rgb:
        return warp(target, fit, shape)
    data = image_layer.data[0] if image_layer.multiscale else image_layer.data
    colours = [warp(data[..., c], fit, shape) for c in range(data.shape[-1])]
    if all(isinstance(colour, np.ndarray) for colour in colours):
        return np.stack(colours, axis=-1)
    import dask.array as da

    return da.stack(colours, axis=-1)


def placement(layer: napari.layers.Image) -> dict[str, Any]:
    """The keywords that place a new layer exactly like `layer`."""
    return {
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": np.array(layer.affine.affine_matrix, copy=True),
        # Physical units too: napari warns about layers in mixed units.
        "units": layer.units,
    }
