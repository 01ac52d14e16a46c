"""From the widget's choices to a run's inputs, or a message saying why not.

Everything is checked before any work starts, so that bad input gets one
notification and changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core._arrays import LazyArray
from .layers import image_array, points_world
from .session import MatchOptions, RunInputs

if TYPE_CHECKING:
    import napari


class InputProblem(ValueError):
    """The layers or settings cannot be matched; the message says why."""


def prepare_run(
    template_layer: napari.layers.Image | None,
    image_layer: napari.layers.Image | None,
    points_layer: napari.layers.Points | None,
    options: MatchOptions,
    template_mask: napari.layers.Labels | None = None,
    image_mask: napari.layers.Labels | None = None,
) -> tuple[RunInputs, np.ndarray]:
    """The inputs of a run and the world positions of its points.

    `template_mask` and `image_mask` are optional Labels layers over each
    image (pixel for pixel): their nonzero pixels hold no data.

    Raises
    ------
    InputProblem
        When a layer is missing, empty or of another dimensionality, a
        mask does not cover its image pixel for pixel, the radii do not
        fit, or no point lies on the template image.
    """
    if template_layer is None or image_layer is None:
        raise InputProblem("Choose a template image and a target image layer.")
    if points_layer is None:
        raise InputProblem("Choose a Points layer with points of interest.")
    if len(points_layer.data) == 0:
        raise InputProblem(
            f"'{points_layer.name}' has no points: click points of "
            "interest on the template image first."
        )
    template, target = image_array(template_layer), image_array(image_layer)
    inputs = RunInputs(
        template_layer,
        image_layer,
        points_layer,
        template,
        target,
        options,
        _mask_of(template_mask, template_layer.name, template.shape),
        _mask_of(image_mask, image_layer.name, target.shape),
    )
    _check_dimensions(inputs)
    _check_radii(inputs)
    world = points_world(points_layer)
    _check_some_inside(inputs, world)
    return inputs, world


def _mask_of(
    labels: napari.layers.Labels | None,
    image_name: str,
    image_shape: tuple[int, ...],
) -> LazyArray | None:
    """The pixels of a no-data Labels layer, checked against its image."""
    if labels is None:
        return None
    data = labels.data[0] if labels.multiscale else labels.data
    if tuple(data.shape) != tuple(image_shape):
        raise InputProblem(
            f"The no-data layer '{labels.name}' has shape {data.shape} but "
            f"'{image_name}' has {tuple(image_shape)}: it must cover the "
            "image pixel for pixel."
        )
    return data


def _check_dimensions(inputs: RunInputs) -> None:
    template, target = inputs.template, inputs.target
    ndim = inputs.points_layer.ndim
    if not (template.ndim == target.ndim == ndim):
        raise InputProblem(
            f"Layers with incompatible dimensionality: template "
            f"'{inputs.template_layer.name}' has {template.ndim} axes, "
            f"target '{inputs.image_layer.name}' {target.ndim}, points "
            f"'{inputs.points_layer.name}' {ndim}; choose layers with the "
            "same number of axes."
        )


def _check_radii(inputs: RunInputs) -> None:
    s_radius = inputs.options.search_radius
    d = len(s_radius)
    t_radius = np.broadcast_to(inputs.options.template_radius, (d,))
    template, target = inputs.template.shape[-d:], inputs.target.shape[-d:]
    smallest = np.minimum(template, target)
    if np.any(2 * t_radius + 1 > smallest):
        shown = _radius(t_radius)
        fit = _radius((smallest - 1) // 2)
        raise InputProblem(
            f"The template radius {shown} is too large for images of "
            f"{tuple(template)} and {tuple(target)} pixels; make it at "
            f"most {fit}."
        )
    if np.any(np.asarray(s_radius) < t_radius):
        raise InputProblem(
            f"The search radius {s_radius} must be at least the template "
            f"radius ({_radius(t_radius)}) along each axis."
        )


def _radius(values: np.ndarray) -> int | tuple[int, ...]:
    """One int when all axes agree, else one per axis."""
    values = np.asarray(values)
    if np.all(values == values[0]):
        return int(values[0])
    return tuple(int(v) for v in values)


def check_not_itself(
    template_layer: napari.layers.Image | None,
    image_layer: napari.layers.Image | None,
) -> None:
    """Refuse to match a layer against itself: every point would find
    itself (score 1, offset 0), a confident answer that means nothing."""
    if template_layer is None or template_layer is not image_layer:
        return
    assert template_layer is not None  # ("is" above loses the narrowing)
    raise InputProblem(
        f"'{template_layer.name}' is both the template and the target: "
        "each point would match itself (score 1, offset 0). Choose "
        "another target image, or follow the points through the frames "
        "of a time-lapse with Track."
    )


def _check_some_inside(inputs: RunInputs, world: np.ndarray) -> None:
    points, _ = inputs.pixels(world)
    rounded = np.rint(points)
    inside = np.all((rounded >= 0) & (rounded < inputs.template.shape), axis=1)
    if not inside.any():
        raise InputProblem(
            f"All {len(points)} points of '{inputs.points_layer.name}' lie "
            f"outside the template image '{inputs.template_layer.name}'."
        )
